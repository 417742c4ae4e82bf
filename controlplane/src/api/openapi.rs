//! OpenAPI v3: one document per group version listing each resource's item path with a
//! PATCH operation tagged `x-kubernetes-group-version-kind` that accepts the
//! `fieldValidation` query parameter (kubectl then leaves field validation to the server),
//! and the kinds' schemas (from k8s-openapi) under `components.schemas` for `kubectl
//! explain`. The PATCH operations declare no request body, so kubectl computes apply patches
//! from its built-in types.

use std::collections::HashMap;
use std::sync::OnceLock;

use schemars::gen::SchemaSettings;
use serde_json::{json, Map, Value};

use super::discovery::GIT_VERSION;
use super::registry::{self, ResourceInfo};

/// `api/v1` or `apis/apps/v1`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Changes whenever the served set changes (it is part of the binary).
fn hash() -> String {
    format!(
        "{:016x}",
        registry::RESOURCES.len() as u64 * 0x9e37_79b9 + GIT_VERSION.len() as u64
    )
}

/// `/openapi/v3`.
pub fn root() -> Value {
    let mut paths = Map::new();
    for (g, v) in registry::group_versions() {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash())}),
        );
    }
    json!({"paths": paths})
}

fn item_path(r: &ResourceInfo) -> String {
    let base = format!("/{}", gv_path(r.group, r.version));
    if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
    } else {
        format!("{base}/{}/{{name}}", r.plural)
    }
}

/// `components.schemas` of the kinds of one group version, each kind tagged with its GVK.
fn schemas(group: &str, version: &str) -> Value {
    let mut gen = SchemaSettings::openapi3().into_generator();
    let kinds: Vec<_> = registry::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    let refs: Vec<String> = kinds
        .iter()
        .map(|r| {
            let s = serde_json::to_value((r.schema)(&mut gen)).unwrap_or_default();
            let reference = s.get("$ref").and_then(Value::as_str).unwrap_or("");
            reference.rsplit('/').next().unwrap_or("").to_string()
        })
        .collect();
    let mut defs = serde_json::to_value(gen.take_definitions()).unwrap_or_else(|_| json!({}));
    for (r, name) in kinds.iter().zip(refs) {
        if let Some(def) = defs.get_mut(&name).and_then(Value::as_object_mut) {
            def.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
            );
        }
    }
    defs
}

/// `/openapi/v3/<api/v1 | apis/g/v>` as JSON text, built once per group version.
pub fn group_version(path: &str) -> Option<&'static str> {
    static DOCS: OnceLock<HashMap<String, String>> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        registry::group_versions()
            .into_iter()
            .filter_map(|(g, v)| {
                let p = gv_path(g, v);
                let doc = build(&p)?.to_string();
                Some((p, doc))
            })
            .collect()
    });
    docs.get(path).map(String::as_str)
}

fn build(path: &str) -> Option<Value> {
    let (g, v) = registry::group_versions()
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == path)?;
    let mut paths = Map::new();
    for r in registry::RESOURCES
        .iter()
        .filter(|r| r.group == g && r.version == v)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}});
        paths.insert(
            item_path(r),
            json!({
                "patch": {
                    "operationId": format!("patch{}", r.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [query("dryRun"), query("fieldManager"),
                                   query("fieldValidation"), query("force")],
                    "responses": {"200": {"description": "OK"}},
                }
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas(g, v)},
    }))
}
