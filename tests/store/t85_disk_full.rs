//! A member's disk fills up (its data directory is a small tmpfs this test mounts): the member
//! stops cleanly (fail-stop, non-zero exit, no panic), the cluster carries on with its quorum,
//! and the member recovers — catching up on every write — once space is back and it restarts.
//! Needs root (mount); CI runs as root. Without root the test says so and fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{eventually, Client, Cluster};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI runs as root): {st:?}"
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with a file until it is full; returns the file.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..4096 {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_one_member_cleanly_and_it_recovers_when_space_returns() {
    let mounts = std::sync::Mutex::new(Vec::new());
    let mut c = Cluster::start_prepared(3, &[], |id, dir| {
        if id == 3 {
            // Room for what member 3 must hold after the disk came back: the Raft log
            // segment it had preallocated before the disk filled takes up to 64 MiB of big
            // writes (so it stops only once that is used up), which it keeps in its log and
            // applies on restart, plus what it missed after that.
            mounts.lock().unwrap().push(Tmpfs::mount(dir, "512m"));
        }
    });
    let data3 = c.nodes[2].data_dir.clone();
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    let mut cl = Client::connect(&c.nodes[0].client_addr).await.unwrap();
    cl.put("/registry/pods/ns/before", "v").await.unwrap();

    let filler = fill(&data3);
    // Writes go on through the majority; member 3 cannot persist them and stops.
    let big = "x".repeat(256 << 10);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    let exited = loop {
        cl.put(&format!("/registry/pods/ns/k{}", i % 50), &big)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "write {i} failed while member 3's disk was full: {e}\n{}",
                    c.logs()
                )
            });
        i += 1;
        if let Some(status) = c.nodes[2].try_exit() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "member 3 kept running with a full disk\n{}",
            c.nodes[2].log_tail()
        );
    };
    assert!(
        !exited.success(),
        "a member that cannot persist must exit non-zero: {exited:?}"
    );
    let log = std::fs::read_to_string(data3.with_extension("log")).unwrap_or_default();
    assert!(
        log.contains("store stopped on a fatal error") && !log.contains("panicked"),
        "member 3 must stop with a clear fatal error, not a panic:\n{}",
        c.nodes[2].log_tail()
    );
    for j in 0..200 {
        cl.put(&format!("/registry/events/ns/e{j}"), "after")
            .await
            .unwrap();
    }

    // Space returns; the member restarts and catches up.
    std::fs::remove_file(&filler).unwrap();
    c.nodes[2].restart();
    let m3 = Client::connect_eventually(&c.nodes[2].client_addr).await;
    let last = cl.put("/registry/events/ns/last", "z").await.unwrap();
    eventually(Duration::from_secs(60), "member 3 caught up", || {
        let mut m3 = m3.clone();
        async move {
            let r = m3
                .range_prefix("/registry/events/ns/", true, true)
                .await
                .ok()?;
            (r.header?.revision >= last && r.count == 201).then_some(())
        }
    })
    .await;
    // The pods shard catches up on its own (it holds the big writes member 3 missed): a read
    // through member 3 may time out until it has.
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let mut m3 = m3.clone();
        if let Ok((v, _, _)) = m3.get("/registry/pods/ns/before").await {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "member 3's pods shard did not catch up\n{}\nmember 3's errors:\n{}",
            c.logs(),
            std::fs::read_to_string(data3.with_extension("log"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("Error") || l.contains("ERROR") || l.contains("fatal"))
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v.as_deref(), Some("v"));
    drop(c);
    drop(mounts);
}
