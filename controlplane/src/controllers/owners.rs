//! ownerReferences: reading the controller reference, building one, and the JSON merge
//! patches that adopt, release or orphan a dependent (with a resourceVersion precondition).

use serde_json::{json, Value};

use crate::api::meta;
use crate::api::objects::{DeleteOptions, ListOptions, Objects, WriteOptions};
use crate::api::patch::PatchType;
use crate::api::registry::{ResourceInfo, Subresource};

use super::cache::Cache;
use super::ControllerError;

pub fn uid(obj: &Value) -> &str {
    meta::str_field(obj, "uid").unwrap_or("")
}

pub fn namespace(obj: &Value) -> Option<&str> {
    meta::str_field(obj, "namespace").filter(|n| !n.is_empty())
}

pub fn owner_refs(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The owner reference with `controller: true`.
pub fn controller_ref(obj: &Value) -> Option<Value> {
    owner_refs(obj)
        .into_iter()
        .find(|r| r.get("controller") == Some(&json!(true)))
}

/// The objects in `cache` (in `owner`'s namespace) whose controller is `owner` (by uid).
pub fn controlled(cache: &Cache, owner: &Value) -> Vec<Value> {
    let uid = uid(owner);
    cache
        .list(namespace(owner))
        .into_iter()
        .filter(|o| {
            controller_ref(o).is_some_and(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        })
        .collect()
}

/// A controller reference to `owner` (blocking its foreground deletion).
pub fn controller_ref_to(info: &ResourceInfo, owner: &Value) -> Value {
    json!({
        "apiVersion": info.api_version(),
        "kind": info.kind,
        "name": meta::name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Merge-patches `obj` where it lives (its namespace and name), on the
/// subresource `sub` if given; returns the object as written.
pub async fn merge_patch(
    objects: &Objects,
    info: &ResourceInfo,
    obj: &Value,
    patch: &Value,
    sub: Option<Subresource>,
) -> Result<Value, ControllerError> {
    let w = objects
        .patch(
            info,
            namespace(obj),
            meta::name(obj),
            PatchType::Merge,
            patch,
            sub,
            WriteOptions::default(),
        )
        .await?;
    Ok(w.object)
}

/// Replace the ownerReferences of `obj` by `refs` (conditional on its resourceVersion).
pub async fn set_owner_refs(
    objects: &Objects,
    info: &ResourceInfo,
    obj: &Value,
    refs: Vec<Value>,
) -> Result<Value, ControllerError> {
    let rv = obj.pointer("/metadata/resourceVersion").cloned();
    let refs = if refs.is_empty() {
        Value::Null
    } else {
        json!(refs)
    };
    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rv}});
    merge_patch(objects, info, obj, &patch, None).await
}

/// Drop the references to `owner_uid` from `obj`.
pub async fn release(
    objects: &Objects,
    info: &ResourceInfo,
    obj: &Value,
    owner_uid: &str,
) -> Result<Value, ControllerError> {
    let refs = owner_refs(obj)
        .into_iter()
        .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
        .collect();
    set_owner_refs(objects, info, obj, refs).await
}

/// Remove `finalizer` from `obj` (conditional on its resourceVersion).
pub async fn remove_finalizer(
    objects: &Objects,
    info: &ResourceInfo,
    obj: &Value,
    finalizer: &str,
) -> Result<(), ControllerError> {
    let rest: Vec<String> = meta::finalizers(obj)
        .into_iter()
        .filter(|f| f != finalizer)
        .collect();
    let rest = if rest.is_empty() {
        Value::Null
    } else {
        json!(rest)
    };
    let rv = obj.pointer("/metadata/resourceVersion").cloned();
    let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": rv}});
    merge_patch(objects, info, obj, &patch, None).await?;
    Ok(())
}

/// Merge-patches `status` (an object) into `obj`'s status subresource if any of its fields
/// differs from what `obj` has.
pub async fn write_status_if_changed(
    objects: &Objects,
    info: &ResourceInfo,
    obj: &Value,
    status: Value,
) -> Result<(), ControllerError> {
    let old = obj.get("status");
    let changed = status
        .as_object()
        .expect("a status object")
        .iter()
        .any(|(k, v)| old.and_then(|o| o.get(k)) != Some(v));
    if changed {
        let patch = json!({ "status": status });
        merge_patch(objects, info, obj, &patch, Some(Subresource::Status)).await?;
    }
    Ok(())
}

/// Delete (in the background) every object of `info` in `ns` (all namespaces: `None`) that
/// is not being deleted yet; returns how many objects there were.
pub async fn delete_all(
    objects: &Objects,
    info: &ResourceInfo,
    ns: Option<&str>,
) -> Result<usize, ControllerError> {
    let items = objects.list(info, ns, &ListOptions::default()).await?.items;
    for item in items.iter().filter(|i| !meta::is_deleting(i)) {
        let opts = DeleteOptions {
            propagation_policy: Some("Background".into()),
            ..Default::default()
        };
        match objects
            .delete(info, namespace(item), meta::name(item), &opts)
            .await
        {
            Err(e) if e.code != 404 => return Err(e.into()),
            _ => {}
        }
    }
    Ok(items.len())
}

/// A `FailedCreate` Warning event on the controller of `pod`, which could not be created
/// (`Error creating: pods "web-x" is forbidden: exceeded quota ...`), as the workload
/// controllers of Kubernetes record it; the same refusal at most once in
/// [`FAILED_CREATE_QUIET`].
pub fn failed_create(
    events: &super::events::Recorder,
    ns: Option<&str>,
    pod: &Value,
    error: &crate::api::ApiError,
) {
    let Some(on) = super::events::Involved::controller_of(pod, ns) else {
        return;
    };
    // Each attempt names a new pod: the same refusal is the text after the name.
    let gist = error
        .message
        .split_once(" is forbidden: ")
        .map_or(error.message.as_str(), |(_, why)| why);
    if first_in_a_while(&on.uid, gist) {
        let message = match on.kind.as_str() {
            "StatefulSet" => format!(
                "create Pod {} in StatefulSet {} failed error: {}",
                meta::name(pod),
                on.name,
                error.message
            ),
            _ => format!("Error creating: {}", error.message),
        };
        events.warning(on, "FailedCreate", message);
    }
}

/// How long the same refusal of the same controller is not recorded again (its retries
/// back off to every 10 s).
const FAILED_CREATE_QUIET: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether `message` for the controller `uid` was not recorded in the last
/// [`FAILED_CREATE_QUIET`]; notes it as recorded now.
fn first_in_a_while(uid: &str, message: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    use std::time::Instant;
    static RECORDED: LazyLock<Mutex<HashMap<(String, String), Instant>>> =
        LazyLock::new(Mutex::default);
    let mut seen = RECORDED.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    seen.retain(|_, at| now.duration_since(*at) < FAILED_CREATE_QUIET);
    let key = (uid.to_string(), message.to_string());
    if seen.contains_key(&key) {
        return false;
    }
    seen.insert(key, now);
    true
}
