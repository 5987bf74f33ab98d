//! Discovery documents: legacy (`APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`)
//! and aggregated (`apidiscovery.k8s.io/v2` and `v2beta1` `APIGroupDiscoveryList`), built from
//! the resource registry.

use navarch_api::resources::{self, ResourceInfo};
use serde_json::{json, Map, Value};

use crate::negotiation::DiscoveryFormat;

/// `GET /api` (legacy): `APIVersions`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (g, v) in resources::group_versions() {
        if g.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    out
}

fn api_group(name: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `GET /apis` (legacy): `APIGroupList`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().iter().map(|(g, vs)| api_group(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`: `APIGroup`, or `None` for an unknown group.
pub fn api_group_doc(group: &str) -> Option<Value> {
    let (name, vs) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut doc = api_group(name, &vs);
    if let Value::Object(m) = &mut doc {
        m.insert("kind".into(), json!("APIGroup"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    Some(doc)
}

fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    resources::all()
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// `GET /api/v1` or `/apis/{group}/{version}`: `APIResourceList`, or `None` if not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in in_group_version(group, version) {
        let mut e = Map::new();
        e.insert("name".into(), json!(r.plural));
        e.insert("singularName".into(), json!(r.singular));
        e.insert("namespaced".into(), json!(r.namespaced));
        e.insert("kind".into(), json!(r.kind));
        e.insert("verbs".into(), json!(r.verbs));
        if !r.short_names.is_empty() {
            e.insert("shortNames".into(), json!(r.short_names));
        }
        if !r.categories.is_empty() {
            e.insert("categories".into(), json!(r.categories));
        }
        list.push(Value::Object(e));
        for s in r.subresources {
            let mut e = Map::new();
            e.insert("name".into(), json!(format!("{}/{}", r.plural, s.name)));
            e.insert("singularName".into(), json!(""));
            e.insert("namespaced".into(), json!(r.namespaced));
            if s.group != r.group || s.version != r.version {
                e.insert("group".into(), json!(s.group));
                e.insert("version".into(), json!(s.version));
            }
            e.insert("kind".into(), json!(s.kind));
            e.insert("verbs".into(), json!(s.verbs));
            list.push(Value::Object(e));
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

fn aggregated_version(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = in_group_version(group, version)
        .map(|r| {
            let mut e = Map::new();
            e.insert("resource".into(), json!(r.plural));
            e.insert(
                "responseKind".into(),
                json!({"group": r.group, "version": r.version, "kind": r.kind}),
            );
            e.insert(
                "scope".into(),
                json!(if r.namespaced { "Namespaced" } else { "Cluster" }),
            );
            e.insert("singularResource".into(), json!(r.singular));
            e.insert("verbs".into(), json!(r.verbs));
            if !r.short_names.is_empty() {
                e.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                e.insert("categories".into(), json!(r.categories));
            }
            if !r.subresources.is_empty() {
                let subs: Vec<Value> = r
                    .subresources
                    .iter()
                    .map(|s| {
                        json!({"subresource": s.name,
                               "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                               "verbs": s.verbs})
                    })
                    .collect();
                e.insert("subresources".into(), json!(subs));
            }
            Value::Object(e)
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// Aggregated discovery for `/api` (`core == true`: the core group only) or `/apis`.
pub fn aggregated(format: DiscoveryFormat, core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![json!({"metadata": {"name": ""}, "versions": [aggregated_version("", "v1")]})]
    } else {
        groups()
            .iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> = vs.iter().map(|v| aggregated_version(g, v)).collect();
                json!({"metadata": {"name": g}, "versions": versions})
            })
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format.api_version(),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resource_list_has_eviction_with_policy_group() {
        let list = api_resource_list("", "v1").unwrap();
        assert_eq!(list["groupVersion"], "v1");
        let res = list["resources"].as_array().unwrap();
        let ev = res.iter().find(|r| r["name"] == "pods/eviction").unwrap();
        assert_eq!(ev["group"], "policy");
        assert_eq!(ev["version"], "v1");
        assert_eq!(ev["kind"], "Eviction");
        let pods = res.iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert!(api_resource_list("nosuch", "v1").is_none());
    }

    #[test]
    fn apps_group_and_scale_subresource() {
        let list = api_group_list();
        let apps = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "apps")
            .unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        let agg = aggregated(DiscoveryFormat::AggregatedV2, false);
        assert_eq!(agg["apiVersion"], "apidiscovery.k8s.io/v2");
        let apps = agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["scope"], "Namespaced");
        let scale = deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .unwrap();
        assert_eq!(scale["responseKind"]["group"], "autoscaling");
        let core = aggregated(DiscoveryFormat::AggregatedV2Beta1, true);
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert!(api_group_doc("apps").is_some());
        assert!(api_group_doc("nosuch").is_none());
    }
}
