//! ControllerRevisions (what `kubectl rollout history` lists for StatefulSets and
//! DaemonSets, and `rollout undo` patches back): one per pod template of an owner, named
//! `<owner>-<hash>` (the Deployment controller's template hash) with increasing `revision`
//! numbers, holding the template as Kubernetes does (`data.spec.template` with
//! `$patch: replace`). Going back to an older template makes its revision the newest
//! again; revisions no pod uses are kept up to `revisionHistoryLimit` (the newest), the
//! rest deleted.

use serde_json::{json, Value};

use super::cache::Cache;
use super::owners::{self, controller_ref, controller_ref_to};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::{DeleteOptions, Objects, WriteOptions};
use crate::api::registry::ResourceInfo;
use crate::controllers::deployment::hash::template_hash;

/// The label holding a ControllerRevision's hash.
pub const HASH: &str = "controller.kubernetes.io/hash";
/// The label naming the revision a pod was made from (StatefulSets, DaemonSets).
pub const REVISION_LABEL: &str = "controller-revision-hash";

pub fn template(set: &Value) -> Value {
    set.pointer("/spec/template").cloned().unwrap_or(json!({}))
}

/// The name and hash of the revision of the set's current template.
pub fn update_name(set: &Value) -> (String, String) {
    let h = template_hash(&template(set));
    (format!("{}-{h}", meta::name(set)), h)
}

/// The pod template a ControllerRevision holds.
pub fn template_of(rev: &Value) -> Value {
    let mut t = rev
        .pointer("/data/spec/template")
        .cloned()
        .unwrap_or(json!({}));
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    t
}

pub fn number(rev: &Value) -> i64 {
    rev.get("revision").and_then(Value::as_i64).unwrap_or(0)
}

/// The ControllerRevision of `set`'s template, numbered `number`.
fn new_revision(set: &Value, oref: Value, number: i64) -> Value {
    let (name, hash) = update_name(set);
    let mut t = template(set);
    let mut labels = t.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
    labels[HASH] = json!(hash);
    t["$patch"] = json!("replace");
    json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": name, "labels": labels, "ownerReferences": [oref]},
        "data": {"spec": {"template": t}},
        "revision": number,
    })
}

/// The revisions beyond `limit` that are not in `keep`, oldest first.
pub fn surplus<'a>(revs: &'a [Value], keep: &[&str], limit: i64) -> Vec<&'a Value> {
    let mut idle: Vec<&Value> = revs
        .iter()
        .filter(|r| !keep.contains(&meta::name(r)))
        .collect();
    idle.sort_by_key(|r| number(r));
    let n = idle.len().saturating_sub(limit.max(0) as usize);
    idle.truncate(n);
    idle
}

/// The ControllerRevisions `owner` controls, with the one of its current template created
/// (or renumbered as the newest) if needed.
pub async fn sync(
    objects: &Objects,
    revisions: &Cache,
    (owner_info, owner): (&ResourceInfo, &Value),
) -> Result<Vec<Value>, ControllerError> {
    let (info, ns) = (revisions.info, owners::namespace(owner));
    let uid = owners::uid(owner);
    let owned = owners::controlled(revisions, owner);
    let (update, _) = update_name(owner);
    let newest = owned.iter().map(number).max().unwrap_or(0);
    match owned.iter().find(|r| meta::name(r) == update) {
        // Back to an older template: it becomes the newest revision again.
        Some(r) if number(r) < newest => {
            let patch = json!({ "revision": newest + 1 });
            owners::merge_patch(objects, info, r, &patch, None).await?;
        }
        Some(_) => {}
        None => {
            let rev = new_revision(owner, controller_ref_to(owner_info, owner), newest + 1);
            match objects.create(info, ns, rev, WriteOptions::default()).await {
                Ok(_) => {}
                // Not in the cache yet, or someone else's.
                Err(e) if e.code == 409 => {
                    let cur = objects.get(info, ns, &update).await?;
                    let ours = controller_ref(&cur)
                        .is_some_and(|c| c.get("uid").and_then(Value::as_str) == Some(uid));
                    if !ours {
                        return Err(ControllerError::Invalid(format!(
                            "ControllerRevision {update} belongs to another owner"
                        )));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(owned)
}

/// Deletes the revisions of `owned` beyond the owner's `revisionHistoryLimit` (default
/// 10) that are not in `keep`.
pub async fn trim(
    objects: &Objects,
    (info, owner): (&ResourceInfo, &Value),
    owned: &[Value],
    keep: &[&str],
) -> Result<(), ControllerError> {
    let limit = owner
        .pointer("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    for r in surplus(owned, keep, limit) {
        let opts = DeleteOptions {
            precondition_uid: Some(owners::uid(r).to_string()),
            ..Default::default()
        };
        match objects
            .delete(info, owners::namespace(owner), meta::name(r), &opts)
            .await
        {
            Err(e) if e.code != 404 => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_holds_the_template_and_is_named_for_its_hash() {
        let set = json!({"metadata": {"name": "web"}, "spec": {"template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}});
        let rev = new_revision(&set, json!({"uid": "u"}), 3);
        let (name, hash) = update_name(&set);
        assert_eq!(name, format!("web-{hash}"));
        assert_eq!(rev["metadata"]["name"], json!(name));
        assert_eq!(rev["metadata"]["labels"], json!({"app": "web", HASH: hash}));
        assert_eq!(rev["data"]["spec"]["template"]["$patch"], "replace");
        assert_eq!(rev["revision"], 3);
        assert_eq!(template_of(&rev), set["spec"]["template"]);
        let mut other = set.clone();
        other["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_ne!(update_name(&other).0, name);
    }

    #[test]
    fn history_keeps_used_revisions_and_the_newest() {
        let r = |n: &str, number: i64| json!({"metadata": {"name": n}, "revision": number});
        let revs = [r("a", 1), r("b", 2), r("c", 3), r("d", 4), r("e", 5)];
        let gone: Vec<&str> = surplus(&revs, &["a", "e"], 1)
            .into_iter()
            .map(meta::name)
            .collect();
        assert_eq!(gone, ["b", "c"]);
        assert!(surplus(&revs, &[], 10).is_empty());
    }
}
