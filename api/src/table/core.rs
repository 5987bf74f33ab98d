//! Printers of core/v1 kinds: Pod, Node, Service, Namespace, Endpoints, ConfigMap, Secret,
//! ServiceAccount, Event (kube-apiserver's `printers.go`).

use jiff::Timestamp;
use serde_json::{json, Value};

use super::{
    age_cell, int_at, map_selector, name_cell, or_none, since, str_at, timestamp, Column, Printer,
    Row,
};

fn arr<'a>(o: &'a Value, pointer: &str) -> &'a [Value] {
    o.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

const POD_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    Column::new("Status", "The aggregate status of the containers in this pod."),
    Column::new(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    Column::AGE,
    Column::wide("IP", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    Column::wide("Node", "NodeName indicates in which node this pod is scheduled."),
    Column::wide("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node."),
    Column::wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness."),
];
/// Pod printer.
pub(crate) const POD: Printer = (POD_COLUMNS, print_pod);

fn is_restartable_init(spec: &Value, name: &str) -> bool {
    arr(spec, "/initContainers").iter().any(|c| {
        c.get("name").and_then(Value::as_str) == Some(name)
            && str_at(c, "/restartPolicy") == "Always"
    })
}

fn condition_true(o: &Value, ty: &str) -> bool {
    arr(o, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == ty && str_at(c, "/status") == "True")
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn print_pod(pod: &Value, now: Timestamp) -> Row {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let phase = str_at(pod, "/status/phase");
    let mut reason = phase.to_string();
    if !str_at(pod, "/status/reason").is_empty() {
        reason = str_at(pod, "/status/reason").to_string();
    }
    if arr(pod, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let init_specs = arr(spec, "/initContainers");
    let total = arr(spec, "/containers").len()
        + init_specs
            .iter()
            .filter(|c| str_at(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let mut initializing = false;
    let init_statuses = arr(pod, "/status/initContainerStatuses");
    for (i, c) in init_statuses.iter().enumerate() {
        let count = int_at(c, "/restartCount");
        restarts += count;
        let finished = timestamp(c.pointer("/lastState/terminated/finishedAt"));
        last_restart = later(last_restart, finished);
        let sidecar = is_restartable_init(spec, str_at(c, "/name"));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let terminated = c.pointer("/state/terminated");
        let waiting_reason = str_at(c, "/state/waiting/reason");
        if terminated.is_some() && int_at(c, "/state/terminated/exitCode") == 0 {
            continue;
        }
        if sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if terminated.is_some() {
            let r = str_at(c, "/state/terminated/reason");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if int_at(c, "/state/terminated/signal") != 0 {
                format!("Init:Signal:{}", int_at(c, "/state/terminated/signal"))
            } else {
                format!("Init:ExitCode:{}", int_at(c, "/state/terminated/exitCode"))
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += int_at(c, "/restartCount");
            last_restart = later(
                last_restart,
                timestamp(c.pointer("/lastState/terminated/finishedAt")),
            );
            let waiting = str_at(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            let term_reason = str_at(c, "/state/terminated/reason");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if terminated.is_some() && !term_reason.is_empty() {
                reason = term_reason.to_string();
            } else if terminated.is_some() {
                let signal = int_at(c, "/state/terminated/signal");
                reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    format!("ExitCode:{}", int_at(c, "/state/terminated/exitCode"))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }
    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting && str_at(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            super::human_duration(now.as_second() - t.as_second())
        ),
        _ => restarts.to_string(),
    };
    let mut ip = arr(pod, "/status/podIPs")
        .first()
        .map(|p| str_at(p, "/ip"))
        .unwrap_or_default();
    if ip.is_empty() {
        ip = str_at(pod, "/status/podIP");
    }
    let gates = arr(spec, "/readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| condition_true(pod, str_at(g, "/conditionType")))
            .count();
        format!("{ok}/{}", gates.len())
    };
    let conditions = match phase {
        "Succeeded" | "Failed" => vec![json!({
            "type": "Completed",
            "status": "True",
            "reason": phase,
            "message": format!("The pod has completed {}.", if phase == "Succeeded" { "successfully" } else { "with failure" }),
        })],
        _ => Vec::new(),
    };
    Row {
        cells: vec![
            name_cell(pod),
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts_cell),
            age_cell(pod, now),
            json!(or_none(ip)),
            json!(or_none(str_at(spec, "/nodeName"))),
            json!(or_none(str_at(pod, "/status/nominatedNodeName"))),
            json!(gates_cell),
        ],
        conditions,
    }
}

const NODE_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Status", "The status of the node"),
    Column::new("Roles", "The roles of the node"),
    Column::AGE,
    Column::new("Version", "Kubelet Version reported by the node."),
    Column::wide("Internal-IP", "List of addresses reachable to the node. Queried from cloud provider, if available."),
    Column::wide("External-IP", "List of addresses reachable to the node. Queried from cloud provider, if available."),
    Column::wide("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    Column::wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    Column::wide("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];
/// Node printer.
pub(crate) const NODE: Printer = (NODE_COLUMNS, print_node);

fn print_node(node: &Value, now: Timestamp) -> Row {
    let mut status: Vec<String> = Vec::new();
    if let Some(c) = arr(node, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == "Ready")
    {
        status.push(
            if str_at(c, "/status") == "True" {
                "Ready"
            } else {
                "NotReady"
            }
            .into(),
        );
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| {
                    if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                        (!role.is_empty()).then(|| role.to_string())
                    } else if k == "kubernetes.io/role" {
                        v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
                    } else {
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    roles.dedup();
    let address = |ty: &str| {
        arr(node, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == ty)
            .map(|a| str_at(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = |f: &str| {
        let s = str_at(node, &format!("/status/nodeInfo/{f}"));
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        name_cell(node),
        json!(status.join(",")),
        json!(or_none(&roles.join(","))),
        age_cell(node, now),
        json!(str_at(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
    .into()
}

const SERVICE_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Type", "type determines how the Service is exposed."),
    Column::new("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
    Column::new("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    Column::new("Port(s)", "The list of ports that are exposed by this service."),
    Column::AGE,
    Column::wide("Selector", "Route service traffic to pods with label keys and values matching this selector."),
];
/// Service printer.
pub(crate) const SERVICE: Printer = (SERVICE_COLUMNS, print_service);

fn print_service(svc: &Value, now: Timestamp) -> Row {
    let ty = match str_at(svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let external_ips: Vec<&str> = arr(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match ty {
        "ExternalName" => str_at(svc, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            let mut all: Vec<String> = arr(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    let ip = str_at(i, "/ip");
                    if ip.is_empty() {
                        str_at(i, "/hostname").to_string()
                    } else {
                        ip.to_string()
                    }
                })
                .filter(|s| !s.is_empty())
                .collect();
            all.extend(external_ips.iter().map(|s| s.to_string()));
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        _ => or_none(&external_ips.join(",")),
    };
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let proto = match str_at(p, "/protocol") {
                "" => "TCP",
                x => x,
            };
            match int_at(p, "/nodePort") {
                0 => format!("{port}/{proto}"),
                np => format!("{port}:{np}/{proto}"),
            }
        })
        .collect();
    vec![
        name_cell(svc),
        json!(ty),
        json!(or_none(str_at(svc, "/spec/clusterIP"))),
        json!(external),
        json!(or_none(&ports.join(","))),
        age_cell(svc, now),
        json!(or_none(&map_selector(svc.pointer("/spec/selector")))),
    ]
    .into()
}

const NAMESPACE_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Status", "The status of the namespace"),
    Column::AGE,
];
/// Namespace printer.
pub(crate) const NAMESPACE: Printer = (NAMESPACE_COLUMNS, print_namespace);

fn print_namespace(ns: &Value, now: Timestamp) -> Row {
    vec![
        name_cell(ns),
        json!(str_at(ns, "/status/phase")),
        age_cell(ns, now),
    ]
    .into()
}

const ENDPOINTS_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Endpoints", "Endpoints of the service"),
    Column::AGE,
];
/// Endpoints printer.
pub(crate) const ENDPOINTS: Printer = (ENDPOINTS_COLUMNS, print_endpoints);

/// `a,b,c + N more...` after three items; `<none>` when empty.
pub(crate) fn first_three(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        return empty.into();
    }
    let shown = items.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if items.len() > 3 {
        format!("{shown} + {} more...", items.len() - 3)
    } else {
        shown
    }
}

fn print_endpoints(ep: &Value, now: Timestamp) -> Row {
    let mut items = Vec::new();
    for s in arr(ep, "/subsets") {
        let ports = arr(s, "/ports");
        for a in arr(s, "/addresses") {
            let ip = str_at(a, "/ip");
            if ports.is_empty() {
                items.push(ip.to_string());
            }
            for p in ports {
                items.push(format!("{ip}:{}", int_at(p, "/port")));
            }
        }
    }
    vec![
        name_cell(ep),
        json!(first_three(&items, "<none>")),
        age_cell(ep, now),
    ]
    .into()
}

const CONFIG_MAP_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::int("Data", "Data contains the configuration data."),
    Column::AGE,
];
/// ConfigMap printer.
pub(crate) const CONFIG_MAP: Printer = (CONFIG_MAP_COLUMNS, print_config_map);

fn count_keys(o: &Value, field: &str) -> usize {
    o.get(field)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

fn print_config_map(cm: &Value, now: Timestamp) -> Row {
    let n = count_keys(cm, "data") + count_keys(cm, "binaryData");
    vec![name_cell(cm), json!(n), age_cell(cm, now)].into()
}

const SECRET_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new(
        "Type",
        "Used to facilitate programmatic handling of secret data.",
    ),
    Column::int("Data", "Data contains the secret data."),
    Column::AGE,
];
/// Secret printer.
pub(crate) const SECRET: Printer = (SECRET_COLUMNS, print_secret);

fn print_secret(s: &Value, now: Timestamp) -> Row {
    vec![
        name_cell(s),
        json!(str_at(s, "/type")),
        json!(count_keys(s, "data")),
        age_cell(s, now),
    ]
    .into()
}

const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::int("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    Column::AGE,
];
/// ServiceAccount printer.
pub(crate) const SERVICE_ACCOUNT: Printer = (SERVICE_ACCOUNT_COLUMNS, print_service_account);

fn print_service_account(sa: &Value, now: Timestamp) -> Row {
    vec![
        name_cell(sa),
        json!(arr(sa, "/secrets").len()),
        age_cell(sa, now),
    ]
    .into()
}

const EVENT_COLUMNS: &[Column] = &[
    Column::new("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    Column::new("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    Column::new("Reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    Column::new("Object", "The object that this event is about."),
    Column::wide("Subobject", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
    Column::wide("Source", "The component reporting this event. Should be a short machine understandable string."),
    Column::new("Message", "A human-readable description of the status of this operation."),
    Column::wide("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    Column::wide("Count", "The number of times this event has occurred."),
    Column::NAME.with_priority(1),
];
/// Event printer.
pub(crate) const EVENT: Printer = (EVENT_COLUMNS, print_event);

fn print_event(ev: &Value, now: Timestamp) -> Row {
    let mut first = since(ev.get("firstTimestamp"), now);
    if timestamp(ev.get("firstTimestamp")).is_none() {
        first = since(ev.get("eventTime"), now);
    }
    let mut last = if timestamp(ev.get("lastTimestamp")).is_some() {
        since(ev.get("lastTimestamp"), now)
    } else {
        first.clone()
    };
    let mut count = int_at(ev, "/count");
    if ev.get("series").is_some_and(|s| !s.is_null()) {
        last = since(ev.pointer("/series/lastObservedTime"), now);
        count = int_at(ev, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(ev, "/involvedObject/kind").to_lowercase();
    let name = str_at(ev, "/involvedObject/name");
    let target = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let component = str_at(ev, "/source/component");
    let host = str_at(ev, "/source/host");
    let source = if !component.is_empty() || !host.is_empty() {
        if host.is_empty() {
            component.to_string()
        } else {
            format!("{component}, {host}")
        }
    } else {
        let rc = str_at(ev, "/reportingComponent");
        let ri = str_at(ev, "/reportingInstance");
        if ri.is_empty() {
            rc.to_string()
        } else {
            format!("{rc}, {ri}")
        }
    };
    vec![
        json!(last),
        json!(str_at(ev, "/type")),
        json!(str_at(ev, "/reason")),
        json!(target),
        json!(str_at(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(ev, "/message").trim()),
        json!(first),
        json!(count),
        name_cell(ev),
    ]
    .into()
}
