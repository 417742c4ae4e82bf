//! Sets of an object's fields, as server-side apply records who owns what in
//! `metadata.managedFields` (`fieldsV1`).
//!
//! A path is a list of elements: `f:<field>`, `k:<key object>` (an item of a list merged by
//! key, such as a container by `name`) and `v:<value>` (an item of a list merged as a set).
//! A set holds paths: the leaves an object sets (scalars, lists replaced as a whole, atomic
//! maps, empty maps) and the keyed or set items it has. In `fieldsV1` a leaf is `{}` and an
//! item that also has fields inside it carries `".": {}`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::api::patch::strategic::{strategy, Strategy};

/// One step of a path (`f:spec`, `k:{"name":"app"}`, `v:"x"`).
pub type Element = String;

/// Fields from the root of an object.
pub type Path = Vec<Element>;

/// Maps that are one value: a selector replaces the previous one, keys are not merged.
const ATOMIC_MAPS: &[&str] = &["selector", "nodeSelector"];

/// The metadata fields clients own; the rest is the server's.
const OWNED_META: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// A set of paths, as a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// The path that leads here is in the set.
    member: bool,
    children: BTreeMap<Element, FieldSet>,
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    pub fn insert(&mut self, path: &[Element]) {
        match path.split_first() {
            None => self.member = true,
            Some((first, rest)) => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    fn node(&self, path: &[Element]) -> Option<&FieldSet> {
        match path.split_first() {
            None => Some(self),
            Some((first, rest)) => self.children.get(first)?.node(rest),
        }
    }

    pub fn contains(&self, path: &[Element]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether a path strictly below `path` is in the set.
    pub fn has_under(&self, path: &[Element]) -> bool {
        self.node(path).is_some_and(|n| !n.children.is_empty())
    }

    /// Takes `path` out of the set (what lies below it stays); prunes what is left empty.
    pub fn remove(&mut self, path: &[Element]) {
        match path.split_first() {
            None => self.member = false,
            Some((first, rest)) => {
                if let Some(child) = self.children.get_mut(first) {
                    child.remove(rest);
                    if child.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    /// Every path of the set, parents before their children.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (el, child) in &self.children {
            prefix.push(el.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (el, child) in &other.children {
            self.children.entry(el.clone()).or_default().union(child);
        }
    }

    /// The paths of `self` that `other` does not hold.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::default();
        for p in self.paths().into_iter().filter(|p| !other.contains(p)) {
            out.insert(&p);
        }
        out
    }

    /// The paths both sets hold.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::default();
        for p in self.paths().into_iter().filter(|p| other.contains(p)) {
            out.insert(&p);
        }
        out
    }

    /// The `fieldsV1` form.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (el, child) in &self.children {
            m.insert(el.clone(), child.to_json());
        }
        Value::Object(m)
    }

    /// Reads the `fieldsV1` form.
    pub fn from_json(v: &Value) -> Result<FieldSet, String> {
        let m = v
            .as_object()
            .ok_or_else(|| format!("fieldsV1 must be an object, not {v}"))?;
        let mut set = FieldSet {
            member: m.is_empty() || m.contains_key("."),
            children: BTreeMap::new(),
        };
        for (k, child) in m.iter().filter(|(k, _)| *k != ".") {
            if !(k.starts_with("f:") || k.starts_with("k:") || k.starts_with("v:")) {
                return Err(format!("invalid fieldsV1 element {k:?}"));
            }
            set.children.insert(k.clone(), FieldSet::from_json(child)?);
        }
        Ok(set)
    }
}

/// The fields `obj` sets that its writers own: not `apiVersion`, `kind`, `status`, nor the
/// server's metadata (name, uid, resourceVersion, ...).
pub fn fields_of(obj: &Value) -> FieldSet {
    let mut set = FieldSet::default();
    let Some(top) = obj.as_object() else {
        return set;
    };
    let (mut names, mut path) = (Vec::new(), Vec::new());
    for (k, v) in top {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if OWNED_META.contains(&mk.as_str()) {
                        names.extend(["metadata".to_string(), mk.clone()]);
                        path.extend([field("metadata"), field(mk)]);
                        walk(mv, &mut names, &mut path, &mut set);
                        names.clear();
                        path.clear();
                    }
                }
            }
            _ => {
                names.push(k.clone());
                path.push(field(k));
                walk(v, &mut names, &mut path, &mut set);
                names.pop();
                path.pop();
            }
        }
    }
    set
}

