//! Decoding `application/vnd.kubernetes.protobuf` request bodies (the `k8s\0` magic, a
//! `runtime.Unknown` envelope, the object) into JSON for the kinds in [`schema`]. Zero
//! values of non-pointer fields are dropped (Go always encodes them); a non-zero field the
//! tables do not know rejects the body, so nothing is silently lost.

mod schema;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use schema::{Field, Ty};

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// One raw field from the wire.
enum Raw<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// Every `(field number, value)` of a message, in wire order.
fn fields(mut buf: &[u8]) -> Result<Vec<(u32, Raw<'_>)>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let num = (key >> 3) as u32;
        let raw = match key & 7 {
            0 => Raw::Varint(varint(&mut buf)?),
            2 => {
                let len = varint(&mut buf)? as usize;
                if len > buf.len() {
                    return Err("truncated field".into());
                }
                let (v, rest) = buf.split_at(len);
                buf = rest;
                Raw::Bytes(v)
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                buf = buf.get(n..).ok_or("truncated fixed field")?;
                Raw::Fixed
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        out.push((num, raw));
    }
    Ok(out)
}

/// A field the tables do not know: fine only if it carries nothing.
fn is_zero(raw: &Raw<'_>) -> bool {
    match raw {
        Raw::Varint(v) => *v == 0,
        Raw::Fixed => false,
        Raw::Bytes(b) => {
            b.is_empty()
                || fields(b).is_ok_and(|fs| !fs.is_empty() && fs.iter().all(|(_, r)| is_zero(r)))
        }
    }
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in a string field".to_string())
}

fn map_entry(b: &[u8], value_ty: Ty) -> Result<(String, Value), String> {
    let (mut k, mut v) = (String::new(), Value::Null);
    for (num, raw) in fields(b)? {
        match (num, raw) {
            (1, Raw::Bytes(b)) => k = string(b)?,
            (2, raw) => v = scalar(value_ty, &raw, true)?.unwrap_or(Value::Null),
            _ => {}
        }
    }
    if v.is_null() {
        v = match value_ty {
            Ty::Bytes | Ty::Str | Ty::Quantity => json!(""),
            _ => Value::Null,
        };
    }
    Ok((k, v))
}

/// A non-map value; `None` for a zero value that is to be dropped.
fn scalar(ty: Ty, raw: &Raw<'_>, keep_zero: bool) -> Result<Option<Value>, String> {
    let v = match (ty, raw) {
        (Ty::Str, Raw::Bytes(b)) => json!(string(b)?),
        (Ty::Bytes, Raw::Bytes(b)) => json!(STANDARD.encode(b)),
        (Ty::Int, Raw::Varint(v)) => json!(*v as i64),
        (Ty::Bool, Raw::Varint(v)) => json!(*v != 0),
        (Ty::Msg(t), Raw::Bytes(b)) => Value::Object(message(t, b)?),
        (Ty::Quantity, Raw::Bytes(b)) => {
            let m = fields(b)?;
            let s = m.iter().find_map(|(n, r)| match (n, r) {
                (1, Raw::Bytes(s)) => Some(string(s)),
                _ => None,
            });
            json!(s.transpose()?.unwrap_or_default())
        }
        (Ty::IntOrStr, Raw::Bytes(b)) => {
            let (mut kind, mut int, mut s) = (0, 0i64, String::new());
            for (n, r) in fields(b)? {
                match (n, r) {
                    (1, Raw::Varint(v)) => kind = v,
                    (2, Raw::Varint(v)) => int = v as i64,
                    (3, Raw::Bytes(b)) => s = string(b)?,
                    _ => {}
                }
            }
            if kind == 1 {
                json!(s)
            } else {
                json!(int as i32)
            }
        }
        (Ty::Time, Raw::Bytes(b)) => {
            let secs = fields(b)?
                .iter()
                .find_map(|(n, r)| match (n, r) {
                    (1, Raw::Varint(v)) => Some(*v as i64),
                    _ => None,
                })
                .unwrap_or(0);
            match chrono::DateTime::from_timestamp(secs, 0) {
                Some(t) if secs > 0 => json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                _ => return Ok(None),
            }
        }
        (ty, _) => return Err(format!("wire type does not match field type {ty:?}")),
    };
    let zero = match &v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(b) => !b,
        Value::Object(m) => m.is_empty(),
        _ => false,
    };
    Ok((keep_zero || !zero || matches!(ty, Ty::IntOrStr)).then_some(v))
}

