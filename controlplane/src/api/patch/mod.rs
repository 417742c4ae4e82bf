//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes strategic
//! merge patch.

mod json_patch;
pub(crate) mod strategic;

use serde_json::Value;

pub use json_patch::apply as apply_json_patch;
pub use strategic::apply as apply_strategic;

/// The patch flavours, by request `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        Some(match base {
            "application/json-patch+json" => Self::Json,
            "application/merge-patch+json" => Self::Merge,
            "application/strategic-merge-patch+json" => Self::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Self::Apply,
            _ => return None,
        })
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn apply_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let map = target.as_object_mut().expect("object");
    for (k, v) in patch_map {
        if v.is_null() {
            map.remove(k);
        } else {
            apply_merge(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Apply `patch` of type `ty` to `target`.
pub fn apply(ty: PatchType, target: &mut Value, patch: &Value) -> Result<(), String> {
    match ty {
        PatchType::Merge => {
            apply_merge(target, patch);
            Ok(())
        }
        PatchType::Json => apply_json_patch(target, patch),
        PatchType::Strategic => apply_strategic(target, patch),
        PatchType::Apply => Err("server-side apply is not supported".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        apply_merge(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }
}
