//! A CustomResourceDefinition itself: its defaults (names, conversion, the cleanup
//! finalizer), the checks Kubernetes makes before serving its kinds, and the status the API
//! server writes (accepted names, `Established`, stored versions).

use serde_json::{json, Value};

use crate::api::error::FieldError;
use crate::api::meta;
use crate::api::registry;
use crate::api::validation::names;

/// Held by every CRD until its objects are deleted (see `controllers::crd`).
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

const COLUMN_TYPES: &[&str] = &["integer", "number", "string", "boolean", "date"];

fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The storage version's name.
fn storage_version(crd: &Value) -> Option<&str> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)?
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
}

/// Defaults and server-written status (idempotent; runs on create and update).
pub fn default(crd: &mut Value) {
    let kind = text(crd, "/spec/names/kind").to_string();
    if let Some(names) = crd
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
    {
        if !kind.is_empty() {
            names
                .entry("singular")
                .or_insert_with(|| json!(kind.to_lowercase()));
            names
                .entry("listKind")
                .or_insert_with(|| json!(format!("{kind}List")));
        }
    }
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("conversion")
            .or_insert_with(|| json!({"strategy": "None"}));
    }
    // Added while the CRD lives; once it is deleting only the controller removes it.
    if !meta::is_deleting(crd) {
        let m = meta::meta_mut(crd);
        let finalizers = m.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(list) = finalizers.as_array_mut() {
            if !list.iter().any(|f| f == CLEANUP_FINALIZER) {
                list.push(json!(CLEANUP_FINALIZER));
            }
        }
    }
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(v) = storage_version(crd) {
        if !stored.iter().any(|s| s == v) {
            stored.push(json!(v));
        }
    }
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let since = crd
        .pointer("/status/conditions/0/lastTransitionTime")
        .cloned()
        .unwrap_or_else(|| json!(meta::now()));
    let condition = |ty: &str, reason: &str, message: &str| {
        json!({"type": ty, "status": "True", "reason": reason, "message": message,
               "lastTransitionTime": since})
    };
    crd["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted",
                      "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    });
}

/// Errors of a (defaulted) CRD.
pub fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = text(crd, "/spec/group");
    let plural = text(crd, "/spec/names/plural");
    let kind = text(crd, "/spec/names/kind");
    if group.is_empty() {
        errs.push(FieldError::required("spec.group"));
    } else if !group.contains('.') || names::dns1123_subdomain(group).is_some() {
        errs.push(FieldError::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural"));
    }
    if kind.is_empty() {
        errs.push(FieldError::required("spec.names.kind"));
    }
    for field in ["plural", "singular", "listKind"] {
        let v = text(crd, &format!("/spec/names/{field}"));
        if !v.is_empty() {
            if let Some(e) = names::dns1035_label(&v.to_lowercase()) {
                errs.push(FieldError::invalid(format!("spec.names.{field}"), v, e));
            }
        }
    }
    for (i, s) in crd
        .pointer("/spec/names/shortNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let s = s.as_str().unwrap_or("");
        if let Some(e) = names::dns1035_label(s) {
            errs.push(FieldError::invalid(
                format!("spec.names.shortNames[{i}]"),
                s,
                e,
            ));
        }
    }
    let name = meta::name(crd);
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    // Built-in groups (and the metrics API, served beside them) stay as they are.
    if registry::RESOURCES.iter().any(|r| r.group == group) || group == "metrics.k8s.io" {
        errs.push(FieldError::invalid(
            "spec.group",
            group,
            "is a built-in API group",
        ));
    } else if (group.ends_with(".k8s.io") || group.ends_with(".kubernetes.io"))
        && crd
            .pointer("/metadata/annotations/api-approved.kubernetes.io")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        errs.push(FieldError::required(
            "metadata.annotations[api-approved.kubernetes.io]",
        ));
    }
    let scope = text(crd, "/spec/scope");
    if !matches!(scope, "Namespaced" | "Cluster") {
        errs.push(FieldError::not_supported(
            "spec.scope",
            scope,
            &["Cluster", "Namespaced"],
        ));
    }
    errs.extend(validate_versions(crd));
    let served = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map_or(0, |vs| {
            vs.iter()
                .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
                .count()
        });
    let strategy = text(crd, "/spec/conversion/strategy");
    // Versions differ here only in `apiVersion`: conversion by a webhook is not done.
    if strategy == "Webhook" && served > 1 {
        errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            strategy,
            &["None"],
        ));
    }
    errs
}

