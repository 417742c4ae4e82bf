//! The generic resource logic shared by the HTTP handlers and the in-process client: keys,
//! reads, creates (metadata, defaulting, validation), and the write helpers used by
//! [`update`] and [`delete`].

mod admit;
mod apply;
mod delete;
mod eviction;
mod subresource;
mod token;
mod update;
mod watch;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

pub use delete::{DeleteOptions, Deleted};
pub use subresource::{scale_of, ScaleChange};
pub use watch::{WatchEvent, WatchOptions, WatchStream, BOOKMARK_EVERY};

use super::custom::CustomKinds;
use super::decode::{self, FieldValidation};
use super::error::ApiError;
use super::meta;
use super::registry::{self, ResourceInfo, Subresource};
use super::selector::{FieldSelector, LabelSelector};
use super::{defaults, validation};
use crate::{Consistency, ControlPlane, KeyValue, Op};

/// Options of a write.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    /// Who writes (`fieldManager`); `None`: the control plane's own controllers.
    pub field_manager: Option<Manager>,
}

impl WriteOptions {
    /// The field manager the write is recorded under.
    pub fn manager(&self) -> &str {
        self.field_manager
            .as_ref()
            .map_or(CONTROLLERS, Manager::as_str)
    }
}

/// The field manager of the control plane's own writes.
const CONTROLLERS: &str = "skiff-controller-manager";

/// A field manager's name: at most 128 bytes (Kubernetes' limit), kept inline so that
/// [`WriteOptions`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Manager {
    len: u8,
    bytes: [u8; Manager::MAX],
}

impl Manager {
    pub const MAX: usize = 128;

