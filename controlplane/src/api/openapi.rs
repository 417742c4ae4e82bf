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

/// A custom group version's hash: changes with its kinds' schemas.
fn custom_hash(group: &str, version: &str, custom: &[&'static ResourceInfo]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for r in custom
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        (r.plural, r.kind).hash(&mut h);
        r.custom.map(|c| c.schema.to_string()).hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// `/openapi/v3`: the built-in group versions and those of the CRDs (`custom`).
pub fn root(custom: &[&'static ResourceInfo]) -> Value {
    let mut paths = Map::new();
    for (g, v) in registry::group_versions() {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash())}),
        );
    }
    for r in custom {
        let p = gv_path(r.group, r.version);
        let h = custom_hash(r.group, r.version, custom);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={h}")}),
        );
    }
    json!({"paths": paths})
}

/// The document of a custom group version: each kind's CRD schema with the standard
/// `apiVersion`, `kind` and `metadata`, tagged with its GVK (for `kubectl explain`).
pub fn custom_group_version(path: &str, custom: &[&'static ResourceInfo]) -> Option<String> {
    let kinds: Vec<&ResourceInfo> = custom
        .iter()
        .copied()
        .filter(|r| gv_path(r.group, r.version) == path)
        .collect();
    let first = kinds.first()?;
    let mut gen = SchemaSettings::openapi3().into_generator();
    let meta_ref = serde_json::to_value(
        gen.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(),
    )
    .unwrap_or_default();
    let mut defs = serde_json::to_value(gen.take_definitions()).unwrap_or_else(|_| json!({}));
    let mut paths = Map::new();
    for r in &kinds {
        let Some(c) = r.custom else { continue };
        let mut schema = c.schema.clone();
        if let Some(props) = schema
            .as_object_mut()
            .map(|s| s.entry("properties").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        {
            props.insert("apiVersion".into(), json!({"type": "string",
                "description": "APIVersion defines the versioned schema of this representation of an object."}));
            props.insert("kind".into(), json!({"type": "string",
                "description": "Kind is a string value representing the REST resource this object represents."}));
            props.insert("metadata".into(), meta_ref.clone());
        }
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        schema["x-kubernetes-group-version-kind"] = json!([gvk.clone()]);
        let reversed: Vec<&str> = r.group.split('.').rev().collect();
        defs[format!("{}.{}.{}", reversed.join("."), r.version, r.kind)] = schema;
        paths.insert(item_path(r), patch_operation(r, gvk));
    }
    Some(
        json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes CRD Swagger", "version": first.version},
            "paths": paths,
            "components": {"schemas": defs},
        })
        .to_string(),
    )
}

/// The PATCH operation of a kind's item path: its GVK and the query parameters.
fn patch_operation(r: &ResourceInfo, gvk: Value) -> Value {
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}});
    json!({
        "patch": {
            "operationId": format!("patch{}", r.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [query("dryRun"), query("fieldManager"),
                           query("fieldValidation"), query("force")],
            "responses": {"200": {"description": "OK"}},
        }
    })
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
        paths.insert(item_path(r), patch_operation(r, gvk));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas(g, v)},
    }))
}
