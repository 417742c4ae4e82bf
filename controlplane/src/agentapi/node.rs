//! Node registration: create or update the Node an agent reports (labels, annotations and
//! status merged), then wait for node IPAM to give it a pod CIDR.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use tokio::time::Instant;

use crate::api::client::{Event, Selectors};
use crate::api::{ApiClient, ApiError};

const CONFLICT_RETRIES: usize = 8;

/// Run `op` again while it fails with a resourceVersion conflict (a concurrent writer).
pub async fn retry_conflicts<T, F, Fut>(mut op: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Err(e) if e.code == 409 && e.reason == "Conflict" && tries < CONFLICT_RETRIES => {
                tries += 1;
            }
            r => return r,
        }
    }
}

/// `conds` with each of `new` replacing the condition of its type (or appended).
pub(super) fn merge_conditions(conds: &mut Vec<NodeCondition>, new: Vec<NodeCondition>) {
    for c in new {
        match conds.iter_mut().find(|o| o.type_ == c.type_) {
            Some(o) => *o = c,
            None => conds.push(c),
        }
    }
}

/// The stored status with what the agent reports laid over it.
fn merge_status(old: Option<NodeStatus>, new: NodeStatus) -> NodeStatus {
    let mut s = old.unwrap_or_default();
    macro_rules! take {
        ($($f:ident),*) => { $( if new.$f.is_some() { s.$f = new.$f; } )* };
    }
    take!(
        capacity,
        allocatable,
        addresses,
        daemon_endpoints,
        node_info,
        images,
        volumes_attached,
        volumes_in_use,
        config,
        features,
        runtime_handlers
    );
    let mut conds = s.conditions.take().unwrap_or_default();
    merge_conditions(&mut conds, new.conditions.unwrap_or_default());
    s.conditions = (!conds.is_empty()).then_some(conds);
    s
}

/// Create or update `node`; then wait up to `cidr_wait` for the control plane to give it
/// a pod CIDR. Returns the node as stored.
pub async fn register(
    client: &ApiClient,
    mut node: Node,
    cidr_wait: Duration,
) -> Result<Node, ApiError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let status = node.status.take().unwrap_or_default();
    node.metadata.resource_version = None;
    let stored = match client.create(None, &node).await {
        Ok(n) => n,
        Err(e) if e.reason == "AlreadyExists" => {
            let (labels, annotations) = (
                node.metadata.labels.clone(),
                node.metadata.annotations.clone(),
            );
            retry_conflicts(|| async {
                let mut cur: Node = client.get(None, &name).await?;
                let before = cur.metadata.clone();
                for (from, to) in [
                    (&labels, &mut cur.metadata.labels),
                    (&annotations, &mut cur.metadata.annotations),
                ] {
                    if let Some(from) = from {
                        to.get_or_insert_with(Default::default)
                            .extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                if cur.metadata == before {
                    return Ok(cur);
                }
                client.update(&cur).await
            })
            .await?
        }
        Err(e) => return Err(e),
    };
    let mut stored = Some(stored);
    let name = name.as_str();
    let node = retry_conflicts(|| {
        let first = stored.take();
        let status = status.clone();
        async move {
            let mut cur = match first {
                Some(n) => n,
                None => client.get(None, name).await?,
            };
            cur.status = Some(merge_status(cur.status.take(), status));
            client.update_status(&cur).await
        }
    })
    .await?;
    log::info!("agent API: node {name} registered");
    wait_for_cidr(client, node, cidr_wait).await
}

fn has_cidr(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some()
}

/// `node` once node IPAM has set `spec.podCIDR`, or as it is when `wait` runs out.
async fn wait_for_cidr(client: &ApiClient, node: Node, wait: Duration) -> Result<Node, ApiError> {
    if has_cidr(&node) || wait.is_zero() {
        return Ok(node);
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    let sel = Selectors {
        fields: format!("metadata.name={name}"),
        ..Default::default()
    };
    let deadline = Instant::now() + wait;
    let mut w = client.watch::<Node>(None, &sel, None).await?;
    let mut latest = node;
    loop {
        let ev = tokio::time::timeout_at(deadline, w.next()).await;
        match ev {
            Ok(Some(Ok(Event::Added(n) | Event::Modified(n)))) => {
                if has_cidr(&n) {
                    return Ok(n);
                }
                latest = n;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) | Err(_) => {
                log::warn!("agent API: node {name} has no pod CIDR after {wait:?}");
                return Ok(latest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(t: &str, s: &str) -> NodeCondition {
        NodeCondition {
            type_: t.into(),
            status: s.into(),
            ..Default::default()
        }
    }

    #[test]
    fn reported_status_overlays_the_stored_one() {
        let old = NodeStatus {
            conditions: Some(vec![
                cond("Ready", "Unknown"),
                cond("MemoryPressure", "False"),
            ]),
            capacity: Some([("cpu".to_string(), Default::default())].into()),
            ..Default::default()
        };
        let new = NodeStatus {
            conditions: Some(vec![cond("Ready", "True")]),
            ..Default::default()
        };
        let s = merge_status(Some(old), new);
        let conds = s.conditions.unwrap();
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0].status, "True");
        assert!(
            s.capacity.is_some(),
            "fields the agent did not send are kept"
        );
    }
}