    /// `None` when `name` is empty or longer than [`Manager::MAX`] bytes.
    pub fn new(name: &str) -> Option<Self> {
        if name.is_empty() || name.len() > Self::MAX {
            return None;
        }
        let mut bytes = [0; Self::MAX];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Some(Self {
            len: name.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("built from a str")
    }
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A written object and the warnings for the client.
#[derive(Debug, Clone)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// 0: everything.
    pub limit: usize,
    pub continue_token: Option<String>,
    /// `resourceVersion=0`: any (local) state is fine.
    pub any_version: bool,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Listed {
    pub items: Vec<Value>,
    pub revision: u64,
    pub continue_token: Option<String>,
}

/// Resource operations on the replicated store.
#[derive(Clone)]
pub struct Objects {
    cp: Arc<ControlPlane>,
    /// The kinds of the CustomResourceDefinitions, as this server last read them.
    custom: Arc<CustomKinds>,
    /// Per namespace, whose turn it is to charge its ResourceQuotas (see `admit`).
    quota_turns: Arc<std::sync::Mutex<std::collections::HashMap<String, QuotaTurn>>>,
}

type QuotaTurn = Arc<tokio::sync::Mutex<()>>;

pub fn key(info: &ResourceInfo, ns: Option<&str>, name: &str) -> String {
    crate::keys::object_key(
        info.group,
        info.plural,
        ns.filter(|_| info.namespaced),
        name,
    )
}

pub fn prefix(info: &ResourceInfo, ns: Option<&str>) -> String {
    crate::keys::resource_prefix(info.group, info.plural, ns.filter(|_| info.namespaced))
}

/// A stored value as served.
pub fn served(info: &ResourceInfo, kv: &KeyValue) -> Result<Value, ApiError> {
    decode_as(info, &kv.value, kv.mod_revision)
        .map_err(|e| ApiError::internal(format!("decoding stored {}: {e}", info.kind)))
}

/// A stored value at revision `rev` as version `info` serves it to a read: the versions of
/// a custom kind share their objects, which differ only in `apiVersion` (no conversion), and
/// are pruned and defaulted by the version's schema on the way out, as Kubernetes does.
pub(crate) fn decode_as(
    info: &ResourceInfo,
    value: &str,
    rev: u64,
) -> Result<Value, serde_json::Error> {
    let mut v = decode_versioned(info, value, rev)?;
    if let Some(custom) = info.custom {
        super::custom::schema::prune(&custom.schema, &mut v);
    }
    Ok(v)
}

/// A stored value with the `apiVersion` of `info`, not pruned: what a watch sends. A watch
/// outlives changes of its kind's schema, and an object pruned by an older schema, written
/// back whole, would lose fields.
pub(crate) fn decode_versioned(
    info: &ResourceInfo,
    value: &str,
    rev: u64,
) -> Result<Value, serde_json::Error> {
    let mut v = meta::decode_stored(value, rev)?;
    if let (Some(_), Some(m)) = (info.custom, v.as_object_mut()) {
        m.insert("apiVersion".into(), json!(info.api_version()));
    }
    Ok(v)
}

/// What gets stored: the object without its resource version.
fn stored(obj: &Value) -> String {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v.to_string()
}

impl Objects {
    pub fn new(cp: Arc<ControlPlane>) -> Self {
        Self {
            cp,
            custom: Arc::default(),
            quota_turns: Arc::default(),
        }
    }

    /// The custom kinds this server serves.
    pub fn custom_kinds(&self) -> &CustomKinds {
        &self.custom
    }

    /// Read the CRDs from the store and serve their kinds.
    pub async fn refresh_custom_kinds(&self) -> Result<(), ApiError> {
        let crds = registry::by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
            .expect("CRDs are served");
        let listed = self.list(crds, None, &ListOptions::default()).await?;
        self.custom.replace(listed.revision, &listed.items);
        Ok(())
    }

    pub fn control_plane(&self) -> &Arc<ControlPlane> {
        &self.cp
    }

    /// The stored object and its key-value record.
    async fn get_kv(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        consistency: Consistency,
    ) -> Result<KeyValue, ApiError> {
        let (kv, _) = self
            .cp
            .get(&key(info, ns, name), consistency)
            .await
            .map_err(|e| ApiError::from_store(e, info, name))?;
        kv.ok_or_else(|| ApiError::not_found(info, name))
    }

    pub async fn get(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let kv = self
            .get_kv(info, ns, name, Consistency::Linearizable)
            .await?;
        served(info, &kv)
    }

    pub async fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<Listed, ApiError> {
        let prefix = prefix(info, ns);
        let consistency = if opts.any_version {
            Consistency::Local
        } else {
            Consistency::Linearizable
        };
        let mut token = match &opts.continue_token {
            Some(t) => Some(
                URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|k| k.starts_with(&prefix))
                    .ok_or_else(|| ApiError::bad_request("invalid continue token"))?,
            ),
            None => None,
        };
        let mut items = Vec::new();
        let mut revision = None;
        let page_size = if opts.limit == 0 {
            0
        } else {
            opts.limit.max(100)
        };
        loop {
            let page = self
                .cp
                .list(&prefix, page_size, token.as_deref(), consistency)
                .await
                .map_err(|e| ApiError::from_store(e, info, ""))?;
            revision.get_or_insert(page.revision);
            for kv in &page.items {
                let obj = served(info, kv)?;
                if opts.labels.matches(&obj) && opts.fields.matches(&obj) {
                    items.push(obj);
                    if opts.limit > 0 && items.len() == opts.limit {
                        let more = page.continue_token.is_some()
                            || page.items.last().map(|l| &l.key) != Some(&kv.key);
                        let next = more.then(|| URL_SAFE_NO_PAD.encode(kv.key.as_bytes()));
                        return Ok(Listed {
                            items,
                            revision: revision.unwrap_or(page.revision),
                            continue_token: next,
                        });
                    }
                }
            }
            match page.continue_token {
                Some(t) => token = Some(t),
                None => {
                    return Ok(Listed {
                        items,
                        revision: revision.unwrap_or(page.revision),
                        continue_token: None,
                    })
                }
            }
        }
    }

    pub async fn create(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        body: Value,
        opts: WriteOptions,
    ) -> Result<Written, ApiError> {
        if info.custom.is_some_and(|c| c.terminating) {
            return Err(ApiError::method_not_allowed(format!(
                "create not allowed while custom resource definition is terminating: {}",
                info.qualified()
            )));
        }
        let (mut obj, warnings) = decode::normalize(info, body, opts.field_validation)?;
        let m = meta::meta_mut(&mut obj);
        let body_ns = m
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let ns = ns.or(body_ns.as_deref().filter(|n| !n.is_empty()));
        if info.namespaced {
            let ns = ns.ok_or_else(|| ApiError::bad_request("a namespace is required"))?;
            match m.get("namespace").and_then(Value::as_str) {
                Some(got) if !got.is_empty() && got != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace \
                         sent on the request",
                    ))
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(f);
        }
        m.insert("uid".into(), json!(meta::uid()));
        m.insert("creationTimestamp".into(), json!(meta::now()));
        m.insert("generation".into(), json!(1));
        let generate = m
            .get("generateName")
            .and_then(Value::as_str)
            .map(str::to_string);
        let named = m
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if info.has(Subresource::Status) && info.builtin_kind() != "Node" {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        // The namespace must exist: checked by the state machine with the write itself.
        let ns_info = registry::by_kind("v1", "Namespace").expect("namespaces are served");
        let requires = ns
            .filter(|_| info.namespaced)
            .map(|ns| (ns, key(ns_info, None, ns)));
        let attempts = if named || generate.is_none() { 1 } else { 5 };
        for attempt in 1..=attempts {
            if let (false, Some(g)) = (named, &generate) {
                meta::meta_mut(&mut obj).insert("name".into(), json!(meta::generate_name(g)));
            }
            let mut obj = obj.clone();
            meta::omit_empty(&mut obj);
            defaults::default(info.builtin_kind(), &mut obj);
            let name = meta::name(&obj).to_string();
            Box::pin(self.limit(info, ns, &name, &mut obj, true)).await?;
            let errs = validation::validate_create(info, &obj);
            if !errs.is_empty() {
                return Err(ApiError::invalid(info, &name, &errs));
            }
            // Refused before anything is allocated for it.
            let charges =
                Box::pin(self.charges(info, ns, &name, (None, &obj), Consistency::Local)).await?;
            if opts.dry_run {
                // Nothing is written, so nothing checks the namespace but a read.
                if let Some((ns, _)) = &requires {
                    self.get_kv(ns_info, None, ns, Consistency::Linearizable)
                        .await?;
                }
                return Ok(Written {
                    object: obj,
                    warnings,
                });
            }
            let claims =
                crate::alloc::hooks::before_write(&self.cp, info.builtin_kind(), None, &mut obj)
                    .await?;
            let op = Op::Create {
                key: key(info, ns, &name),
                value: stored(&obj),
            };
            let requires_key = requires.as_ref().map(|(_, k)| k.clone());
            let written =
                self.write_charged(info, (ns, &name), (None, &obj), charges, requires_key, op);
            let applied = match Box::pin(written).await {
                Ok(applied) => applied,
                Err(refused) => {
                    claims.rollback(&self.cp).await;
                    return Err(refused);
                }
            };
            if applied.is_err() {
                claims.rollback(&self.cp).await;
            }
            match applied {
                Ok((rev, _)) => {
                    meta::set_resource_version(&mut obj, rev);
                    return Ok(Written {
                        object: obj,
                        warnings,
                    });
                }
                Err(crate::Error::Op(crate::OpError::AlreadyExists { .. }))
                    if attempt < attempts => {}
                Err(crate::Error::Op(crate::OpError::Missing { .. })) => {
                    let ns = requires.as_ref().map_or("", |(ns, _)| *ns);
                    return Err(ApiError::not_found(ns_info, ns));
                }
                Err(e) => return Err(ApiError::from_store(e, info, &name)),
            }
        }
        unreachable!("the last attempt returns")
    }
}
