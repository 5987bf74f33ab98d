//! Runs the Python `kubernetes` client scripts in `tests/api/python/`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::{self, Run, Streaming};

/// Deadline of one script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Panics with a clear message unless `python3` can import `kubernetes`.
pub fn require_client() {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import kubernetes, sys; print(kubernetes.__version__)",
    ]);
    let r = process::run(cmd, None, Duration::from_secs(60));
    assert!(
        r.success(),
        "the Python `kubernetes` client is required (python3 -m pip install kubernetes; \
         scripts/lib.sh ensure_packages installs it)\n{}",
        r.describe()
    );
}

/// Path of `tests/api/python/NAME`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/python")
        .join(name)
}

/// Runs `python3 tests/api/python/NAME --kubeconfig KUBECONFIG ARGS…`.
pub fn run(name: &str, kubeconfig: &std::path::Path, args: &[&str]) -> Run {
    process::run(command(name, kubeconfig, args), None, SCRIPT_TIMEOUT)
}

/// Starts the script and streams its stdout (for scripts that ask the test to act mid-run).
pub fn spawn(name: &str, kubeconfig: &std::path::Path, args: &[&str]) -> Streaming {
    Streaming::spawn(command(name, kubeconfig, args))
}

fn command(name: &str, kubeconfig: &std::path::Path, args: &[&str]) -> Command {
    require_client();
    let mut cmd = Command::new("python3");
    cmd.arg("-u")
        .arg(script(name))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}