/// Decode a message of table `table` into a JSON object.
fn message(table: &'static [Field], buf: &[u8]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (num, raw) in fields(buf)? {
        let Some(&Field(_, name, ty, repeated, keep_zero)) = table.iter().find(|f| f.0 == num)
        else {
            if is_zero(&raw) {
                continue;
            }
            return Err(format!("field {num} is not supported by this server"));
        };
        match (ty, &raw) {
            (Ty::StrMap | Ty::BytesMap | Ty::QtyMap, Raw::Bytes(b)) => {
                let value_ty = match ty {
                    Ty::StrMap => Ty::Str,
                    Ty::BytesMap => Ty::Bytes,
                    _ => Ty::Quantity,
                };
                let (k, v) = map_entry(b, value_ty)?;
                let m = out.entry(name).or_insert_with(|| json!({}));
                m[k] = v;
            }
            // An embedded Go struct: its fields are the parent's in JSON.
            (Ty::Inline(t), Raw::Bytes(b)) => out.extend(message(t, b)?),
            _ if repeated => {
                let v = scalar(ty, &raw, true)?.unwrap_or(Value::Null);
                let list = out.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(v);
                }
            }
            _ => {
                if let Some(v) = scalar(ty, &raw, keep_zero)? {
                    out.insert(name.to_string(), v);
                }
            }
        }
    }
    Ok(out)
}

/// Decode a protobuf request body into a JSON object.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("missing the protobuf envelope prefix")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (num, r) in fields(rest)? {
        match (num, r) {
            (1, Raw::Bytes(b)) => {
                let tm = message(schema::TYPE_META, b)?;
                api_version = tm
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into();
                kind = tm.get("kind").and_then(Value::as_str).unwrap_or("").into();
            }
            (2, Raw::Bytes(b)) => raw = b,
            (3, Raw::Bytes(b)) if !b.is_empty() => {
                return Err("encoded (compressed) protobuf bodies are not supported".into())
            }
            _ => {}
        }
    }
    let table = schema::kind(&api_version, &kind)
        .ok_or_else(|| format!("protobuf bodies of {api_version} {kind} are not supported"))?;
    let mut obj = message(table, raw).map_err(|e| format!("{api_version} {kind}: {e}"))?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn ld(num: u32, b: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put_varint(&mut v, u64::from(num << 3 | 2));
        put_varint(&mut v, b.len() as u64);
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn namespace_with_zero_fields() {
        let meta = [ld(1, b"team"), ld(2, b""), vec![7 << 3, 0], ld(8, &[])].concat();
        let ns = [ld(1, &meta), ld(2, &[]), ld(3, &[])].concat();
        let tm = [ld(1, b"v1"), ld(2, b"Namespace")].concat();
        let body = [
            MAGIC.to_vec(),
            ld(1, &tm),
            ld(2, &ns),
            ld(3, b""),
            ld(4, b""),
        ]
        .concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        );
        let bad = [ld(1, &meta), ld(9, b"x")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &bad)].concat();
        assert!(decode(&body).unwrap_err().contains("field 9"));
    }

    #[test]
    fn embedded_structs_are_inlined() {
        // Deployment.spec.template.spec: a configMap volume (VolumeSource and
        // LocalObjectReference embedded) and an exec liveness probe (ProbeHandler
        // embedded), enableServiceLinks set.
        let cm_ref = ld(1, b"settings");
        let config_map = ld(1, &cm_ref);
        let volume = [ld(1, b"cfg"), ld(2, &ld(19, &config_map))].concat();
        let handler = ld(1, &ld(1, b"true"));
        let probe = [ld(1, &handler), vec![4 << 3, 5]].concat();
        let container = [ld(1, b"app"), ld(2, b"busybox"), ld(10, &probe)].concat();
        let pod_spec = [ld(1, &volume), ld(2, &container), vec![0xf0, 0x01, 1]].concat();
        let template = ld(2, &pod_spec);
        let spec = ld(3, &template);
        let deploy = [ld(1, &ld(1, b"web")), ld(2, &spec)].concat();
        let tm = [ld(1, b"apps/v1"), ld(2, b"Deployment")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &deploy)].concat();
        let v = decode(&body).unwrap();
        let ps = &v["spec"]["template"]["spec"];
        assert_eq!(
            ps["volumes"],
            json!([{"name": "cfg", "configMap": {"name": "settings"}}])
        );
        assert_eq!(
            ps["containers"][0]["livenessProbe"],
            json!({"exec": {"command": ["true"]}, "periodSeconds": 5})
        );
        assert_eq!(ps["enableServiceLinks"], true);
    }
}
