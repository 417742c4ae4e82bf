//! RFC 6902 JSON patch: add, remove, replace, move, copy, test. All-or-nothing: the target is
//! changed only when every operation succeeds.

use serde_json::Value;

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Split a JSON pointer into its parent pointer and last token.
fn split(path: &str) -> Result<(&str, String), String> {
    if path.is_empty() {
        return Err("cannot operate on the document root".into());
    }
    let idx = path
        .rfind('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok((&path[..idx], unescape(&path[idx + 1..])))
}

fn index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let i: usize = token
        .parse()
        .map_err(|_| format!("invalid array index {token:?}"))?;
    if i > len || (!allow_end && i == len) {
        return Err(format!("array index {i} out of bounds"));
    }
    Ok(i)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parent, last) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(last, value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = index(&last, a.len(), true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!("path {parent:?} does not exist")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(m)) => m
            .remove(&last)
            .ok_or_else(|| format!("path {path:?} does not exist")),
        Some(Value::Array(a)) => {
            let i = index(&last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(format!("path {parent:?} does not exist")),
    }
}

fn get_str<'a>(op: &'a Value, field: &str) -> Result<&'a str, String> {
    op.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing {field:?} in JSON patch operation"))
}

fn value_of(op: &Value) -> Result<Value, String> {
    op.get("value")
        .cloned()
        .ok_or_else(|| "missing \"value\" in JSON patch operation".to_string())
}

fn apply_one(doc: &mut Value, op: &Value) -> Result<(), String> {
    let path = get_str(op, "path")?;
    match get_str(op, "op")? {
        "add" => add(doc, path, value_of(op)?),
        "remove" => remove(doc, path).map(|_| ()),
        "replace" => {
            let target = doc
                .pointer_mut(path)
                .ok_or_else(|| format!("path {path:?} does not exist"))?;
            *target = value_of(op)?;
            Ok(())
        }
        "move" => {
            let v = remove(doc, get_str(op, "from")?)?;
            add(doc, path, v)
        }
        "copy" => {
            let from = get_str(op, "from")?;
            let v = doc
                .pointer(from)
                .cloned()
                .ok_or_else(|| format!("path {from:?} does not exist"))?;
            add(doc, path, v)
        }
        "test" => {
            if doc.pointer(path) == Some(&value_of(op)?) {
                Ok(())
            } else {
                Err(format!("test failed at {path:?}"))
            }
        }
        other => Err(format!("unknown JSON patch operation {other:?}")),
    }
}

/// Apply a JSON patch document (an array of operations).
pub fn apply(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    let mut doc = target.clone();
    for op in ops {
        apply_one(&mut doc, op)?;
    }
    *target = doc;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations() {
        let mut v = json!({"spec": {"replicas": 1, "l": [1, 2]}, "metadata": {"labels": {}}});
        apply(
            &mut v,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/spec/l/-", "value": 3},
                {"op": "remove", "path": "/spec/l/0"},
                {"op": "add", "path": "/metadata/labels/a~1b", "value": "x"},
                {"op": "test", "path": "/spec/replicas", "value": 3},
            ]),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"spec": {"replicas": 3, "l": [2, 3]}, "metadata": {"labels": {"a/b": "x"}}})
        );
        let before = v.clone();
        assert!(apply(&mut v, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert_eq!(v, before);
    }
}
