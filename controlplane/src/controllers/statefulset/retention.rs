//! `persistentVolumeClaimRetentionPolicy`: what happens to a pod's claims when the set is
//! deleted (`whenDeleted`) or scaled below the pod (`whenScaled`). `Retain` (the default)
//! keeps them; `Delete` hands them to the garbage collector through owner references, as
//! Kubernetes does: a condemned pod (an ordinal outside `[start, start + replicas)`) owns
//! its claims under `whenScaled: Delete`, so they go with it; otherwise the set owns them
//! under `whenDeleted: Delete`.

use serde_json::{json, Value};

use super::plan::Spec;
use crate::api::meta;
use crate::controllers::owners;

fn deletes(set: &Value, when: &str) -> bool {
    set.pointer(&format!(
        "/spec/persistentVolumeClaimRetentionPolicy/{when}"
    )) == Some(&json!("Delete"))
}

fn reference(api_version: &str, kind: &str, obj: &Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": meta::name(obj),
           "uid": owners::uid(obj)})
}

/// The references from this set and pod (if there is one) that the claims of pod
/// `ordinal` should carry.
/// A condemned pod's claims are its own only (the garbage collector deletes an object once
/// all its owners are gone, and the set stays).
pub fn wanted(set: &Value, spec: &Spec, pod: Option<&Value>, ordinal: i64) -> Vec<Value> {
    let condemned = ordinal < spec.start || ordinal >= spec.start + spec.replicas;
    match pod {
        Some(pod) if condemned && deletes(set, "whenScaled") => {
            vec![reference("v1", "Pod", pod)]
        }
        _ if deletes(set, "whenDeleted") => vec![reference("apps/v1", "StatefulSet", set)],
        _ => Vec::new(),
    }
}

/// The claim's owner references with those of `set` and `pod` made `wanted` (others
/// kept), or `None` when they already are.
pub fn updated(
    claim: &Value,
    set: &Value,
    pod: Option<&Value>,
    wanted: &[Value],
) -> Option<Vec<Value>> {
    let ours = |r: &Value| {
        let uid = r.get("uid").and_then(Value::as_str);
        uid == Some(owners::uid(set)) || pod.is_some_and(|p| uid == Some(owners::uid(p)))
    };
    let current = owners::owner_refs(claim);
    let mine: Vec<&Value> = current.iter().filter(|r| ours(r)).collect();
    let same = mine.len() == wanted.len()
        && wanted
            .iter()
            .all(|w| mine.iter().any(|m| m.get("uid") == w.get("uid")));
    if same {
        return None;
    }
    let mut out: Vec<Value> = current.iter().filter(|r| !ours(r)).cloned().collect();
    out.extend(wanted.iter().cloned());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(policy: Value) -> Value {
        json!({"metadata": {"name": "web", "uid": "s1"},
               "spec": {"replicas": 2, "persistentVolumeClaimRetentionPolicy": policy}})
    }

    fn pod(name: &str, uid: &str) -> Value {
        json!({"metadata": {"name": name, "uid": uid}})
    }

    #[test]
    fn retain_keeps_claims_unowned() {
        let s = set(json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
        let spec = Spec::of(&s);
        assert!(wanted(&s, &spec, Some(&pod("web-3", "p3")), 3).is_empty());
    }

    #[test]
    fn delete_hands_claims_to_the_set_and_condemned_pods() {
        let s = set(json!({"whenDeleted": "Delete", "whenScaled": "Delete"}));
        let spec = Spec::of(&s);
        let kept = wanted(&s, &spec, Some(&pod("web-1", "p1")), 1);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0]["uid"], "s1");
        let condemned = wanted(&s, &spec, Some(&pod("web-2", "p2")), 2);
        let uids: Vec<&Value> = condemned.iter().map(|r| &r["uid"]).collect();
        assert_eq!(uids, [&json!("p2")], "the pod's alone");

        // Another owner stays; an up-to-date claim needs nothing.
        let claim = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "x/v1", "kind": "Other", "name": "o", "uid": "o1"}]}});
        let p2 = pod("web-2", "p2");
        let refs = updated(&claim, &s, Some(&p2), &condemned).unwrap();
        assert_eq!(refs.len(), 2);
        let done = json!({"metadata": {"ownerReferences": refs}});
        assert_eq!(updated(&done, &s, Some(&p2), &condemned), None);
        // Back to Retain: the set's and pod's references go, the other stays.
        let back = updated(&done, &s, Some(&p2), &[]).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0]["uid"], "o1");
    }
}
