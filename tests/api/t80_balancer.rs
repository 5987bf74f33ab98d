//! The committed HAProxy config (`deploy/haproxy/haproxy.cfg`) in front of apiserver replicas:
//! kubectl through it keeps working when a replica is killed, because the health check takes
//! the dead replica out of the pool.
//!
//! ```text
//! kubectl 1.33 ─► haproxy (the committed file; bind and server lines rewritten to test ports)
//!                   ├─► apiserver 0 ── kill -9 mid-test
//!                   └─► apiserver 1
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::cluster::{log_tail, navarch_bin};
use crate::support::process;
use crate::support::store::free_port;
use crate::support::{eventually, Kubectl, TestCluster};

/// The config under test, as committed.
fn committed_config() -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy/haproxy.cfg");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    (path, text)
}

/// Path of `haproxy`; panics with a clear message when it is not installed (it lives in
/// `/usr/sbin`, which a non-root `PATH` often lacks).
fn haproxy_bin() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let candidates: Vec<PathBuf> = in_path
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("haproxy"))
        .collect();
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "haproxy is not installed (looked in PATH, /usr/sbin and /usr/local/sbin); this \
                 test runs deploy/haproxy/haproxy.cfg and needs HAProxy 2.6 (Debian package \
                 `haproxy`; scripts/lib.sh ensure_packages installs it)"
            )
        })
}

/// The committed config with the frontend's `bind` line listening on `listen` and the backend's
/// `server` lines pointing at `replicas` (the first `replicas.len()` lines keep their names and
/// options, the rest are dropped). Everything else is kept as it is; panics if the file no longer
/// has exactly one `bind` line and at least `replicas.len()` `server` lines.
fn render(config: &str, listen: &str, replicas: &[String]) -> String {
    let is = |line: &str, keyword: &str| line.split_whitespace().next() == Some(keyword);
    let binds = config.lines().filter(|l| is(l, "bind")).count();
    let servers = config.lines().filter(|l| is(l, "server")).count();
    assert!(
        binds == 1 && servers >= replicas.len(),
        "deploy/haproxy/haproxy.cfg changed shape: expected one `bind` line and at least {} \
         `server` lines, found {binds} and {servers}",
        replicas.len()
    );
    let mut out = String::new();
    let mut server_index = 0;
    for line in config.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        if is(line, "bind") {
            // `bind ADDR [options]`: keep the options.
            let rest: Vec<&str> = line.split_whitespace().skip(2).collect();
            out.push_str(&format!("{indent}bind {listen} {}", rest.join(" ")));
        } else if is(line, "server") {
            // `server NAME ADDR [options]`: keep the name and the options.
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(
                fields.len() >= 3,
                "deploy/haproxy/haproxy.cfg: `server NAME ADDR [options]` expected, found {line:?}"
            );
            let Some(addr) = replicas.get(server_index) else {
                server_index += 1;
                continue;
            };
            server_index += 1;
            out.push_str(&format!(
                "{indent}server {} {addr} {}",
                fields[1],
                fields[3..].join(" ")
            ));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `haproxy -c -f FILE`: the config check must pass.
fn check_config(file: &Path) {
    let mut cmd = Command::new(haproxy_bin());
    cmd.arg("-c").arg("-f").arg(file);
    let r = process::run(cmd, None, Duration::from_secs(30));
    assert!(
        r.success(),
        "haproxy rejects {}\n{}",
        file.display(),
        r.describe()
    );
}

/// `haproxy -db -f FILE` (foreground), output to a log file; killed on drop.
struct Haproxy {
    child: Option<Child>,
    log: PathBuf,
}

impl Haproxy {
    fn start(file: &Path, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("create haproxy log");
        let child = Command::new(haproxy_bin())
            .arg("-db")
            .arg("-f")
            .arg(file)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone log handle"))
            .stderr(out)
            .spawn()
            .expect("spawn haproxy");
        Self {
            child: Some(child),
            log,
        }
    }

    fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn log_tail(&self) -> String {
        format!("--- haproxy ---\n{}", log_tail(&self.log, 40))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `navarch kubeconfig --server http://ADDR` into `path`.
fn write_kubeconfig(path: &Path, addr: &str) {
    let mut cmd = Command::new(navarch_bin());
    cmd.args(["kubeconfig", "--server", &format!("http://{addr}")]);
    let r = process::run(cmd, None, Duration::from_secs(20));
    assert!(r.success(), "navarch kubeconfig\n{}", r.describe());
    std::fs::write(path, &r.stdout).expect("write kubeconfig");
}

#[test]
fn committed_config_passes_the_haproxy_check() {
    let (path, _) = committed_config();
    check_config(&path);
}

#[test]
fn kubectl_through_haproxy_survives_a_killed_replica() {
    let mut c = TestCluster::with_replicas(2);
    let (_, committed) = committed_config();
    let listen = format!("127.0.0.1:{}", free_port());
    let replicas: Vec<String> = c.apiservers.iter().map(|a| a.addr.clone()).collect();
    let cfg = c.write_file("haproxy.cfg", &render(&committed, &listen, &replicas));
    check_config(&cfg);
    let mut lb = Haproxy::start(&cfg, c.dir().join("haproxy.log"));

    let kubeconfig = c.dir().join("kubeconfig-haproxy.yaml");
    write_kubeconfig(&kubeconfig, &listen);
    let mut server_logs: Vec<PathBuf> = c.apiservers.iter().map(|a| a.log.clone()).collect();
    server_logs.push(lb.log.clone());
    let k = Kubectl::new(
        "1.33",
        kubeconfig,
        c.dir().join("kubectl-haproxy"),
        server_logs,
    );

    eventually(
        Duration::from_secs(30),
        "kubectl get ns through haproxy",
        || k.run(&["get", "ns"]).success().then_some(()),
        || format!("{}\n{}", lb.log_tail(), c.logs()),
    );
    k.ok(&["create", "configmap", "through-lb", "--from-literal=a=1"]);

    c.apiservers[0].kill9();
    let get = || {
        let r = k.run(&["get", "configmap", "through-lb", "-o", "json"]);
        let name = serde_json::from_str::<serde_json::Value>(&r.stdout)
            .ok()
            .and_then(|v| v["metadata"]["name"].as_str().map(str::to_string));
        (r, name)
    };
    // The health check (inter 1s, fall 2) marks the dead replica down within about 2 s.
    eventually(
        Duration::from_secs(15),
        "haproxy to mark apiserver-0 down",
        || {
            std::fs::read_to_string(&lb.log)
                .ok()
                .filter(|s| s.contains("apiserver-0 is DOWN"))
        },
        || lb.log_tail(),
    );
    eventually(
        Duration::from_secs(30),
        "kubectl get configmap through haproxy after the kill",
        || (get().1.as_deref() == Some("through-lb")).then_some(()),
        || format!("{}\n{}", lb.log_tail(), c.logs()),
    );
    // Once the dead replica left the pool, every request reaches the live one.
    for i in 0..10 {
        let (r, name) = get();
        assert!(
            r.success() && name.as_deref() == Some("through-lb"),
            "call {i} of 10 through haproxy after the failover\n{}\n{}\n{}",
            r.describe(),
            lb.log_tail(),
            c.logs()
        );
    }
    assert!(
        lb.is_running(),
        "haproxy exited during the test\n{}",
        lb.log_tail()
    );
}
