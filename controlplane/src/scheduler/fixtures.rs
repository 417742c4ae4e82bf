//! Builders for nodes and pods: unit tests and the bench describe clusters with these.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, Node, NodeAffinity, NodeCondition, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodSpec,
    PreferredSchedulingTerm, ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

fn resources(cpu: &str, memory: &str, pods: Option<i64>) -> BTreeMap<String, Quantity> {
    let mut m = BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.to_string())),
        ("memory".to_string(), Quantity(memory.to_string())),
    ]);
    if let Some(p) = pods {
        m.insert("pods".to_string(), Quantity(p.to_string()));
    }
    m
}

/// A Ready node with this allocatable CPU, memory and pod count.
pub fn node(name: &str, cpu: &str, memory: &str, pods: i64) -> Node {
    let alloc = resources(cpu, memory, Some(pods));
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                name.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(alloc.clone()),
            allocatable: Some(alloc),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
    }
}

pub fn with_label(mut n: Node, key: &str, value: &str) -> Node {
    n.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
    n
}

pub fn with_taint(mut n: Node, key: &str, value: &str, effect: &str) -> Node {
    let spec = n.spec.get_or_insert_with(NodeSpec::default);
    spec.taints.get_or_insert_with(Vec::new).push(Taint {
        key: key.into(),
        value: Some(value.into()),
        effect: effect.into(),
        time_added: None,
    });
    n
}

pub fn cordoned(mut n: Node) -> Node {
    n.spec.get_or_insert_with(NodeSpec::default).unschedulable = Some(true);
    n
}

pub fn not_ready(mut n: Node) -> Node {
    if let Some(c) = n.status.as_mut().and_then(|s| s.conditions.as_mut()) {
        c.iter_mut().for_each(|c| c.status = "False".into());
    }
    n
}

/// A pending pod (uid `uid-<name>`) with one container requesting `cpu` and `memory`
/// (an empty string leaves that request unset).
pub fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    let mut requests = BTreeMap::new();
    for (k, v) in [("cpu", cpu), ("memory", memory)] {
        if !v.is_empty() {
            requests.insert(k.to_string(), Quantity(v.to_string()));
        }
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(requests),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn spec(p: &mut Pod) -> &mut PodSpec {
    p.spec.get_or_insert_with(PodSpec::default)
}

/// Controlled by the object with this uid (a ReplicaSet, say).
pub fn owned_by(mut p: Pod, owner_uid: &str) -> Pod {
    p.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: format!("rs-{owner_uid}"),
        uid: owner_uid.into(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    p
}

pub fn bound_to(mut p: Pod, node: &str) -> Pod {
    spec(&mut p).node_name = Some(node.into());
    p
}

pub fn with_node_selector(mut p: Pod, key: &str, value: &str) -> Pod {
    spec(&mut p)
        .node_selector
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
    p
}

pub fn with_toleration(mut p: Pod, key: &str, op: &str, value: &str, effect: &str) -> Pod {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    spec(&mut p)
        .tolerations
        .get_or_insert_with(Vec::new)
        .push(Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            toleration_seconds: None,
        });
    p
}

pub fn with_host_port(mut p: Pod, port: i32, protocol: &str) -> Pod {
    let c = &mut spec(&mut p).containers[0];
    c.ports.get_or_insert_with(Vec::new).push(ContainerPort {
        container_port: port,
        host_port: Some(port),
        protocol: Some(protocol.into()),
        ..ContainerPort::default()
    });
    p
}

/// A `matchExpressions` requirement.
pub fn requirement(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    }
}

fn node_affinity(p: &mut Pod) -> &mut NodeAffinity {
    spec(p)
        .affinity
        .get_or_insert_with(Affinity::default)
        .node_affinity
        .get_or_insert_with(NodeAffinity::default)
}

/// Adds a required term (terms are ORed; the requirements of one term are ANDed).
pub fn with_required_term(
    mut p: Pod,
    exprs: Vec<NodeSelectorRequirement>,
    fields: Vec<NodeSelectorRequirement>,
) -> Pod {
    let req = node_affinity(&mut p)
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    req.node_selector_terms.push(NodeSelectorTerm {
        match_expressions: Some(exprs),
        match_fields: Some(fields),
    });
    p
}

pub fn with_preferred_term(mut p: Pod, weight: i32, exprs: Vec<NodeSelectorRequirement>) -> Pod {
    node_affinity(&mut p)
        .preferred_during_scheduling_ignored_during_execution
        .get_or_insert_with(Vec::new)
        .push(PreferredSchedulingTerm {
            weight,
            preference: NodeSelectorTerm {
                match_expressions: Some(exprs),
                match_fields: None,
            },
        });
    p
}
