//! Object metadata on JSON values: names, resource versions, uids, timestamps.

use serde_json::{Map, Value};

/// `metadata.<field>` as a string.
pub fn str_field<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub fn name(obj: &Value) -> &str {
    str_field(obj, "name").unwrap_or("")
}

/// The `metadata` map, created if missing.
/// Drops empty `labels`, `annotations`, `finalizers` and `ownerReferences` from the
/// metadata, as the Kubernetes API (Go `omitempty`) never stores or returns them:
/// `kubectl diff` would otherwise show a stored `annotations: {}` as a change.
pub fn omit_empty(obj: &mut Value) {
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
        let empty = match m.get(key) {
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            m.remove(key);
        }
    }
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("object");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("object")
}

pub fn set_resource_version(obj: &mut Value, rev: u64) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rev.to_string()));
}

/// `metadata.resourceVersion` parsed; `Ok(None)` when absent or empty.
pub fn resource_version(obj: &Value) -> Result<Option<u64>, String> {
    match str_field(obj, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("invalid resourceVersion {s:?}")),
    }
}

/// A stored value as served: parsed, with `resourceVersion` = the key's mod revision.
pub fn decode_stored(value: &str, rev: u64) -> Result<Value, serde_json::Error> {
    let mut v: Value = serde_json::from_str(value)?;
    set_resource_version(&mut v, rev);
    Ok(v)
}

/// The current time as Kubernetes writes it (RFC 3339, seconds, `Z`).
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A timestamp `secs` seconds from now.
pub fn now_plus(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random (version 4) UUID.
pub fn uid() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Longest `generateName` kept: a name is at most 63 characters, 5 random ones are added.
pub const MAX_GENERATE_PREFIX: usize = 58;

/// `generateName` + 5 random lower-case alphanumerics (no vowels, as Kubernetes does).
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let prefix: String = prefix.chars().take(MAX_GENERATE_PREFIX).collect();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Whether `a` and `b` are the same outside `metadata` and `status` (what a generation
/// bump compares), compared in place.
pub fn same_spec(a: &Value, b: &Value) -> bool {
    fn spec_fields(m: &serde_json::Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
        m.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status"))
    }
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            spec_fields(a).count() == spec_fields(b).count()
                && spec_fields(a).all(|(k, v)| b.get(k) == Some(v))
        }
        _ => a == b,
    }
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_and_names() {
        let u = uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9);
    }

    #[test]
    fn empty_metadata_maps_and_lists_are_omitted() {
        let mut obj = serde_json::json!({"metadata": {"name": "a", "labels": {},
            "annotations": {"k": "v"}, "finalizers": [], "ownerReferences": null}});
        omit_empty(&mut obj);
        assert_eq!(
            obj,
            serde_json::json!({"metadata": {"name": "a", "annotations": {"k": "v"}}})
        );
    }
}
