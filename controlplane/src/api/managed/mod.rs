//! Field ownership for server-side apply (`metadata.managedFields`), as the
//! kube-apiserver's field manager keeps it.
//!
//! - An apply by manager `m` owns exactly the fields of its configuration. A field it set
//!   before and leaves out now is removed from the object, unless another manager owns it.
//! - Applying a value different from the live one to a field another manager owns is a
//!   conflict (409), unless the apply forces it; forcing takes the field over. The same
//!   value is shared ownership.
//! - Any other write (PUT, PATCH, `/scale`) by manager `u` makes `u` the owner of the
//!   fields it changed, and takes them from everyone else.
//!
//! Tracking starts with the first apply to an object: until then an object has no
//! `managedFields`, and the first apply finds every field it has owned by
//! `before-first-apply`, as Kubernetes does for objects written before field management.

pub mod fieldset;

#[cfg(test)]
mod tests;

use serde_json::{json, Value};

use self::fieldset::{fields_of, FieldSet, Path};
use crate::api::error::ApiError;
use crate::api::meta;
use crate::api::patch::apply_strategic;

/// The owner of every field of an object that had no `managedFields` when first applied.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Where `kubectl apply` (client-side) keeps the configuration it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Who owns what: one entry of `managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    /// The subresource written through (`scale`), if any.
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// `"kubectl"`, or `"kubectl" with subresource "scale"`, as conflicts name owners.
    fn owner(&self) -> String {
        match &self.subresource {
            Some(s) => format!("\"{}\" with subresource \"{s}\"", self.manager),
            None => format!("\"{}\"", self.manager),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_json(),
        });
        if let Some(s) = &self.subresource {
            v["subresource"] = json!(s);
        }
        v
    }

    fn from_json(v: &Value) -> Option<Entry> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Some(Entry {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            time: s("time"),
            subresource: v
                .get("subresource")
                .and_then(Value::as_str)
                .map(String::from),
            fields: FieldSet::from_json(v.get("fieldsV1")?).ok()?,
        })
    }
}

/// A field an apply would change that another manager owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The owner, as [`Entry::owner`] words it.
    pub owner: String,
    pub manager: String,
    pub subresource: Option<String>,
    pub api_version: String,
    pub path: Path,
}

/// Who writes, in which API version (`apps/v1`).
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    /// The subresource written through (`scale`), if any.
    pub subresource: Option<&'a str>,
}

/// `list` as entries, if it is a list of valid ones.
fn parse_all(list: &Value) -> Option<Vec<Entry>> {
    list.as_array()?.iter().map(Entry::from_json).collect()
}

/// The `managedFields` of `obj`; `None` when it has none (not tracked yet).
pub fn entries(obj: &Value) -> Option<Vec<Entry>> {
    let list = obj.pointer("/metadata/managedFields")?.as_array()?;
    (!list.is_empty()).then(|| list.iter().filter_map(Entry::from_json).collect())
}

fn store(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    let m = meta::meta_mut(obj);
    if list.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(list));
    }
}

/// Server-side apply of `applied` by `w` onto `live` (`None`: the object does not exist
/// yet). Returns the object to write, its `managedFields` updated; a 409 naming the
/// conflicts when there are any and `force` is not set.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    w: Writer<'_>,
    force: bool,
) -> Result<Value, ApiError> {
    let mut applied = applied.clone();
    meta::meta_mut(&mut applied).remove("managedFields");
    let new_set = fields_of(&applied);
    let mine = Entry {
        manager: w.manager.to_string(),
        operation: "Apply".into(),
        api_version: w.api_version.to_string(),
        time: meta::now(),
        subresource: None,
        fields: new_set.clone(),
    };
    let Some(live) = live else {
        store(&mut applied, &[mine]);
        return Ok(applied);
    };
    let mut owners = entries(live).unwrap_or_else(|| first_owners(live, w));
    let previous = owners
        .iter()
        .position(|e| e.is(w.manager, "Apply", None))
        .map(|i| owners.remove(i).fields)
        .unwrap_or_default();

    let conflicts = conflicts(live, &applied, &new_set, &owners);
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(&conflicts));
        }
        for c in &conflicts {
            for e in owners
                .iter_mut()
                .filter(|e| e.manager == c.manager && e.subresource == c.subresource)
            {
                e.fields.remove(&c.path);
            }
        }
    }

    let mut merged = live.clone();
    apply_strategic(&mut merged, &applied).map_err(|e| {
        ApiError::new(
            422,
            "Invalid",
            format!("the configuration could not be applied: {e}"),
        )
    })?;
    // Lists and maps that are one value take the applied value whole.
    for p in new_set.paths() {
        if let Some(v) = fieldset::get(&applied, &p) {
            // An empty map is a field the configuration owns, not one it clears.
            if v.as_object().is_some_and(|m| !m.is_empty()) && !new_set.has_under(&p) {
                fieldset::set(&mut merged, &p, v.clone());
            }
        }
    }
    // What this manager set before and no longer applies goes, unless someone else owns it.
    let mut others = FieldSet::default();
    for e in &owners {
        others.union(&e.fields);
    }
    let mut gone: Vec<Path> = Vec::new();
    for p in previous.difference(&new_set).paths() {
        if gone.iter().any(|g| p.starts_with(g)) {
            continue;
        }
        if !others.contains(&p)
            && !others.has_under(&p)
            && !new_set.has_under(&p)
            && !fieldset::is_item_key(&p)
        {
            fieldset::remove(&mut merged, &p);
            gone.push(p);
        }
    }
    // Nothing new: the object stays as it is, timestamps included (no write).
    if unchanged_but_meta(live, &merged) && previous == new_set && conflicts.is_empty() {
        return Ok(live.clone());
    }
    owners.push(mine);
    store(&mut merged, &owners);
    Ok(merged)
}

