//! The official Python `kubernetes` client: CRUD and watch on pods and deployments, pagination.

use crate::support::{python, TestCluster};

fn run_script(name: &str) {
    let c = TestCluster::start();
    let r = python::run(name, &c.kubeconfigs[0], &[]);
    assert!(
        r.success() && r.stdout.contains("OK"),
        "python {name} failed\n{}\n{}",
        r.describe(),
        c.logs()
    );
}

#[test]
fn pods_crud_and_watch() {
    run_script("pods.py");
}

#[test]
fn deployments_crud_and_watch() {
    run_script("deployments.py");
}

#[test]
fn list_pagination() {
    run_script("pagination.py");
}
