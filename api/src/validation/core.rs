//! Validation of core/v1 kinds other than Pod (Service, ConfigMap, Secret, Event, Endpoints, Node,
//! Namespace) and of EndpointSlice and Lease.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::meta::validate_labels;
use super::names::{
    dns1123_label_errors, dns1123_subdomain_errors, port_name_errors, qualified_name_errors,
};
use super::pod::{port_range_error, validate_pod_update};
use super::{arr_of, child, index, key, non_negative, obj_of, one_of, positive, str_of, Causes};
use crate::resources::ResourceInfo;
use crate::status::Cause;

/// Largest total size of a ConfigMap's or Secret's data, in bytes.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const IP_ERROR: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

/// Create-time rules of the kinds in this module.
pub fn validate(info: &ResourceInfo, obj: &Value, causes: &mut Causes) {
    match (info.group, info.plural) {
        ("", "services") => validate_service(obj, causes),
        ("", "configmaps") => validate_config_data(obj, &["data", "binaryData"], causes),
        ("", "secrets") => validate_secret(obj, causes),
        ("", "events") => validate_event(obj, causes),
        ("", "endpoints") => validate_endpoints(obj, causes),
        ("", "nodes") => validate_node(obj, causes),
        ("", "namespaces") => {
            for (i, f) in arr_of(obj.get("spec").unwrap_or(&Value::Null), "finalizers")
                .iter()
                .enumerate()
            {
                for msg in qualified_name_errors(f.as_str().unwrap_or_default()) {
                    causes.push(Cause::invalid(&index("spec.finalizers", i), f, &msg));
                }
            }
        }
        ("discovery.k8s.io", "endpointslices") => validate_endpoint_slice(obj, causes),
        ("coordination.k8s.io", "leases") => {
            let spec = obj.get("spec").unwrap_or(&Value::Null);
            positive(spec, "leaseDurationSeconds", "spec", causes);
            non_negative(spec, "leaseTransitions", "spec", causes);
        }
        _ => {}
    }
}

/// Update-time (immutability) rules of core kinds, including Pod.
pub fn validate_update(info: &ResourceInfo, new: &Value, old: &Value, causes: &mut Causes) {
    match (info.group, info.plural) {
        ("", "pods") => validate_pod_update(new, old, causes),
        ("", "services") => {
            let old_ip = old
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let new_ip = new
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let to_external =
                new.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
            if !old_ip.is_empty() && new_ip != old_ip && !(to_external && new_ip.is_empty()) {
                causes.push(Cause::invalid(
                    "spec.clusterIPs[0]",
                    &Value::from(new_ip),
                    "may not change once set",
                ));
            }
        }
        ("", "configmaps") | ("", "secrets") => {
            if old.get("immutable").and_then(Value::as_bool) == Some(true) {
                if new.get("immutable").and_then(Value::as_bool) != Some(true) {
                    causes.push(Cause::forbidden("immutable", IMMUTABLE_SET));
                }
                for f in ["data", "binaryData"] {
                    if new.get(f) != old.get(f) {
                        causes.push(Cause::forbidden(f, IMMUTABLE_SET));
                    }
                }
            }
            if info.plural == "secrets" {
                let (nt, ot) = (str_of(new, "type"), str_of(old, "type"));
                if nt != ot {
                    causes.push(Cause::invalid(
                        "type",
                        &Value::from(nt),
                        "field is immutable",
                    ));
                }
            }
        }
        ("discovery.k8s.io", "endpointslices") => {
            let (na, oa) = (str_of(new, "addressType"), str_of(old, "addressType"));
            if na != oa {
                causes.push(Cause::invalid(
                    "addressType",
                    &Value::from(na),
                    "field is immutable",
                ));
            }
        }
        _ => {}
    }
}

