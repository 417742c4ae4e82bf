//! Table columns of the kinds Skiff stores without acting on them (volumes, RBAC, ingress,
//! network policy, disruption budgets, autoscalers, priority and storage classes), as
//! `kubectl get` shows them against Kubernetes.

use serde_json::{json, Value};

use super::{age, arr, i, name, or_none, s, Printer};

fn strings(o: &Value, ptr: &str) -> Vec<String> {
    arr(o, ptr)
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// An int-or-string field as printed (`<none>` when absent).
fn int_or_string(o: &Value, ptr: &str) -> Value {
    match o.pointer(ptr) {
        Some(Value::Number(n)) => json!(n.to_string()),
        Some(Value::String(v)) => json!(v),
        _ => json!("N/A"),
    }
}

/// `ReadWriteOnce` → `RWO`, as kubectl abbreviates access modes.
fn access_modes(o: &Value, ptr: &str) -> Value {
    let short: Vec<&str> = strings(o, ptr)
        .iter()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            _ => "",
        })
        .filter(|m| !m.is_empty())
        .collect();
    json!(short.join(","))
}

fn binding_role(o: &Value) -> Value {
    json!(format!(
        "{}/{}",
        s(o, "/roleRef/kind"),
        s(o, "/roleRef/name")
    ))
}

fn hpa_targets(o: &Value) -> String {
    let current = arr(o, "/status/currentMetrics");
    let targets: Vec<String> = arr(o, "/spec/metrics")
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let want = m
                .pointer("/resource/target/averageUtilization")
                .and_then(Value::as_i64);
            let have = current
                .get(k)
                .and_then(|c| c.pointer("/resource/current/averageUtilization"))
                .and_then(Value::as_i64);
            match (s(m, "/resource/name"), want) {
                (res, Some(w)) if !res.is_empty() => format!(
                    "{res}: {}/{w}%",
                    have.map_or("<unknown>".to_string(), |h| format!("{h}%"))
                ),
                _ => "<unknown>".to_string(),
            }
        })
        .collect();
    targets.join(", ")
}

fn ingress_hosts(o: &Value) -> String {
    let hosts: Vec<&str> = arr(o, "/spec/rules")
        .iter()
        .map(|r| r.get("host").and_then(Value::as_str).unwrap_or("*"))
        .collect();
    hosts.join(",")
}

/// `<unset>` for an empty field, as kubectl prints an unset class.
fn unset(v: &str) -> Value {
    json!(if v.is_empty() { "<unset>" } else { v })
}

