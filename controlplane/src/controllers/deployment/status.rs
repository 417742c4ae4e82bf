//! Deployment status from its ReplicaSets: replica counts, observedGeneration, and the
//! Available and Progressing conditions (reasons as Kubernetes writes them, which
//! `kubectl rollout status` reads).

use serde_json::{json, Value};

use crate::api::meta;

fn count(rs: &Value, field: &str) -> i64 {
    rs.pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn condition(old: Option<&Value>, ty: &str, status: &str, reason: &str, message: String) -> Value {
    let prev = old
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|c| c.get("type") == Some(&json!(ty))));
    let since = prev
        .filter(|c| c.get("status") == Some(&json!(status)))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(meta::now()));
    let updated = prev
        .filter(|c| {
            c.get("reason") == Some(&json!(reason)) && c.get("message") == Some(&json!(message))
        })
        .and_then(|c| c.get("lastUpdateTime").cloned())
        .unwrap_or_else(|| json!(meta::now()));
    json!({"type": ty, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": since, "lastUpdateTime": updated})
}

/// The status of `deploy` with ReplicaSets `all` (the new one is `new`).
pub fn compute(deploy: &Value, new: Option<&Value>, all: &[Value], max_unavailable: i64) -> Value {
    let desired = deploy
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let sum = |f: &str| all.iter().map(|rs| count(rs, f)).sum::<i64>();
    let spec_total: i64 = all
        .iter()
        .map(|rs| {
            rs.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        })
        .sum();
    let replicas = sum("replicas");
    let available = sum("availableReplicas");
    let updated = new.map_or(0, |n| count(n, "replicas"));
    let old = deploy.get("status");
    let (a_status, a_reason, a_msg) = if available >= desired - max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let new_name = new.map(meta::name).unwrap_or("");
    let paused = deploy.pointer("/spec/paused") == Some(&json!(true));
    let complete = updated == desired && replicas == desired && available == desired;
    let progressing = if paused {
        condition(
            old,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
        )
    } else if complete && new.is_some() {
        let msg = format!("ReplicaSet \"{new_name}\" has successfully progressed.");
        condition(old, "Progressing", "True", "NewReplicaSetAvailable", msg)
    } else {
        let msg = format!("ReplicaSet \"{new_name}\" is progressing.");
        condition(old, "Progressing", "True", "ReplicaSetUpdated", msg)
    };
    let mut conditions = vec![
        condition(old, "Available", a_status, a_reason, a_msg.into()),
        progressing,
    ];
    // A ReplicaSet that cannot create its pods (the new one's first), as Kubernetes
    // carries it over.
    let failure = new
        .into_iter()
        .chain(all)
        .filter_map(|rs| rs.pointer("/status/conditions").and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("type") == Some(&json!("ReplicaFailure")));
    if let Some(f) = failure {
        let field = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("");
        conditions.push(condition(
            old,
            "ReplicaFailure",
            field("status"),
            field("reason"),
            field("message").to_string(),
        ));
    }
    json!({
        "observedGeneration": deploy.pointer("/metadata/generation").cloned().unwrap_or(json!(0)),
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": sum("readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": (spec_total.max(desired) - available).max(0),
        "conditions": conditions,
    })
}

/// Is the rollout of `deploy` finished according to `status`?
pub fn complete(deploy: &Value, status: &Value) -> bool {
    let desired = deploy
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let n = |f: &str| status.get(f).and_then(Value::as_i64).unwrap_or(0);
    n("updatedReplicas") == desired && n("replicas") == desired && n("availableReplicas") == desired
}

/// Does `new` differ from `old` in anything but timestamps?
pub fn differs(old: Option<&Value>, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                c.remove("lastUpdateTime");
                c.remove("lastTransitionTime");
            }
        }
        v
    };
    old.map(strip) != Some(strip(new))
}