fn ip_ok(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

fn validate_service(obj: &Value, causes: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    one_of(spec, "type", "spec", SERVICE_TYPES, causes);
    one_of(
        spec,
        "sessionAffinity",
        "spec",
        &["ClientIP", "None"],
        causes,
    );
    validate_labels(obj_of(spec, "selector"), "spec.selector", causes);
    let cluster_ip = str_of(spec, "clusterIP");
    let headless = cluster_ip == "None";
    if !cluster_ip.is_empty() && !headless && !ip_ok(cluster_ip) {
        causes.push(Cause::invalid(
            "spec.clusterIP",
            &Value::from(cluster_ip),
            IP_ERROR,
        ));
    }
    if ty == "ExternalName" {
        let name = str_of(spec, "externalName");
        if name.is_empty() {
            causes.push(Cause::required("spec.externalName", ""));
        } else {
            for msg in dns1123_subdomain_errors(name.trim_end_matches('.')) {
                causes.push(Cause::invalid(
                    "spec.externalName",
                    &Value::from(name),
                    &msg,
                ));
            }
        }
    }
    let ports = arr_of(spec, "ports");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        causes.push(Cause::required("spec.ports", ""));
    }
    let mut names = HashSet::new();
    let mut port_protocols = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = index("spec.ports", i);
        let name = str_of(p, "name");
        if name.is_empty() {
            if ports.len() > 1 {
                causes.push(Cause::required(&child(&pp, "name"), ""));
            }
        } else {
            for msg in dns1123_label_errors(name) {
                causes.push(Cause::invalid(
                    &child(&pp, "name"),
                    &Value::from(name),
                    &msg,
                ));
            }
            if !names.insert(name.to_string()) {
                causes.push(Cause::duplicate(&child(&pp, "name"), &Value::from(name)));
            }
        }
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if let Some(msg) = port_range_error(port) {
            causes.push(Cause::invalid(&child(&pp, "port"), &Value::from(port), msg));
        }
        one_of(p, "protocol", &pp, PROTOCOLS, causes);
        let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !port_protocols.insert((port, protocol.to_string())) {
            // Go's `%#v` of the `core.ServicePort{Protocol, Port}` key upstream compares.
            causes.push(Cause::duplicate_rendered(
                &pp,
                &format!(
                    "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                    crate::status::quote(protocol)
                ),
            ));
        }
        match p.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                if let Some(msg) = port_range_error(n) {
                    causes.push(Cause::invalid(
                        &child(&pp, "targetPort"),
                        &Value::from(n),
                        msg,
                    ));
                }
            }
            Some(Value::String(s)) => {
                for msg in port_name_errors(s) {
                    causes.push(Cause::invalid(
                        &child(&pp, "targetPort"),
                        &Value::from(s.as_str()),
                        &msg,
                    ));
                }
            }
            _ => {}
        }
        if let Some(np) = p
            .get("nodePort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            if ty == "ClusterIP" || ty == "ExternalName" {
                causes.push(Cause::forbidden(
                    &child(&pp, "nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            } else if let Some(msg) = port_range_error(np) {
                causes.push(Cause::invalid(
                    &child(&pp, "nodePort"),
                    &Value::from(np),
                    msg,
                ));
            }
        }
    }
    if spec.get("externalTrafficPolicy").is_some() && !matches!(ty, "NodePort" | "LoadBalancer") {
        causes.push(Cause::invalid(
            "spec.externalTrafficPolicy",
            spec.get("externalTrafficPolicy").unwrap_or(&Value::Null),
            "may only be set for externally-accessible services",
        ));
    }
}

/// `IsConfigMapKey`.
pub fn config_key_errors(k: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if k.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if k.is_empty()
        || !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        errs.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
    }
    if k == "." {
        errs.push("must not be '.'".to_string());
    } else if k == ".." {
        errs.push("must not be '..'".to_string());
    } else if k.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// Keys, cross-map duplicates and total size of ConfigMap/Secret data maps.
