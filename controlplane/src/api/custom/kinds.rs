//! [`CustomKinds`]: the kinds defined by the stored CRDs, as [`ResourceInfo`]s the generic
//! resource logic serves. Each API server keeps its own table, rebuilt whenever a CRD
//! changes (see `custom::follow`) and, best effort, on a request for a kind it does not
//! know yet, on `/apis` and on `/openapi/v3`.
//!
//! The resource logic holds `&'static ResourceInfo`s, so the infos of custom kinds are
//! leaked — once per distinct definition: [`intern`] hands out the same info for an
//! unchanged version, so memory grows with edits of CRDs, not with refreshes.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, RwLock};

use serde_json::{json, Value};

use super::columns::Column;
use super::{pointer_of, CustomInfo, ScalePaths};
use crate::api::registry::{ResourceInfo, Subresource};

/// The kinds of a server's CRDs, one [`ResourceInfo`] per version.
#[derive(Default)]
pub struct CustomKinds {
    infos: RwLock<Vec<&'static ResourceInfo>>,
    /// The store revision the table reflects: an older view never replaces a newer one.
    revision: Mutex<u64>,
}

impl std::fmt::Debug for CustomKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomKinds")
            .field("kinds", &self.infos.read().unwrap().len())
            .finish()
    }
}

impl CustomKinds {
    /// The first info whose custom part satisfies `pred` (no table copy: routing asks).
    fn first(
        &self,
        pred: impl Fn(&ResourceInfo, &CustomInfo) -> bool,
    ) -> Option<&'static ResourceInfo> {
        let infos = self.infos.read().unwrap();
        infos
            .iter()
            .copied()
            .find(|r| r.custom.is_some_and(|c| pred(r, c)))
    }

    /// Every info whose custom part satisfies `pred`.
    fn all(&self, pred: impl Fn(&CustomInfo) -> bool) -> Vec<&'static ResourceInfo> {
        let infos = self.infos.read().unwrap();
        infos
            .iter()
            .copied()
            .filter(|r| r.custom.is_some_and(&pred))
            .collect()
    }

    /// The served version `version` of `plural` in `group`.
    pub fn lookup(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static ResourceInfo> {
        self.first(|r, c| {
            c.served && r.group == group && r.version == version && r.plural == plural
        })
    }

    /// The served kind of an `apiVersion` + `kind` pair.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
        self.first(|r, c| c.served && r.kind == kind && r.api_version() == api_version)
    }

    /// Every served version of every kind.
    pub fn served(&self) -> Vec<&'static ResourceInfo> {
        self.all(|c| c.served)
    }

    /// The storage version of each kind: one info per CRD, to reach all its objects.
    pub fn stored(&self) -> Vec<&'static ResourceInfo> {
        self.all(|c| c.storage)
    }

    /// The storage version of the kinds of CRD `crd`.
    pub fn stored_of(&self, crd: &str) -> Option<&'static ResourceInfo> {
        self.first(|_, c| c.storage && c.crd == crd)
    }

    /// Replace the table with the kinds of `crds`, the CustomResourceDefinitions stored at
    /// revision `revision`, unless the table reflects a later revision already.
    pub fn replace(&self, revision: u64, crds: &[Value]) {
        let mut seen = self.revision.lock().unwrap();
        if revision < *seen {
            return;
        }
        *seen = revision;
        let infos: Vec<&'static ResourceInfo> = crds.iter().flat_map(infos_of).collect();
        *self.infos.write().unwrap() = infos;
    }
}

