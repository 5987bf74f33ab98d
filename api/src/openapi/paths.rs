//! The `paths` of a group-version document: one entry per resource, subresource and watch URL, each
//! operation carrying `x-kubernetes-action` and `x-kubernetes-group-version-kind` as upstream does.

use serde_json::{json, Map, Value};

use crate::openapi::components;
use crate::resources;

const JSON_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const WATCH_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];

/// The patch media types every built-in kind accepts.
pub const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn content(types: &[&str], schema: &Value) -> Value {
    let mut m = Map::new();
    for t in types {
        m.insert((*t).to_string(), json!({ "schema": schema }));
    }
    Value::Object(m)
}

fn param(name: &str, location: &str, ty: &str, description: &str) -> Value {
    let mut p = json!({
        "name": name,
        "in": location,
        "description": description,
        "schema": {"type": ty, "uniqueItems": true}
    });
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

fn query(name: &str) -> Value {
    let (ty, d) = match name {
        "allowWatchBookmarks" => ("boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session."),
        "continue" => ("string", "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue)."),
        "fieldSelector" => ("string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        "labelSelector" => ("string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        "limit" => ("integer", "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results."),
        "resourceVersion" => ("string", "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details. Defaults to unset"),
        "resourceVersionMatch" => ("string", "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set. Defaults to unset"),
        "sendInitialEvents" => ("boolean", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection."),
        "timeoutSeconds" => ("integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity."),
        "watch" => ("boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion."),
        "dryRun" => ("string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed"),
        "fieldManager" => ("string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch)."),
        "fieldValidation" => ("string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered."),
        "force" => ("boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests."),
        "gracePeriodSeconds" => ("integer", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately."),
        "orphanDependents" => ("boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned."),
        "propagationPolicy" => ("string", "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'."),
        "container" => ("string", "The container for which to stream logs. Defaults to only container if there is one container in the pod."),
        "follow" => ("boolean", "Follow the log stream of the pod. Defaults to false."),
        "insecureSkipTLSVerifyBackend" => ("boolean", "insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the validity of the serving certificate of the backend it is connecting to."),
        "limitBytes" => ("integer", "If set, the number of bytes to read from the server before terminating the log output."),
        "previous" => ("boolean", "Return previous terminated container logs. Defaults to false."),
        "sinceSeconds" => ("integer", "A relative time in seconds before the current time from which to show logs."),
        "tailLines" => ("integer", "If set, the number of lines from the end of the logs to show."),
        "timestamps" => ("boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false."),
        "pretty" => ("string", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."),
        _ => ("string", ""),
    };
    param(name, "query", ty, d)
}

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "orphanDependents",
    "propagationPolicy",
];
const LOG_PARAMS: &[&str] = &[
    "container",
    "follow",
    "insecureSkipTLSVerifyBackend",
    "limitBytes",
    "previous",
    "sinceSeconds",
    "tailLines",
    "timestamps",
];

/// The group-version path of a resource's documents: `api/v1` or `apis/apps/v1`.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn camel_group(group: &str) -> String {
    let g = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    let mut c = g.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn tag(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    format!("{g}_{version}")
}

/// What one operation looks like, before it is rendered.
struct Op<'a> {
    action: &'a str,
    id_verb: &'a str,
    description: String,
    params: &'a [&'a str],
    body: Option<Value>,
    responses: Value,
    gvk: Option<(&'a str, &'a str, &'a str)>,
}

struct Ctx {
    tag: String,
    id_mid: String,
}

impl Ctx {
    fn render(&self, op: Op<'_>, suffix: &str) -> Value {
        let mut o = json!({
            "tags": [self.tag],
            "description": op.description,
            "operationId": format!("{}{}{}", op.id_verb, self.id_mid, suffix),
            "responses": op.responses,
            "x-kubernetes-action": op.action,
        });
        if !op.params.is_empty() {
            o["parameters"] = Value::Array(op.params.iter().map(|p| query(p)).collect());
        }
        if let Some(b) = op.body {
            o["requestBody"] = b;
        }
        if let Some((g, v, k)) = op.gvk {
            o["x-kubernetes-group-version-kind"] = json!({"group": g, "version": v, "kind": k});
        }
        o
    }
}

fn ok(types: &[&str], schema: &Value, extra: &[(&str, &str)]) -> Value {
    let mut r = json!({"200": {"description": "OK", "content": content(types, schema)}});
    for (code, d) in extra {
        r[*code] = json!({"description": d, "content": content(types, schema)});
    }
    r["401"] = json!({"description": "Unauthorized"});
    r
}

fn body(types: &[&str], schema: &Value) -> Value {
    json!({"required": true, "content": content(types, schema)})
}

fn path_params(namespaced: bool, named: Option<&str>) -> Value {
    let mut ps = Vec::new();
    if let Some(kind) = named {
        ps.push(param(
            "name",
            "path",
            "string",
            &format!("name of the {kind}"),
        ));
    }
    if namespaced {
        ps.push(param(
            "namespace",
            "path",
            "string",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    ps.push(query("pretty"));
    Value::Array(ps)
}

/// All paths of the group-version `group/version`.
pub fn paths_for(group: &str, version: &str) -> Map<String, Value> {
    let mut paths = Map::new();
    let base = format!("/{}", gv_path(group, version));
    let status_ref = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status");
    paths.insert(
        format!("{base}/"),
        json!({"get": {
            "tags": [tag(group, version)],
            "description": "get available resources",
            "operationId": format!("get{}{}APIResources", camel_group(group), version.to_uppercase()[..1].to_string() + &version[1..]),
            "responses": ok(&["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"], &schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"), &[]),
        }}),
    );
    for info in resources::all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let ver = {
            let mut c = version.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        };
        let ns = if info.namespaced { "Namespaced" } else { "" };
        let ctx = Ctx {
            tag: tag(group, version),
            id_mid: format!("{}{}{}{}", camel_group(group), ver, ns, info.kind),
        };
        let all_ctx = Ctx {
            tag: tag(group, version),
            id_mid: format!("{}{}{}", camel_group(group), ver, info.kind),
        };
        let kind_schema = components::schema_name_of(group, version, info.kind)
            .map(schema_ref)
            .unwrap_or(json!({"type": "object"}));
        let list_schema = components::schema_name_of(group, version, info.list_kind)
            .map(schema_ref)
            .unwrap_or(json!({"type": "object"}));
        let watch_schema = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent");
        let gvk = Some((group, version, info.kind));
        let has = |v: &str| info.verbs.contains(&v);
        let plural = info.plural;
        let scope = if info.namespaced {
            format!("{base}/namespaces/{{namespace}}/{plural}")
        } else {
            format!("{base}/{plural}")
        };
        let kind = info.kind;
        // collection
        let mut coll = Map::new();
        if has("list") {
            coll.insert(
                "get".into(),
                ctx.render(
                    Op {
                        action: "list",
                        id_verb: "list",
                        description: format!("list or watch objects of kind {kind}"),
                        params: LIST_PARAMS,
                        body: None,
                        responses: ok(WATCH_TYPES, &list_schema, &[]),
                        gvk,
                    },
                    "",
                ),
            );
        }
        if has("create") {
            coll.insert(
                "post".into(),
                ctx.render(
                    Op {
                        action: "post",
                        id_verb: "create",
                        description: format!("create a {kind}"),
                        params: WRITE_PARAMS,
                        body: Some(body(&["*/*"], &kind_schema)),
                        responses: ok(
                            JSON_TYPES,
                            &kind_schema,
                            &[("201", "Created"), ("202", "Accepted")],
                        ),
                        gvk,
                    },
                    "",
                ),
            );
        }
        if has("deletecollection") {
            let mut params: Vec<&str> = LIST_PARAMS
                .iter()
                .copied()
                .filter(|p| *p != "watch" && *p != "allowWatchBookmarks")
                .collect();
            params.extend(DELETE_PARAMS);
            params.sort_unstable();
            coll.insert(
                "delete".into(),
                ctx.render(
                    Op {
                        action: "deletecollection",
                        id_verb: "deleteCollection",
                        description: format!("delete collection of {kind}"),
                        params: &params,
                        body: Some(body(
                            &["*/*"],
                            &schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
                        )),
                        responses: ok(JSON_TYPES, &status_ref, &[]),
                        gvk,
                    },
                    "",
                ),
            );
        }
        if !coll.is_empty() {
            coll.insert("parameters".into(), path_params(info.namespaced, None));
            paths.insert(scope.clone(), Value::Object(coll));
        }
        // object
        let mut obj = Map::new();
        if has("get") {
            obj.insert(
                "get".into(),
                ctx.render(
                    Op {
                        action: "get",
                        id_verb: "read",
                        description: format!("read the specified {kind}"),
                        params: &[],
                        body: None,
                        responses: ok(JSON_TYPES, &kind_schema, &[]),
                        gvk,
                    },
                    "",
                ),
            );
        }
        if has("update") {
            obj.insert(
                "put".into(),
                ctx.render(
                    Op {
                        action: "put",
                        id_verb: "replace",
                        description: format!("replace the specified {kind}"),
                        params: WRITE_PARAMS,
                        body: Some(body(&["*/*"], &kind_schema)),
                        responses: ok(JSON_TYPES, &kind_schema, &[("201", "Created")]),
                        gvk,
                    },
                    "",
                ),
            );
        }
        if has("patch") {
            obj.insert("patch".into(), patch_op(&ctx, kind, "", &kind_schema, gvk));
        }
        if has("delete") {
            obj.insert(
                "delete".into(),
                ctx.render(
                    Op {
                        action: "delete",
                        id_verb: "delete",
                        description: format!("delete a {kind}"),
                        params: DELETE_PARAMS,
                        body: Some(body(
                            &["*/*"],
                            &schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
                        )),
                        responses: ok(JSON_TYPES, &status_ref, &[("202", "Accepted")]),
                        gvk,
                    },
                    "",
                ),
            );
        }
        let obj_path = format!("{scope}/{{name}}");
        if !obj.is_empty() {
            obj.insert(
                "parameters".into(),
                path_params(info.namespaced, Some(kind)),
            );
            paths.insert(obj_path.clone(), Value::Object(obj));
        }
        // all namespaces
        if info.namespaced && has("list") {
            let mut all_ns_params: Vec<Value> = LIST_PARAMS.iter().map(|p| query(p)).collect();
            all_ns_params.push(query("pretty"));
            paths.insert(format!("{base}/{plural}"), json!({
                "get": all_ctx.render(Op {
                    action: "list", id_verb: "list", description: format!("list or watch objects of kind {kind}"),
                    params: &[], body: None, responses: ok(WATCH_TYPES, &list_schema, &[]), gvk }, "ForAllNamespaces"),
                "parameters": all_ns_params,
            }));
        }
        // watch
        if has("watch") {
            let wscope = if info.namespaced {
                format!("{base}/watch/namespaces/{{namespace}}/{plural}")
            } else {
                format!("{base}/watch/{plural}")
            };
            let mut with_ns = |path: String,
                               action: &str,
                               verb: &str,
                               named: bool,
                               c: &Ctx,
                               suffix: &str,
                               namespaced: bool| {
                let mut ps: Vec<Value> = LIST_PARAMS.iter().map(|p| query(p)).collect();
                if named {
                    ps.push(param(
                        "name",
                        "path",
                        "string",
                        &format!("name of the {kind}"),
                    ));
                }
                if namespaced {
                    ps.push(param(
                        "namespace",
                        "path",
                        "string",
                        "object name and auth scope, such as for teams and projects",
                    ));
                }
                ps.push(query("pretty"));
                paths.insert(path, json!({
                    "get": c.render(Op {
                        action, id_verb: verb, description: format!("watch changes to an object of kind {kind}"),
                        params: &[], body: None, responses: ok(WATCH_TYPES, &watch_schema, &[]), gvk }, suffix),
                    "parameters": ps,
                }));
            };
            with_ns(
                wscope.clone(),
                "watchlist",
                "watch",
                false,
                &ctx,
                "List",
                info.namespaced,
            );
            with_ns(
                format!("{wscope}/{{name}}"),
                "watch",
                "watch",
                true,
                &ctx,
                "",
                info.namespaced,
            );
            if info.namespaced {
                with_ns(
                    format!("{base}/watch/{plural}"),
                    "watchlist",
                    "watch",
                    false,
                    &all_ctx,
                    "ListForAllNamespaces",
                    false,
                );
            }
        }
        // subresources
        for sub in info.subresources {
            let sub_gvk = Some((sub.group, sub.version, sub.kind));
            let sub_schema = components::schema_name_of(sub.group, sub.version, sub.kind)
                .map(schema_ref)
                .unwrap_or(json!({"type": "string"}));
            let suffix = {
                let mut c = sub.name.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            };
            let mut ops = Map::new();
            let subhas = |v: &str| sub.verbs.contains(&v);
            if sub.name == "log" {
                let s = json!({"type": "string"});
                ops.insert(
                    "get".into(),
                    ctx.render(
                        Op {
                            action: "get",
                            id_verb: "read",
                            description: format!("read log of the specified {kind}"),
                            params: LOG_PARAMS,
                            body: None,
                            responses: ok(
                                &[
                                    "text/plain",
                                    "application/json",
                                    "application/yaml",
                                    "application/vnd.kubernetes.protobuf",
                                ],
                                &s,
                                &[],
                            ),
                            gvk: sub_gvk,
                        },
                        &suffix,
                    ),
                );
            } else {
                if subhas("get") {
                    ops.insert(
                        "get".into(),
                        ctx.render(
                            Op {
                                action: "get",
                                id_verb: "read",
                                description: format!("read {} of the specified {kind}", sub.name),
                                params: &[],
                                body: None,
                                responses: ok(JSON_TYPES, &sub_schema, &[]),
                                gvk: sub_gvk,
                            },
                            &suffix,
                        ),
                    );
                }
                if subhas("update") {
                    ops.insert(
                        "put".into(),
                        ctx.render(
                            Op {
                                action: "put",
                                id_verb: "replace",
                                description: format!(
                                    "replace {} of the specified {kind}",
                                    sub.name
                                ),
                                params: WRITE_PARAMS,
                                body: Some(body(&["*/*"], &sub_schema)),
                                responses: ok(JSON_TYPES, &sub_schema, &[("201", "Created")]),
                                gvk: sub_gvk,
                            },
                            &suffix,
                        ),
                    );
                }
                if subhas("patch") {
                    ops.insert(
                        "patch".into(),
                        patch_op(
                            &ctx,
                            &format!("{} of the specified {kind}", sub.name),
                            &suffix,
                            &sub_schema,
                            sub_gvk,
                        ),
                    );
                }
                if subhas("create") {
                    ops.insert(
                        "post".into(),
                        ctx.render(
                            Op {
                                action: "post",
                                id_verb: "create",
                                description: format!("create {} of a {kind}", sub.name),
                                params: WRITE_PARAMS,
                                body: Some(body(&["*/*"], &sub_schema)),
                                responses: ok(
                                    JSON_TYPES,
                                    &sub_schema,
                                    &[("201", "Created"), ("202", "Accepted")],
                                ),
                                gvk: sub_gvk,
                            },
                            &suffix,
                        ),
                    );
                }
            }
            if !ops.is_empty() {
                let mut ps = path_params(info.namespaced, Some(kind));
                if sub.name == "binding" || sub.name == "eviction" {
                    ps = path_params(info.namespaced, Some(sub.kind));
                }
                ops.insert("parameters".into(), ps);
                paths.insert(format!("{obj_path}/{}", sub.name), Value::Object(ops));
            }
        }
    }
    paths
}

fn patch_op(
    ctx: &Ctx,
    what: &str,
    suffix: &str,
    schema: &Value,
    gvk: Option<(&str, &str, &str)>,
) -> Value {
    let patch_schema = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
    ctx.render(
        Op {
            action: "patch",
            id_verb: "patch",
            description: format!("partially update the specified {what}"),
            params: PATCH_PARAMS,
            body: Some(body(PATCH_TYPES, &patch_schema)),
            responses: ok(JSON_TYPES, schema, &[("201", "Created")]),
            gvk,
        },
        suffix,
    )
}

/// Every group-version with at least one resource, as `(group, version)`.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in resources::all() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}
