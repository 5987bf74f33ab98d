//! End-to-end tests of the apiserver: a real `navarch store` and `navarch apiserver` processes on
//! loopback, driven by real kubectl 1.27, 1.30 and 1.33, the Python `kubernetes` client and raw
//! HTTP.

/// One `#[test]` per required kubectl version, each calling `$f(version)`:
/// `kubectl_versions!(crud)` makes `crud::kubectl_1_27`, `crud::kubectl_1_30`, `crud::kubectl_1_33`.
macro_rules! kubectl_versions {
    ($f:ident) => {
        mod $f {
            #[test]
            fn kubectl_1_27() {
                super::$f("1.27")
            }
            #[test]
            fn kubectl_1_30() {
                super::$f("1.30")
            }
            #[test]
            fn kubectl_1_33() {
                super::$f("1.33")
            }
        }
    };
}

mod support;
mod t00_harness;
mod t10_discovery;
mod t15_http_surface;
mod t20_kubectl_crud;
mod t25_kubectl_errors;
mod t30_kubectl_apply;
mod t40_kubectl_watch_wait;
mod t45_watch_expiry;
mod t50_python;
mod t60_bad_input;
mod t70_replicas;
mod t80_balancer;
