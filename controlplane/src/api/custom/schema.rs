//! Structural schemas (a CRD version's `openAPIV3Schema`) applied to custom objects, in
//! Kubernetes' order: [`prune`] drops fields the schema does not specify (reporting their
//! paths for `fieldValidation`) and fills `default`s, then [`validate`] checks types,
//! `required`, `enum`, bounds, lengths and `pattern`s, returning every violation with its
//! field path.
//!
//! Not applied: `x-kubernetes-validations` (CEL rules), `anyOf`/`oneOf`/`not`, `format`s,
//! `uniqueItems` and list-type uniqueness.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};

use crate::api::error::FieldError;

/// Fields of an object's root that the API server owns whatever the schema says.
const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Drop unspecified fields of `obj` and apply defaults; returns the dropped paths.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut dropped = Vec::new();
    walk(schema, obj, "", true, &mut dropped);
    dropped
}

fn walk(schema: &Value, v: &mut Value, path: &str, root: bool, dropped: &mut Vec<String>) {
    match v {
        Value::Object(map) => walk_object(schema, map, path, root, dropped),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), false, dropped);
                }
            }
        }
        _ => {}
    }
}

fn walk_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    root: bool,
    dropped: &mut Vec<String>,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let keep_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields")
        || matches!(additional, Some(Value::Bool(true)));
    let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
    // Nulls of fields specified as not nullable are dropped (then defaulted), as Kubernetes
    // does; a null the schema says nothing of (`preserve-unknown-fields`) stays.
    let nulls: Vec<String> = map
        .iter()
        .filter(|(k, v)| {
            v.is_null()
                && props
                    .and_then(|p| p.get(*k))
                    .or(additional.filter(|a| a.is_object()))
                    .is_some_and(|s| !flag(s, "nullable"))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in nulls {
        map.remove(&k);
    }
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if embedded && ROOT_FIELDS.contains(&k.as_str()) {
            continue;
        }
        let sub = props
            .and_then(|p| p.get(&k))
            .or(additional.filter(|a| a.is_object()));
        match sub {
            Some(s) => walk(
                s,
                map.get_mut(&k).expect("listed"),
                &join(path, &k),
                false,
                dropped,
            ),
            None if keep_unknown => {}
            None => {
                map.remove(&k);
                dropped.push(join(path, &k));
            }
        }
    }
    for (k, s) in props.into_iter().flatten() {
        if map.contains_key(k) || embedded && ROOT_FIELDS.contains(&k.as_str()) {
            continue;
        }
        if let Some(d) = s.get("default") {
            let mut d = d.clone();
            walk(s, &mut d, &join(path, k), false, &mut Vec::new());
            map.insert(k.clone(), d);
        }
    }
}

/// The value at a field path of an error (`spec.items[0].name`); `None` when absent (or for
/// a path this reading cannot follow, such as a key with a dot in it).
pub fn value_at<'a>(obj: &'a Value, field: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for part in field.split('.') {
        let (name, indices) = part.split_once('[').map_or((part, ""), |(n, i)| (n, i));
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        for index in indices.split('[').filter(|i| !i.is_empty()) {
            cur = cur.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

/// Every violation of `schema` in `obj` (already pruned and defaulted).
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check(schema, obj, "", true, &mut errs);
    errs
}

/// How a value shows in messages (`"text"`, `3`, `"object"`).
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(_) => "object".into(),
        Value::Array(_) => "array".into(),
        other => other.to_string(),
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    match (want, type_of(v)) {
        ("", _) => true,
        ("number", "integer") => true,
        (w, got) => w == got,
    }
}

