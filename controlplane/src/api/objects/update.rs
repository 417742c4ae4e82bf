//! Updates and patches: a read-modify-write loop with optimistic concurrency on the store
//! revision, status-subresource semantics, generation bumps and finalizer-driven removal.

use serde_json::{json, Value};

use super::{key, served, stored, Objects, WriteOptions, Written};
use crate::api::custom::schema::value_at;
use crate::api::decode;
use crate::api::error::ApiError;
use crate::api::managed;
use crate::api::meta;
use crate::api::patch::{self, PatchType};
use crate::api::registry::{ResourceInfo, Subresource};
use crate::api::{defaults, validation};
use crate::{Consistency, Op, OpError};

/// Retries of a read-modify-write that lost a race and had no client precondition.
const MAX_ATTEMPTS: usize = 10;

/// The result of a change function: the new object, the client's resourceVersion
/// precondition, warnings.
pub(super) type Change = (Value, Option<u64>, Vec<String>);

/// Metadata the server owns: carried from the stored object into every update.
const KEPT_META: &[&str] = &[
    "uid",
    "creationTimestamp",
    "namespace",
    "name",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
];

/// Who makes a write.
#[derive(Debug, Clone, Copy)]
pub(super) enum By {
    /// A client, through the object or one of its subresources.
    Client(Option<Subresource>),
    /// A client's server-side apply, which keeps `managedFields` itself.
    Apply,
    /// The server itself (deletion, binding).
    Server,
}

/// Apply subresource semantics: what of `new` an update through `sub` may change.
pub(super) fn merge_for(
    info: &ResourceInfo,
    sub: Option<Subresource>,
    old: &Value,
    new: Value,
) -> Value {
    match sub {
        None => {
            let mut out = new;
            if info.has(Subresource::Status) {
                if let Some(o) = out.as_object_mut() {
                    match old.get("status") {
                        Some(s) => o.insert("status".into(), s.clone()),
                        None => o.remove("status"),
                    };
                }
            }
            if info.has(Subresource::EphemeralContainers) {
                copy_ephemeral(old, &mut out);
            }
            out
        }
        Some(Subresource::EphemeralContainers) => {
            let mut out = old.clone();
            copy_ephemeral(&new, &mut out);
            out
        }
        Some(Subresource::Status) => {
            let mut out = old.clone();
            if let Some(s) = new.get("status") {
                out["status"] = s.clone();
            }
            out
        }
        Some(Subresource::Finalize) => {
            let mut out = old.clone();
            out["spec"]["finalizers"] = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            out
        }
        Some(_) => new,
    }
}

/// Sets `to`'s `spec.ephemeralContainers` to `from`'s (only the subresource changes them).
fn copy_ephemeral(from: &Value, to: &mut Value) {
    let Some(spec) = to.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    match from.pointer("/spec/ephemeralContainers") {
        Some(v) => spec.insert("ephemeralContainers".into(), v.clone()),
        None => spec.remove("ephemeralContainers"),
    };
}

/// `true` once nothing holds a deleting object: its metadata finalizers (and, for
/// namespaces, `spec.finalizers`) are empty.
fn ready_to_remove(obj: &Value) -> bool {
    meta::is_deleting(obj)
        && meta::finalizers(obj).is_empty()
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
}

/// Whether a write from `cur` to `new` is a new generation: a change outside metadata and
/// status — or, for a custom kind without a status subresource, outside metadata.
fn generation_changes(info: &ResourceInfo, cur: &Value, new: &Value) -> bool {
    if info.custom.is_some() && !info.has(Subresource::Status) {
        return cur.get("status") != new.get("status") || !meta::same_spec(new, cur);
    }
    !meta::same_spec(new, cur)
}

