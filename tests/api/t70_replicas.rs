//! Several apiserver replicas over one store: writes through one are read through the others,
//! and a watcher whose replica is killed mid-stream resumes on another from its last
//! resourceVersion without missing or repeating an event.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::http::{self, WatchStream};
use crate::support::{python, TestCluster};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str, seq: u64) -> Value {
    json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"labels":{"suite":"replicas"}},
           "data":{"seq": seq.to_string()}})
}

fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion: {obj}"))
}

#[test]
fn writes_are_visible_on_every_replica() {
    let c = TestCluster::with_replicas(3);
    for i in 0..3 {
        let writer = &c.apiservers[i].addr;
        let name = format!("via-{i}");
        let r = http::post_json(writer, CMS, &cm(&name, i as u64));
        assert_eq!(r.status, 201, "create via replica {i}: {}", r.describe());
        let rv = rv_of(&r.json());
        // A read without resourceVersion is consistent: every replica sees the write at once.
        for j in 0..3 {
            let r = http::get(&c.apiservers[j].addr, &format!("{CMS}/{name}"));
            assert_eq!(
                r.status,
                200,
                "read {name} via replica {j}: {}",
                r.describe()
            );
            assert_eq!(
                rv_of(&r.json()),
                rv,
                "replica {j} serves another version of {name}"
            );
            let list = http::get(&c.apiservers[j].addr, CMS).json();
            assert!(
                rv_of(&list) >= rv,
                "replica {j} lists at {} before the write at {rv}",
                rv_of(&list)
            );
            assert!(
                list["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|o| o["metadata"]["name"] == name)),
                "replica {j} list lacks {name}"
            );
        }
    }
    // Optimistic concurrency across replicas: a read from one and a stale write through another.
    let a = &c.apiservers[0].addr;
    let b = &c.apiservers[1].addr;
    let obj = http::get(a, &format!("{CMS}/via-0")).json();
    let mut first = obj.clone();
    first["data"]["seq"] = json!("first");
    assert_eq!(
        http::put_json(b, &format!("{CMS}/via-0"), &first).status,
        200
    );
    let mut second = obj;
    second["data"]["seq"] = json!("second");
    let r = http::put_json(&c.apiservers[2].addr, &format!("{CMS}/via-0"), &second);
    assert_eq!(
        r.status,
        409,
        "stale write through a third replica: {}",
        r.describe()
    );
    // kubectl on replica 2 sees what replica 0 wrote.
    let k = c.kubectl_at("1.33", 2);
    let out = k.ok(&["get", "configmaps", "-o", "name"]);
    for i in 0..3 {
        assert!(out.contains(&format!("configmap/via-{i}")), "{out}");
    }
}

/// Reads events from `w` until `until(events)` holds or `timeout`; returns them.
fn read_events(
    w: &mut WatchStream,
    timeout: Duration,
    mut stop: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        match w.next_event(Duration::from_millis(200)) {
            Ok(Some(ev)) => {
                let done = stop(&ev);
                out.push(ev);
                if done {
                    break;
                }
            }
            Ok(None) if w.ended() => break,
            Ok(None) => {}
            Err(_) => break, // the replica died mid-event
        }
    }
    out
}