/// The owners of an object not tracked yet: `before-first-apply` owns every field; but
/// when kubectl itself applies an object it applied client-side before, it owns what its
/// last applied configuration set (as kubectl's own migration to server-side apply makes
/// it), so that leaving a field out removes it and changing one is no conflict.
fn first_owners(live: &Value, w: Writer<'_>) -> Vec<Entry> {
    let entry = |manager: &str, operation: &str, fields: FieldSet| Entry {
        manager: manager.into(),
        operation: operation.into(),
        api_version: w.api_version.to_string(),
        time: meta::now(),
        subresource: None,
        fields,
    };
    let mut rest = fields_of(live);
    let mut owners = Vec::new();
    let last_applied = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    if let Some(last) = last_applied.filter(|_| w.manager == "kubectl") {
        let by_kubectl = fields_of(&last).intersection(&rest);
        rest = rest.difference(&by_kubectl);
        owners.push(entry("kubectl", "Apply", by_kubectl));
    }
    owners.push(entry(BEFORE_FIRST_APPLY, "Update", rest));
    owners
}

/// Whether `a` and `b` differ in nothing but their `managedFields`, and `a` has some.
fn unchanged_but_meta(a: &Value, b: &Value) -> bool {
    if a.pointer("/metadata/managedFields").is_none() {
        return false;
    }
    let (mut a, mut b) = (a.clone(), b.clone());
    meta::meta_mut(&mut a).remove("managedFields");
    meta::meta_mut(&mut b).remove("managedFields");
    a == b
}

/// The fields of `new_set` whose applied value differs from the live one and that another
/// manager owns. Items of keyed lists are not values: only their fields conflict.
fn conflicts(live: &Value, applied: &Value, new_set: &FieldSet, owners: &[Entry]) -> Vec<Conflict> {
    let mut out = Vec::new();
    for p in new_set.paths() {
        if p.last()
            .is_some_and(|el| el.starts_with("k:") || el.starts_with("v:"))
        {
            continue;
        }
        let (now, wanted) = (fieldset::get(live, &p), fieldset::get(applied, &p));
        if now.is_none() || now == wanted {
            continue;
        }
        for e in owners.iter().filter(|e| e.fields.contains(&p)) {
            out.push(Conflict {
                owner: e.owner(),
                manager: e.manager.clone(),
                subresource: e.subresource.clone(),
                api_version: e.api_version.clone(),
                path: p.clone(),
            });
        }
    }
    out
}

/// Records a write other than an apply (`cur` → `new`) by `w`: once an object is tracked,
/// `w` owns the fields the write changed and nobody owns the ones it removed. A write that
/// sends `managedFields` of its own (valid ones) has them taken as the owners before its
/// changes are recorded; one that sends none keeps the stored ones.
pub fn record_update(cur: &Value, new: &mut Value, w: Writer<'_>) {
    let had = cur.pointer("/metadata/managedFields");
    let given = new.pointer("/metadata/managedFields");
    let owners = match given {
        Some(g) if Some(g) != had => parse_all(g).or_else(|| entries(cur)),
        _ => entries(cur),
    };
    let Some(mut owners) = owners else {
        meta::meta_mut(new).remove("managedFields");
        return;
    };
    if given.is_none() || given != had {
        store(new, &owners);
    }
    let (old_set, new_set) = (fields_of(cur), fields_of(new));
    let mut changed = FieldSet::default();
    for p in new_set.paths() {
        let item = p
            .last()
            .is_some_and(|el| el.starts_with("k:") || el.starts_with("v:"));
        let differs = if item {
            !old_set.contains(&p)
        } else {
            fieldset::get(cur, &p) != fieldset::get(new, &p)
        };
        if differs {
            changed.insert(&p);
        }
    }
    let removed = old_set.difference(&new_set);
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    for e in owners.iter_mut() {
        if !e.is(w.manager, "Update", w.subresource) {
            e.fields = e.fields.difference(&changed);
        }
        e.fields = e.fields.difference(&removed);
    }
    match owners
        .iter_mut()
        .find(|e| e.is(w.manager, "Update", w.subresource))
    {
        Some(e) => {
            e.fields.union(&changed);
            e.time = meta::now();
            e.api_version = w.api_version.to_string();
        }
        None => owners.push(Entry {
            manager: w.manager.to_string(),
            operation: "Update".into(),
            api_version: w.api_version.to_string(),
            time: meta::now(),
            subresource: w.subresource.map(String::from),
            fields: changed,
        }),
    }
    store(new, &owners);
}

/// The 409 of an apply that conflicts, as Kubernetes words it.
fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let n = conflicts.len();
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with {} using {}: {}",
                c.owner,
                c.api_version,
                fieldset::display(&c.path)
            )
        })
        .collect();
    let message = if n == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {} using {}", c.owner, c.api_version),
                "field": fieldset::display(&c.path),
            })
        })
        .collect();
    let mut e = ApiError::new(409, "Conflict", message);
    e.details = Some(json!({ "causes": causes }));
    e
}
