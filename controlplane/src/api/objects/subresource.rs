//! The `scale` (autoscaling/v1 Scale) and `binding` subresources.

use serde_json::{json, Value};

use super::update::By;
use super::{Objects, WriteOptions, Written};
use crate::api::error::ApiError;
use crate::api::meta;
use crate::api::patch::{self, PatchType};
use crate::api::registry::{ResourceInfo, Subresource};
use crate::api::selector::string_map;

/// The label selector of a workload as a selector string (`a=b,c=d`).
pub(super) fn selector_string(info: &ResourceInfo, obj: &Value) -> String {
    let sel = obj.pointer("/spec/selector");
    let mut parts: Vec<String> = if info.builtin_kind() == "ReplicationController" {
        string_map(sel)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    } else {
        string_map(sel.and_then(|s| s.get("matchLabels")))
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    };
    for e in sel
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match e.get("operator").and_then(Value::as_str) {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("DoesNotExist") => format!("!{key}"),
            _ => key.to_string(),
        });
    }
    parts.join(",")
}

/// Where a kind keeps what its Scale shows.
struct ReplicaPaths<'a> {
    spec_replicas: &'a str,
    status_replicas: &'a str,
}

fn replica_paths(info: &ResourceInfo) -> ReplicaPaths<'_> {
    match info.custom.and_then(|c| c.scale.as_ref()) {
        Some(s) => ReplicaPaths {
            spec_replicas: &s.spec_replicas,
            status_replicas: &s.status_replicas,
        },
        None => ReplicaPaths {
            spec_replicas: "/spec/replicas",
            status_replicas: "/status/replicas",
        },
    }
}

/// The Scale view of a workload.
pub fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
    let paths = replica_paths(info);
    let selector = match info.custom {
        // A custom kind names where its selector (a string) is, if it has one.
        Some(c) => c
            .scale
            .as_ref()
            .and_then(|s| s.label_selector.as_deref())
            .and_then(|p| obj.pointer(p))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        None => selector_string(info, obj),
    };
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut meta = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(f) {
            meta[f] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": obj.pointer(paths.spec_replicas).cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer(paths.status_replicas).cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

fn replicas_of(scale: &Value) -> Result<i64, ApiError> {
    match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("Scale spec.replicas must be an integer")),
    }
}

impl Objects {
    pub async fn get_scale(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        Ok(scale_of(info, &self.get(info, ns, name).await?))
    }

    /// Update `spec.replicas` from a Scale body (PUT), or from a patch of the Scale view.
    pub async fn update_scale(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        body: ScaleChange<'_>,
        opts: WriteOptions,
    ) -> Result<Value, ApiError> {
        let written: Written = self
            .guaranteed_update(
                info,
                ns,
                name,
                opts,
                By::Client(Some(Subresource::Scale)),
                |cur| {
                    let scale = match &body {
                        ScaleChange::Replace(s) => (*s).clone(),
                        ScaleChange::Patch(ty, p) => {
                            let mut s = scale_of(info, cur);
                            patch::apply(*ty, &mut s, p).map_err(ApiError::bad_request)?;
                            s
                        }
                    };
                    let replicas = replicas_of(&scale)?;
                    let precondition =
                        meta::resource_version(&scale).map_err(ApiError::bad_request)?;
                    let mut new = cur.clone();
                    set_at(&mut new, replica_paths(info).spec_replicas, json!(replicas));
                    Ok((new, precondition, Vec::new()))
                },
            )
            .await?;
        Ok(scale_of(info, &written.object))
    }

    /// `pods/binding`: assign the pod to `target.name`.
    pub async fn bind(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        binding: &Value,
    ) -> Result<(), ApiError> {
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    info,
                    name,
                    &[crate::api::error::FieldError::required("target.name")],
                )
            })?
            .to_string();
        self.guaranteed_update(info, ns, name, WriteOptions::default(), By::Server, |cur| {
            if let Some(n) = cur
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("pod {name} is already assigned to node \"{n}\""),
                ));
            }
            if meta::is_deleting(cur) {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            let mut new = cur.clone();
            new["spec"]["nodeName"] = json!(node);
            let conds = new["status"]
                .as_object_mut()
                .map(|s| s.entry("conditions").or_insert(json!([])));
            if let Some(Value::Array(conds)) = conds {
                conds.retain(|c| c.get("type") != Some(&json!("PodScheduled")));
                conds.push(json!({"type": "PodScheduled", "status": "True",
                                  "lastTransitionTime": meta::now()}));
            }
            Ok((new, None, Vec::new()))
        })
        .await
        .map(|_| ())
    }
}

/// Set the value at JSON pointer `ptr`, making the objects on the way.
fn set_at(v: &mut Value, ptr: &str, value: Value) {
    let mut cur = v;
    let segs: Vec<String> = ptr
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, seg) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let map = cur.as_object_mut().expect("made an object");
        if i + 1 == segs.len() {
            map.insert(seg.clone(), value);
            return;
        }
        cur = map.entry(seg.clone()).or_insert_with(|| json!({}));
    }
}

/// The body of a scale write.
#[derive(Debug)]
pub enum ScaleChange<'a> {
    Replace(&'a Value),
    Patch(PatchType, &'a Value),
}