fn validate_versions(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required("spec.versions"));
        return errs;
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &format!("{storage} storage versions"),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let name = text(v, "/name");
        if let Some(e) = names::dns1035_label(name) {
            errs.push(FieldError::invalid(format!("{at}.name"), name, e));
        }
        if seen.contains(&name) {
            errs.push(FieldError::duplicate(format!("{at}.name"), name));
        }
        seen.push(name);
        match v.pointer("/schema/openAPIV3Schema") {
            None => errs.push(FieldError::required(format!("{at}.schema.openAPIV3Schema"))),
            Some(s) if text(s, "/type") != "object" => errs.push(FieldError::invalid(
                format!("{at}.schema.openAPIV3Schema.type"),
                text(s, "/type"),
                "must be object at the root",
            )),
            Some(_) => {}
        }
        errs.extend(validate_columns(v, &at));
        errs.extend(validate_scale(v, &at));
    }
    errs
}

fn validate_columns(version: &Value, at: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let cols = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array);
    for (j, c) in cols.into_iter().flatten().enumerate() {
        let at = format!("{at}.additionalPrinterColumns[{j}]");
        let ty = text(c, "/type");
        if !COLUMN_TYPES.contains(&ty) {
            errs.push(FieldError::not_supported(
                format!("{at}.type"),
                ty,
                COLUMN_TYPES,
            ));
        }
        if text(c, "/name").is_empty() {
            errs.push(FieldError::required(format!("{at}.name")));
        }
        // Paths outside the subset `columns` reads are accepted (their cells stay empty).
        if text(c, "/jsonPath").is_empty() {
            errs.push(FieldError::required(format!("{at}.jsonPath")));
        }
    }
    errs
}

fn validate_scale(version: &Value, at: &str) -> Vec<FieldError> {
    let Some(scale) = version.pointer("/subresources/scale") else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    for (field, under) in [
        ("specReplicasPath", &[".spec."][..]),
        ("statusReplicasPath", &[".status."]),
        ("labelSelectorPath", &[".spec.", ".status."]),
    ] {
        let path = text(scale, &format!("/{field}"));
        let optional = field == "labelSelectorPath";
        if path.is_empty() && optional {
            continue;
        }
        if !under.iter().any(|u| path.starts_with(u)) || super::pointer_of(path).is_none() {
            let under: Vec<&str> = under.iter().map(|u| u.trim_end_matches('.')).collect();
            errs.push(FieldError::invalid(
                format!("{at}.subresources.scale.{field}"),
                path,
                format!("should be a json path under {}", under.join(" or ")),
            ));
        }
    }
    errs
}

/// Changes a CRD may not make.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if text(old, "/spec/scope") != text(new, "/spec/scope") {
        errs.push(FieldError::invalid(
            "spec.scope",
            text(new, "/spec/scope"),
            "field is immutable",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com",
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                              "schema": {"openAPIV3Schema": {"type": "object"}}}],
            },
        })
    }

    #[test]
    fn defaults_and_status() {
        let mut c = crd();
        default(&mut c);
        assert_eq!(c["spec"]["names"]["singular"], "crontab");
        assert_eq!(c["spec"]["names"]["listKind"], "CronTabList");
        assert_eq!(c["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(c["status"]["conditions"][1]["type"], "Established");
        let again = {
            let mut d = c.clone();
            default(&mut d);
            d
        };
        assert_eq!(again, c, "defaulting is idempotent");
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
    }

    #[test]
    fn reports_bad_definitions() {
        let mut c = crd();
        c["metadata"]["name"] = json!("tabs.stable.example.com");
        c["spec"]["scope"] = json!("Global");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"][0]["additionalPrinterColumns"] =
            json!([{"name": "X", "type": "text", "jsonPath": ""}]);
        default(&mut c);
        let fields: Vec<String> = validate(&c).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.scope",
                "spec.versions",
                "spec.versions[0].additionalPrinterColumns[0].type",
                "spec.versions[0].additionalPrinterColumns[0].jsonPath"
            ]
        );
        let mut builtin = crd();
        builtin["spec"]["group"] = json!("apiextensions.k8s.io");
        builtin["spec"]["names"]["plural"] = json!("customresourcedefinitions");
        builtin["metadata"]["name"] = json!("customresourcedefinitions.apiextensions.k8s.io");
        assert_eq!(validate(&builtin)[0].field, "spec.group");
        let mut protected = crd();
        protected["spec"]["group"] = json!("gateway.networking.k8s.io");
        protected["metadata"]["name"] = json!("crontabs.gateway.networking.k8s.io");
        let fields: Vec<String> = validate(&protected).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["metadata.annotations[api-approved.kubernetes.io]"]);
        protected["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": "https://github.com/kubernetes/enhancements/pull/1111"});
        assert!(validate(&protected).is_empty());
    }
}
