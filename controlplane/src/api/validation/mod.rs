//! Validation hook: [`validate`] runs the checks common to every object (metadata) and then
//! the kind's own validator from [`KIND_VALIDATORS`]; [`validate_update`] checks immutable
//! fields from [`update::UPDATE_VALIDATORS`]. To validate more, add a function to a table
//! (or extend one in [`kinds`] / [`update`]); each returns every error it finds.

mod kinds;
mod limits;
pub mod names;
mod resources;
mod rollout;
pub mod update;

use serde_json::Value;

use super::error::FieldError;
use super::registry::ResourceInfo;

/// A kind's validator: every error found in `obj` (already defaulted).
pub type Validator = fn(&Value) -> Vec<FieldError>;

/// Per-kind validators, by kind name.
pub const KIND_VALIDATORS: &[(&str, Validator)] = &[
    ("Pod", kinds::pod),
    ("Service", kinds::service),
    ("ReplicationController", kinds::replication_controller),
    ("ReplicaSet", kinds::selector_workload),
    ("Deployment", kinds::deployment),
    ("StatefulSet", kinds::selector_workload),
    ("DaemonSet", kinds::daemon_set),
    ("Job", kinds::job),
    ("CronJob", kinds::cron_job),
    ("ConfigMap", kinds::config_map),
    ("Secret", kinds::config_map),
    ("ResourceQuota", limits::resource_quota),
    ("LimitRange", limits::limit_range),
    (
        "CustomResourceDefinition",
        crate::api::custom::definition::validate,
    ),
];

/// How a kind's object names are checked.
fn name_rule(kind: &str) -> fn(&str) -> Option<String> {
    match kind {
        "Namespace" => names::dns1123_label,
        "Service" => names::dns1035_label,
        _ => names::dns1123_subdomain,
    }
}

/// Validate `obj` of resource `info` (after defaulting). Empty when valid.
pub fn validate(info: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta(info, obj);
    if let Some((_, f)) = KIND_VALIDATORS
        .iter()
        .find(|(k, _)| *k == info.builtin_kind())
    {
        errs.extend(f(obj));
    }
    if let Some(custom) = info.custom {
        errs.extend(crate::api::custom::schema::validate(&custom.schema, obj));
    }
    errs
}

/// Validate a new object: [`validate`], and what only an update may set (a pod's
/// ephemeral containers are added to a running pod, never created with it).
pub fn validate_create(info: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut errs = validate(info, obj);
    let ephemeral = obj
        .pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if info.builtin_kind() == "Pod" && ephemeral {
        errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    errs
}

/// Validate an update of `old` to `new` (both defaulted): immutable fields.
pub fn validate_update(info: &ResourceInfo, old: &Value, new: &Value) -> Vec<FieldError> {
    update::UPDATE_VALIDATORS
        .iter()
        .find(|(k, _)| *k == info.builtin_kind())
        .map(|(_, f)| f(old, new))
        .unwrap_or_default()
}

fn validate_meta(info: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = obj.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    match name {
        None | Some("") => errs.push(FieldError {
            reason: "FieldValueRequired",
            field: "metadata.name".into(),
            message: "Required value: name or generateName is required".into(),
        }),
        Some(n) => {
            if let Some(e) = name_rule(info.builtin_kind())(n) {
                errs.push(FieldError::invalid("metadata.name", n, e));
            }
        }
    }
    errs.extend(validate_labels(
        meta.and_then(|m| m.get("labels")),
        "metadata.labels",
    ));
    if let Some(a) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        for k in a.keys() {
            if let Some(e) = names::qualified_name(k) {
                errs.push(FieldError::invalid("metadata.annotations", k, e));
            }
        }
    }
    errs
}

