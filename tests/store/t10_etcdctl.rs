//! The real etcdctl (Debian etcd-client 3.4) against a single-node Navarch store.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{etcdctl, etcdctl_bin, Client, Cluster};

fn ok(ep: &str, args: &[&str]) -> String {
    let (success, out, err) = etcdctl(ep, args, None);
    assert!(success, "etcdctl {args:?} failed: {err}\n{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_kv_txn_lease_watch_and_maintenance_work() {
    let c = Cluster::start(1, &[]);
    Client::connect_eventually(&c.nodes[0].client_addr).await;
    c.wait_leader(Duration::from_secs(20)).await;
    let ep = c.endpoints();
    let ep = ep.as_str();

    // put / get / prefix / keys-only / limit / json
    assert_eq!(ok(ep, &["put", "/t/a", "1"]).trim(), "OK");
    assert_eq!(ok(ep, &["put", "/t/b", "2"]).trim(), "OK");
    assert_eq!(ok(ep, &["put", "/t/c", "3"]).trim(), "OK");
    assert_eq!(ok(ep, &["get", "/t/a"]), "/t/a\n1\n");
    assert_eq!(
        ok(ep, &["get", "--prefix", "/t/"]),
        "/t/a\n1\n/t/b\n2\n/t/c\n3\n"
    );
    assert_eq!(
        ok(ep, &["get", "--prefix", "--keys-only", "/t/"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["/t/a", "/t/b", "/t/c"]
    );
    assert_eq!(
        ok(ep, &["get", "--prefix", "--limit=2", "/t/"]),
        "/t/a\n1\n/t/b\n2\n"
    );
    let j: serde_json::Value =
        serde_json::from_str(&ok(ep, &["get", "--prefix", "-w", "json", "/t/"])).unwrap();
    assert_eq!(j["count"], 3);
    let rev_after_c = j["header"]["revision"].as_i64().unwrap();
    assert_eq!(j["kvs"][2]["mod_revision"].as_i64().unwrap(), rev_after_c);
    assert_eq!(j["kvs"][0]["version"], 1);

    // historical read
    assert_eq!(ok(ep, &["put", "/t/a", "1b"]).trim(), "OK");
    assert_eq!(
        ok(ep, &["get", "/t/a", &format!("--rev={rev_after_c}")]),
        "/t/a\n1\n"
    );
    assert_eq!(ok(ep, &["get", "/t/a"]), "/t/a\n1b\n");

    // sort order and targets
    let sorted = ok(
        ep,
        &[
            "get",
            "--prefix",
            "--keys-only",
            "--sort-by=MODIFY",
            "--order=DESCEND",
            "/t/",
        ],
    );
    assert_eq!(
        sorted.split_whitespace().collect::<Vec<_>>(),
        ["/t/a", "/t/c", "/t/b"],
        "{sorted}"
    );
    let sorted = ok(
        ep,
        &[
            "get",
            "--prefix",
            "--keys-only",
            "--sort-by=VALUE",
            "--order=DESCEND",
            "/t/",
        ],
    );
    assert_eq!(
        sorted.split_whitespace().collect::<Vec<_>>(),
        ["/t/c", "/t/b", "/t/a"],
        "{sorted}"
    );

    // txn compares on version, create revision and mod revision (etcdctl 3.4 has no lease syntax;
    // t50_leases covers the lease compare)
    let (s, out, err) = etcdctl(
        ep,
        &["txn"],
        Some(&format!(
            "version(\"/t/a\") = \"2\"\ncreate(\"/t/b\") < \"{rev_after_c}\"\nmod(\"/t/c\") = \"{rev_after_c}\"\n\nput /t/cmp all\n\nput /t/cmp none\n\n"
        )),
    );
    assert!(
        s && out.starts_with("SUCCESS"),
        "compare targets: {out} {err}"
    );
    let (s, out, _) = etcdctl(
        ep,
        &["txn"],
        Some("version(\"/t/a\") > \"5\"\n\nput /t/cmp all\n\nput /t/cmp none\n\n"),
    );
    assert!(s && out.starts_with("FAILURE"), "version compare: {out}");
    assert_eq!(
        ok(ep, &["get", "/t/cmp", "--print-value-only"]).trim(),
        "none"
    );

    // del
    assert_eq!(ok(ep, &["del", "/t/c"]).trim(), "1");
    assert_eq!(ok(ep, &["get", "/t/c"]), "");

    // txn (non-interactive: compares, blank line, success ops, blank line, failure ops)
    let (s, out, err) = etcdctl(
        ep,
        &["txn"],
        Some("value(\"/t/a\") = \"1b\"\n\nput /t/txn yes\n\nput /t/txn no\n\n"),
    );
    assert!(s, "txn: {err}");
    assert!(out.starts_with("SUCCESS"), "txn output: {out}");
    assert_eq!(
        ok(ep, &["get", "/t/txn", "--print-value-only"]).trim(),
        "yes"
    );
    let (s, out, _) = etcdctl(
        ep,
        &["txn"],
        Some("value(\"/t/a\") = \"nope\"\n\nput /t/txn yes2\n\nput /t/txn no\n\n"),
    );
    assert!(s && out.starts_with("FAILURE"), "txn failure branch: {out}");
    assert_eq!(
        ok(ep, &["get", "/t/txn", "--print-value-only"]).trim(),
        "no"
    );

    // watch --rev --prefix --prev-kv: replays history then follows live changes
    let rev_now = {
        let j: serde_json::Value =
            serde_json::from_str(&ok(ep, &["get", "/t/a", "-w", "json"])).unwrap();
        j["header"]["revision"].as_i64().unwrap()
    };
    let mut w = Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .args([
            &format!("--endpoints={ep}"),
            "watch",
            "--prefix",
            "--prev-kv",
            &format!("--rev={rev_now}"),
            "/t/",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = w.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    ok(ep, &["put", "/t/w", "live"]);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lines.iter().any(|l: &String| l == "live") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("watch output incomplete: {lines:?}"),
        }
    }
    let _ = w.kill();
    let _ = w.wait();
    // The event at rev_now is the txn's put of /t/txn=no with prev value yes.
    assert_eq!(
        &lines[..6],
        ["PUT", "/t/txn", "yes", "/t/txn", "no", "PUT"],
        "watch output: {lines:?}"
    );
    assert!(lines.contains(&"/t/w".to_string()));

    // leases
    let out = ok(ep, &["lease", "grant", "60"]);
    let id = out.split_whitespace().nth(1).expect("lease id").to_string();
    assert!(out.contains("granted with TTL(60s)"), "{out}");
    ok(ep, &["put", "--lease", &id, "/t/leased", "x"]);
    let ttl = ok(ep, &["lease", "timetolive", "--keys", &id]);
    assert!(ttl.contains("attached keys([/t/leased])"), "{ttl}");
    assert!(ok(ep, &["lease", "list"]).contains(&id));
    let ka = ok(ep, &["lease", "keep-alive", "--once", &id]);
    assert!(ka.contains("keepalived with TTL(60)"), "{ka}");
    assert!(ok(ep, &["lease", "revoke", &id]).contains("revoked"));
    assert_eq!(
        ok(ep, &["get", "/t/leased"]),
        "",
        "revoking a lease deletes its keys"
    );
    let gone = ok(ep, &["lease", "timetolive", &id]);
    assert!(gone.contains("already expired"), "{gone}");

    // compaction
    let j: serde_json::Value =
        serde_json::from_str(&ok(ep, &["get", "/t/a", "-w", "json"])).unwrap();
    let cur = j["header"]["revision"].as_i64().unwrap();
    assert!(
        ok(ep, &["compaction", &cur.to_string()]).contains(&format!("compacted revision {cur}"))
    );
    let (s, _, err) = etcdctl(ep, &["get", "/t/a", &format!("--rev={}", cur - 2)], None);
    assert!(
        !s && err.contains("required revision has been compacted"),
        "{err}"
    );
    assert_eq!(ok(ep, &["get", "/t/a", "--print-value-only"]).trim(), "1b");

    // maintenance and cluster
    let st = ok(ep, &["endpoint", "status", "-w", "json"]);
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(
        st[0]["Status"]["leader"],
        st[0]["Status"]["header"]["member_id"]
    );
    let table = ok(ep, &["endpoint", "status", "-w", "table"]);
    assert!(table.contains(&c.nodes[0].client_addr), "{table}");
    let health = etcdctl(ep, &["endpoint", "health"], None);
    assert!(
        health.0 && format!("{}{}", health.1, health.2).contains("is healthy"),
        "{health:?}"
    );
    let members = ok(ep, &["member", "list"]);
    assert!(
        members.contains("navarch-1") && members.contains(&c.nodes[0].peer_addr),
        "{members}"
    );
}
