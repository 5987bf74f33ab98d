//! Content negotiation: what the client accepts (JSON, Table, aggregated discovery) and what
//! its request body is (JSON, YAML, Kubernetes protobuf, one of the four patch types).

/// One media range of an `Accept` or `Content-Type` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`, lower-case.
    pub essence: String,
    /// Parameters (`as`, `g`, `v`, ...), keys lower-case.
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// Parses one media type (`application/json;as=Table;v=v1;g=meta.k8s.io`).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        if essence.is_empty() {
            return None;
        }
        let params = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                ))
            })
            .collect();
        Some(Self { essence, params })
    }

    /// A parameter's value.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn is_json_like(&self) -> bool {
        matches!(
            self.essence.as_str(),
            "application/json" | "*/*" | "application/*"
        )
    }
}

/// Parses an `Accept` header into its media ranges, in order.
pub fn parse_accept(accept: Option<&str>) -> Vec<MediaType> {
    accept
        .unwrap_or("")
        .split(',')
        .filter_map(MediaType::parse)
        .collect()
}

/// What representation a resource read should produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The object (or list) itself as JSON.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table,
}

/// Chooses the output for a resource read from `Accept`. Responses are always JSON: a client
/// that prefers protobuf also lists JSON, and we never answer 406 for that.
pub fn resource_output(accept: Option<&str>) -> Output {
    for m in parse_accept(accept) {
        if m.is_json_like() {
            if m.param("as") == Some("Table")
                && matches!(m.param("g"), Some("meta.k8s.io"))
                && matches!(m.param("v"), Some("v1") | Some("v1beta1"))
            {
                return Output::Table;
            }
            if m.param("as").is_none() {
                return Output::Object;
            }
        }
    }
    Output::Object
}

/// Which discovery document shape to answer for `/api` and `/apis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// `APIVersions` / `APIGroupList`.
    Legacy,
    /// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`.
    AggregatedV2,
    /// `apidiscovery.k8s.io/v2beta1` `APIGroupDiscoveryList`.
    AggregatedV2Beta1,
}

impl DiscoveryFormat {
    /// The `apiVersion` of the aggregated document.
    pub fn api_version(self) -> &'static str {
        match self {
            DiscoveryFormat::AggregatedV2Beta1 => "apidiscovery.k8s.io/v2beta1",
            _ => "apidiscovery.k8s.io/v2",
        }
    }

    /// The response `Content-Type`, which must name what was sent.
    pub fn content_type(self) -> &'static str {
        match self {
            DiscoveryFormat::Legacy => "application/json",
            DiscoveryFormat::AggregatedV2 => {
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            }
            DiscoveryFormat::AggregatedV2Beta1 => {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            }
        }
    }
}

/// Chooses the discovery format: the first acceptable media range wins.
pub fn discovery_format(accept: Option<&str>) -> DiscoveryFormat {
    for m in parse_accept(accept) {
        if !m.is_json_like() {
            continue;
        }
        match (m.param("as"), m.param("g"), m.param("v")) {
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2")) => {
                return DiscoveryFormat::AggregatedV2
            }
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2beta1")) => {
                return DiscoveryFormat::AggregatedV2Beta1
            }
            (None, _, _) => return DiscoveryFormat::Legacy,
            _ => {}
        }
    }
    DiscoveryFormat::Legacy
}

/// The format of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// Kubernetes protobuf (`k8s\0` envelope).
    Protobuf,
}

/// The body format named by a `Content-Type`; `None` for an unsupported one (415).
/// A missing `Content-Type` is taken as JSON.
pub fn body_format(content_type: Option<&str>) -> Option<BodyFormat> {
    let Some(ct) = content_type else {
        return Some(BodyFormat::Json);
    };
    let m = MediaType::parse(ct)?;
    match m.essence.as_str() {
        "application/json" | "*/*" => Some(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Some(BodyFormat::Yaml),
        "application/vnd.kubernetes.protobuf" => Some(BodyFormat::Protobuf),
        _ => None,
    }
}

/// The four patch types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7386 merge patch.
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// Server-side apply.
    Apply,
}

/// The patch type named by a `Content-Type`; `None` for anything else (415).
pub fn patch_type(content_type: Option<&str>) -> Option<PatchType> {
    let m = MediaType::parse(content_type?)?;
    match m.essence.as_str() {
        "application/json-patch+json" => Some(PatchType::Json),
        "application/merge-patch+json" => Some(PatchType::Merge),
        "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
        "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchType::Apply),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn table_accept_is_recognised() {
        assert_eq!(resource_output(Some(TABLE)), Output::Table);
        assert_eq!(resource_output(Some("application/json")), Output::Object);
        assert_eq!(
            resource_output(Some("application/vnd.kubernetes.protobuf,application/json")),
            Output::Object
        );
        assert_eq!(resource_output(None), Output::Object);
        // An unknown `as` falls through to the plain JSON that follows it.
        assert_eq!(
            resource_output(Some(
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
            )),
            Output::Object
        );
    }

    #[test]
    fn discovery_accept_picks_first_supported() {
        let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(discovery_format(Some(v2)), DiscoveryFormat::AggregatedV2);
        let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            discovery_format(Some(beta)),
            DiscoveryFormat::AggregatedV2Beta1
        );
        assert_eq!(
            discovery_format(Some("application/json, */*")),
            DiscoveryFormat::Legacy
        );
        assert_eq!(discovery_format(None), DiscoveryFormat::Legacy);
        assert!(DiscoveryFormat::AggregatedV2
            .content_type()
            .contains("v=v2;as=APIGroupDiscoveryList"));
    }

    #[test]
    fn body_and_patch_types() {
        assert_eq!(
            body_format(Some("application/json; charset=utf-8")),
            Some(BodyFormat::Json)
        );
        assert_eq!(
            body_format(Some("application/vnd.kubernetes.protobuf")),
            Some(BodyFormat::Protobuf)
        );
        assert_eq!(body_format(Some("text/plain")), None);
        assert_eq!(
            patch_type(Some("application/strategic-merge-patch+json")),
            Some(PatchType::Strategic)
        );
        assert_eq!(
            patch_type(Some("application/apply-patch+yaml")),
            Some(PatchType::Apply)
        );
        assert_eq!(patch_type(Some("application/json")), None);
        assert_eq!(patch_type(None), None);
    }
}