/// Label keys and values of a label map at `field`.
pub fn validate_labels(labels: Option<&Value>, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels.and_then(Value::as_object).into_iter().flatten() {
        if let Some(e) = names::qualified_name(k) {
            errs.push(FieldError::invalid(field, k, e));
        }
        let v = v.as_str().unwrap_or("");
        if let Some(e) = names::label_value(v) {
            errs.push(FieldError::invalid(format!("{field}[{k}]"), v, e));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::by_kind;
    use serde_json::json;

    #[test]
    fn pod_errors_have_fields() {
        let pod = by_kind("v1", "Pod").unwrap();
        let errs = validate(
            pod,
            &json!({"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c"}]}}),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["metadata.name", "spec.containers[0].image"]);
    }

    #[test]
    fn host_network_host_ports_match_container_ports() {
        let pod = by_kind("v1", "Pod").unwrap();
        let errs = validate(
            pod,
            &json!({"metadata": {"name": "p"}, "spec": {"hostNetwork": true, "containers": [
                {"name": "a", "image": "i", "ports": [
                    {"containerPort": 9100, "hostPort": 9100},
                    {"containerPort": 80, "hostPort": 8080}]}]}}),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.containers[0].ports[1].hostPort"]);
    }

    #[test]
    fn ephemeral_containers_set_no_ports_or_probes_and_names_stay_unique() {
        let pod = by_kind("v1", "Pod").unwrap();
        let errs = validate(
            pod,
            &json!({"metadata": {"name": "p"}, "spec": {
                "containers": [{"name": "app", "image": "i"}],
                "ephemeralContainers": [
                    {"name": "app", "image": "busybox"},
                    {"name": "dbg", "image": "busybox", "resources": {},
                     "ports": [{"containerPort": 80}], "readinessProbe": {"tcpSocket": {"port": 80}}}]}}),
        );
        let got: Vec<(&str, &str)> = errs.iter().map(|e| (e.field.as_str(), e.reason)).collect();
        assert_eq!(
            got,
            [
                ("spec.ephemeralContainers[0].name", "FieldValueDuplicate"),
                ("spec.ephemeralContainers[1].ports", "FieldValueForbidden"),
                (
                    "spec.ephemeralContainers[1].readinessProbe",
                    "FieldValueForbidden"
                ),
            ]
        );
    }

    #[test]
    fn ephemeral_containers_come_only_through_an_update() {
        let pod = by_kind("v1", "Pod").unwrap();
        let obj = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "image": "i"}],
            "ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}});
        assert!(validate(pod, &obj).is_empty());
        let errs = validate_create(pod, &obj);
        assert_eq!(errs[0].field, "spec.ephemeralContainers");
        assert_eq!(errs[0].message, "Forbidden: cannot be set on create");
        let deploy = by_kind("apps/v1", "Deployment").unwrap();
        let d = json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": obj["spec"]}}});
        let fields: Vec<String> = validate(deploy, &d).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["spec.template.spec.ephemeralContainers"]);
    }

    #[test]
    fn job_deadlines_and_ttls_are_bounded() {
        let job = by_kind("batch/v1", "Job").unwrap();
        let fields = |extra: Value| -> Vec<String> {
            let mut spec = json!({"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                    "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}});
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let obj = json!({"metadata": {"name": "j"}, "spec": spec});
            validate(job, &obj).into_iter().map(|e| e.field).collect()
        };
        let ok = json!({"activeDeadlineSeconds": 60, "ttlSecondsAfterFinished": 0});
        assert!(fields(ok).is_empty());
        let bad = json!({"activeDeadlineSeconds": 0, "ttlSecondsAfterFinished": 4_000_000_000i64});
        assert_eq!(
            fields(bad),
            ["spec.activeDeadlineSeconds", "spec.ttlSecondsAfterFinished"]
        );
        let indexed = json!({"completionMode": "Indexed", "completions": 3});
        assert!(fields(indexed).is_empty());
        assert_eq!(
            fields(json!({"completionMode": "Indexed"})),
            ["spec.completions"]
        );
        assert_eq!(
            fields(json!({"completionMode": "Sparse"})),
            ["spec.completionMode"]
        );
    }

    #[test]
    fn cron_job_schedules_and_time_zones() {
        let cj = by_kind("batch/v1", "CronJob").unwrap();
        let obj = |spec: Value| {
            let mut spec = spec;
            spec["jobTemplate"] = json!({"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
            json!({"metadata": {"name": "cj"}, "spec": spec})
        };
        let fields = |spec: Value| -> Vec<String> {
            validate(cj, &obj(spec))
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert!(fields(json!({"schedule": "*/5 * * * *"})).is_empty());
        assert!(fields(json!({"schedule": "@hourly", "timeZone": "Etc/UTC"})).is_empty());
        let errs = validate(cj, &obj(json!({"schedule": "61 * * * *"})));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.schedule");
        assert!(
            errs[0].message.contains("above maximum"),
            "{}",
            errs[0].message
        );
        assert_eq!(fields(json!({"schedule": "* * *"})), ["spec.schedule"]);
        assert_eq!(fields(json!({})), ["spec.schedule"]);
        assert!(fields(json!({"schedule": "@daily", "timeZone": "Europe/Paris"})).is_empty());
        for bad in ["Mars/Olympus_Mons", "Local", ""] {
            assert_eq!(
                fields(json!({"schedule": "@daily", "timeZone": bad})),
                ["spec.timeZone"],
                "{bad:?}"
            );
        }
        assert_eq!(
            fields(
                json!({"schedule": "@daily", "concurrencyPolicy": "Sometimes",
                          "startingDeadlineSeconds": -1})
            ),
            ["spec.concurrencyPolicy", "spec.startingDeadlineSeconds"]
        );
        let mut long = obj(json!({"schedule": "@daily"}));
        long["metadata"]["name"] = json!("a".repeat(53));
        let errs = validate(cj, &long);
        assert_eq!(
            errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["metadata.name"]
        );
    }
}
