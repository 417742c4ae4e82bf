//! Pod-template hashes and revisions: the `pod-template-hash` label (fnv-1a of the template
//! JSON, encoded like Kubernetes' `SafeEncodeString`), template equality ignoring that label,
//! and the `deployment.kubernetes.io/*` annotations.

use serde_json::Value;

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX: &str = "deployment.kubernetes.io/max-replicas";

/// The characters `SafeEncodeString` maps to (no vowels, no confusable digits).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv1a32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The `pod-template-hash` of a pod template.
pub fn template_hash(template: &Value) -> String {
    let h = fnv1a32(without_hash(template).to_string().as_bytes());
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// `template` without the `pod-template-hash` label.
pub fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove(HASH_LABEL);
    }
    t
}

/// Do two templates agree apart from the hash label?
pub fn same_template(a: &Value, b: &Value) -> bool {
    without_hash(a) == without_hash(b)
}

/// The revision annotation of a ReplicaSet or Deployment (0 when missing).
pub fn revision(obj: &Value) -> i64 {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_ignores_its_own_label_and_is_safe() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}});
        let mut labeled = t.clone();
        labeled["metadata"]["labels"][HASH_LABEL] = json!("x");
        let h = template_hash(&t);
        assert_eq!(h, template_hash(&labeled));
        assert!(h.bytes().all(|b| ALPHANUMS.contains(&b)));
        assert!(same_template(&t, &labeled));
        let mut other = t.clone();
        other["spec"]["containers"] = json!([{"name": "c"}]);
        assert_ne!(h, template_hash(&other));
    }
}
