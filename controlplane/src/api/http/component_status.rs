//! `componentstatuses` (`kubectl get cs`, deprecated in Kubernetes but still served): the
//! health of the control plane's parts, computed on each read, never stored. The scheduler
//! and the controllers run on the store's leader, so they are healthy while there is one;
//! each store replica (`store-<id>`) is healthy while it is a voter or learner of a store
//! that has a leader. Reads only: anything else is 405.

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use super::response::{self, Format};
use crate::api::error::ApiError;
use crate::api::objects::Objects;
use crate::api::registry::ResourceInfo;
use crate::server::status::{status, Status};

/// One component: healthy or not, with a message or an error.
fn component(name: &str, healthy: bool, message: &str) -> Value {
    let (message, error) = if healthy {
        (message, "")
    } else {
        ("", message)
    };
    let mut cond = json!({"type": "Healthy", "status": if healthy { "True" } else { "False" }});
    if !message.is_empty() {
        cond["message"] = json!(message);
    }
    if !error.is_empty() {
        cond["error"] = json!(error);
    }
    json!({
        "apiVersion": "v1",
        "kind": "ComponentStatus",
        "metadata": {"name": name},
        "conditions": [cond],
    })
}

/// The components as `s` shows them.
pub fn components(s: &Status) -> Vec<Value> {
    let leader = s.leader;
    let on_leader = match leader {
        Some(id) => format!("ok (on the store's leader, replica {id})"),
        None => "the store has no leader".into(),
    };
    let mut out = vec![
        component("controller-manager", leader.is_some(), &on_leader),
        component("scheduler", leader.is_some(), &on_leader),
    ];
    for r in &s.replicas {
        let msg = if leader.is_some() {
            format!("ok ({} at {})", r.role, r.address)
        } else {
            "the store has no leader".into()
        };
        out.push(component(
            &format!("store-{}", r.id),
            leader.is_some(),
            &msg,
        ));
    }
    out
}

/// `GET componentstatuses[/name]`.
pub async fn serve(
    objects: &Objects,
    info: &ResourceInfo,
    method: &Method,
    name: Option<&str>,
    format: Format,
) -> Result<Response, ApiError> {
    if *method != Method::GET {
        return Err(ApiError::method_not_allowed(
            "componentstatuses are computed: only get and list",
        ));
    }
    let items = components(&status(objects).await?);
    match name {
        None => Ok(response::list(info, format, items, json!({}))),
        Some(n) => match items.into_iter().find(|c| c["metadata"]["name"] == n) {
            Some(c) => Ok(response::object(info, format, 200, &c, &[])),
            None => Err(ApiError::new(
                404,
                "NotFound",
                format!("componentstatuses \"{n}\" not found"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::status::Replica;

    #[test]
    fn parts_are_healthy_while_the_store_has_a_leader() {
        let replica = |id, role: &str| Replica {
            id,
            address: format!("10.0.0.{id}:6444"),
            role: role.into(),
            last_applied: Some(7),
        };
        let mut s = Status {
            replica: 1,
            leader: Some(1),
            replicas: vec![replica(1, "leader"), replica(2, "follower")],
            nodes: vec![],
        };
        let got = components(&s);
        let names: Vec<&str> = got
            .iter()
            .map(|c| c["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["controller-manager", "scheduler", "store-1", "store-2"]
        );
        assert!(got.iter().all(|c| c["conditions"][0]["status"] == "True"));
        s.leader = None;
        let down = components(&s);
        assert_eq!(down[1]["conditions"][0]["status"], "False");
        assert_eq!(down[1]["conditions"][0]["error"], "the store has no leader");
    }
}