fn check(schema: &Value, v: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let field = if path.is_empty() { "<root>" } else { path };
    if v.is_null() {
        if !flag(schema, "nullable") && !root {
            errs.push(FieldError::invalid(
                field,
                "null",
                format!(
                    "{field} in body must be of type {}: \"null\"",
                    type_name(schema)
                ),
            ));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !matches!(type_of(v), "integer" | "string") {
            errs.push(FieldError::invalid(
                field,
                &shown(v),
                format!(
                    "{field} in body must be of type integer or string: \"{}\"",
                    type_of(v)
                ),
            ));
            return;
        }
    } else {
        let want = schema.get("type").and_then(Value::as_str).unwrap_or("");
        if !type_matches(want, v) {
            errs.push(FieldError::invalid(
                field,
                &shown(v),
                format!("{field} in body must be of type {want}: \"{}\"", type_of(v)),
            ));
            return;
        }
    }
    check_enum(schema, v, field, errs);
    check_bounds(schema, v, field, errs);
    match v {
        Value::Object(map) => {
            let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(r) {
                    errs.push(FieldError::required(join(path, r)));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, item) in map {
                if embedded && ROOT_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                    check(s, item, &join(path, k), false, errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(s, item, &format!("{path}[{i}]"), false, errs);
                }
            }
        }
        _ => {}
    }
}

fn type_name(schema: &Value) -> &str {
    schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
}

fn check_enum(schema: &Value, v: &Value, field: &str, errs: &mut Vec<FieldError>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if !allowed.contains(v) {
        let names: Vec<String> = allowed.iter().map(shown).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(field, &shown(v), &names));
    }
}

fn number(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn check_bounds(schema: &Value, v: &Value, field: &str, errs: &mut Vec<FieldError>) {
    let mut bad = |detail: String| errs.push(FieldError::invalid(field, &shown(v), detail));
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = number(schema, "minimum") {
                let exclusive = flag(schema, "exclusiveMinimum");
                if x < min || exclusive && x == min {
                    let op = if exclusive {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    bad(format!("{field} in body should be {op} {min}"));
                }
            }
            if let Some(max) = number(schema, "maximum") {
                let exclusive = flag(schema, "exclusiveMaximum");
                if x > max || exclusive && x == max {
                    let op = if exclusive {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    bad(format!("{field} in body should be {op} {max}"));
                }
            }
            if let Some(m) = number(schema, "multipleOf").filter(|m| *m > 0.0) {
                // Within rounding: 0.3 is a multiple of 0.1.
                let q = x / m;
                if (q - q.round()).abs() > 1e-9 * q.abs().max(1.0) {
                    bad(format!("{field} in body should be a multiple of {m}"));
                }
            }
        }
        Value::String(s) => {
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                if matches(p, s) == Some(false) {
                    bad(format!("{field} in body should match '{p}'"));
                }
            }
        }
        _ => {}
    }
    check_size(schema, v, field, errs);
}

/// Whether `s` matches `pattern` (None: not a pattern the regex engine takes). Compiled
/// patterns are kept: a schema's few patterns are checked on every write.
fn matches(pattern: &str, s: &str) -> Option<bool> {
    static COMPILED: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let mut compiled = COMPILED.get_or_init(Mutex::default).lock().unwrap();
    if compiled.len() > 4096 {
        compiled.clear();
    }
    compiled
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .as_ref()
        .map(|re| re.is_match(s))
}

/// `minLength`/`maxLength` of strings, `minItems`/`maxItems` of arrays,
/// `minProperties`/`maxProperties` of objects.
fn check_size(schema: &Value, v: &Value, field: &str, errs: &mut Vec<FieldError>) {
    let (n, min_key, max_key, unit) = match v {
        Value::String(s) => (s.chars().count(), "minLength", "maxLength", "chars"),
        Value::Array(a) => (a.len(), "minItems", "maxItems", "items"),
        Value::Object(m) => (m.len(), "minProperties", "maxProperties", "properties"),
        _ => return,
    };
    let n = n as f64;
    let detail = |min: bool, limit: f64| match (unit, min) {
        ("chars", true) => format!("{field} in body should be at least {limit} chars long"),
        ("chars", false) => format!("{field} in body may not be longer than {limit}"),
        (_, true) => format!("{field} in body should have at least {limit} {unit}"),
        (_, false) => format!("{field} in body should have at most {limit} {unit}"),
    };
    if let Some(m) = number(schema, min_key).filter(|m| n < *m) {
        errs.push(FieldError::invalid(field, &shown(v), detail(true, m)));
    }
    if let Some(m) = number(schema, max_key).filter(|m| n > *m) {
        errs.push(FieldError::invalid(field, &shown(v), detail(false, m)));
    }
}

