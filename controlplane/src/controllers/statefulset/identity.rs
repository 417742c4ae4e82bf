//! A StatefulSet's pods and claims by ordinal: pod names (`<set>-<n>`), the identity labels,
//! hostname and subdomain, and the PersistentVolumeClaims of `volumeClaimTemplates`
//! (`<claim>-<set>-<n>`) mounted in place of template volumes of the same name.

use serde_json::{json, Map, Value};

use crate::api::meta;
use crate::controllers::replicas::pod_of;

pub const POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX: &str = "apps.kubernetes.io/pod-index";
pub use crate::controllers::history::REVISION_LABEL as REVISION;

/// The ordinal of a pod named `<set>-<n>` (`n` written without sign or leading zeros).
pub fn ordinal(set_name: &str, pod: &Value) -> Option<i64> {
    let n = meta::name(pod).strip_prefix(set_name)?.strip_prefix('-')?;
    let canonical =
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'));
    canonical.then(|| n.parse().ok()).flatten()
}

pub fn pod_name(set_name: &str, ordinal: i64) -> String {
    format!("{set_name}-{ordinal}")
}

/// The revision (`controller-revision-hash` label) a pod was created from.
pub fn revision(pod: &Value) -> Option<&str> {
    pod.pointer("/metadata/labels")?.get(REVISION)?.as_str()
}

fn claim_templates(set: &Value) -> impl Iterator<Item = &Value> {
    set.pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The PersistentVolumeClaims pod `ordinal` mounts: each template named for the ordinal,
/// labelled with the set's `matchLabels` too.
pub fn claims(set: &Value, ordinal: i64) -> Vec<Value> {
    let set_name = meta::name(set);
    let match_labels = set.pointer("/spec/selector/matchLabels");
    claim_templates(set)
        .map(|t| {
            let mut meta = t.get("metadata").cloned().unwrap_or(json!({}));
            let name = format!("{}-{set_name}-{ordinal}", meta::name(t));
            meta["name"] = json!(name);
            let labels = meta["labels"].as_object().cloned().unwrap_or_default();
            let extra = match_labels.and_then(Value::as_object).cloned();
            meta["labels"] = Value::Object(
                labels
                    .into_iter()
                    .chain(extra.into_iter().flatten())
                    .collect(),
            );
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                   "spec": t.get("spec").cloned().unwrap_or(json!({}))})
        })
        .collect()
}

/// Pod `ordinal` of `set` from `template` (of revision `revision`), controlled by `oref`.
pub fn pod(set: &Value, template: &Value, ordinal: i64, revision: &str, oref: Value) -> Value {
    let name = pod_name(meta::name(set), ordinal);
    let mut pod = pod_of(template, oref);
    pod["metadata"]["name"] = json!(name);
    let labels = pod["metadata"]
        .as_object_mut()
        .expect("a pod's metadata")
        .entry("labels")
        .or_insert_with(|| json!({}));
    labels[POD_NAME] = json!(name);
    labels[POD_INDEX] = json!(ordinal.to_string());
    labels[REVISION] = json!(revision);
    let spec = &mut pod["spec"];
    spec["hostname"] = json!(name);
    if let Some(svc) = set.pointer("/spec/serviceName").and_then(Value::as_str) {
        if !svc.is_empty() {
            spec["subdomain"] = json!(svc);
        }
    }
    let mounted: Vec<Value> = claim_templates(set)
        .zip(claims(set, ordinal))
        .map(|(t, c)| {
            json!({"name": meta::name(t),
                   "persistentVolumeClaim": {"claimName": meta::name(&c)}})
        })
        .collect();
    if !mounted.is_empty() {
        let taken = |v: &Value| mounted.iter().any(|m| m["name"] == v["name"]);
        let rest = spec["volumes"].as_array().cloned().unwrap_or_default();
        let volumes: Vec<Value> = mounted
            .iter()
            .cloned()
            .chain(rest.into_iter().filter(|v| !taken(v)))
            .collect();
        spec["volumes"] = json!(volumes);
    }
    pod
}

