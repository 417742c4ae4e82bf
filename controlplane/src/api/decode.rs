//! Request bodies: JSON or YAML, decoded as the kind's k8s-openapi type (which rejects wrong
//! shapes and drops unknown fields); unknown fields are reported per `fieldValidation`.

use serde_json::{Map, Value};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::custom::schema;
use super::error::ApiError;
use super::registry::ResourceInfo;

/// The `fieldValidation` query parameter. Kubernetes' server default is `Warn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        Ok(match s {
            None | Some("") | Some("Warn") => Self::Warn,
            Some("Ignore") => Self::Ignore,
            Some("Strict") => Self::Strict,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation parameter unsupported: {other}"
                )))
            }
        })
    }
}

/// Parse a body by its `Content-Type` (JSON unless it says YAML).
pub fn parse_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let base = content_type.split(';').next().unwrap_or("").trim();
    let parsed = match base {
        "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "application/apply-patch+yaml" => {
            serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
        }
        ""
        | "application/json"
        | "application/json-patch+json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "*/*" => serde_json::from_slice::<Value>(body).map_err(|e| e.to_string()),
        super::protobuf::CONTENT_TYPE => {
            return super::protobuf::decode(body).map_err(|e| {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("{e}; send JSON instead"),
                )
            })
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    parsed.map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

/// Paths present (non-null) in `input` and missing from `typed`: the unknown fields.
fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(tv) => unknown_fields(v, tv, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Decode `input` as an object of `info`: fills a missing `apiVersion`/`kind`, checks them,
/// normalises through the typed form. Returns the object and the warnings to send.
pub fn normalize(
    info: &ResourceInfo,
    mut input: Value,
    mode: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let api_version = info.api_version();
    let Some(map) = input.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: the body is not a JSON object",
            info.kind, info.version, info.kind
        )));
    };
    for (field, want) in [("apiVersion", api_version.as_str()), ("kind", info.kind)] {
        match map.get(field).and_then(Value::as_str) {
            None | Some("") => {
                map.insert(field.into(), Value::String(want.into()));
            }
            Some(got) if got != want => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the data ({got}) does not match the expected {field} ({want})"
                )))
            }
            _ => {}
        }
    }
    let cannot = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {e}",
            kind = info.kind,
            v = info.version
        ))
    };
    let mut unknown = Vec::new();
    let typed = match info.custom {
        Some(custom) => {
            // Metadata is the standard ObjectMeta; the rest is what the schema specifies.
            let mut obj = input;
            let meta = obj.get("metadata").cloned().unwrap_or_else(empty);
            let typed_meta = serde_json::from_value::<ObjectMeta>(meta.clone())
                .and_then(serde_json::to_value)
                .map_err(|e| cannot(&e))?;
            unknown_fields(&meta, &typed_meta, "metadata", &mut unknown);
            obj["metadata"] = typed_meta;
            unknown.extend(schema::prune(&custom.schema, &mut obj));
            obj
        }
        None => {
            quantities_as_strings(info.kind, &mut input);
            let typed = (info.round_trip)(input.clone()).map_err(|e| cannot(&e))?;
            unknown_fields(&input, &typed, "", &mut unknown);
            typed
        }
    };
    if mode == FieldValidation::Ignore {
        unknown.clear();
    }
    let msgs: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    if mode == FieldValidation::Strict && !msgs.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            msgs.join(", "),
            kind = info.kind,
            v = info.version
        )));
    }
    Ok((typed, msgs))
}

/// Where a kind keeps resource quantities: maps of them (`limits: {cpu: 1}`) and single
/// ones (`sizeLimit`). Checked for the kind of the object only: a CRD's `default` is a value.
fn quantity_fields(kind: &str) -> (&'static [&'static str], &'static [&'static str]) {
    const POD: &[&str] = &["limits", "requests", "overhead"];
    match kind {
        "Pod"
        | "PodTemplate"
        | "ReplicationController"
        | "ReplicaSet"
        | "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "CronJob" => (POD, &["sizeLimit"]),
        "PersistentVolumeClaim" => (
            &["limits", "requests", "capacity", "allocatedResources"],
            &[],
        ),
        "PersistentVolume" => (&["capacity"], &[]),
        "Node" => (&["capacity", "allocatable"], &[]),
        "ResourceQuota" => (&["hard", "used"], &[]),
        "LimitRange" => (
            &[
                "max",
                "min",
                "default",
                "defaultRequest",
                "maxLimitRequestRatio",
            ],
            &[],
        ),
        "HorizontalPodAutoscaler" => (&[], &["averageValue", "value"]),
        _ => (&[], &[]),
    }
}

/// Quantities written as JSON numbers (YAML's unquoted `cpu: 1`, `pods: 10`) become the
/// strings the typed decoding wants, as Kubernetes' `Quantity` accepts both.
fn quantities_as_strings(kind: &str, v: &mut Value) {
    let (maps, single) = quantity_fields(kind);
    if maps.is_empty() && single.is_empty() {
        return;
    }
    fn walk(v: &mut Value, maps: &[&str], single: &[&str]) {
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    if single.contains(&k.as_str()) && child.is_number() {
                        *child = Value::String(child.to_string());
                    } else if maps.contains(&k.as_str()) {
                        if let Value::Object(q) = child {
                            for n in q.values_mut().filter(|n| n.is_number()) {
                                *n = Value::String(n.to_string());
                            }
                        }
                    }
                    walk(child, maps, single);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|c| walk(c, maps, single)),
            _ => {}
        }
    }
    walk(v, maps, single);
}

/// An empty JSON object.
pub fn empty() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::by_kind;
    use serde_json::json;

    #[test]
    fn numbers_are_quantities_where_kubernetes_takes_them() {
        let pod = by_kind("v1", "Pod").unwrap();
        let body = json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c",
            "image": "i", "resources": {"limits": {"cpu": 1, "memory": 134217728},
                                        "requests": {"cpu": 0.5}}}]}});
        let (v, _) = normalize(pod, body, FieldValidation::Strict).unwrap();
        let res = &v["spec"]["containers"][0]["resources"];
        assert_eq!(res["limits"], json!({"cpu": "1", "memory": "134217728"}));
        assert_eq!(res["requests"], json!({"cpu": "0.5"}));
        let quota = by_kind("v1", "ResourceQuota").unwrap();
        let (v, _) = normalize(
            quota,
            json!({"spec": {"hard": {"pods": 10}}}),
            FieldValidation::Strict,
        )
        .unwrap();
        assert_eq!(v["spec"]["hard"]["pods"], "10");
        // Elsewhere a number stays a number, and a string field refuses it.
        let err = normalize(
            pod,
            json!({"metadata": {"labels": {"v": 1}}}),
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn unknown_fields_by_mode() {
        let pod = by_kind("v1", "Pod").unwrap();
        let body = json!({"metadata": {"name": "a", "creationTimestamp": null},
            "spec": {"foo": 1, "containers": [{"name": "c", "image": "i", "bar": 2}]}});
        let (v, warnings) = normalize(pod, body.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(
            warnings,
            [
                "unknown field \"spec.containers[0].bar\"",
                "unknown field \"spec.foo\""
            ]
        );
        assert_eq!(v["kind"], "Pod");
        assert!(v["spec"].get("foo").is_none());
        let err = normalize(pod, body, FieldValidation::Strict).unwrap_err();
        assert_eq!((err.code, err.reason), (400, "BadRequest"));
        assert!(err.message.contains("strict decoding error: unknown field"));
        let err = normalize(
            pod,
            json!({"spec": {"containers": 3}}),
            FieldValidation::Warn,
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
    }
}
