//! Update validation: fields that may not change once written (pod specs except images and a
//! few more, workload selectors, a service's cluster IP, immutable config maps and secrets).
//! Table-driven like creates: add a function to [`UPDATE_VALIDATORS`].

use serde_json::Value;

use crate::api::error::FieldError;

/// A kind's update check: errors for changes from `old` to `new`.
pub type UpdateValidator = fn(&Value, &Value) -> Vec<FieldError>;

pub const UPDATE_VALIDATORS: &[(&str, UpdateValidator)] = &[
    ("Pod", pod),
    ("Service", service),
    ("Deployment", selector_immutable),
    ("ReplicaSet", selector_immutable),
    ("DaemonSet", selector_immutable),
    ("StatefulSet", stateful_set),
    ("Job", job),
    ("ConfigMap", immutable_data),
    ("Secret", immutable_data),
    (
        "CustomResourceDefinition",
        crate::api::custom::definition::validate_update,
    ),
];

fn immutable(field: &str) -> FieldError {
    FieldError {
        reason: "FieldValueInvalid",
        field: field.into(),
        message: "field is immutable".into(),
    }
}

/// Errors for every pointer in `ptrs` whose value changed.
fn unchanged(old: &Value, new: &Value, ptrs: &[&str]) -> Vec<FieldError> {
    ptrs.iter()
        .filter(|p| old.pointer(p) != new.pointer(p))
        .map(|p| immutable(&p.trim_start_matches('/').replace('/', ".")))
        .collect()
}

const POD_MUTABLE: &str = "pod updates may not change fields other than \
    `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
    `spec.tolerations` (only additions to existing tolerations),\
    `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A pod spec with the mutable fields copied from `from`.
fn masked(spec: &Value, from: &Value) -> Value {
    let mut s = spec.clone();
    for list in ["containers", "initContainers"] {
        let images: Vec<Value> = from
            .get(list)
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(|c| c["image"].clone()).collect())
            .unwrap_or_default();
        if let Some(Value::Array(cs)) = s.get_mut(list) {
            for (c, image) in cs.iter_mut().zip(images) {
                c["image"] = image;
            }
        }
    }
    for field in [
        "activeDeadlineSeconds",
        "tolerations",
        "schedulingGates",
        "ephemeralContainers",
    ] {
        if let Some(m) = s.as_object_mut() {
            match from.get(field) {
                Some(v) => m.insert(field.into(), v.clone()),
                None => m.remove(field),
            };
        }
    }
    s
}

pub fn pod(old: &Value, new: &Value) -> Vec<FieldError> {
    let (o, n) = (&old["spec"], &new["spec"]);
    if masked(n, o) != *o {
        return vec![FieldError::forbidden("spec", POD_MUTABLE)];
    }
    // Ephemeral containers are only ever added.
    let list = |spec: &Value| {
        spec.get("ephemeralContainers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (was, now) = (list(o), list(n));
    if now.len() < was.len() || now[..was.len()] != was[..] {
        return vec![FieldError::forbidden(
            "spec.ephemeralContainers",
            "existing ephemeral containers may not be changed or removed",
        )];
    }
    Vec::new()
}

pub fn service(old: &Value, new: &Value) -> Vec<FieldError> {
    let was = old
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    let now = new
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    let external = new.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
    if !was.is_empty() && was != now && !external {
        return vec![immutable("spec.clusterIP")];
    }
    Vec::new()
}

pub fn selector_immutable(old: &Value, new: &Value) -> Vec<FieldError> {
    unchanged(old, new, &["/spec/selector"])
}

pub fn stateful_set(old: &Value, new: &Value) -> Vec<FieldError> {
    unchanged(
        old,
        new,
        &[
            "/spec/selector",
            "/spec/serviceName",
            "/spec/volumeClaimTemplates",
            "/spec/podManagementPolicy",
        ],
    )
}

pub fn job(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = unchanged(old, new, &["/spec/selector", "/spec/completionMode"]);
    // `completions` is fixed, but for an elastic Indexed Job: it may change with
    // `parallelism`, the two equal (as upstream).
    let completions = new.pointer("/spec/completions");
    let elastic = new.pointer("/spec/completionMode").and_then(Value::as_str) == Some("Indexed")
        && completions.is_some_and(|c| !c.is_null())
        && completions == new.pointer("/spec/parallelism");
    if !elastic {
        errs.extend(unchanged(old, new, &["/spec/completions"]));
    }
    if old.pointer("/spec/template/spec") != new.pointer("/spec/template/spec") {
        errs.push(immutable("spec.template"));
    }
    errs
}

pub fn immutable_data(old: &Value, new: &Value) -> Vec<FieldError> {
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return Vec::new();
    }
    let mut errs = unchanged(old, new, &["/data", "/binaryData"]);
    if new.get("immutable") != Some(&Value::Bool(true)) {
        errs.push(immutable("immutable"));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_images_may_change_nothing_else() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        let img = json!({"spec": {"containers": [{"name": "a", "image": "y"}]}});
        assert!(pod(&old, &img).is_empty());
        let name = json!({"spec": {"containers": [{"name": "b", "image": "x"}]}});
        assert_eq!(pod(&old, &name)[0].reason, "FieldValueForbidden");
        let svc = |ip: &str| json!({"spec": {"clusterIP": ip}});
        assert!(service(&svc(""), &svc("10.0.0.1")).is_empty());
        assert_eq!(
            service(&svc("10.0.0.1"), &svc("10.0.0.2"))[0].field,
            "spec.clusterIP"
        );
    }

    #[test]
    fn ephemeral_containers_are_only_added() {
        let with = |names: &[&str]| {
            let eph: Vec<Value> = names
                .iter()
                .map(|n| json!({"name": n, "image": "busybox"}))
                .collect();
            json!({"spec": {"containers": [{"name": "a", "image": "x"}],
                            "ephemeralContainers": eph}})
        };
        assert!(pod(&with(&[]), &with(&["d1"])).is_empty());
        assert!(pod(&with(&["d1"]), &with(&["d1", "d2"])).is_empty());
        let removed = pod(&with(&["d1", "d2"]), &with(&["d1"]));
        assert_eq!(removed[0].field, "spec.ephemeralContainers");
        let mut changed = with(&["d1"]);
        changed["spec"]["ephemeralContainers"][0]["image"] = json!("other");
        assert_eq!(
            pod(&with(&["d1"]), &changed)[0].reason,
            "FieldValueForbidden"
        );
    }

    #[test]
    fn job_completions_change_only_elastically() {
        let spec = |mode: &str, c: Value, p: i64| json!({"spec": {"completionMode": mode, "completions": c, "parallelism": p}});
        let old = spec("NonIndexed", json!(3), 1);
        let fields =
            |new: &Value| -> Vec<String> { job(&old, new).into_iter().map(|e| e.field).collect() };
        assert!(fields(&spec("NonIndexed", json!(3), 2)).is_empty());
        assert_eq!(
            fields(&spec("NonIndexed", json!(5), 1)),
            ["spec.completions"]
        );
        assert_eq!(
            fields(&spec("NonIndexed", Value::Null, 1)),
            ["spec.completions"]
        );
        let old = spec("Indexed", json!(3), 3);
        assert!(job(&old, &spec("Indexed", json!(5), 5)).is_empty());
        assert_eq!(job(&old, &spec("Indexed", json!(5), 3)).len(), 1);
    }
}
