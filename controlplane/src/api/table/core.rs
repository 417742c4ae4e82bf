//! Table columns of pods, nodes, namespaces, config maps, secrets, events, service accounts
//! and leases.

use serde_json::{json, Value};

use super::{age, arr, i, name, or_none, s, since, Printer};

fn obj_len(o: &Value, ptr: &str) -> usize {
    o.pointer(ptr)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// The STATUS column of a pod, as kubectl computes it.
fn pod_status(o: &Value) -> String {
    let mut reason = s(o, "/status/reason").to_string();
    if reason.is_empty() {
        reason = s(o, "/status/phase").to_string();
    }
    for cs in arr(o, "/status/containerStatuses") {
        let waiting = s(cs, "/state/waiting/reason");
        let term = s(cs, "/state/terminated/reason");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if !term.is_empty() {
            reason = term.to_string();
        }
    }
    if super::super::meta::is_deleting(o) {
        reason = if s(o, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    if reason.is_empty() {
        "Unknown".into()
    } else {
        reason
    }
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let total = arr(o, "/spec/containers").len();
    let statuses = arr(o, "/status/containerStatuses");
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready") == Some(&json!(true)))
        .count();
    let restarts: i64 = statuses.iter().map(|c| i(c, "/restartCount")).sum();
    let gates = arr(o, "/spec/readinessGates").len();
    vec![
        json!(name(o)),
        json!(format!("{ready}/{total}")),
        json!(pod_status(o)),
        json!(restarts),
        json!(age(o)),
        or_none(s(o, "/status/podIP")),
        or_none(s(o, "/spec/nodeName")),
        or_none(s(o, "/status/nominatedNodeName")),
        if gates == 0 {
            json!("<none>")
        } else {
            json!(format!("0/{gates}"))
        },
    ]
}

fn node_cells(o: &Value) -> Vec<Value> {
    let ready = arr(o, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Ready")
        .map(|c| {
            if s(c, "/status") == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .unwrap_or("Unknown");
    let mut status = ready.to_string();
    if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<String> = crate::api::selector::labels(o)
        .keys()
        .filter_map(|k| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .collect();
    let addr = |ty: &str| {
        arr(o, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == ty)
            .map(|a| s(a, "/address").to_string())
            .unwrap_or_default()
    };
    vec![
        json!(name(o)),
        json!(status),
        or_none(&roles.join(",")),
        json!(age(o)),
        json!(s(o, "/status/nodeInfo/kubeletVersion")),
        or_none(&addr("InternalIP")),
        or_none(&addr("ExternalIP")),
        json!(s(o, "/status/nodeInfo/osImage")),
        json!(s(o, "/status/nodeInfo/kernelVersion")),
        json!(s(o, "/status/nodeInfo/containerRuntimeVersion")),
    ]
}

fn event_cells(o: &Value) -> Vec<Value> {
    let last = if !s(o, "/lastTimestamp").is_empty() {
        since(o, "/lastTimestamp")
    } else if !s(o, "/eventTime").is_empty() {
        since(o, "/eventTime")
    } else {
        age(o)
    };
    let object = format!(
        "{}/{}",
        s(o, "/involvedObject/kind").to_lowercase(),
        s(o, "/involvedObject/name")
    );
    vec![
        json!(last),
        json!(s(o, "/type")),
        json!(s(o, "/reason")),
        json!(object),
        json!(s(o, "/message")),
    ]
}

/// `pods: 1/10, requests.cpu: 500m/1` of a quota's resources, those starting `limits.`
/// (the Limit column) or the others (Request), by name.
fn quota_column(o: &Value, limits: bool) -> String {
    let Some(hard) = o.pointer("/status/hard").and_then(Value::as_object) else {
        return String::new();
    };
    let mut names: Vec<&String> = hard
        .keys()
        .filter(|k| k.starts_with("limits.") == limits)
        .collect();
    names.sort();
    names
        .iter()
        .map(|k| {
            let used = o
                .pointer("/status/used")
                .and_then(|u| u.get(k.as_str()))
                .and_then(Value::as_str)
                .unwrap_or("0");
            format!("{k}: {used}/{}", hard[k.as_str()].as_str().unwrap_or(""))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) const PRINTERS: &[(&str, Printer)] = &[
    (
        "ResourceQuota",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Age", "string", 0),
                ("Request", "string", 0),
                ("Limit", "string", 0),
            ],
            cells: |o| {
                vec![
                    json!(name(o)),
                    json!(age(o)),
                    json!(quota_column(o, false)),
                    json!(quota_column(o, true)),
                ]
            },
        },
    ),
    (
        "LimitRange",
        Printer {
            columns: &[("Name", "string", 0), ("Created At", "date", 0)],
            cells: |o| vec![json!(name(o)), json!(s(o, "/metadata/creationTimestamp"))],
        },
    ),
    (
        "Pod",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Ready", "string", 0),
                ("Status", "string", 0),
                ("Restarts", "string", 0),
                ("Age", "string", 0),
                ("IP", "string", 1),
                ("Node", "string", 1),
                ("Nominated Node", "string", 1),
                ("Readiness Gates", "string", 1),
            ],
            cells: pod_cells,
        },
    ),
    (
        "Node",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Status", "string", 0),
                ("Roles", "string", 0),
                ("Age", "string", 0),
                ("Version", "string", 0),
                ("Internal-IP", "string", 1),
                ("External-IP", "string", 1),
                ("OS-Image", "string", 1),
                ("Kernel-Version", "string", 1),
                ("Container-Runtime", "string", 1),
            ],
            cells: node_cells,
        },
    ),
    (
        "Namespace",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Status", "string", 0),
                ("Age", "string", 0),
            ],
            cells: |o| vec![json!(name(o)), json!(s(o, "/status/phase")), json!(age(o))],
        },
    ),
    (
        "ConfigMap",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Data", "integer", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                let n = obj_len(o, "/data") + obj_len(o, "/binaryData");
                vec![json!(name(o)), json!(n), json!(age(o))]
            },
        },
    ),
    (
        "Secret",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Type", "string", 0),
                ("Data", "integer", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                vec![
                    json!(name(o)),
                    json!(s(o, "/type")),
                    json!(obj_len(o, "/data")),
                    json!(age(o)),
                ]
            },
        },
    ),
    (
        "Event",
        Printer {
            columns: &[
                ("Last Seen", "string", 0),
                ("Type", "string", 0),
                ("Reason", "string", 0),
                ("Object", "string", 0),
                ("Message", "string", 0),
            ],
            cells: event_cells,
        },
    ),
    (
        "ServiceAccount",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Secrets", "integer", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                vec![
                    json!(name(o)),
                    json!(arr(o, "/secrets").len()),
                    json!(age(o)),
                ]
            },
        },
    ),
    (
        "Lease",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Holder", "string", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                vec![
                    json!(name(o)),
                    json!(s(o, "/spec/holderIdentity")),
                    json!(age(o)),
                ]
            },
        },
    ),
];