fn field(name: &str) -> Element {
    format!("f:{name}")
}

fn walk(v: &Value, names: &mut Vec<String>, path: &mut Path, set: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() && !is_atomic_map(names) => {
            walk_fields(m, names, path, set)
        }
        Value::Array(items) => match strategy(names) {
            Strategy::MergeKey(key) if items.iter().all(|i| i.get(key).is_some()) => {
                for item in items {
                    path.push(format!("k:{}", item_key(item, key)));
                    set.insert(path);
                    if let Some(m) = item.as_object() {
                        walk_fields(m, names, path, set);
                    }
                    path.pop();
                }
            }
            Strategy::PrimitiveSet => {
                for item in items {
                    path.push(format!("v:{item}"));
                    set.insert(path);
                    path.pop();
                }
            }
            _ => set.insert(path),
        },
        _ => set.insert(path),
    }
}

/// The key object of a keyed item: its merge key, and for ports the protocol too (53/TCP
/// and 53/UDP are two items).
fn item_key(item: &Value, key: &str) -> Value {
    let mut k = Map::new();
    k.insert(key.to_string(), item[key].clone());
    if matches!(key, "port" | "containerPort") {
        if let Some(p) = item.get("protocol") {
            k.insert("protocol".into(), p.clone());
        }
    }
    Value::Object(k)
}

fn walk_fields(
    m: &Map<String, Value>,
    names: &mut Vec<String>,
    path: &mut Path,
    set: &mut FieldSet,
) {
    for (k, child) in m {
        names.push(k.clone());
        path.push(field(k));
        walk(child, names, path, set);
        names.pop();
        path.pop();
    }
}

fn is_atomic_map(names: &[String]) -> bool {
    names
        .last()
        .is_some_and(|n| ATOMIC_MAPS.contains(&n.as_str()))
}

/// Whether `path` is a key field of a keyed item (`k:{"name":"c"}` / `f:name`): it goes
/// with its item, never alone.
pub fn is_item_key(path: &[Element]) -> bool {
    let [.., item, last] = path else {
        return false;
    };
    let (Some(key), Some(f)) = (item.strip_prefix("k:"), last.strip_prefix("f:")) else {
        return false;
    };
    serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(f))
}

/// The item of `list` a `k:`/`v:` element names.
fn position(list: &[Value], el: &str) -> Option<usize> {
    if let Some(key) = el.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        list.iter()
            .position(|i| key.iter().all(|(k, v)| i.get(k) == Some(v)))
    } else {
        let want: Value = serde_json::from_str(el.strip_prefix("v:")?).ok()?;
        list.iter().position(|i| *i == want)
    }
}

/// The value at `path` in `obj`.
pub fn get<'a>(obj: &'a Value, path: &[Element]) -> Option<&'a Value> {
    let mut v = obj;
    for el in path {
        v = match el.strip_prefix("f:") {
            Some(f) => v.get(f)?,
            None => &v.as_array()?[position(v.as_array()?, el)?],
        };
    }
    Some(v)
}

fn get_mut<'a>(obj: &'a mut Value, path: &[Element]) -> Option<&'a mut Value> {
    let mut v = obj;
    for el in path {
        v = match el.strip_prefix("f:") {
            Some(f) => v.get_mut(f)?,
            None => {
                let i = position(v.as_array()?, el)?;
                &mut v.as_array_mut()?[i]
            }
        };
    }
    Some(v)
}

/// Removes the field or item at `path` from `obj`, if there.
pub fn remove(obj: &mut Value, path: &[Element]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let Some(parent) = get_mut(obj, parent) else {
        return;
    };
    match last.strip_prefix("f:") {
        Some(f) => {
            if let Some(m) = parent.as_object_mut() {
                m.remove(f);
            }
        }
        None => {
            if let Some(i) = parent.as_array().and_then(|l| position(l, last)) {
                parent.as_array_mut().expect("an array").remove(i);
            }
        }
    }
}

/// Sets the value at `path` in `obj`, if its parent exists.
pub fn set(obj: &mut Value, path: &[Element], value: Value) {
    if let Some(slot) = get_mut(obj, path) {
        *slot = value;
    }
}

/// A path as Kubernetes prints it in a conflict: `.spec.containers[name="app"].image`.
pub fn display(path: &[Element]) -> String {
    let mut out = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}
