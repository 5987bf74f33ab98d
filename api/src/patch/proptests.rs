//! Property tests: strategic merge patch agrees with JSON merge patch where lists play no part,
//! and server-side apply is idempotent for one manager.

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::resources;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ]
}

/// Nested objects without lists, keys from a tiny alphabet so that patches hit existing keys.
fn object(depth: u32) -> BoxedStrategy<Value> {
    let leaf = scalar().boxed();
    let inner = if depth == 0 {
        leaf
    } else {
        prop_oneof![3 => leaf, 1 => object(depth - 1)].boxed()
    };
    proptest::collection::btree_map("[p-s]", inner, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>()))
        .boxed()
}

/// Like [`object`] but values may be `null` (deletions).
fn patch(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![3 => scalar(), 1 => Just(Value::Null)].boxed();
    let inner = if depth == 0 {
        leaf
    } else {
        prop_oneof![3 => leaf, 1 => patch(depth - 1)].boxed()
    };
    proptest::collection::btree_map("[p-s]", inner, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>()))
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn smp_equals_merge_patch_without_lists(target in object(3), p in patch(3)) {
        let info = resources::find("", "v1", "configmaps").expect("configmaps");
        let body = p.to_string();
        let smp = crate::patch::strategic_merge_patch(info, &target, body.as_bytes());
        let merge = crate::patch::merge_patch(&target, body.as_bytes());
        prop_assert_eq!(smp.ok(), merge.ok());
    }

    #[test]
    fn reapplying_the_same_config_changes_nothing(labels in proptest::collection::btree_map("[a-d]", "[x-z]{1,2}", 0..4), replicas in 0i64..5) {
        let info = resources::find("apps", "v1", "deployments").expect("deployments");
        let cfg = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "labels": labels},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}
        });
        let now = jiff::Timestamp::from_second(1_800_000_000).expect("ts");
        let body = cfg.to_string();
        let first = crate::patch::apply(info, None, body.as_bytes(), "m", false, now).expect("create");
        let second = crate::patch::apply(info, Some(&first), body.as_bytes(), "m", false, now).expect("re-apply");
        prop_assert_eq!(first, second);
    }
}
