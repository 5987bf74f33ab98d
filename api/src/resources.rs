//! The resource registry: every kind Navarch serves, with its discovery data and etcd key layout.
//!
//! Keys follow kube-apiserver's layout so that `etcdctl get --prefix /registry/` looks familiar:
//! `/registry/<resource>/<namespace>/<name>` for namespaced kinds and `/registry/<resource>/<name>`
//! for cluster-scoped kinds, with the historical exceptions (`/registry/minions/` for nodes,
//! `/registry/services/specs/` and `/registry/services/endpoints/`).

/// One resource type (a `plural` under a group/version), as discovery lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; `""` for the core (legacy) group.
    pub group: &'static str,
    /// API version, e.g. `v1`.
    pub version: &'static str,
    /// Kind of a single object, e.g. `Pod`.
    pub kind: &'static str,
    /// Kind of a list, e.g. `PodList`.
    pub list_kind: &'static str,
    /// Lower-case plural used in URLs, e.g. `pods`.
    pub plural: &'static str,
    /// Lower-case singular, e.g. `pod`.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl accepts (`po`, `deploy`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`) that `kubectl get <category>` expands.
    pub categories: &'static [&'static str],
    /// Verbs served on the main resource.
    pub verbs: &'static [&'static str],
    /// Subresources served under `<plural>/<name>/<subresource>`.
    pub subresources: &'static [Subresource],
    /// Key prefix in the store, ending with `/`.
    pub etcd_prefix: &'static str,
    /// Whether the kind has a `status` that the main resource ignores on writes (status subresource).
    pub has_status: bool,
}

/// A subresource such as `pods/status` or `deployments/scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// Subresource name: `status`, `scale`, `log`, `binding`, `eviction`.
    pub name: &'static str,
    /// Group of the kind this subresource takes and returns (the parent's group when it is the parent's kind).
    pub group: &'static str,
    /// Version of that kind (the parent's version when it is the parent's kind).
    pub version: &'static str,
    /// Kind taken and returned, e.g. `Scale`, `Eviction`, or the parent's kind for `status`.
    pub kind: &'static str,
    /// Verbs served on the subresource.
    pub verbs: &'static [&'static str],
}

/// Verbs of an ordinary read/write resource.
const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs of namespaces (no deletecollection, as upstream).
const RW_NO_COLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Verbs of a status subresource.
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        group,
        version,
        kind,
        verbs: STATUS_VERBS,
    }
}

/// The `autoscaling/v1` Scale subresource of workload controllers.
const SCALE: Subresource = Subresource {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: STATUS_VERBS,
};

static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Namespace",
        list_kind: "NamespaceList",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: RW_NO_COLLECTION,
        subresources: &[status("", "v1", "Namespace")],
        etcd_prefix: "/registry/namespaces/",
        has_status: true,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        list_kind: "PodList",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        verbs: RW,
        subresources: &[
            Subresource {
                name: "binding",
                group: "",
                version: "v1",
                kind: "Binding",
                verbs: &["create"],
            },
            Subresource {
                name: "eviction",
                group: "policy",
                version: "v1",
                kind: "Eviction",
                verbs: &["create"],
            },
            Subresource {
                name: "log",
                group: "",
                version: "v1",
                kind: "Pod",
                verbs: &["get"],
            },
            status("", "v1", "Pod"),
        ],
        etcd_prefix: "/registry/pods/",
        has_status: true,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Node",
        list_kind: "NodeList",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        verbs: RW,
        subresources: &[status("", "v1", "Node")],
        etcd_prefix: "/registry/minions/",
        has_status: true,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Service",
        list_kind: "ServiceList",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        verbs: RW,
        subresources: &[status("", "v1", "Service")],
        etcd_prefix: "/registry/services/specs/",
        has_status: true,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Endpoints",
        list_kind: "EndpointsList",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        verbs: RW,
        subresources: &[],
        etcd_prefix: "/registry/services/endpoints/",
        has_status: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        list_kind: "ConfigMapList",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        verbs: RW,
        subresources: &[],
        etcd_prefix: "/registry/configmaps/",
        has_status: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Secret",
        list_kind: "SecretList",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW,
        subresources: &[],
        etcd_prefix: "/registry/secrets/",
        has_status: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        list_kind: "ServiceAccountList",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        verbs: RW,
        subresources: &[],
        etcd_prefix: "/registry/serviceaccounts/",
        has_status: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Event",
        list_kind: "EventList",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: RW,
        subresources: &[],
        etcd_prefix: "/registry/events/",
        has_status: false,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        list_kind: "DeploymentList",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        verbs: RW,
        subresources: &[SCALE, status("apps", "v1", "Deployment")],
        etcd_prefix: "/registry/deployments/",
        has_status: true,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        list_kind: "ReplicaSetList",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        verbs: RW,
        subresources: &[SCALE, status("apps", "v1", "ReplicaSet")],
        etcd_prefix: "/registry/replicasets/",
        has_status: true,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        list_kind: "StatefulSetList",
        plural: "statefulsets",
        singular: "statefulset",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        verbs: RW,
        subresources: &[SCALE, status("apps", "v1", "StatefulSet")],
        etcd_prefix: "/registry/statefulsets/",
        has_status: true,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        list_kind: "DaemonSetList",
        plural: "daemonsets",
        singular: "daemonset",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        verbs: RW,
        subresources: &[status("apps", "v1", "DaemonSet")],
        etcd_prefix: "/registry/daemonsets/",
        has_status: true,
    },
    ResourceInfo {
        group: "batch",
        version: "v1",
        kind: "Job",
        list_kind: "JobList",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        verbs: RW,
        subresources: &[status("batch", "v1", "Job")],
        etcd_prefix: "/registry/jobs/",
        has_status: true,
    },
    ResourceInfo {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        list_kind: "EndpointSliceList",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW,
        subresources: &[],
        etcd_prefix: "/registry/endpointslices/",
        has_status: false,
    },
    ResourceInfo {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        list_kind: "LeaseList",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW,
        subresources: &[],
        etcd_prefix: "/registry/leases/",
        has_status: false,
    },
];

