//! ResourceQuota accounting: what an object counts against a quota (kube's quota
//! evaluators), which pods a scoped quota tracks, and the admission decision. The messages
//! are Kubernetes' own.

use std::collections::BTreeSet;

use serde_json::Value;

use super::resources::{self, Amount, List, Side};

/// Resources for which a quota makes every container name a request or limit.
const EXPLICIT: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Whether a pod counts: not finished (Succeeded or Failed).
pub fn pod_counts(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// The compute resources of requests and limits under their quota names: `requests.<r>`
/// and `limits.<r>`, and the bare `cpu`, `memory`, `ephemeral-storage` for requests.
fn compute(requests: &List, limits: &List) -> List {
    let mut out = List::new();
    for (r, a) in requests {
        out.insert(format!("requests.{r}"), *a);
        if matches!(r.as_str(), "cpu" | "memory" | "ephemeral-storage") {
            out.insert(r.clone(), *a);
        }
    }
    for (r, a) in limits {
        out.insert(format!("limits.{r}"), *a);
    }
    out
}

/// Everything `obj` (a `qualified` resource such as `pods` or `deployments.apps`, of
/// built-in kind `kind`, empty for custom kinds) uses of any quota.
pub fn usage(kind: &str, qualified: &str, obj: &Value) -> List {
    let mut u = List::new();
    if kind == "Pod" && !pod_counts(obj) {
        return u;
    }
    u.insert(format!("count/{qualified}"), Amount::ONE);
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    match kind {
        "Pod" => {
            u.insert("pods".into(), Amount::ONE);
            let c = compute(
                &resources::pod(spec, Side::Requests),
                &resources::pod(spec, Side::Limits),
            );
            resources::add_into(&mut u, &c);
        }
        "Service" => {
            u.insert("services".into(), Amount::ONE);
            let ty = spec
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ports = spec.get("ports").and_then(Value::as_array);
            let node_ports = match ty {
                "NodePort" => ports.map_or(0, Vec::len),
                // Unless node ports are turned off for it, a load balancer has one per port.
                "LoadBalancer"
                    if spec.get("allocateLoadBalancerNodePorts") != Some(&Value::Bool(false)) =>
                {
                    ports.map_or(0, Vec::len)
                }
                "LoadBalancer" => ports.map_or(0, |ps| {
                    ps.iter().filter(|p| p.get("nodePort").is_some()).count()
                }),
                _ => 0,
            };
            u.insert(
                "services.nodeports".into(),
                Amount::count(node_ports as i64),
            );
            u.insert(
                "services.loadbalancers".into(),
                Amount::count(i64::from(ty == "LoadBalancer")),
            );
        }
        "PersistentVolumeClaim" => {
            u.insert("persistentvolumeclaims".into(), Amount::ONE);
            let storage = resources::list(spec.pointer("/resources/requests"))
                .get("storage")
                .copied()
                .unwrap_or_default();
            u.insert("requests.storage".into(), storage);
            // The beta annotation, where set, wins (kube's `GetPersistentVolumeClaimClass`).
            let class = obj
                .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
                .or_else(|| spec.get("storageClassName"))
                .and_then(Value::as_str);
            if let Some(class) = class.filter(|c| !c.is_empty()) {
                let prefix = format!("{class}.storageclass.storage.k8s.io/");
                u.insert(format!("{prefix}requests.storage"), storage);
                u.insert(format!("{prefix}persistentvolumeclaims"), Amount::ONE);
            }
        }
        "ConfigMap" | "Secret" | "ReplicationController" | "ResourceQuota" => {
            u.insert(qualified.to_string(), Amount::ONE);
        }
        _ => {}
    }
    u
}

/// Whether a pod is best-effort: no container names a CPU or memory request or limit.
fn best_effort(spec: &Value) -> bool {
    let empty = Vec::new();
    ["containers", "initContainers"].iter().all(|f| {
        spec.get(*f)
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .all(|c| {
                [Side::Requests, Side::Limits].iter().all(|s| {
                    let l = resources::container(c, *s);
                    !l.contains_key("cpu") && !l.contains_key("memory")
                })
            })
    })
}

fn cross_namespace_affinity(spec: &Value) -> bool {
    let terms = ["podAffinity", "podAntiAffinity"].iter().flat_map(|a| {
        [
            "requiredDuringSchedulingIgnoredDuringExecution",
            "preferredDuringSchedulingIgnoredDuringExecution",
        ]
        .iter()
        .filter_map(move |w| spec.pointer(&format!("/affinity/{a}/{w}")))
        .filter_map(Value::as_array)
        .flatten()
    });
    terms.into_iter().any(|t| {
        let t = t.get("podAffinityTerm").unwrap_or(t);
        t.get("namespaces")
            .and_then(Value::as_array)
            .is_some_and(|n| !n.is_empty())
            || t.get("namespaceSelector").is_some()
    })
}

/// Whether `scope` (with a scope selector's operator and values) holds for `pod`.
fn scope_holds(scope: &str, op: &str, values: &[&str], pod: &Value) -> bool {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let holds = match scope {
        "Terminating" => spec
            .get("activeDeadlineSeconds")
            .is_some_and(|v| !v.is_null()),
        "NotTerminating" => spec.get("activeDeadlineSeconds").is_none_or(Value::is_null),
        "BestEffort" => best_effort(spec),
        "NotBestEffort" => !best_effort(spec),
        "CrossNamespacePodAffinity" => cross_namespace_affinity(spec),
        "PriorityClass" => {
            let class = spec
                .get("priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or("");
            return match op {
                "In" => values.contains(&class),
                "NotIn" => !values.contains(&class),
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                _ => false,
            };
        }
        _ => false,
    };
    match op {
        "DoesNotExist" => !holds,
        _ => holds,
    }
}

/// The strings of a JSON array (none if it is not one).
fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Whether `quota` tracks the object: a quota with scopes tracks only the pods in all of them.
pub fn tracks(quota: &Value, kind: &str, obj: &Value) -> bool {
    let spec = quota.get("spec").unwrap_or(&Value::Null);
    let scopes = strings(spec.get("scopes"));
    let selector: Vec<&Value> = spec
        .pointer("/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if scopes.is_empty() && selector.is_empty() {
        return true;
    }
    if kind != "Pod" {
        return false;
    }
    scopes.iter().all(|s| scope_holds(s, "Exists", &[], obj))
        && selector.iter().all(|e| {
            let s = e.get("scopeName").and_then(Value::as_str).unwrap_or("");
            let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
            scope_holds(s, op, &strings(e.get("values")), obj)
        })
}

/// The names `quota` limits (`spec.hard`).
pub fn hard(quota: &Value) -> List {
    resources::list(quota.pointer("/spec/hard"))
}

/// `usage` restricted to what `quota` limits.
pub fn charged(quota: &Value, usage: &List) -> List {
    let hard = hard(quota);
    usage
        .iter()
        .filter(|(k, _)| hard.contains_key(*k))
        .map(|(k, a)| (k.clone(), *a))
        .collect()
}

/// For a pod under a quota on CPU or memory: every container must name them
/// (`must specify limits.cpu for: app; requests.memory for: app,side`).
pub fn missing_explicit(quota: &Value, pod: &Value) -> Option<String> {
    let hard = hard(quota);
    let required: BTreeSet<&str> = EXPLICIT
        .iter()
        .copied()
        .filter(|r| hard.contains_key(*r))
        .collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    let empty = Vec::new();
    for f in ["containers", "initContainers"] {
        for c in pod
            .pointer(&format!("/spec/{f}"))
            .and_then(Value::as_array)
            .unwrap_or(&empty)
        {
            let has = compute(
                &resources::container(c, Side::Requests),
                &resources::container(c, Side::Limits),
            );
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            for r in required.iter().filter(|r| !has.contains_key(**r)) {
                missing.entry(r).or_default().insert(name.to_string());
            }
        }
    }
    (!missing.is_empty()).then(|| {
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, cs)| {
                format!(
                    "{r} for: {}",
                    cs.iter().cloned().collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        format!("must specify {}", parts.join("; "))
    })
}

/// `used + request` if within `hard`, else the `exceeded quota` message.
pub fn admit(name: &str, hard: &List, used: &List, request: &List) -> Result<List, String> {
    let mut new = used.clone();
    resources::add_into(&mut new, request);
    let over: Vec<&String> = request
        .iter()
        .filter(|(k, a)| a.milli > 0 && new[*k].milli > hard.get(*k).map_or(i64::MAX, |h| h.milli))
        .map(|(k, _)| k)
        .collect();
    if over.is_empty() {
        return Ok(new);
    }
    let mask = |l: &List| -> List {
        over.iter()
            .map(|k| ((*k).clone(), l.get(*k).copied().unwrap_or_default()))
            .collect()
    };
    Err(format!(
        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
        resources::pretty(&mask(request)),
        resources::pretty(&mask(used)),
        resources::pretty(&mask(hard)),
    ))
}

#[cfg(test)]
mod tests;
