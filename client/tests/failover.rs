//! The client against real in-process apiservers (two replicas over one in-memory storage):
//! requests fail over from a dead endpoint, typed CRUD round-trips, and a watch whose replica
//! dies mid-stream resumes on the other without missing or repeating an event.
//! (`tests/api` repeats the replica-kill case with real processes and `kill -9`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use navarch_apiserver::memory::MemoryStorage;
use navarch_apiserver::storage::Storage;
use navarch_client::{Api, Balance, Client, ClientConfig, Error, ListParams, WatchEvent};

struct Replica {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn replica(storage: Arc<dyn Storage>) -> Replica {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = navarch_apiserver::Config::memory(&addr.to_string());
    let task = tokio::spawn(navarch_apiserver::serve(
        cfg,
        storage,
        listener,
        std::future::pending(),
    ));
    let probe = Client::single(&addr.to_string()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while probe
        .send(&navarch_client::Request::get("/readyz"))
        .await
        .map(|r| r.status != 200)
        .unwrap_or(true)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Replica { addr, task }
}

fn cm(name: &str, seq: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("seq".to_string(), seq.to_string())].into()),
        ..Default::default()
    }
}

/// A port nothing listens on (bound, then released).
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn requests_skip_a_dead_endpoint_and_crud_round_trips() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let a = replica(storage.clone()).await;
    let client = Client::new(ClientConfig::new([dead_addr(), a.addr.to_string()])).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = cms.create(&cm("one", 1)).await.expect("create fails over");
    let rv = created.metadata.resource_version.clone().expect("rv set");
    let got = cms.get("one").await.unwrap();
    assert_eq!(got.data.unwrap()["seq"], "1");

    // Optimistic concurrency: a stale resourceVersion is a 409 Conflict, not a retry.
    let mut stale = cm("one", 2);
    stale.metadata.resource_version = Some("1".into());
    assert_ne!(rv, "1");
    match cms.replace("one", &stale).await {
        Err(Error::Api {
            code: 409, reason, ..
        }) => assert_eq!(reason, "Conflict"),
        other => panic!("stale update: {other:?}"),
    }
    let mut fresh = cm("one", 3);
    fresh.metadata.resource_version = Some(rv);
    cms.replace("one", &fresh)
        .await
        .expect("update with the current rv");

    match cms.get("missing").await {
        Err(e @ Error::Api { .. }) => assert_eq!(e.code(), Some(404), "{e}"),
        other => panic!("get of a missing object: {other:?}"),
    }
    for i in 0..7 {
        cms.create(&cm(&format!("page-{i}"), i)).await.unwrap();
    }
    // Pagination with continue tokens returns every object exactly once.
    let mut names = Vec::new();
    let mut params = ListParams {
        limit: Some(3),
        ..Default::default()
    };
    for _ in 0..10 {
        let page = cms.list(&params).await.unwrap();
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => params.continue_token = Some(t),
            _ => break,
        }
    }
    assert_eq!(names.len(), 8, "{names:?}");
    cms.delete("one").await.unwrap();
    assert_eq!(
        cms.get("one").await.unwrap_err().code(),
        Some(404),
        "deleted object is gone"
    );

    // Every endpoint dead: a clear error after bounded attempts, not a hang.
    let nowhere = Client::new(ClientConfig {
        max_attempts: 3,
        ..ClientConfig::new([dead_addr(), dead_addr()])
    })
    .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        Api::<ConfigMap>::namespaced(nowhere, "default").get("x"),
    )
    .await
    .expect("bounded");
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    a.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_on_another_replica_without_gaps_or_repeats() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let a = replica(storage.clone()).await;
    let b = replica(storage.clone()).await;
    // The watcher sticks to replica A until it dies.
    let watch_client = Client::new(ClientConfig {
        balance: Balance::Sticky,
        ..ClientConfig::new([a.addr.to_string(), b.addr.to_string()])
    })
    .unwrap();
    let writer: Api<ConfigMap> =
        Api::namespaced(Client::single(&b.addr.to_string()).unwrap(), "default");
    let start = writer.create(&cm("start", 0)).await.unwrap();
    let rv = start.metadata.resource_version.unwrap();

    let cms: Api<ConfigMap> = Api::namespaced(watch_client, "default");
    let mut watcher = cms.watch(&ListParams::default(), &rv);
    const N: usize = 40;
    let write = tokio::spawn(async move {
        for i in 1..=N {
            writer.create(&cm(&format!("cm-{i}"), i)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut abort_a = Some(a.task);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < N {
        let ev = tokio::time::timeout_at(deadline, watcher.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {N} events arrived: {seen:?}", seen.len()))
            .expect("watch continues")
            .expect("no watch error");
        match ev {
            WatchEvent::Added(c) => seen.push(c.data.unwrap()["seq"].parse::<usize>().unwrap()),
            WatchEvent::Bookmark { .. } => {}
            other => panic!("unexpected event {other:?}"),
        }
        if seen.len() == 10 {
            // Kill replica A mid-stream: its connections drop like a crashed process's.
            abort_a.take().unwrap().abort();
        }
    }
    write.await.unwrap();
    assert_eq!(
        seen,
        (1..=N).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert!(watcher.reconnects() >= 1, "the watch was reopened on B");
    b.task.abort();
}