fn text(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn strings(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Everything an info is made of, owned; equal definitions give equal descriptions.
#[derive(Debug, PartialEq)]
struct Description {
    group: String,
    version: String,
    kind: String,
    plural: String,
    singular: String,
    short_names: Vec<String>,
    categories: Vec<String>,
    namespaced: bool,
    subresources: Vec<Subresource>,
    custom: CustomInfo,
}

/// The infos of each version of a CRD (after defaulting, so names are complete).
pub fn infos_of(crd: &Value) -> Vec<&'static ResourceInfo> {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let kind = text(&names, "/kind");
    let plural = text(&names, "/plural");
    let group = text(crd, "/spec/group");
    if kind.is_empty() || plural.is_empty() || group.is_empty() {
        return Vec::new();
    }
    let mut singular = text(&names, "/singular");
    if singular.is_empty() {
        singular = kind.to_lowercase();
    }
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .map(|v| {
            let mut subresources = Vec::new();
            if v.pointer("/subresources/status").is_some() {
                subresources.push(Subresource::Status);
            }
            let scale = v.pointer("/subresources/scale").and_then(|s| {
                Some(ScalePaths {
                    spec_replicas: pointer_of(s.get("specReplicasPath")?.as_str()?)?,
                    status_replicas: pointer_of(s.get("statusReplicasPath")?.as_str()?)?,
                    label_selector: s
                        .get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .and_then(pointer_of),
                })
            });
            if scale.is_some() {
                subresources.push(Subresource::Scale);
            }
            let columns = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .map(|cols| cols.iter().filter_map(Column::from_definition).collect())
                .unwrap_or_default();
            intern(Description {
                group: group.clone(),
                version: text(v, "/name"),
                kind: kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                short_names: strings(&names, "/shortNames"),
                categories: strings(&names, "/categories"),
                namespaced: text(crd, "/spec/scope") != "Cluster",
                subresources,
                custom: CustomInfo {
                    crd: format!("{plural}.{group}"),
                    list_kind: text(&names, "/listKind"),
                    schema: v
                        .pointer("/schema/openAPIV3Schema")
                        .cloned()
                        .unwrap_or(json!({"type": "object",
                            "x-kubernetes-preserve-unknown-fields": true})),
                    columns,
                    scale,
                    served: v.get("served").and_then(Value::as_bool).unwrap_or(false),
                    storage: v.get("storage").and_then(Value::as_bool).unwrap_or(false),
                    terminating,
                },
            })
        })
        .collect()
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_all(v: &[String]) -> &'static [&'static str] {
    Box::leak(
        v.iter()
            .map(|s| leak(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

/// Custom objects are checked against their schema, not a Rust type: the round trip keeps
/// them as they are.
fn as_is(v: Value) -> Result<Value, serde_json::Error> {
    Ok(v)
}

fn any_object(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    schemars::schema::Schema::Bool(true)
}

/// Infos made so far, by `group/version/plural`.
type Interned = HashMap<String, Vec<(Description, &'static ResourceInfo)>>;

/// The one info of `d`: made (and leaked) the first time this description is seen.
fn intern(d: Description) -> &'static ResourceInfo {
    static SEEN: OnceLock<Mutex<Interned>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Mutex::default).lock().unwrap();
    let bucket = seen
        .entry(format!("{}/{}/{}", d.group, d.version, d.plural))
        .or_default();
    if let Some((_, info)) = bucket.iter().find(|(known, _)| *known == d) {
        return info;
    }
    let info: &'static ResourceInfo = Box::leak(Box::new(ResourceInfo {
        group: leak(&d.group),
        version: leak(&d.version),
        kind: leak(&d.kind),
        plural: leak(&d.plural),
        singular: leak(&d.singular),
        short_names: leak_all(&d.short_names),
        namespaced: d.namespaced,
        subresources: Box::leak(d.subresources.clone().into_boxed_slice()),
        categories: leak_all(&d.categories),
        round_trip: as_is,
        schema: any_object,
        custom: Some(Box::leak(Box::new(CustomInfo {
            crd: d.custom.crd.clone(),
            list_kind: d.custom.list_kind.clone(),
            schema: d.custom.schema.clone(),
            columns: d.custom.columns.clone(),
            scale: d.custom.scale.clone(),
            served: d.custom.served,
            storage: d.custom.storage,
            terminating: d.custom.terminating,
        }))),
    }));
    bucket.push((d, info));
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(columns: Value) -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}, "scale": {
                         "specReplicasPath": ".spec.replicas",
                         "statusReplicasPath": ".status.replicas"}},
                     "additionalPrinterColumns": columns},
                    {"name": "v1beta1", "served": false, "storage": false},
                ],
            },
        })
    }

    #[test]
    fn versions_become_kinds() {
        let kinds = CustomKinds::default();
        kinds.replace(1, &[crd(json!([]))]);
        let w = kinds.lookup("example.com", "v1", "widgets").unwrap();
        assert_eq!(
            (w.kind, w.singular, w.namespaced),
            ("Widget", "widget", true)
        );
        assert_eq!(w.short_names, &["wd"]);
        assert!(w.has(Subresource::Status) && w.has(Subresource::Scale));
        assert_eq!(
            w.custom.unwrap().scale.as_ref().unwrap().spec_replicas,
            "/spec/replicas"
        );
        assert!(kinds.lookup("example.com", "v1beta1", "widgets").is_none());
        assert_eq!(kinds.stored().len(), 1);
        assert!(kinds.by_kind("example.com/v1", "Widget").is_some());
        assert!(std::ptr::eq(
            w,
            kinds.stored_of("widgets.example.com").unwrap()
        ));
    }

    #[test]
    fn unchanged_definitions_are_interned() {
        let kinds = CustomKinds::default();
        kinds.replace(1, &[crd(json!([]))]);
        let a = kinds.lookup("example.com", "v1", "widgets").unwrap();
        kinds.replace(2, &[crd(json!([]))]);
        let b = kinds.lookup("example.com", "v1", "widgets").unwrap();
        assert!(std::ptr::eq(a, b));
        let cols = json!([{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]);
        kinds.replace(3, &[crd(cols)]);
        let c = kinds.lookup("example.com", "v1", "widgets").unwrap();
        assert!(!std::ptr::eq(a, c));
        assert_eq!(c.custom.unwrap().columns.len(), 1);
        kinds.replace(2, &[]);
        assert!(
            kinds.lookup("example.com", "v1", "widgets").is_some(),
            "an older view is ignored"
        );
        kinds.replace(4, &[]);
        assert!(kinds.lookup("example.com", "v1", "widgets").is_none());
    }
}