/// Labels to merge into an adopted or relabelled pod so that it carries its identity
/// (`None`: it does).
pub fn missing_labels(set_name: &str, pod: &Value) -> Option<Value> {
    let ord = ordinal(set_name, pod)?;
    let want = [
        (POD_NAME, meta::name(pod).to_string()),
        (POD_INDEX, ord.to_string()),
    ];
    let labels = pod.pointer("/metadata/labels");
    let patch: Map<String, Value> = want
        .into_iter()
        .filter(|(k, v)| labels.and_then(|l| l.get(*k)).and_then(Value::as_str) != Some(v))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    (!patch.is_empty()).then(|| json!({"metadata": {"labels": patch}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Value {
        json!({
            "metadata": {"name": "web", "uid": "u1"},
            "spec": {
                "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c"}],
                             "volumes": [{"name": "www", "emptyDir": {}},
                                         {"name": "cfg", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www", "labels": {"tier": "db"}},
                                          "spec": {"accessModes": ["ReadWriteOnce"]}}],
            }
        })
    }

    #[test]
    fn ordinals_are_parsed_from_canonical_names() {
        let p = |n: &str| json!({"metadata": {"name": n}});
        assert_eq!(ordinal("web", &p("web-0")), Some(0));
        assert_eq!(ordinal("web", &p("web-12")), Some(12));
        for other in [
            "web-01", "web-", "web-1-0", "web2", "webx-1", "web--1", "web-+1",
        ] {
            assert_eq!(ordinal("web", &p(other)), None, "{other}");
        }
        assert_eq!(ordinal("web-1", &p("web-1-0")), Some(0));
    }

    #[test]
    fn pods_carry_identity_revision_and_claims() {
        let s = set();
        let t = s["spec"]["template"].clone();
        let p = pod(&s, &t, 2, "web-abc", json!({"uid": "u1"}));
        let m = &p["metadata"];
        assert_eq!(m["name"], "web-2");
        assert!(m.get("generateName").is_none());
        assert_eq!(m["labels"]["app"], "web");
        assert_eq!(m["labels"][POD_NAME], "web-2");
        assert_eq!(m["labels"][POD_INDEX], "2");
        assert_eq!(m["labels"][REVISION], "web-abc");
        assert_eq!(m["annotations"]["a"], "b");
        assert_eq!(m["ownerReferences"][0]["uid"], "u1");
        assert_eq!(p["spec"]["hostname"], "web-2");
        assert_eq!(p["spec"]["subdomain"], "nginx");
        // The claim replaces the template volume of the same name; the others stay.
        assert_eq!(
            p["spec"]["volumes"],
            json!([{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-2"}},
                   {"name": "cfg", "emptyDir": {}}])
        );
        assert_eq!(revision(&p), Some("web-abc"));
        assert_eq!(missing_labels("web", &p), None);
        let mut bare = p.clone();
        bare["metadata"]["labels"] = json!({"app": "web"});
        assert_eq!(
            missing_labels("web", &bare),
            Some(json!({"metadata": {"labels": {POD_NAME: "web-2", POD_INDEX: "2"}}}))
        );
    }

    #[test]
    fn claims_are_named_for_the_ordinal_and_labelled_with_the_selector() {
        let c = claims(&set(), 1);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["metadata"]["name"], "www-web-1");
        assert_eq!(
            c[0]["metadata"]["labels"],
            json!({"tier": "db", "app": "web"})
        );
        assert_eq!(c[0]["spec"]["accessModes"][0], "ReadWriteOnce");
        let mut none = set();
        none["spec"]["volumeClaimTemplates"] = Value::Null;
        none["spec"]["serviceName"] = json!("");
        let t = none["spec"]["template"].clone();
        let p = pod(&none, &t, 0, "r", json!({}));
        assert!(p["spec"].get("subdomain").is_none());
        assert_eq!(p["spec"]["volumes"][0]["name"], "www");
    }
}