#[test]
fn watch_resumes_on_another_replica_after_a_kill() {
    const N: u64 = 60;
    let mut c = TestCluster::with_replicas(3);
    let watch_addr = c.apiservers[0].addr.clone();
    let resume_addr = c.apiservers[1].addr.clone();
    let writer_addr = c.apiservers[2].addr.clone();
    // A namespace of its own, created through the writer: no replica has served it before.
    const CMS: &str = "/api/v1/namespaces/failover/configmaps";
    let r = http::post_json(
        &writer_addr,
        "/api/v1/namespaces",
        &json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"failover"}}),
    );
    assert_eq!(r.status, 201, "{}", r.describe());

    let list = http::get(&watch_addr, CMS).json();
    let start_rv = rv_of(&list);
    let mut w = WatchStream::open(
        &watch_addr,
        &format!("{CMS}?watch=true&resourceVersion={start_rv}&allowWatchBookmarks=true"),
        "application/json",
    )
    .expect("open watch");
    assert_eq!(w.status, 200, "watch: {}", w.rest_text());

    // A writer through replica 2: N writes, alternately creating and updating objects.
    // The second half of the writes only once replica 0 is dead: replica 1 must deliver them.
    let (killed_tx, killed_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut rvs = Vec::new();
        for seq in 0..N {
            if seq == N / 2 {
                let _ = killed_rx.recv_timeout(Duration::from_secs(60));
            }
            let name = format!("w-{}", seq % 10);
            let r = if seq < 10 {
                http::post_json(&writer_addr, CMS, &cm(&name, seq))
            } else {
                http::send(
                    &writer_addr,
                    "PATCH",
                    &format!("{CMS}/{name}"),
                    "application/merge-patch+json",
                    json!({"data":{"seq": seq.to_string()}})
                        .to_string()
                        .as_bytes(),
                )
            };
            assert!(
                r.status == 201 || r.status == 200,
                "write {seq}: {}",
                r.describe()
            );
            rvs.push(rv_of(&r.json()));
        }
        rvs
    });

    // Read a third of the events from replica 0, then kill it.
    let seq_of = |ev: &Value| -> Option<u64> {
        ev["object"]["data"]["seq"]
            .as_str()
            .and_then(|s| s.parse().ok())
    };
    let mut events: Vec<Value> = read_events(&mut w, Duration::from_secs(30), |ev| {
        seq_of(ev).is_some_and(|s| s + 1 >= N / 3)
    });
    assert!(
        events.iter().filter_map(seq_of).count() as u64 >= N / 3,
        "replica 0 delivered too few events before the kill: {events:?}\n{}",
        c.logs()
    );
    c.apiservers[0].kill9();
    killed_tx.send(()).expect("writer alive");
    // Whatever was still buffered in the socket is part of what the client saw.
    events.extend(read_events(&mut w, Duration::from_secs(2), |_| false));
    drop(w);

    // Resume on replica 1 from the last resourceVersion seen (bookmarks count too).
    let last_rv = events
        .iter()
        .filter_map(|ev| ev["object"]["metadata"]["resourceVersion"].as_str())
        .filter_map(|s| s.parse::<u64>().ok())
        .max()
        .expect("some event");
    let mut w = WatchStream::open(
        &resume_addr,
        &format!("{CMS}?watch=true&resourceVersion={last_rv}&allowWatchBookmarks=true"),
        "application/json",
    )
    .expect("resume watch");
    assert_eq!(w.status, 200, "resume: {}", w.rest_text());
    let rvs = writer.join().expect("writer");
    let final_rv = *rvs.last().expect("writes");
    let before_resume = events.len();
    events.extend(read_events(&mut w, Duration::from_secs(30), |ev| {
        ev["type"] != "BOOKMARK"
            && ev["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|rv| rv >= final_rv)
    }));

    let resumed = events[before_resume..]
        .iter()
        .filter(|e| e["type"] != "BOOKMARK")
        .count() as u64;
    assert!(
        resumed >= N / 2,
        "replica 1 delivered only {resumed} events after the failover (the second half of the \
         writes happened after the kill): {:?}",
        &events[before_resume..]
    );
    // Exactly the N writes, in order, each once, with the writer's resourceVersions.
    let changes: Vec<&Value> = events.iter().filter(|e| e["type"] != "BOOKMARK").collect();
    let seqs: Vec<u64> = changes.iter().filter_map(|e| seq_of(e)).collect();
    let expected: Vec<u64> = (0..N).collect();
    assert_eq!(
        seqs, expected,
        "the resumed watch must deliver every write exactly once, in order (rvs {rvs:?})"
    );
    let got_rvs: Vec<u64> = changes.iter().map(|e| rv_of(&e["object"])).collect();
    assert_eq!(
        got_rvs, rvs,
        "event resourceVersions must be the writes' resourceVersions"
    );
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for e in &changes {
        *types
            .entry(e["type"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        assert_eq!(e["object"]["kind"], "ConfigMap", "{e}");
        assert_eq!(e["object"]["apiVersion"], "v1", "{e}");
    }
    assert_eq!(types.get("ADDED"), Some(&10), "{types:?}");
    assert_eq!(types.get("MODIFIED"), Some(&(N as usize - 10)), "{types:?}");

    // The killed replica comes back and serves the same state.
    c.apiservers[0].restart();
    c.apiservers[0].wait_ready(Duration::from_secs(45));
    let list = http::get(&c.apiservers[0].addr, CMS).json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(10), "{list}");
    assert!(rv_of(&list) >= final_rv);
}

#[test]
fn kubectl_watch_survives_on_another_replica() {
    // `kubectl get -w` ends when its server dies; a new one on another replica, started from the
    // list, shows later changes. Drives the same path clients take after a failover.
    let mut c = TestCluster::with_replicas(2);
    let k0 = c.kubectl_at("1.33", 0);
    let k1 = c.kubectl_at("1.33", 1);
    k0.ok(&["create", "configmap", "before", "--from-literal=a=1"]);
    let mut w = k0.spawn(&["get", "configmaps", "-w", "-o", "name"]);
    w.wait_line(Duration::from_secs(30), "configmap/before", |l| {
        l.trim() == "configmap/before"
    });
    c.apiservers[0].kill9();
    let r = w.wait_exit(Duration::from_secs(30));
    assert!(
        !r.timed_out,
        "kubectl get -w must end when its server dies\n{}",
        r.describe()
    );
    let mut w = k1.spawn(&["get", "configmaps", "-w", "-o", "name"]);
    w.wait_line(
        Duration::from_secs(30),
        "configmap/before on replica 1",
        |l| l.trim() == "configmap/before",
    );
    k1.ok(&["create", "configmap", "after", "--from-literal=a=2"]);
    w.wait_line(Duration::from_secs(30), "configmap/after", |l| {
        l.trim() == "configmap/after"
    });
}

#[test]
fn python_watch_fails_over_to_another_replica() {
    // failover.py watches through replica 0 and writes through replica 1; when it says so, the
    // test kills replica 0 and the script resumes on replica 1 from its last resourceVersion.
    let mut c = TestCluster::with_replicas(2);
    let kc1 = c.kubeconfigs[1].display().to_string();
    let mut p = python::spawn("failover.py", &c.kubeconfigs[0], &["--kubeconfig-b", &kc1]);
    p.wait_line(Duration::from_secs(60), "KILL-ME from failover.py", |l| {
        l.trim() == "KILL-ME"
    });
    c.apiservers[0].kill9();
    let r = p.wait_exit(Duration::from_secs(120));
    assert!(
        r.success() && r.stdout.contains("OK"),
        "python failover.py\n{}\n{}",
        r.describe(),
        c.logs()
    );
}

#[test]
fn any_replica_serves_a_watch_from_a_resource_version_after_its_start() {
    // Both replicas run before the writes; neither has listed or watched the namespace yet. A
    // watch from the first write's resourceVersion must deliver the later writes, on either.
    let c = TestCluster::with_replicas(2);
    let (a, b) = (&c.apiservers[0].addr, &c.apiservers[1].addr);
    let ns = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"fresh"}});
    assert_eq!(http::post_json(b, "/api/v1/namespaces", &ns).status, 201);
    let path = "/api/v1/namespaces/fresh/configmaps";
    let mut rvs = Vec::new();
    for (i, via) in [a, a, b].into_iter().enumerate() {
        let r = http::post_json(via, path, &cm(&format!("c{i}"), i as u64));
        assert_eq!(r.status, 201, "{}", r.describe());
        rvs.push(rv_of(&r.json()));
    }
    for (name, addr) in [("a", a), ("b", b)] {
        let mut w = WatchStream::open(
            addr,
            &format!("{path}?watch=true&resourceVersion={}", rvs[0]),
            "application/json",
        )
        .expect("open watch");
        assert_eq!(w.status, 200, "replica {name}: {}", w.rest_text());
        let events = read_events(&mut w, Duration::from_secs(10), |ev| {
            ev["object"]["metadata"]["name"] == "c2"
        });
        let got: Vec<(String, String)> = events
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("?").to_string(),
                    e["object"]["metadata"]["name"]
                        .as_str()
                        .or(e["object"]["message"].as_str())
                        .unwrap_or("?")
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("ADDED".to_string(), "c1".to_string()),
                ("ADDED".to_string(), "c2".to_string())
            ],
            "replica {name}: watch from rv {} (writes at {rvs:?})",
            rvs[0]
        );
    }
}
