//! Which PersistentVolume a claim binds to, and what binding writes (pure: unit-tested).
//!
//! Kubernetes' rules: a volume fits a claim when its class equals the claim's (no class
//! matches only no class), it offers every access mode the claim asks for, at least the
//! storage requested, the same volume mode, and the labels of the claim's selector. Of
//! the fitting volumes the smallest wins; a volume pre-bound to the claim (its
//! `claimRef` names it) wins over all. A volume with node affinity is only reachable from
//! the nodes it names: a claim of a class that waits for its first consumer binds only to
//! a volume reachable from the node chosen for that consumer.

use k8s_openapi::api::core::v1::NodeSelectorTerm;
use serde_json::{json, Value};

use crate::api::meta;
use crate::api::selector::{labels, LabelSelector};
use crate::scheduler::quantity::Quantity;
use crate::scheduler::selector::{Labels, Term};
pub use crate::scheduler::volumes::SELECTED_NODE;

/// The provisioner of the built-in class: a directory on the node of the first pod
/// that uses the claim (k3s' `local-path`).
pub const PROVISIONER: &str = "skiff.io/local-path";
/// The built-in default StorageClass.
pub const DEFAULT_CLASS: &str = "local-path";
pub const IS_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The provisioner of classes whose volumes are all made by hand (local volumes).
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
/// The label the provisioned volume's node affinity names.
const HOSTNAME: &str = "kubernetes.io/hostname";

pub(super) fn s<'a>(obj: &'a Value, ptr: &str) -> Option<&'a str> {
    obj.pointer(ptr).and_then(Value::as_str)
}

/// The annotation `key` of `obj`.
pub(super) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// The claim's class: `""` for none.
pub fn claim_class(claim: &Value) -> &str {
    s(claim, "/spec/storageClassName").unwrap_or("")
}

/// The bytes of a storage quantity (`None`: absent or malformed).
fn bytes(q: Option<&str>) -> Option<i64> {
    Quantity::parse(q?).ok().map(|q| q.value())
}