/// The schema's errors as `path: message` lines (for tests and logs).
#[cfg(test)]
fn lines(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::display).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "pattern": "^[a-z]+(:[0-9.]+)?$"},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 5,
                                     "default": 1},
                        "mode": {"type": "string", "enum": ["fast", "safe"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "labels": {"type": "object",
                                   "additionalProperties": {"type": "string"}},
                        "extra": {"type": "object",
                                  "x-kubernetes-preserve-unknown-fields": true},
                        "items": {"type": "array", "maxItems": 2, "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string", "minLength": 2}}}},
                        "note": {"type": "string", "nullable": true},
                    },
                },
                "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
            },
        })
    }

    #[test]
    fn prunes_unknown_fields_and_defaults() {
        let mut obj = json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"image": "web", "typo": 1, "extra": {"free": {"form": true}, "unset": null},
                     "labels": {"a": "b"}, "items": [{"name": "ab", "nope": 1}],
                     "note": null, "mode": null},
            "other": true,
        });
        let dropped = prune(&schema(), &mut obj);
        assert_eq!(dropped, vec!["other", "spec.items[0].nope", "spec.typo"]);
        assert_eq!(obj["spec"]["replicas"], json!(1));
        assert_eq!(obj["spec"]["extra"]["free"]["form"], json!(true));
        assert_eq!(
            obj["spec"]["extra"].get("unset"),
            Some(&Value::Null),
            "unspecified"
        );
        assert_eq!(obj["spec"]["note"], Value::Null);
        assert!(obj["spec"].get("mode").is_none());
        assert_eq!(obj["metadata"]["name"], json!("w"));
        assert!(validate(&schema(), &obj).is_empty());
    }

    #[test]
    fn values_at_error_paths() {
        let obj = json!({"spec": {"items": [{"name": "a"}, {"tags": ["x", "y"]}]}});
        assert_eq!(value_at(&obj, "spec.items[0].name"), Some(&json!("a")));
        assert_eq!(value_at(&obj, "spec.items[1].tags[1]"), Some(&json!("y")));
        assert_eq!(value_at(&obj, "spec.owner"), None);
    }

    #[test]
    fn multiples_allow_rounding() {
        let s = json!({"type": "number", "multipleOf": 0.1});
        assert!(validate(&s, &json!(0.3)).is_empty());
        assert_eq!(validate(&s, &json!(0.35)).len(), 1);
    }

    #[test]
    fn reports_every_violation_with_its_path() {
        let obj = json!({
            "spec": {"replicas": "three", "mode": "slow", "port": true,
                     "labels": {"a": 1}, "image": "Web!",
                     "items": [{"name": "a"}, {}, {}]},
            "status": {"ok": "yes"},
        });
        let got = lines(&validate(&schema(), &obj));
        let want = [
            "spec.image: Invalid value: \"Web!\": spec.image in body should match \
             '^[a-z]+(:[0-9.]+)?$'",
            "spec.items: Invalid value: \"array\": spec.items in body should have at most 2 \
             items",
            "spec.items[0].name: Invalid value: \"a\": spec.items[0].name in body should be \
             at least 2 chars long",
            "spec.labels.a: Invalid value: \"1\": spec.labels.a in body must be of type \
             string: \"integer\"",
            "spec.mode: Unsupported value: \"slow\": supported values: \"fast\", \"safe\"",
            "spec.port: Invalid value: \"true\": spec.port in body must be of type integer \
             or string: \"boolean\"",
            "spec.replicas: Invalid value: \"three\": spec.replicas in body must be of type \
             integer: \"string\"",
            "status.ok: Invalid value: \"yes\": status.ok in body must be of type boolean: \
             \"string\"",
        ];
        assert_eq!(got, want);
        let missing = lines(&validate(&schema(), &json!({"spec": {"replicas": 9}})));
        assert_eq!(
            missing,
            [
                "spec.image: Required value",
                "spec.replicas: Invalid value: \"9\": spec.replicas in body should be less \
                 than or equal to 5"
            ]
        );
    }
}