impl Objects {
    /// Read `name`, compute its new state with `change`, write it if it differs, conditional
    /// on the revision read. Retries lost races unless the client gave a resourceVersion.
    /// `by`: a client's write (through a subresource), or the server's own (deletion,
    /// binding), which may change server-owned
    /// metadata and fields clients may not update.
    pub(super) async fn guaranteed_update<F>(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: WriteOptions,
        by: By,
        mut change: F,
    ) -> Result<Written, ApiError>
    where
        F: FnMut(&Value) -> Result<Change, ApiError>,
    {
        let key = key(info, ns, name);
        let own_meta = matches!(by, By::Server);
        for attempt in 1..=MAX_ATTEMPTS {
            let kv = self
                .get_kv(info, ns, name, Consistency::Linearizable)
                .await?;
            let cur = served(info, &kv)?;
            let (mut new, precondition, warnings) = change(&cur)?;
            if precondition.is_some_and(|rv| rv != kv.mod_revision) {
                return Err(ApiError::conflict(info, name));
            }
            let new_meta = meta::meta_mut(&mut new);
            for f in KEPT_META.iter().filter(|_| !own_meta) {
                match cur.get("metadata").and_then(|m| m.get(*f)) {
                    Some(v) => new_meta.insert(f.to_string(), v.clone()),
                    None => new_meta.remove(*f),
                };
            }
            meta::set_resource_version(&mut new, kv.mod_revision);
            if generation_changes(info, &cur, &new) {
                let generation = cur.pointer("/metadata/generation").and_then(Value::as_i64);
                meta::meta_mut(&mut new)
                    .insert("generation".into(), json!(generation.unwrap_or(0) + 1));
            }
            crate::alloc::hooks::carry(info.builtin_kind(), &cur, &mut new);
            meta::omit_empty(&mut new);
            defaults::default(info.builtin_kind(), &mut new);
            // Status is not tracked; objects never applied carry no managedFields.
            let tracked = || {
                cur.pointer("/metadata/managedFields").is_some()
                    || new.pointer("/metadata/managedFields").is_some()
            };
            if let By::Client(sub) = by {
                if sub != Some(Subresource::Status) && tracked() {
                    let api_version = info.api_version();
                    let w = managed::Writer {
                        manager: opts.manager(),
                        api_version: &api_version,
                        subresource: sub.map(Subresource::name),
                    };
                    managed::record_update(&cur, &mut new, w);
                }
            }
            let mut errs = validation::validate(info, &new);
            if info.custom.is_some() {
                // Ratcheting: what the stored object already violated (a schema tightened
                // since) does not stop other changes, nor its deletion.
                let before = validation::validate(info, &cur);
                errs.retain(|e| {
                    let same = value_at(&cur, &e.field) == value_at(&new, &e.field);
                    !(same && before.contains(e))
                });
            }
            if !own_meta {
                // Against the stored object as today's defaults would write it: a default
                // added since it was stored is no change by the client.
                let mut was = cur.clone();
                defaults::default(info.builtin_kind(), &mut was);
                errs.extend(validation::validate_update(info, &was, &new));
            }
            if !errs.is_empty() {
                return Err(ApiError::invalid(info, name, &errs));
            }
            // Kubernetes' LimitRanger and ResourceQuota leave status writes (and objects on
            // their way out) alone: only a changed spec is admitted again.
            let mut charges = super::admit::Charges::default();
            if !own_meta && !meta::is_deleting(&cur) && !meta::same_spec(&new, &cur) {
                Box::pin(self.limit(info, ns, name, &mut new, false)).await?;
                let consistency = if attempt == 1 {
                    Consistency::Local
                } else {
                    Consistency::Linearizable
                };
                charges =
                    Box::pin(self.charges(info, ns, name, (Some(&cur), &new), consistency)).await?;
            }
            if new == cur || opts.dry_run {
                return Ok(Written {
                    object: new,
                    warnings,
                });
            }
            let removing = ready_to_remove(&new);
            let claims = if removing {
                crate::alloc::service::Claims::default()
            } else {
                crate::alloc::hooks::before_write(
                    &self.cp,
                    info.builtin_kind(),
                    Some(&cur),
                    &mut new,
                )
                .await?
            };
            let op = if removing {
                Op::Delete {
                    key: key.clone(),
                    expected_revision: Some(kv.mod_revision),
                }
            } else {
                Op::Update {
                    key: key.clone(),
                    value: stored(&new),
                    expected_revision: Some(kv.mod_revision),
                }
            };
            let applied = if charges.is_empty() || removing {
                self.cp.apply(op).await
            } else {
                self.cp
                    .apply_all(None, charges.with(op))
                    .await
                    .map(|(rev, mut outs)| (rev, outs.pop().expect("one outcome per op")))
            };
            if applied.is_err() {
                claims.rollback(&self.cp).await;
            } else {
                let kept = (!removing).then_some(&new);
                crate::alloc::hooks::written(&self.cp, info.builtin_kind(), &cur, kept).await;
            }
            match applied {
                Ok((rev, _)) => {
                    meta::set_resource_version(&mut new, rev);
                    return Ok(Written {
                        object: new,
                        warnings,
                    });
                }
                // A lost race with a write to the object, or to a quota it is charged to
                // (which the client's precondition has nothing to do with).
                Err(crate::Error::Op(OpError::Conflict { key: lost, .. }))
                    if (precondition.is_none() || lost != key) && attempt < MAX_ATTEMPTS => {}
                Err(crate::Error::Op(OpError::NotFound { key: lost }))
                    if lost != key && attempt < MAX_ATTEMPTS => {}
                // Lost to quota writes on every attempt.
                Err(crate::Error::Op(
                    OpError::Conflict { key: lost, .. } | OpError::NotFound { key: lost },
                )) if lost != key => return Err(super::admit::quota_timeout()),
                Err(e) => return Err(ApiError::from_store(e, info, name)),
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// Replace `name` (PUT), through subresource `sub` if given.
    pub async fn update(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Option<Subresource>,
        opts: WriteOptions,
    ) -> Result<Written, ApiError> {
        let (obj, warnings) = decode::normalize(info, body, opts.field_validation)?;
        let body_name = meta::name(&obj);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(body_ns) = meta::str_field(&obj, "namespace").filter(|n| !n.is_empty()) {
            if info.namespaced && Some(body_ns) != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent \
                     on the request",
                ));
            }
        }
        let precondition = meta::resource_version(&obj).map_err(ApiError::bad_request)?;
        self.guaranteed_update(info, ns, name, opts, By::Client(sub), |cur| {
            Ok((
                merge_for(info, sub, cur, obj.clone()),
                precondition,
                warnings.clone(),
            ))
        })
        .await
    }

    /// Patch `name`, through subresource `sub` if given.
    #[expect(clippy::too_many_arguments, reason = "mirrors the request's parts")]
    pub async fn patch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        ty: PatchType,
        patch_body: &Value,
        sub: Option<Subresource>,
        opts: WriteOptions,
    ) -> Result<Written, ApiError> {
        self.guaranteed_update(info, ns, name, opts, By::Client(sub), |cur| {
            let mut target = cur.clone();
            patch::apply(ty, &mut target, patch_body).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the patch could not be applied: {e}"),
                )
            })?;
            // `target` inherits the current resourceVersion: only one the patch itself set
            // is a precondition (otherwise a concurrent write would fail the patch instead of
            // being retried, as the API server's guaranteed update does).
            let current = meta::resource_version(cur).map_err(ApiError::bad_request)?;
            let precondition = meta::resource_version(&target)
                .map_err(ApiError::bad_request)?
                .filter(|rv| Some(*rv) != current);
            let (obj, warnings) = decode::normalize(info, target, opts.field_validation)?;
            Ok((merge_for(info, sub, cur, obj), precondition, warnings))
        })
        .await
    }
}
