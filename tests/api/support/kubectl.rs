//! Real kubectl of one version, isolated: its own kubeconfig, cache dir and HOME.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::cluster::log_tail;
use super::process::{self, Run, Streaming};

/// The kubectl versions the issue requires.
pub const VERSIONS: [&str; 3] = ["1.27", "1.30", "1.33"];

/// Deadline of one (non-streaming) kubectl command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of `kubectl.<version>`; panics with a clear message when it is not installed.
pub fn kubectl_bin(version: &str) -> PathBuf {
    let candidates = [
        format!("/usr/lib/google-cloud-sdk/bin/kubectl.{version}"),
        format!("/usr/local/bin/kubectl.{version}"),
        format!("/usr/bin/kubectl.{version}"),
    ];
    for c in &candidates {
        if Path::new(c).exists() {
            return PathBuf::from(c);
        }
    }
    panic!(
        "kubectl {version} is not installed (looked for {candidates:?}); the apiserver tests need \
         kubectl 1.27, 1.30 and 1.33 side by side (Debian package `kubectl` from the Google Cloud SDK \
         repository ships them as kubectl.1.XX)"
    );
}

/// kubectl of one version pointed at one apiserver.
pub struct Kubectl {
    /// e.g. "1.30".
    pub version: String,
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
    server_logs: Vec<PathBuf>,
}

impl Kubectl {
    /// kubectl `version` with `kubeconfig`; `home` holds its cache (created).
    pub fn new(
        version: &str,
        kubeconfig: PathBuf,
        home: PathBuf,
        server_logs: Vec<PathBuf>,
    ) -> Self {
        std::fs::create_dir_all(home.join("cache")).expect("kubectl cache dir");
        Self {
            version: version.to_string(),
            bin: kubectl_bin(version),
            kubeconfig,
            home,
            server_logs,
        }
    }

    /// The kubeconfig it uses.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.join("cache"))
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .env_remove("EDITOR")
            .env_remove("KUBE_EDITOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `kubectl ARGS` (deadline [`COMMAND_TIMEOUT`]).
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, None, &[])
    }

    /// Runs `kubectl ARGS` with stdin and extra environment.
    pub fn run_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        process::run(
            self.command(args, env),
            stdin.map(str::as_bytes),
            COMMAND_TIMEOUT,
        )
    }

    /// Runs `kubectl ARGS`, asserts exit code 0 and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        self.assert_ok(&r);
        r.stdout
    }

    /// `kubectl apply -f - EXTRA` with `manifest` on stdin; asserts success, returns stdout.
    pub fn apply(&self, manifest: &str, extra: &[&str]) -> String {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let r = self.run_with(&args, Some(manifest), &[]);
        self.assert_ok(&r);
        r.stdout
    }

    /// Runs `kubectl ARGS`, asserts a non-zero exit code and returns the outcome.
    pub fn fail(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(
            !r.success() && !r.timed_out,
            "kubectl {} should have failed\n{}",
            self.version,
            r.describe()
        );
        r
    }

    /// `kubectl get KIND NAME -o json`, parsed.
    pub fn get_json(&self, kind: &str, name: &str) -> serde_json::Value {
        let out = self.ok(&["get", kind, name, "-o", "json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!(
                "kubectl {} get {kind} {name} -o json printed invalid JSON ({e}):\n{out}",
                self.version
            )
        })
    }

    /// Asserts `r` succeeded; the failure message carries the server logs.
    pub fn assert_ok(&self, r: &Run) {
        assert!(
            r.success(),
            "kubectl {} failed\n{}\n{}",
            self.version,
            r.describe(),
            self.server_logs()
        );
    }

    /// Starts a long-running kubectl (e.g. `get -w`, `wait`); killed on drop.
    pub fn spawn(&self, args: &[&str]) -> Streaming {
        Streaming::spawn(self.command(args, &[]))
    }

    /// Starts a long-running kubectl with `-v=6` and waits until its request log shows an open
    /// watch (`watch=true` answered), so that changes made afterwards reach it through the watch.
    pub fn spawn_watching(&self, args: &[&str]) -> Streaming {
        let mut all = args.to_vec();
        all.push("-v=6");
        let mut s = Streaming::spawn_with_stderr(self.command(&all, &[]));
        s.wait_line(COMMAND_TIMEOUT, "kubectl to open its watch", |l| {
            l.starts_with("stderr: ") && l.contains("watch=true") && l.contains("200")
        });
        s
    }

    /// Tails of the apiserver logs.
    pub fn server_logs(&self) -> String {
        self.server_logs
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.display(), log_tail(p, 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
