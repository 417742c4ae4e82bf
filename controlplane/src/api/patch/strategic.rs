//! Strategic merge patch, as Kubernetes applies it to its built-in types.
//!
//! Maps merge like a JSON merge patch. Lists follow the field's patch strategy: lists with a
//! merge key (containers by `name`, container ports by `containerPort`, conditions by `type`,
//! ...) merge element-wise; `finalizers` merge as a set; every other list is replaced.
//! Directives: `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<field>`,
//! `$deleteFromPrimitiveList/<field>`.

use serde_json::{Map, Value};

/// How a list field merges (also how server-side apply tracks its items).
pub(crate) enum Strategy {
    /// Items are objects merged by this key.
    MergeKey(&'static str),
    /// Items are primitives, merged as a set.
    PrimitiveSet,
    /// The list is one value, replaced as a whole.
    Replace,
}

/// Patch strategies of the core types' list fields, by the trailing field names of the path
/// (list indices left out). Two-segment entries win over one-segment ones.
const BY_TWO: &[(&str, &str, &str)] = &[
    ("containers", "ports", "containerPort"),
    ("initContainers", "ports", "containerPort"),
    ("ephemeralContainers", "ports", "containerPort"),
    ("spec", "ports", "port"),
    ("status", "addresses", "type"),
    ("status", "podIPs", "ip"),
    ("status", "hostIPs", "ip"),
];

const BY_ONE: &[(&str, &str)] = &[
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("env", "name"),
    ("volumes", "name"),
    ("volumeMounts", "mountPath"),
    ("volumeDevices", "devicePath"),
    ("conditions", "type"),
    ("imagePullSecrets", "name"),
    ("ownerReferences", "uid"),
    ("hostAliases", "ip"),
    ("topologySpreadConstraints", "topologyKey"),
    ("resourceClaims", "name"),
    ("schedulingGates", "name"),
    ("secrets", "name"),
];

/// The strategy of the list at `path` (field names from the root, list indices left out).
pub(crate) fn strategy(path: &[String]) -> Strategy {
    let n = path.len();
    if n >= 2 {
        for (a, b, key) in BY_TWO {
            if path[n - 2] == *a && path[n - 1] == *b {
                return Strategy::MergeKey(key);
            }
        }
    }
    match path.last().map(String::as_str) {
        Some("finalizers") if n == 2 && path[0] == "metadata" => Strategy::PrimitiveSet,
        Some(last) => BY_ONE
            .iter()
            .find(|(f, _)| *f == last)
            .map_or(Strategy::Replace, |(_, k)| Strategy::MergeKey(k)),
        None => Strategy::Replace,
    }
}

/// A patch value with every directive removed (what gets stored when there is no original).
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|v| v.get("$patch").is_none())
                .map(strip)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_map(orig: &mut Map<String, Value>, patch: &Map<String, Value>, path: &mut Vec<String>) {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *orig = strip(&Value::Object(patch.clone()))
                .as_object()
                .cloned()
                .unwrap_or_default();
            return;
        }
        Some("delete") => {
            orig.clear();
            return;
        }
        _ => {}
    }
    let mut orders = Vec::new();
    for (key, pv) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            orders.push((field.to_string(), pv));
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (orig.get_mut(field), pv.as_array()) {
                list.retain(|v| !del.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        path.push(key.clone());
        match pv {
            Value::Null => {
                orig.remove(key);
            }
            Value::Object(pm) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    orig.remove(key);
                } else {
                    let slot = orig
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    merge_map(slot.as_object_mut().expect("object"), pm, path);
                }
            }
            Value::Array(pl) => {
                let merged = merge_list(orig.remove(key), pl, path);
                orig.insert(key.clone(), merged);
            }
            other => {
                orig.insert(key.clone(), other.clone());
            }
        }
        path.pop();
    }
    for (field, order) in orders {
        path.push(field.clone());
        if let (Strategy::MergeKey(mk), Some(Value::Array(list)), Some(order)) =
            (strategy(path), orig.get_mut(&field), order.as_array())
        {
            reorder(list, order, mk);
        }
        path.pop();
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        orig.retain(|k, _| keep.iter().any(|r| r.as_str() == Some(k)));
    }
}

/// Put the elements named in `order` first, in that order; the rest keep their order after.
fn reorder(list: &mut Vec<Value>, order: &[Value], mk: &str) {
    let mut rest = std::mem::take(list);
    for o in order {
        if let Some(pos) = rest.iter().position(|v| v.get(mk) == o.get(mk)) {
            list.push(rest.remove(pos));
        }
    }
    list.append(&mut rest);
}

fn merge_list(orig: Option<Value>, patch: &[Value], path: &mut Vec<String>) -> Value {
    let replace_all = patch
        .iter()
        .any(|v| v.get("$patch").and_then(Value::as_str) == Some("replace"));
    let mut list = match orig {
        Some(Value::Array(a)) if !replace_all => a,
        _ => Vec::new(),
    };
    match strategy(path) {
        Strategy::Replace => return strip(&Value::Array(patch.to_vec())),
        Strategy::PrimitiveSet => {
            for v in patch {
                if !list.contains(v) {
                    list.push(v.clone());
                }
            }
        }
        Strategy::MergeKey(mk) => {
            for pv in patch {
                let Some(pm) = pv.as_object() else {
                    list.push(pv.clone());
                    continue;
                };
                let directive = pm.get("$patch").and_then(Value::as_str);
                if directive == Some("replace") {
                    continue;
                }
                let key = pm.get(mk);
                let pos = key.and_then(|k| list.iter().position(|o| o.get(mk) == Some(k)));
                match (directive, pos) {
                    (Some("delete"), Some(i)) => {
                        list.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => {
                        if let Some(om) = list[i].as_object_mut() {
                            merge_map(om, pm, path);
                        }
                    }
                    (_, None) => list.push(strip(pv)),
                }
            }
        }
    }
    Value::Array(list)
}

/// Apply a strategic merge patch to `target`.
pub fn apply(target: &mut Value, patch: &Value) -> Result<(), String> {
    let pm = patch
        .as_object()
        .ok_or("a strategic merge patch must be a JSON object")?;
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    merge_map(target.as_object_mut().expect("object"), pm, &mut Vec::new());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name() {
        let mut pod = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "b", "image": "y"}],
            "tolerations": [{"key": "k"}]}});
        apply(
            &mut pod,
            &json!({"metadata": {"finalizers": ["b"]}, "spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [
                    {"name": "a", "ports": [{"containerPort": 81}]},
                    {"name": "b", "$patch": "delete"},
                    {"name": "c", "image": "z"}],
                "tolerations": [{"key": "j"}]}}),
        )
        .unwrap();
        assert_eq!(
            pod,
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"containers": [
                {"name": "a", "image": "x",
                 "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 81}]},
                {"name": "c", "image": "z"}],
                "tolerations": [{"key": "j"}]}})
        );
    }

    #[test]
    fn service_ports_and_retain_keys() {
        let mut svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}],
                             "strategy": {"type": "RollingUpdate", "rollingUpdate": {}}}});
        apply(
            &mut svc,
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}],
                    "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        )
        .unwrap();
        assert_eq!(
            svc,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}],
                   "strategy": {"type": "Recreate"}}})
        );
    }
}