fn modes(obj: &Value, ptr: &str) -> Vec<String> {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pv` names `claim` in its `claimRef` (uid too, when both have one).
pub fn claimed_by(pv: &Value, claim: &Value) -> bool {
    let Some(r) = pv.pointer("/spec/claimRef").filter(|r| r.is_object()) else {
        return false;
    };
    let same = s(r, "/name") == Some(meta::name(claim))
        && s(r, "/namespace").unwrap_or("default")
            == s(claim, "/metadata/namespace").unwrap_or("default");
    let uid_ok = match (s(r, "/uid"), s(claim, "/metadata/uid")) {
        (Some(a), Some(b)) if !a.is_empty() => a == b,
        _ => true,
    };
    same && uid_ok
}

/// Whether the volume is free: no claimRef and not on its way out.
pub fn available(pv: &Value) -> bool {
    pv.pointer("/spec/claimRef").is_none_or(Value::is_null) && !meta::is_deleting(pv)
}

/// Whether `pv` meets what `claim` asks (class, modes, size, volume mode, selector).
pub fn fits(claim: &Value, pv: &Value) -> bool {
    if s(pv, "/spec/storageClassName").unwrap_or("") != claim_class(claim) {
        return false;
    }
    let offered = modes(pv, "/spec/accessModes");
    if !modes(claim, "/spec/accessModes")
        .iter()
        .all(|m| offered.contains(m))
    {
        return false;
    }
    let want = bytes(s(claim, "/spec/resources/requests/storage")).unwrap_or(0);
    if bytes(s(pv, "/spec/capacity/storage")).is_none_or(|have| have < want) {
        return false;
    }
    let mode = |o: &Value| s(o, "/spec/volumeMode").unwrap_or("Filesystem").to_owned();
    if mode(claim) != mode(pv) {
        return false;
    }
    match claim.pointer("/spec/selector").filter(|v| v.is_object()) {
        Some(sel) => LabelSelector::from_object(sel).matches_labels(&labels(pv)),
        None => true,
    }
}

/// The volume's required node affinity, compiled: some term must match a node for the
/// volume to be reachable there (`None`: reachable from every node).
pub fn node_affinity(pv: &Value) -> Option<Vec<Term>> {
    let terms = pv.pointer("/spec/nodeAffinity/required/nodeSelectorTerms")?;
    match serde_json::from_value::<Vec<NodeSelectorTerm>>(terms.clone()) {
        Ok(terms) => Some(terms.iter().map(Term::compile).collect()),
        Err(e) => {
            // Validated on write, so not expected; fail closed: reachable from no node.
            log::warn!("volume {}: unreadable node affinity: {e}", meta::name(pv));
            Some(Vec::new())
        }
    }
}

/// Whether `pv` is reachable from `node` (the Node object).
pub fn reachable_from(pv: &Value, node: &Value) -> bool {
    let Some(terms) = node_affinity(pv) else {
        return true;
    };
    let labels = Labels::new(
        node.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))),
    );
    terms.iter().any(|t| t.matches(&labels, meta::name(node)))
}

/// Whether the class binds its claims only once a pod using them is scheduled.
pub fn waits_for_consumer(class: &Value) -> bool {
    s(class, "/volumeBindingMode") == Some("WaitForFirstConsumer")
}

/// The volume for `claim` among `pvs`: one pre-bound to it, else the smallest free fit;
/// with `node`, only volumes reachable from it.
pub fn best<'a>(claim: &Value, pvs: &'a [Value], node: Option<&Value>) -> Option<&'a Value> {
    let fitting =
        |pv: &&Value| fits(claim, pv) || s(claim, "/spec/volumeName") == Some(meta::name(pv));
    if let Some(pre) = pvs.iter().filter(fitting).find(|pv| claimed_by(pv, claim)) {
        return Some(pre);
    }
    pvs.iter()
        .filter(|pv| available(pv) && fits(claim, pv))
        .filter(|pv| node.is_none_or(|n| reachable_from(pv, n)))
        .min_by_key(|pv| {
            (
                bytes(s(pv, "/spec/capacity/storage")).unwrap_or(i64::MAX),
                meta::name(pv).to_owned(),
            )
        })
}

/// The `claimRef` a volume bound to `claim` carries.
pub fn claim_ref(claim: &Value) -> Value {
    json!({
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": s(claim, "/metadata/namespace").unwrap_or("default"),
        "name": meta::name(claim),
        "uid": s(claim, "/metadata/uid").unwrap_or(""),
        "resourceVersion": s(claim, "/metadata/resourceVersion").unwrap_or(""),
    })
}

/// The status of a claim bound to `pv`: the volume's capacity and access modes.
pub fn bound_status(pv: &Value) -> Value {
    let mut status = json!({"phase": "Bound", "accessModes": modes(pv, "/spec/accessModes")});
    if let Some(c) = pv.pointer("/spec/capacity") {
        status["capacity"] = c.clone();
    }
    status
}

/// The volume the built-in provisioner makes for `claim` of `class` (pre-bound to it):
/// named `pvc-<claim uid>`, the size and modes asked, the class's reclaim policy. Its
/// source names the provisioner's driver and the claim's uid, which the kubelet of the
/// pod's node turns into a directory of its own. Made for the node chosen for the claim's
/// first consumer (`node`), it is reachable from that node only.
pub fn provisioned_volume(claim: &Value, class: &Value, node: Option<&str>) -> Value {
    let uid = s(claim, "/metadata/uid").unwrap_or("");
    let size = s(claim, "/spec/resources/requests/storage").unwrap_or("1Gi");
    let mut access = modes(claim, "/spec/accessModes");
    if access.is_empty() {
        access.push("ReadWriteOnce".into());
    }
    let mut pv = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": format!("pvc-{uid}"),
            "annotations": {PROVISIONED_BY: PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": access,
            "persistentVolumeReclaimPolicy": s(class, "/reclaimPolicy").unwrap_or("Delete"),
            "storageClassName": meta::name(class),
            "volumeMode": s(claim, "/spec/volumeMode").unwrap_or("Filesystem"),
            "claimRef": claim_ref(claim),
            "csi": {"driver": PROVISIONER, "volumeHandle": uid},
        },
    });
    if let Some(node) = node {
        pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": [node]}]}
        ]}});
    }
    pv
}

/// The default class among `classes` (annotated so; the newest wins, as in Kubernetes).
pub fn default_class(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| annotation(c, IS_DEFAULT_CLASS) == Some("true"))
        .max_by_key(|c| s(c, "/metadata/creationTimestamp").unwrap_or("").to_owned())
}

/// The phase a volume should show: Bound to a live claim, Released once that claim is
/// gone, Available when free (or only pre-bound by name).
pub fn volume_phase(pv: &Value, claim: Option<&Value>) -> &'static str {
    let Some(r) = pv.pointer("/spec/claimRef").filter(|r| r.is_object()) else {
        return "Available";
    };
    let uid = s(r, "/uid").unwrap_or("");
    match claim {
        Some(c) if claimed_by(pv, c) && s(c, "/spec/volumeName") == Some(meta::name(pv)) => "Bound",
        Some(c) if uid.is_empty() || s(c, "/metadata/uid") == Some(uid) => "Available",
        _ if uid.is_empty() => "Available",
        _ => "Released",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(class: Option<&str>, size: &str, modes: &[&str]) -> Value {
        let mut c = json!({"metadata": {"name": "c", "namespace": "default", "uid": "u1"},
                           "spec": {"accessModes": modes,
                                    "resources": {"requests": {"storage": size}}}});
        if let Some(k) = class {
            c["spec"]["storageClassName"] = json!(k);
        }
        c
    }

    fn pv(name: &str, class: &str, size: &str, modes: &[&str]) -> Value {
        json!({"metadata": {"name": name, "labels": {"tier": "fast"}},
               "spec": {"storageClassName": class, "capacity": {"storage": size},
                        "accessModes": modes}})
    }

    #[test]
    fn the_smallest_fitting_volume_of_the_class_wins() {
        let c = claim(Some("manual"), "3Gi", &["ReadWriteOnce"]);
        let pvs = [
            pv("big", "manual", "10Gi", &["ReadWriteOnce", "ReadOnlyMany"]),
            pv("small", "manual", "2Gi", &["ReadWriteOnce"]),
            pv("other-class", "fast", "4Gi", &["ReadWriteOnce"]),
            pv("wrong-mode", "manual", "4Gi", &["ReadOnlyMany"]),
            pv("fits", "manual", "5Gi", &["ReadWriteOnce"]),
        ];
        assert_eq!(best(&c, &pvs, None).map(meta::name), Some("fits"));
        let none = claim(Some("manual"), "20Gi", &["ReadWriteOnce"]);
        assert!(best(&none, &pvs, None).is_none());
    }

    #[test]
    fn no_class_matches_only_no_class_and_selectors_filter() {
        let c = claim(None, "1Gi", &["ReadWriteOnce"]);
        assert!(!fits(&c, &pv("a", "manual", "1Gi", &["ReadWriteOnce"])));
        assert!(fits(&c, &pv("b", "", "1Gi", &["ReadWriteOnce"])));
        let mut sel = c.clone();
        sel["spec"]["selector"] = json!({"matchLabels": {"tier": "slow"}});
        assert!(!fits(&sel, &pv("b", "", "1Gi", &["ReadWriteOnce"])));
        sel["spec"]["selector"] = json!({"matchLabels": {"tier": "fast"}});
        assert!(fits(&sel, &pv("b", "", "1Gi", &["ReadWriteOnce"])));
        let mut block = c.clone();
        block["spec"]["volumeMode"] = json!("Block");
        assert!(!fits(&block, &pv("b", "", "1Gi", &["ReadWriteOnce"])));
    }

    #[test]
    fn taken_volumes_are_skipped_and_pre_bound_ones_win() {
        let c = claim(Some("manual"), "1Gi", &["ReadWriteOnce"]);
        let mut taken = pv("taken", "manual", "1Gi", &["ReadWriteOnce"]);
        taken["spec"]["claimRef"] = json!({"namespace": "default", "name": "other", "uid": "u9"});
        let mut mine = pv("mine", "manual", "8Gi", &["ReadWriteOnce"]);
        mine["spec"]["claimRef"] = json!({"namespace": "default", "name": "c"});
        let free = pv("free", "manual", "2Gi", &["ReadWriteOnce"]);
        assert_eq!(
            best(&c, &[taken.clone(), free.clone()], None).map(meta::name),
            Some("free")
        );
        assert_eq!(
            best(&c, &[taken, free, mine], None).map(meta::name),
            Some("mine")
        );
    }

    #[test]
    fn phases_follow_the_claim() {
        let c = claim(Some("manual"), "1Gi", &["ReadWriteOnce"]);
        let mut v = pv("v", "manual", "1Gi", &["ReadWriteOnce"]);
        assert_eq!(volume_phase(&v, None), "Available");
        v["spec"]["claimRef"] = claim_ref(&c);
        assert_eq!(volume_phase(&v, Some(&c)), "Available");
        let mut bound = c.clone();
        bound["spec"]["volumeName"] = json!("v");
        assert_eq!(volume_phase(&v, Some(&bound)), "Bound");
        assert_eq!(volume_phase(&v, None), "Released");
        let mut recreated = bound.clone();
        recreated["metadata"]["uid"] = json!("u2");
        assert_eq!(volume_phase(&v, Some(&recreated)), "Released");
    }

    #[test]
    fn a_provisioned_volume_is_pre_bound_with_what_was_asked() {
        let c = claim(Some("local-path"), "2Gi", &["ReadWriteOnce"]);
        let class = json!({"metadata": {"name": "local-path"}, "provisioner": PROVISIONER});
        let v = provisioned_volume(&c, &class, None);
        assert_eq!(meta::name(&v), "pvc-u1");
        assert!(v["spec"].get("nodeAffinity").is_none());
        assert!(claimed_by(&v, &c) && fits(&c, &v));
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(
            bound_status(&v),
            json!({"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                   "capacity": {"storage": "2Gi"}})
        );
    }

    #[test]
    fn a_volume_with_node_affinity_binds_only_for_its_nodes() {
        let node = |name: &str, zone: &str| {
            json!({"metadata": {"name": name,
                                "labels": {HOSTNAME: name, "zone": zone}}})
        };
        let local = |name: &str, host: &str| {
            let mut v = pv(name, "local", "5Gi", &["ReadWriteOnce"]);
            v["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": [host]}]}]}});
            v
        };
        let anywhere = pv("shared", "local", "9Gi", &["ReadWriteOnce"]);
        let (n1, n2, n3) = (node("n1", "a"), node("n2", "b"), node("n3", "b"));
        assert!(reachable_from(&local("v1", "n1"), &n1));
        assert!(!reachable_from(&local("v1", "n1"), &n2));
        assert!(reachable_from(&anywhere, &n2));
        let c = claim(Some("local"), "1Gi", &["ReadWriteOnce"]);
        let pvs = [local("v1", "n1"), local("v2", "n2"), anywhere];
        assert_eq!(best(&c, &pvs, Some(&n2)).map(meta::name), Some("v2"));
        assert_eq!(best(&c, &pvs, Some(&n3)).map(meta::name), Some("shared"));
        assert_eq!(best(&c, &pvs[..2], Some(&n3)).map(meta::name), None);
        // Provisioned for a chosen node: reachable from that node only.
        let class = json!({"metadata": {"name": "local"}, "provisioner": PROVISIONER});
        let v = provisioned_volume(&c, &class, Some("n3"));
        assert!(reachable_from(&v, &n3) && !reachable_from(&v, &n2));
    }

    #[test]
    fn the_newest_default_class_is_the_default() {
        let k = |name: &str, default: &str, at: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": at,
                                "annotations": {IS_DEFAULT_CLASS: default}}})
        };
        let classes = [
            k("old", "true", "2026-01-01T00:00:00Z"),
            k("new", "true", "2026-02-01T00:00:00Z"),
            k("no", "false", "2026-03-01T00:00:00Z"),
        ];
        assert_eq!(default_class(&classes).map(meta::name), Some("new"));
        assert!(default_class(&classes[2..]).is_none());
    }
}
