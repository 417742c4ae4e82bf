//! Legacy discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`) and
//! `/version`. Aggregated discovery is not served: clients asking for it first get the
//! legacy form (plain `application/json`) and fall back.

use serde_json::{json, Value};

use super::registry::{self, ResourceInfo, Subresource, VERBS};

pub const GIT_VERSION: &str = "v1.32.0-skiff";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS,
            if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// The metrics API (`kubectl top`), served beside the registry's kinds.
const METRICS: (&str, &str) = ("metrics.k8s.io", "v1beta1");

/// Kubernetes' version priority: GA before beta before alpha, higher numbers first, then
/// other names alphabetically.
fn version_rank(v: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    use std::cmp::Reverse;
    let parsed = v.strip_prefix('v').and_then(|rest| {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..end].parse().ok()?;
        let (class, tail) = match &rest[end..] {
            "" => (0, ""),
            t if t.starts_with("beta") => (1, &t[4..]),
            t if t.starts_with("alpha") => (2, &t[5..]),
            _ => return None,
        };
        let minor: u64 = if tail.is_empty() {
            0
        } else {
            tail.parse().ok()?
        };
        Some((class, Reverse(major), Reverse(minor), String::new()))
    });
    parsed.unwrap_or((3, Reverse(0), Reverse(0), v.to_string()))
}

/// Every (group, version) served: built-in, metrics, then custom.
fn all_group_versions(custom: &[&'static ResourceInfo]) -> Vec<(&'static str, &'static str)> {
    let mut out = registry::group_versions();
    out.push(METRICS);
    for r in custom {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

fn group(name: &str, custom: &[&'static ResourceInfo]) -> Option<Value> {
    let mut versions: Vec<&str> = all_group_versions(custom)
        .into_iter()
        .filter(|(g, _)| *g == name)
        .map(|(_, v)| v)
        .collect();
    if custom.iter().any(|r| r.group == name) {
        versions.sort_by_key(|v| version_rank(v));
    }
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first()?.clone();
    Some(json!({"name": name, "versions": versions, "preferredVersion": preferred}))
}

/// `/apis`.
pub fn api_group_list(custom: &[&'static ResourceInfo]) -> Value {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in all_group_versions(custom) {
        if !g.is_empty() && !names.contains(&g) {
            names.push(g);
        }
    }
    let groups: Vec<Value> = names.into_iter().filter_map(|g| group(g, custom)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<g>`.
pub fn api_group(name: &str, custom: &[&'static ResourceInfo]) -> Option<Value> {
    let mut g = group(name, custom)?;
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

fn sub_entry(r: &ResourceInfo, sub: Subresource) -> Value {
    let (kind, group, version, verbs): (&str, &str, &str, &[&str]) = match sub {
        Subresource::Scale => ("Scale", "autoscaling", "v1", &["get", "patch", "update"]),
        Subresource::Binding => ("Binding", "", "v1", &["create"]),
        Subresource::Eviction => ("Eviction", "policy", "v1", &["create"]),
        Subresource::Token => ("TokenRequest", "authentication.k8s.io", "v1", &["create"]),
        Subresource::Finalize => (r.kind, r.group, r.version, &["update"]),
        Subresource::Status | Subresource::EphemeralContainers => {
            (r.kind, r.group, r.version, &["get", "patch", "update"])
        }
    };
    let mut e = json!({
        "name": format!("{}/{}", r.plural, sub.name()),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if group != r.group || version != r.version {
        e["group"] = json!(group);
        e["version"] = json!(version);
    }
    e
}

/// `/api/v1` or `/apis/<g>/<v>`.
pub fn resource_list(
    group: &str,
    version: &str,
    custom: &[&'static ResourceInfo],
) -> Option<Value> {
    if (group, version) == METRICS {
        let r = |name: &str, kind: &str, namespaced: bool| {
            json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                   "verbs": ["get", "list"]})
        };
        return Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": format!("{group}/{version}"),
            "resources": [r("nodes", "NodeMetrics", false), r("pods", "PodMetrics", true)]}));
    }
    let mut resources = Vec::new();
    for r in registry::RESOURCES
        .iter()
        .chain(custom.iter().copied())
        .filter(|r| r.group == group && r.version == version)
    {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        resources.push(e);
        resources.extend(r.subresources.iter().map(|s| sub_entry(r, *s)));
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let core = resource_list("", "v1", &[]).unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods") && names.contains(&"pods/status"));
        assert!(names.contains(&"replicationcontrollers/scale"));
        let groups = api_group_list(&[]);
        assert!(groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "apps"));
        assert!(resource_list("apps", "v2", &[]).is_none());
        let mut ranked = vec!["v1alpha1", "v2", "foo", "v1beta2", "v1", "v1beta1", "v10"];
        ranked.sort_by_key(|v| version_rank(v));
        assert_eq!(
            ranked,
            ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}