pub const PRINTERS: &[(&str, Printer)] = &[
    (
        "PersistentVolumeClaim",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Status", "string", 0),
                ("Volume", "string", 0),
                ("Capacity", "string", 0),
                ("Access Modes", "string", 0),
                ("StorageClass", "string", 0),
                ("VolumeAttributesClass", "string", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                vec![
                    json!(name(o)),
                    json!(match s(o, "/status/phase") {
                        "" => "Pending",
                        p => p,
                    }),
                    json!(s(o, "/spec/volumeName")),
                    json!(s(o, "/status/capacity/storage")),
                    access_modes(o, "/status/accessModes"),
                    or_none(s(o, "/spec/storageClassName")),
                    unset(s(o, "/spec/volumeAttributesClassName")),
                    json!(age(o)),
                ]
            },
        },
    ),
    (
        "PersistentVolume",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Capacity", "string", 0),
                ("Access Modes", "string", 0),
                ("Reclaim Policy", "string", 0),
                ("Status", "string", 0),
                ("Claim", "string", 0),
                ("StorageClass", "string", 0),
                ("VolumeAttributesClass", "string", 0),
                ("Reason", "string", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                let claim = match (
                    s(o, "/spec/claimRef/namespace"),
                    s(o, "/spec/claimRef/name"),
                ) {
                    (ns, n) if !n.is_empty() => format!("{ns}/{n}"),
                    _ => String::new(),
                };
                vec![
                    json!(name(o)),
                    json!(s(o, "/spec/capacity/storage")),
                    access_modes(o, "/spec/accessModes"),
                    json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
                    json!(s(o, "/status/phase")),
                    json!(claim),
                    json!(s(o, "/spec/storageClassName")),
                    unset(s(o, "/spec/volumeAttributesClassName")),
                    json!(s(o, "/status/reason")),
                    json!(age(o)),
                ]
            },
        },
    ),
    (
        "RoleBinding",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Role", "string", 0),
                ("Age", "string", 0),
            ],
            cells: |o| vec![json!(name(o)), binding_role(o), json!(age(o))],
        },
    ),
    (
        "ClusterRoleBinding",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Role", "string", 0),
                ("Age", "string", 0),
            ],
            cells: |o| vec![json!(name(o)), binding_role(o), json!(age(o))],
        },
    ),
    (
        "Ingress",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Class", "string", 0),
                ("Hosts", "string", 0),
                ("Address", "string", 0),
                ("Ports", "string", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                let tls = !arr(o, "/spec/tls").is_empty();
                vec![
                    json!(name(o)),
                    or_none(s(o, "/spec/ingressClassName")),
                    json!(ingress_hosts(o)),
                    json!(""),
                    json!(if tls { "80, 443" } else { "80" }),
                    json!(age(o)),
                ]
            },
        },
    ),
    (
        "NetworkPolicy",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Pod-Selector", "string", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                let labels = o
                    .pointer("/spec/podSelector/matchLabels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                vec![json!(name(o)), or_none(&labels), json!(age(o))]
            },
        },
    ),
    (
        "PodDisruptionBudget",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Min Available", "string", 0),
                ("Max Unavailable", "string", 0),
                ("Allowed Disruptions", "integer", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                vec![
                    json!(name(o)),
                    int_or_string(o, "/spec/minAvailable"),
                    int_or_string(o, "/spec/maxUnavailable"),
                    json!(i(o, "/status/disruptionsAllowed")),
                    json!(age(o)),
                ]
            },
        },
    ),
    (
        "HorizontalPodAutoscaler",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Reference", "string", 0),
                ("Targets", "string", 0),
                ("MinPods", "string", 0),
                ("MaxPods", "integer", 0),
                ("Replicas", "integer", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                vec![
                    json!(name(o)),
                    json!(format!(
                        "{}/{}",
                        s(o, "/spec/scaleTargetRef/kind"),
                        s(o, "/spec/scaleTargetRef/name")
                    )),
                    or_none(&hpa_targets(o)),
                    json!(o
                        .pointer("/spec/minReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                        .to_string()),
                    json!(i(o, "/spec/maxReplicas")),
                    json!(i(o, "/status/currentReplicas")),
                    json!(age(o)),
                ]
            },
        },
    ),
    (
        "StorageClass",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Provisioner", "string", 0),
                ("ReclaimPolicy", "string", 0),
                ("VolumeBindingMode", "string", 0),
                ("AllowVolumeExpansion", "string", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                let or = |v: &str, d: &'static str| json!(if v.is_empty() { d } else { v });
                let default = s(
                    o,
                    "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
                );
                let shown = match default {
                    "true" => format!("{} (default)", name(o)),
                    _ => name(o).to_string(),
                };
                vec![
                    json!(shown),
                    json!(s(o, "/provisioner")),
                    or(s(o, "/reclaimPolicy"), "Delete"),
                    or(s(o, "/volumeBindingMode"), "Immediate"),
                    json!(o
                        .get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string()),
                    json!(age(o)),
                ]
            },
        },
    ),
    (
        "CustomResourceDefinition",
        Printer {
            columns: &[("Name", "string", 0), ("Created At", "date", 0)],
            cells: |o| vec![json!(name(o)), json!(s(o, "/metadata/creationTimestamp"))],
        },
    ),
    (
        "ComponentStatus",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Status", "string", 0),
                ("Message", "string", 0),
                ("Error", "string", 0),
            ],
            cells: |o| {
                let c = o.pointer("/conditions/0").cloned().unwrap_or_default();
                let healthy = c.get("status").and_then(Value::as_str) == Some("True");
                vec![
                    json!(name(o)),
                    json!(if healthy { "Healthy" } else { "Unhealthy" }),
                    json!(s(&c, "/message")),
                    json!(s(&c, "/error")),
                ]
            },
        },
    ),
    (
        "PriorityClass",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Value", "integer", 0),
                ("Global-Default", "boolean", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                vec![
                    json!(name(o)),
                    json!(i(o, "/value")),
                    json!(o
                        .get("globalDefault")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)),
                    json!(age(o)),
                ]
            },
        },
    ),
];