/// Every resource Navarch serves, core group first, in a stable order.
pub fn all() -> &'static [ResourceInfo] {
    RESOURCES
}

/// The resource served at `group/version/plural` (`""` group for core), if any.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource whose objects carry `apiVersion: api_version` and `kind: kind` (e.g. `apps/v1`, `Deployment`).
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = split_api_version(api_version);
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (`""`, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The distinct group/version pairs served, in registry order (`("", "v1")` first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

impl ResourceInfo {
    /// `apiVersion` of objects of this kind: `v1` for core, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` for core resources, `plural.group` otherwise (`deployments.apps`), as error messages name them.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind` for core kinds, `Kind.group` otherwise (`Deployment.apps`), as Invalid messages name them.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// The subresource called `name`, if served.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Store key of one object. `namespace` is ignored for cluster-scoped kinds.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        let mut key = self.prefix(namespace);
        key.push_str(name);
        key
    }

    /// Store prefix of all objects (namespace `None`) or of one namespace; always ends with `/`.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{}/", self.etcd_prefix, ns),
            _ => self.etcd_prefix.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_prefixes_of_every_resource() {
        let expected: &[(&str, &str, &str, &str)] = &[
            (
                "",
                "namespaces",
                "/registry/namespaces/",
                "/registry/namespaces/x",
            ),
            ("", "pods", "/registry/pods/", "/registry/pods/ns1/x"),
            ("", "nodes", "/registry/minions/", "/registry/minions/x"),
            (
                "",
                "services",
                "/registry/services/specs/",
                "/registry/services/specs/ns1/x",
            ),
            (
                "",
                "endpoints",
                "/registry/services/endpoints/",
                "/registry/services/endpoints/ns1/x",
            ),
            (
                "",
                "configmaps",
                "/registry/configmaps/",
                "/registry/configmaps/ns1/x",
            ),
            (
                "",
                "secrets",
                "/registry/secrets/",
                "/registry/secrets/ns1/x",
            ),
            (
                "",
                "serviceaccounts",
                "/registry/serviceaccounts/",
                "/registry/serviceaccounts/ns1/x",
            ),
            ("", "events", "/registry/events/", "/registry/events/ns1/x"),
            (
                "apps",
                "deployments",
                "/registry/deployments/",
                "/registry/deployments/ns1/x",
            ),
            (
                "apps",
                "replicasets",
                "/registry/replicasets/",
                "/registry/replicasets/ns1/x",
            ),
            (
                "apps",
                "statefulsets",
                "/registry/statefulsets/",
                "/registry/statefulsets/ns1/x",
            ),
            (
                "apps",
                "daemonsets",
                "/registry/daemonsets/",
                "/registry/daemonsets/ns1/x",
            ),
            ("batch", "jobs", "/registry/jobs/", "/registry/jobs/ns1/x"),
            (
                "discovery.k8s.io",
                "endpointslices",
                "/registry/endpointslices/",
                "/registry/endpointslices/ns1/x",
            ),
            (
                "coordination.k8s.io",
                "leases",
                "/registry/leases/",
                "/registry/leases/ns1/x",
            ),
        ];
        assert_eq!(expected.len(), all().len(), "every resource is covered");
        for (group, plural, prefix, key) in expected {
            let r = find(group, "v1", plural).unwrap_or_else(|| panic!("{plural} registered"));
            assert_eq!(r.prefix(None), *prefix, "{plural}");
            assert_eq!(r.key(Some("ns1"), "x"), *key, "{plural}");
            if r.namespaced {
                assert_eq!(r.prefix(Some("ns1")), format!("{prefix}ns1/"));
            } else {
                assert_eq!(
                    r.prefix(Some("ns1")),
                    *prefix,
                    "cluster-scoped ignores namespace"
                );
            }
            assert!(r.prefix(Some("ns1")).ends_with('/'));
        }
    }

    #[test]
    fn prefixes_do_not_overlap() {
        for a in all() {
            for b in all() {
                if a.plural != b.plural {
                    assert!(
                        !a.etcd_prefix.starts_with(b.etcd_prefix),
                        "{} inside {}",
                        a.etcd_prefix,
                        b.etcd_prefix
                    );
                }
            }
        }
    }

    #[test]
    fn find_kind_and_api_version() {
        let d = find_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(d.plural, "deployments");
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.qualified_resource(), "deployments.apps");
        assert_eq!(d.qualified_kind(), "Deployment.apps");
        let p = find_kind("v1", "Pod").unwrap();
        assert_eq!(p.api_version(), "v1");
        assert_eq!(p.qualified_resource(), "pods");
        assert!(find_kind("v1", "Deployment").is_none());
        assert!(find("", "v1", "deployments").is_none());
        assert!(find("apps", "v2", "deployments").is_none());
        assert_eq!(
            find("coordination.k8s.io", "v1", "leases").unwrap().kind,
            "Lease"
        );
    }

    #[test]
    fn short_names_and_categories() {
        let short = |p: &str| {
            all()
                .iter()
                .find(|r| r.plural == p)
                .map(|r| r.short_names.to_vec())
                .unwrap_or_default()
        };
        assert_eq!(short("pods"), ["po"]);
        assert_eq!(short("deployments"), ["deploy"]);
        assert_eq!(short("services"), ["svc"]);
        assert_eq!(short("namespaces"), ["ns"]);
        assert_eq!(short("nodes"), ["no"]);
        assert_eq!(short("configmaps"), ["cm"]);
        assert_eq!(short("serviceaccounts"), ["sa"]);
        assert_eq!(short("events"), ["ev"]);
        assert_eq!(short("replicasets"), ["rs"]);
        assert_eq!(short("statefulsets"), ["sts"]);
        assert_eq!(short("daemonsets"), ["ds"]);
        assert_eq!(short("endpoints"), ["ep"]);
        let mut in_all: Vec<&str> = all()
            .iter()
            .filter(|r| r.categories.contains(&"all"))
            .map(|r| r.plural)
            .collect();
        in_all.sort_unstable();
        assert_eq!(
            in_all,
            [
                "daemonsets",
                "deployments",
                "jobs",
                "pods",
                "replicasets",
                "services",
                "statefulsets"
            ]
        );
    }

    #[test]
    fn subresources() {
        let pods = find("", "v1", "pods").unwrap();
        let ev = pods.subresource("eviction").unwrap();
        assert_eq!(
            (ev.group, ev.version, ev.kind),
            ("policy", "v1", "Eviction")
        );
        assert_eq!(ev.verbs, ["create"]);
        assert_eq!(pods.subresource("log").unwrap().verbs, ["get"]);
        assert!(pods.subresource("binding").is_some());
        for p in ["deployments", "replicasets", "statefulsets"] {
            let s = find("apps", "v1", p).unwrap().subresource("scale").unwrap();
            assert_eq!((s.group, s.version, s.kind), ("autoscaling", "v1", "Scale"));
        }
        assert!(find("apps", "v1", "daemonsets")
            .unwrap()
            .subresource("scale")
            .is_none());
        for r in all() {
            assert_eq!(
                r.has_status,
                r.subresource("status").is_some(),
                "{}",
                r.plural
            );
        }
        assert_eq!(group_versions()[0], ("", "v1"));
        assert!(group_versions().contains(&("apps", "v1")));
    }
}