fn validate_config_data(obj: &Value, fields: &[&str], causes: &mut Causes) {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut total = 0usize;
    for field in fields {
        let Some(m) = obj_of(obj, field) else {
            continue;
        };
        for (k, v) in m {
            for msg in config_key_errors(k) {
                causes.push(Cause::invalid(
                    &key(field, k),
                    &Value::from(k.as_str()),
                    &msg,
                ));
            }
            if let Some((_, other)) = seen.iter().find(|(sk, _)| sk == k) {
                causes.push(Cause::invalid(
                    &key(field, k),
                    &Value::from(k.as_str()),
                    &format!("duplicate of key present in {other}"),
                ));
            }
            seen.push((k, field));
            total += v.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_DATA_SIZE {
        causes.push(Cause::too_long("", MAX_DATA_SIZE));
    }
}

fn validate_secret(obj: &Value, causes: &mut Causes) {
    validate_config_data(obj, &["data"], causes);
    let data: Map<String, Value> = obj_of(obj, "data").cloned().unwrap_or_default();
    let required_keys: &[&str] = match str_of(obj, "type") {
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/service-account-token" => {
            if obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
            &[]
        }
        _ => &[],
    };
    for k in required_keys {
        if !data.contains_key(*k) {
            causes.push(Cause::required(&key("data", k), ""));
        }
    }
}

fn validate_event(obj: &Value, causes: &mut Causes) {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let involved_ns = obj
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !involved_ns.is_empty() && involved_ns != ns {
        causes.push(Cause::invalid(
            "involvedObject.namespace",
            &Value::from(involved_ns),
            "does not match event.namespace",
        ));
    }
}

fn validate_endpoint_ports(ports: &[Value], path: &str, causes: &mut Causes, port_required: bool) {
    for (i, p) in ports.iter().enumerate() {
        let pp = index(path, i);
        match p.get("port").and_then(Value::as_i64) {
            Some(n) => {
                if let Some(msg) = port_range_error(n) {
                    causes.push(Cause::invalid(&child(&pp, "port"), &Value::from(n), msg));
                }
            }
            None if port_required => causes.push(Cause::required(&child(&pp, "port"), "")),
            None => {}
        }
        if ports.len() > 1 && str_of(p, "name").is_empty() && port_required {
            causes.push(Cause::required(&child(&pp, "name"), ""));
        }
        one_of(p, "protocol", &pp, PROTOCOLS, causes);
    }
}

fn validate_endpoints(obj: &Value, causes: &mut Causes) {
    for (i, s) in arr_of(obj, "subsets").iter().enumerate() {
        let sp = index("subsets", i);
        for field in ["addresses", "notReadyAddresses"] {
            for (j, a) in arr_of(s, field).iter().enumerate() {
                let ip = str_of(a, "ip");
                let ap = child(&index(&child(&sp, field), j), "ip");
                if !ip_ok(ip) {
                    causes.push(Cause::invalid(&ap, &Value::from(ip), IP_ERROR));
                }
            }
        }
        validate_endpoint_ports(arr_of(s, "ports"), &child(&sp, "ports"), causes, true);
    }
}

fn validate_endpoint_slice(obj: &Value, causes: &mut Causes) {
    let address_type = str_of(obj, "addressType");
    if address_type.is_empty() {
        causes.push(Cause::required("addressType", ""));
    } else {
        one_of(obj, "addressType", "", &["FQDN", "IPv4", "IPv6"], causes);
    }
    for (i, e) in arr_of(obj, "endpoints").iter().enumerate() {
        let ep = index("endpoints", i);
        let addrs = arr_of(e, "addresses");
        if addrs.is_empty() {
            causes.push(Cause::required(
                &child(&ep, "addresses"),
                "must contain at least 1 address",
            ));
        } else if addrs.len() > 100 {
            causes.push(Cause::invalid_no_value(
                &child(&ep, "addresses"),
                "must contain at most 100 addresses",
            ));
        }
        for (j, a) in addrs.iter().enumerate() {
            let s = a.as_str().unwrap_or_default();
            let ok = match address_type {
                "IPv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
                "IPv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
                _ => dns1123_subdomain_errors(s).is_empty(),
            };
            if !ok {
                causes.push(Cause::invalid(
                    &index(&child(&ep, "addresses"), j),
                    a,
                    &format!("must be a valid {address_type} address"),
                ));
            }
        }
    }
    validate_endpoint_ports(arr_of(obj, "ports"), "ports", causes, false);
}

fn validate_node(obj: &Value, causes: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    for (i, t) in arr_of(spec, "taints").iter().enumerate() {
        let tp = index("spec.taints", i);
        let k = str_of(t, "key");
        for msg in qualified_name_errors(k) {
            causes.push(Cause::invalid(&child(&tp, "key"), &Value::from(k), &msg));
        }
        let effect = str_of(t, "effect");
        if effect.is_empty() {
            causes.push(Cause::required(&child(&tp, "effect"), ""));
        } else {
            one_of(
                t,
                "effect",
                &tp,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
                causes,
            );
        }
    }
}
