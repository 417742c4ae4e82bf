//! Admission of creates and updates against the namespace's LimitRanges and ResourceQuotas
//! (kube-apiserver's LimitRanger and ResourceQuota plugins), and the recount of a quota's
//! `status.used` that the quota controller runs. The decisions are [`crate::api::admission`].
//!
//! A write a quota tracks is charged in the same Raft entry as the write itself
//! ([`crate::Command::Atomic`]): the quota's `status.used` is raised, conditional on the
//! revision read, together with the object's create or update, or neither happens. So
//! concurrent writes cannot both take the last unit of a quota, a failed write charges
//! nothing, and the controller's recount (which writes conditionally on the quota's revision
//! too) never sees a charge whose object is not there yet.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{key, prefix, served, stored, Objects};
use crate::api::admission::{limit_range, quota, resources};
use crate::api::error::ApiError;
use crate::api::meta;
use crate::api::registry::{self, ResourceInfo};
use crate::{Consistency, Op, OpError};

/// Charging attempts before a write gives up on a quota written concurrently.
const CHARGE_ATTEMPTS: usize = 10;

/// Quota charges to write with an object, and this server's turn to charge the namespace's
/// quotas (held until dropped).
#[derive(Default)]
pub(super) struct Charges {
    ops: Vec<Op>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Charges {
    /// The ops to write all or nothing: the charges, then `op`. The turn stays held.
    pub(super) fn with(&mut self, op: Op) -> Vec<Op> {
        self.ops.push(op);
        std::mem::take(&mut self.ops)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Kubernetes' answer when quota charges keep losing races.
pub(super) fn quota_timeout() -> ApiError {
    ApiError::new(
        500,
        "InternalError",
        "Internal error occurred: resource quota evaluation timed out",
    )
}

fn info_of(kind: &str) -> &'static ResourceInfo {
    registry::by_kind("v1", kind).expect("a core kind is served")
}

impl Objects {
    /// The objects of core kind `kind` in `ns`, with their revisions.
    async fn core_in(
        &self,
        kind: &str,
        ns: &str,
        consistency: Consistency,
    ) -> Result<Vec<(Value, u64)>, ApiError> {
        let info = info_of(kind);
        let page = self
            .cp
            .list(&prefix(info, Some(ns)), 0, None, consistency)
            .await
            .map_err(|e| ApiError::from_store(e, info, ""))?;
        page.items
            .iter()
            .map(|kv| Ok((served(info, kv)?, kv.mod_revision)))
            .collect()
    }

    /// LimitRanger: a new pod's missing requests and limits come from the namespace's
    /// LimitRanges, and pods (on create) and claims must keep within their bounds.
    pub(super) async fn limit(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        obj: &mut Value,
        create: bool,
    ) -> Result<(), ApiError> {
        let kind = info.builtin_kind();
        let (Some(ns), true) = (ns, matches!(kind, "Pod" | "PersistentVolumeClaim")) else {
            return Ok(());
        };
        if kind == "Pod" && !create {
            // A pod's containers and resources do not change after its creation.
            return Ok(());
        }
        let ranges: Vec<Value> = self
            .core_in("LimitRange", ns, Consistency::Local)
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        if ranges.is_empty() {
            return Ok(());
        }
        let errs = if kind == "Pod" {
            limit_range::default_pod(&ranges, obj);
            // The class follows the resources the defaults gave.
            let qos = resources::qos_class(obj.get("spec").unwrap_or(&Value::Null));
            if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
                status.insert("qosClass".into(), json!(qos));
            }
            limit_range::check_pod(&ranges, obj)
        } else {
            limit_range::check_claim(&ranges, obj)
        };
        match errs.len() {
            0 => Ok(()),
            1 => Err(ApiError::forbidden(info, name, &errs[0])),
            _ => Err(ApiError::forbidden(
                info,
                name,
                format!("[{}]", errs.join(", ")),
            )),
        }
    }

    /// ResourceQuota: the charges a create (or an update, `old` given: only what grows)
    /// makes on the namespace's quotas that track it — updates of their `status.used`,
    /// conditional on the revision read, to be written with the object ([`Self::write_charged`])
    /// — or the refusal if one would be exceeded. In a namespace with quotas, the writes of
    /// this server take turns from here until written (the returned [`Charges`] hold the
    /// turn), so a burst of creates does not race for the quota's revision.
    pub(super) async fn charges(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        (old, new): (Option<&Value>, &Value),
        consistency: Consistency,
    ) -> Result<Charges, ApiError> {
        let Some(ns) = ns.filter(|_| info.namespaced) else {
            return Ok(Charges::default());
        };
        if self
            .core_in("ResourceQuota", ns, consistency)
            .await?
            .is_empty()
        {
            return Ok(Charges::default());
        }
        let turn = self.quota_turn(ns).lock_owned().await;
        // Read again in turn: the write that held it may have charged meanwhile.
        let ops = self
            .charge_ops(info, (ns, name), (old, new), consistency)
            .await?;
        // The turn matters only to writes that charge a quota.
        let turn = (!ops.is_empty()).then_some(turn);
        Ok(Charges { ops, _turn: turn })
    }

    /// The namespace's turn for quota charges on this server.
    fn quota_turn(&self, ns: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.quota_turns.lock().unwrap_or_else(|e| e.into_inner());
        // Namespaces nobody charges right now need no entry.
        turns.retain(|_, t| Arc::strong_count(t) > 1);
        turns.entry(ns.to_string()).or_default().clone()
    }

    async fn charge_ops(
        &self,
        info: &ResourceInfo,
        (ns, name): (&str, &str),
        (old, new): (Option<&Value>, &Value),
        consistency: Consistency,
    ) -> Result<Vec<Op>, ApiError> {
        let (kind, qualified) = (info.builtin_kind(), info.qualified());
        let mut usage = quota::usage(kind, &qualified, new);
        if let Some(old) = old {
            let before = quota::usage(kind, &qualified, old);
            usage = usage
                .into_iter()
                .map(|(k, a)| {
                    let was = before.get(&k).copied().unwrap_or_default();
                    (k, a.minus(was))
                })
                .filter(|(_, a)| a.milli > 0)
                .collect();
            if usage.is_empty() {
                return Ok(Vec::new());
            }
        }
        let quota_info = info_of("ResourceQuota");
        let mut ops = Vec::new();
        for (mut q, rev) in self.core_in("ResourceQuota", ns, consistency).await? {
            let qname = meta::name(&q).to_string();
            if !quota::tracks(&q, kind, new) {
                continue;
            }
            if kind == "Pod" && old.is_none() {
                if let Some(msg) = quota::missing_explicit(&q, new) {
                    return Err(ApiError::forbidden(
                        info,
                        name,
                        format!("failed quota: {qname}: {msg}"),
                    ));
                }
            }
            let request = quota::charged(&q, &usage);
            if request.is_empty() {
                continue;
            }
            let used = match known_used(&q) {
                Some(used) => used,
                None => self.count_used(ns, &q).await?,
            };
            let used = quota::admit(&qname, &quota::hard(&q), &used, &request)
                .map_err(|msg| ApiError::forbidden(info, name, msg))?;
            set_status(&mut q, &used);
            ops.push(Op::Update {
                key: key(quota_info, Some(ns), &qname),
                value: stored(&q),
                expected_revision: Some(rev),
            });
        }
        Ok(ops)
    }

    /// Writes `op` (the object's create or update; only if `requires` exists, when given)
    /// together with its quota `charges`, all or nothing. A charge that lost a race with
    /// another write to its quota (another server's, the controller's recount) is made again
    /// from a fresh read. The outer error is a refusal by the quotas, the inner result the
    /// store's.
    pub(super) async fn write_charged(
        &self,
        info: &ResourceInfo,
        (ns, name): (Option<&str>, &str),
        (old, new): (Option<&Value>, &Value),
        mut charges: Charges,
        requires: Option<String>,
        op: Op,
    ) -> Result<Result<(u64, crate::OpOutcome), crate::Error>, ApiError> {
        for _ in 0..CHARGE_ATTEMPTS {
            if charges.ops.is_empty() {
                return Ok(match requires {
                    Some(r) => self.cp.apply_if_exists(r, op).await,
                    None => self.cp.apply(op).await,
                });
            }
            let mut ops = std::mem::take(&mut charges.ops);
            ops.push(op.clone());
            match self.cp.apply_all(requires.clone(), ops).await {
                Ok((rev, mut outcomes)) => {
                    let out = outcomes.pop().expect("one outcome per op");
                    return Ok(Ok((rev, out)));
                }
                Err(crate::Error::Op(
                    OpError::Conflict { key, .. } | OpError::NotFound { key },
                )) if key != op.key() => {
                    let ns = ns.unwrap_or_default();
                    charges.ops = self
                        .charge_ops(info, (ns, name), (old, new), Consistency::Linearizable)
                        .await?;
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        Err(quota_timeout())
    }

    /// What the namespace's objects use of `q`'s resources now (every resource it limits,
    /// zero included).
    async fn count_used(&self, ns: &str, q: &Value) -> Result<resources::List, ApiError> {
        let hard = quota::hard(q);
        let mut used: resources::List = hard
            .iter()
            .map(|(k, h)| {
                (
                    k.clone(),
                    resources::Amount {
                        milli: 0,
                        binary: h.binary,
                    },
                )
            })
            .collect();
        for info in self.counted_kinds(hard.keys()) {
            let page = self
                .cp
                .list(&prefix(info, Some(ns)), 0, None, Consistency::Linearizable)
                .await
                .map_err(|e| ApiError::from_store(e, info, ""))?;
            let (kind, qualified) = (info.builtin_kind(), info.qualified());
            for kv in &page.items {
                let obj = served(info, kv)?;
                if !quota::tracks(q, kind, &obj) {
                    continue;
                }
                // `used` names exactly what the quota limits.
                for (k, a) in quota::usage(kind, &qualified, &obj) {
                    if let Some(u) = used.get_mut(&k) {
                        *u = u.plus(a);
                    }
                }
            }
        }
        Ok(used)
    }

    /// The kinds whose objects count towards resource names `names`.
    fn counted_kinds<'a>(
        &self,
        names: impl Iterator<Item = &'a String>,
    ) -> Vec<&'static ResourceInfo> {
        let mut kinds: Vec<&'static ResourceInfo> = Vec::new();
        for n in names {
            let found = match n.strip_prefix("count/") {
                Some(resource) => {
                    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
                    registry::RESOURCES
                        .iter()
                        .find(|r| r.plural == plural && r.group == group)
                        .or_else(|| {
                            self.custom
                                .stored()
                                .into_iter()
                                .find(|r| r.plural == plural && r.group == group)
                        })
                }
                None => match n.as_str() {
                    "pods" | "cpu" | "memory" | "ephemeral-storage" => Some(info_of("Pod")),
                    "services" | "services.nodeports" | "services.loadbalancers" => {
                        Some(info_of("Service"))
                    }
                    "persistentvolumeclaims" | "requests.storage" => {
                        Some(info_of("PersistentVolumeClaim"))
                    }
                    "configmaps" => Some(info_of("ConfigMap")),
                    "secrets" => Some(info_of("Secret")),
                    "replicationcontrollers" => Some(info_of("ReplicationController")),
                    "resourcequotas" => Some(info_of("ResourceQuota")),
                    n if n.contains(".storageclass.storage.k8s.io/") => {
                        Some(info_of("PersistentVolumeClaim"))
                    }
                    n if n.starts_with("requests.") || n.starts_with("limits.") => {
                        Some(info_of("Pod"))
                    }
                    _ => None,
                },
            };
            if let Some(info) = found {
                if !kinds.iter().any(|k| std::ptr::eq(*k, info)) {
                    kinds.push(info);
                }
            }
        }
        kinds
    }

    /// The quota controller's step: recount `ns/name`'s usage and write its status
    /// (`hard` as in its spec, `used`) if it changed, conditional on the revision read.
    pub async fn recount_quota(&self, ns: &str, name: &str) -> Result<(), ApiError> {
        let info = info_of("ResourceQuota");
        let k = key(info, Some(ns), name);
        let (kv, _) = self
            .cp
            .get(&k, Consistency::Linearizable)
            .await
            .map_err(|e| ApiError::from_store(e, info, name))?;
        let Some(kv) = kv else {
            return Ok(());
        };
        let mut q = served(info, &kv)?;
        let used = self.count_used(ns, &q).await?;
        let before = q.get("status").cloned();
        set_status(&mut q, &used);
        if q.get("status") == before.as_ref() {
            return Ok(());
        }
        let op = Op::Update {
            key: k,
            value: stored(&q),
            expected_revision: Some(kv.mod_revision),
        };
        self.cp
            .apply(op)
            .await
            .map(|_| ())
            .map_err(|e| ApiError::from_store(e, info, name))
    }
}

/// `status.used` if it covers every resource of `spec.hard` (the controller has counted
/// since the quota last changed); else the usage must be counted.
fn known_used(q: &Value) -> Option<resources::List> {
    let hard = q.pointer("/spec/hard")?;
    if q.pointer("/status/hard") != Some(hard) {
        return None;
    }
    let used = resources::list(q.pointer("/status/used"));
    quota::hard(q)
        .keys()
        .all(|k| used.contains_key(k))
        .then_some(used)
}

/// `status`: `hard` from the spec and `used` (only the names `hard` has).
fn set_status(q: &mut Value, used: &resources::List) {
    let hard = q
        .pointer("/spec/hard")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let names = quota::hard(q);
    let used: resources::List = used
        .iter()
        .filter(|(k, _)| names.contains_key(*k))
        .map(|(k, a)| (k.clone(), *a))
        .collect();
    if let Some(o) = q.as_object_mut() {
        o.insert(
            "status".into(),
            json!({"hard": hard, "used": resources::to_json(&used)}),
        );
    }
}
