//! Service address allocation: ClusterIPs from the service CIDR and NodePorts from the node-port
//! range, each reserved by creating one store key (create-if-absent is the lock), as
//! Kubernetes' IPAddress objects do.
//!
//! ```text
//! create Service ─► wanted(spec) ─► for each candidate: storage.create(/registry/ipaddresses/IP)
//!                                    └ AlreadyExists: next candidate (bounded)
//! delete Service ─► release: delete the keys it holds
//! ```

use std::net::Ipv4Addr;

use serde_json::{json, Value};

/// The default service CIDR (kube-apiserver's `--service-cluster-ip-range` default).
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 12);
/// The node-port range.
pub const NODE_PORTS: (u16, u16) = (30000, 32767);

/// Key reserving a ClusterIP.
pub fn ip_key(ip: Ipv4Addr) -> String {
    format!("/registry/ipaddresses/{ip}")
}

/// Key reserving a NodePort (TCP/UDP share the number, as a simplification).
pub fn node_port_key(port: u16) -> String {
    format!("/registry/nodeports/{port}")
}

/// The `n`-th candidate address for a seed: spread over the range, skipping the network
/// address and the first address (reserved for the `kubernetes` service).
pub fn ip_candidate(seed: u64, n: u64) -> Ipv4Addr {
    let (base, bits) = SERVICE_CIDR;
    let size = 1u64 << (32 - u32::from(bits));
    let usable = size - 3; // network, .1 (kubernetes), broadcast
    let off = 2 + (seed.wrapping_add(n.wrapping_mul(0x9E37_79B9)) % usable);
    Ipv4Addr::from(u32::from(base) + off as u32)
}

/// Whether `ip` is inside the service CIDR.
pub fn in_service_cidr(ip: Ipv4Addr) -> bool {
    let (base, bits) = SERVICE_CIDR;
    let mask = u32::MAX << (32 - u32::from(bits));
    u32::from(ip) & mask == u32::from(base)
}

/// The `n`-th candidate node port for a seed.
pub fn port_candidate(seed: u64, n: u64) -> u16 {
    let (lo, hi) = NODE_PORTS;
    let size = u64::from(hi - lo) + 1;
    lo + ((seed.wrapping_add(n.wrapping_mul(7919)) % size) as u16)
}

/// What a Service needs allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// A ClusterIP: `None` = none needed, `Some(None)` = any, `Some(Some(ip))` = this one.
    pub cluster_ip: Option<Option<Ipv4Addr>>,
    /// Indexes into `spec.ports` that need a node port, with the requested port (0 = any).
    pub node_ports: Vec<(usize, u16)>,
}

/// Reads what `svc` needs; `Err` names the bad field value.
pub fn wanted(svc: &Value) -> Result<Wanted, String> {
    let ty = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let requested = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    let cluster_ip = match (ty, requested) {
        ("ExternalName", _) | (_, "None") => None,
        (_, "") => Some(None),
        (_, ip) => {
            let ip: Ipv4Addr = ip.parse().map_err(|_| {
                format!("spec.clusterIP: Invalid value: {ip:?}: must be a valid IP address")
            })?;
            if !in_service_cidr(ip) {
                return Err(format!(
                    "spec.clusterIP: Invalid value: \"{ip}\": provided IP is not in the valid range. The range of valid IPs is {}/{}",
                    SERVICE_CIDR.0, SERVICE_CIDR.1
                ));
            }
            Some(Some(ip))
        }
    };
    let mut node_ports = Vec::new();
    if matches!(ty, "NodePort" | "LoadBalancer") {
        if let Some(ports) = svc.pointer("/spec/ports").and_then(Value::as_array) {
            for (i, p) in ports.iter().enumerate() {
                let n = p.get("nodePort").and_then(Value::as_u64).unwrap_or(0);
                let n = u16::try_from(n)
                    .map_err(|_| format!("spec.ports[{i}].nodePort: Invalid value: {n}"))?;
                if n != 0 && !(NODE_PORTS.0..=NODE_PORTS.1).contains(&n) {
                    return Err(format!(
                        "spec.ports[{i}].nodePort: Invalid value: {n}: provided port is not in the valid range. The range of valid ports is {}-{}",
                        NODE_PORTS.0, NODE_PORTS.1
                    ));
                }
                node_ports.push((i, n));
            }
        }
    }
    Ok(Wanted {
        cluster_ip,
        node_ports,
    })
}

