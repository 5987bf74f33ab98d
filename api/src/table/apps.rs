//! Printers of workload kinds (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job) and of
//! EndpointSlice and Lease.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::core::first_three;
use super::{
    age_cell, human_duration, int_at, map_selector, name_cell, or_none, str_at, timestamp, Column,
    Printer, Row,
};
use crate::selectors::LabelSelector;

const CONTAINERS: Column = Column::wide("Containers", "Names of each container in the template.");
const IMAGES: Column = Column::wide(
    "Images",
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = Column::wide("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.");

/// `layoutContainerCells`: container names and images of the pod template, comma-joined.
fn containers_and_images(o: &Value) -> (Value, Value) {
    let cs = o
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| str_at(c, "/image")).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// `metav1.LabelSelectorAsSelector(spec.selector).String()`, `<invalid>` when it does not parse.
fn selector_string(o: &Value) -> Value {
    match o.pointer("/spec/selector") {
        None => json!(""),
        Some(s) => match LabelSelector::from_spec(s) {
            Ok(sel) => json!(sel.to_string()),
            Err(_) => json!("<invalid>"),
        },
    }
}

const DEPLOYMENT_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Ready", "Number of the pod with ready state"),
    Column::int("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    Column::int("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    Column::AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
/// Deployment printer.
pub(crate) const DEPLOYMENT: Printer = (DEPLOYMENT_COLUMNS, print_deployment);

fn desired(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn print_deployment(d: &Value, now: Timestamp) -> Row {
    let (containers, images) = containers_and_images(d);
    vec![
        name_cell(d),
        json!(format!(
            "{}/{}",
            int_at(d, "/status/readyReplicas"),
            desired(d)
        )),
        json!(int_at(d, "/status/updatedReplicas")),
        json!(int_at(d, "/status/availableReplicas")),
        age_cell(d, now),
        containers,
        images,
        selector_string(d),
    ]
    .into()
}

const REPLICA_SET_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::int("Desired", "Replicas is the number of desired pods."),
    Column::int(
        "Current",
        "Replicas is the most recently observed number of replicas.",
    ),
    Column::int(
        "Ready",
        "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition.",
    ),
    Column::AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
/// ReplicaSet printer.
pub(crate) const REPLICA_SET: Printer = (REPLICA_SET_COLUMNS, print_replica_set);

fn print_replica_set(rs: &Value, now: Timestamp) -> Row {
    let (containers, images) = containers_and_images(rs);
    vec![
        name_cell(rs),
        json!(desired(rs)),
        json!(int_at(rs, "/status/replicas")),
        json!(int_at(rs, "/status/readyReplicas")),
        age_cell(rs, now),
        containers,
        images,
        selector_string(rs),
    ]
    .into()
}

const STATEFUL_SET_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Ready", "Number of the pod with ready state"),
    Column::AGE,
    CONTAINERS,
    IMAGES,
];
/// StatefulSet printer.
pub(crate) const STATEFUL_SET: Printer = (STATEFUL_SET_COLUMNS, print_stateful_set);

fn print_stateful_set(s: &Value, now: Timestamp) -> Row {
    let (containers, images) = containers_and_images(s);
    vec![
        name_cell(s),
        json!(format!(
            "{}/{}",
            int_at(s, "/status/readyReplicas"),
            desired(s)
        )),
        age_cell(s, now),
        containers,
        images,
    ]
    .into()
}

const DAEMON_SET_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::int("Desired", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
    Column::int("Current", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    Column::int("Ready", "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
    Column::int("Up-to-date", "The total number of nodes that are running updated daemon pod"),
    Column::int("Available", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
    Column::new("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node."),
    Column::AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
/// DaemonSet printer.
pub(crate) const DAEMON_SET: Printer = (DAEMON_SET_COLUMNS, print_daemon_set);

fn print_daemon_set(ds: &Value, now: Timestamp) -> Row {
    let (containers, images) = containers_and_images(ds);
    vec![
        name_cell(ds),
        json!(int_at(ds, "/status/desiredNumberScheduled")),
        json!(int_at(ds, "/status/currentNumberScheduled")),
        json!(int_at(ds, "/status/numberReady")),
        json!(int_at(ds, "/status/updatedNumberScheduled")),
        json!(int_at(ds, "/status/numberAvailable")),
        json!(or_none(&map_selector(
            ds.pointer("/spec/template/spec/nodeSelector")
        ))),
        age_cell(ds, now),
        containers,
        images,
        selector_string(ds),
    ]
    .into()
}

const JOB_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Status", "Status of the job."),
    Column::new(
        "Completions",
        "The desired number of successfully finished pods the job should be run with.",
    ),
    Column::new("Duration", "Time required to complete the job."),
    Column::AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
/// Job printer.
pub(crate) const JOB: Printer = (JOB_COLUMNS, print_job);

fn job_condition(job: &Value, ty: &str) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "/type") == ty && str_at(c, "/status") == "True")
        })
}

fn print_job(job: &Value, now: Timestamp) -> Row {
    let succeeded = int_at(job, "/status/succeeded");
    let completions = match (
        job.pointer("/spec/completions").and_then(Value::as_i64),
        job.pointer("/spec/parallelism").and_then(Value::as_i64),
    ) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    };
    let start = timestamp(job.pointer("/status/startTime"));
    let end = timestamp(job.pointer("/status/completionTime"));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now.as_second() - s.as_second()),
        (Some(s), Some(e)) => human_duration(e.as_second() - s.as_second()),
    };
    let status = if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        "Terminating"
    } else if job_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (containers, images) = containers_and_images(job);
    vec![
        name_cell(job),
        json!(status),
        json!(completions),
        json!(duration),
        age_cell(job, now),
        containers,
        images,
        selector_string(job),
    ]
    .into()
}

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new(
        "AddressType",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    Column::new(
        "Ports",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    Column::new(
        "Endpoints",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    Column::AGE,
];
/// EndpointSlice printer.
pub(crate) const ENDPOINT_SLICE: Printer = (ENDPOINT_SLICE_COLUMNS, print_endpoint_slice);

fn print_endpoint_slice(es: &Value, now: Timestamp) -> Row {
    let ports: Vec<String> = es
        .get("ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| match p.get("port").and_then(Value::as_i64) {
                    Some(n) => n.to_string(),
                    None => match str_at(p, "/name") {
                        "" => "<unset>".to_string(),
                        name => name.to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let addresses: Vec<String> = es
        .get("endpoints")
        .and_then(Value::as_array)
        .map(|eps| {
            eps.iter()
                .flat_map(|e| {
                    e.get("addresses")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    vec![
        name_cell(es),
        json!(str_at(es, "/addressType")),
        json!(first_three(&ports, "<unset>")),
        json!(first_three(&addresses, "<unset>")),
        age_cell(es, now),
    ]
    .into()
}

const LEASE_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new(
        "Holder",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    Column::AGE,
];
/// Lease printer.
pub(crate) const LEASE: Printer = (LEASE_COLUMNS, print_lease);

fn print_lease(l: &Value, now: Timestamp) -> Row {
    vec![
        name_cell(l),
        json!(str_at(l, "/spec/holderIdentity")),
        age_cell(l, now),
    ]
    .into()
}