/// Writes the allocated ClusterIP into the spec (`clusterIP`, `clusterIPs`, IPv4 single stack).
pub fn set_cluster_ip(svc: &mut Value, ip: Ipv4Addr) {
    if let Some(Value::Object(spec)) = svc.get_mut("spec") {
        spec.insert("clusterIP".into(), json!(ip.to_string()));
        spec.insert("clusterIPs".into(), json!([ip.to_string()]));
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
        spec.entry("ipFamilyPolicy")
            .or_insert_with(|| json!("SingleStack"));
    }
}

/// Writes an allocated node port into `spec.ports[i]`.
pub fn set_node_port(svc: &mut Value, i: usize, port: u16) {
    if let Some(Value::Object(p)) = svc.pointer_mut(&format!("/spec/ports/{i}")) {
        p.insert("nodePort".into(), json!(port));
    }
}

/// An update keeps the allocated ClusterIP and NodePorts when the new spec leaves them unset
/// (Kubernetes' `patchAllocatedValues`).
pub fn keep_allocated(new: &mut Value, old: &Value) {
    let Some(Value::Object(spec)) = new.get_mut("spec") else {
        return;
    };
    let unset = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v == "");
    if unset(spec.get("clusterIP")) {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if let Some(v) = old.pointer(&format!("/spec/{f}")) {
                spec.insert(f.to_string(), v.clone());
            }
        }
    }
    let old_ports = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut() {
            let Value::Object(pm) = p else { continue };
            if pm
                .get("nodePort")
                .is_some_and(|n| n.as_u64().unwrap_or(0) != 0)
            {
                continue;
            }
            let same = old_ports.iter().find(|o| {
                o.get("port") == pm.get("port")
                    && o.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        == pm.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
            });
            if let Some(n) = same.and_then(|o| o.get("nodePort")) {
                pm.insert("nodePort".into(), n.clone());
            }
        }
    }
}

/// The reservation keys a stored Service holds.
pub fn held_keys(svc: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(ip) = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
    {
        keys.push(ip_key(ip));
    }
    if let Some(ports) = svc.pointer("/spec/ports").and_then(Value::as_array) {
        for p in ports {
            if let Some(n) = p
                .get("nodePort")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
            {
                keys.push(node_port_key(n));
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_stay_in_range() {
        for seed in [0u64, 1, 12345, u64::MAX] {
            for n in 0..50 {
                let ip = ip_candidate(seed, n);
                assert!(in_service_cidr(ip), "{ip}");
                assert_ne!(ip, Ipv4Addr::new(10, 96, 0, 1));
                assert_ne!(ip, Ipv4Addr::new(10, 96, 0, 0));
                let p = port_candidate(seed, n);
                assert!((30000..=32767).contains(&p));
            }
        }
        assert!(!in_service_cidr(Ipv4Addr::new(10, 112, 0, 1)));
    }

    #[test]
    fn updates_keep_allocations() {
        let old = json!({"spec": {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
            "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut new = json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}});
        keep_allocated(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.7");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
    }

    #[test]
    fn wanted_reads_the_spec() {
        let w = wanted(&json!({"spec": {"ports": [{"port": 80}]}})).unwrap();
        assert_eq!(w.cluster_ip, Some(None));
        assert!(w.node_ports.is_empty());
        let headless = wanted(&json!({"spec": {"clusterIP": "None"}})).unwrap();
        assert_eq!(headless.cluster_ip, None);
        let np = wanted(
            &json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
            "ports": [{"port": 80}, {"port": 81, "nodePort": 30080}]}}),
        )
        .unwrap();
        assert_eq!(np.cluster_ip, Some(Some(Ipv4Addr::new(10, 96, 0, 10))));
        assert_eq!(np.node_ports, vec![(0, 0), (1, 30080)]);
        assert!(wanted(&json!({"spec": {"clusterIP": "192.168.0.1"}})).is_err());
        assert!(
            wanted(&json!({"spec": {"type": "NodePort", "ports": [{"nodePort": 80}]}})).is_err()
        );
        let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
        set_cluster_ip(&mut svc, Ipv4Addr::new(10, 96, 3, 4));
        set_node_port(&mut svc, 0, 30001);
        assert_eq!(
            held_keys(&svc),
            vec![
                "/registry/ipaddresses/10.96.3.4".to_string(),
                "/registry/nodeports/30001".to_string()
            ]
        );
    }
}
