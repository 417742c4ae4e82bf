//! The in-process API client for the scheduler and controllers: typed (k8s-openapi) get,
//! list, watch, create, update, update_status, patch, delete and bind, through the same
//! logic as HTTP requests (defaulting, validation, resource versions, subresource rules).

use std::marker::PhantomData;
use std::time::Duration;

use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::objects::{
    DeleteOptions, Deleted, ListOptions, Objects, WatchOptions, WatchStream, WriteOptions,
};
use super::patch::PatchType;
use super::registry::{self, ResourceInfo, Subresource};
use super::selector::{FieldSelector, LabelSelector};

/// A page of typed objects.
#[derive(Debug, Clone)]
pub struct List<K> {
    pub items: Vec<K>,
    /// The store revision of the list: watch from here.
    pub resource_version: u64,
    pub continue_token: Option<String>,
}

/// A typed watch event.
#[derive(Debug, Clone)]
pub enum Event<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    /// Progress: every change up to this revision has been delivered.
    Bookmark(u64),
}

/// How a delete ended.
#[derive(Debug, Clone)]
pub enum DeleteOutcome<K> {
    /// Removed from the store.
    Gone(K),
    /// Still there with a deletion timestamp (finalizers or a grace period hold it).
    Pending(K),
}

#[derive(Clone)]
pub struct ApiClient {
    objects: Objects,
}

fn info_of<K: Resource>() -> Result<&'static ResourceInfo, ApiError> {
    registry::by_kind(K::API_VERSION, K::KIND).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!("{} {} is not served", K::API_VERSION, K::KIND),
        )
    })
}

fn from_value<K: DeserializeOwned>(v: Value) -> Result<K, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::internal(format!("decoding object: {e}")))
}

fn to_value<K: Serialize>(obj: &K) -> Result<Value, ApiError> {
    serde_json::to_value(obj).map_err(|e| ApiError::bad_request(format!("encoding object: {e}")))
}

/// Namespace and name from an object's metadata.
fn ns_name(v: &Value) -> (Option<String>, String) {
    (
        super::meta::str_field(v, "namespace").map(str::to_string),
        super::meta::name(v).to_string(),
    )
}

/// Options of a typed list or watch.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    pub labels: String,
    pub fields: String,
}

impl Selectors {
    fn parse(&self) -> Result<(LabelSelector, FieldSelector), ApiError> {
        Ok((
            LabelSelector::parse(&self.labels).map_err(ApiError::bad_request)?,
            FieldSelector::parse(&self.fields).map_err(ApiError::bad_request)?,
        ))
    }
}

impl ApiClient {
    pub fn new(objects: Objects) -> Self {
        Self { objects }
    }

    /// The untyped resource logic underneath (controllers working across every kind).
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    pub async fn get<K: Resource + DeserializeOwned>(
        &self,
        ns: Option<&str>,
        name: &str,
    ) -> Result<K, ApiError> {
        from_value(self.objects.get(info_of::<K>()?, ns, name).await?)
    }

    /// Everything matching `sel` (in `ns`, or all namespaces).
    pub async fn list<K: Resource + DeserializeOwned>(
        &self,
        ns: Option<&str>,
        sel: &Selectors,
    ) -> Result<List<K>, ApiError> {
        let (labels, fields) = sel.parse()?;
        let opts = ListOptions {
            labels,
            fields,
            ..Default::default()
        };
        let listed = self.objects.list(info_of::<K>()?, ns, &opts).await?;
        Ok(List {
            items: listed
                .items
                .into_iter()
                .map(from_value)
                .collect::<Result<_, _>>()?,
            resource_version: listed.revision,
            continue_token: listed.continue_token,
        })
    }

    /// Watch changes after `resource_version` (`None`: ADDED events for the current state
    /// first).
    pub async fn watch<K: Resource + DeserializeOwned>(
        &self,
        ns: Option<&str>,
        sel: &Selectors,
        resource_version: Option<u64>,
    ) -> Result<Watch<K>, ApiError> {
        let (labels, fields) = sel.parse()?;
        let opts = WatchOptions {
            labels,
            fields,
            resource_version: resource_version.map(|r| r.to_string()),
            bookmarks: true,
            timeout: Duration::from_secs(10 * 365 * 86_400),
        };
        let stream = self.objects.watch(info_of::<K>()?, ns, opts).await?;
        Ok(Watch {
            stream,
            _kind: PhantomData,
        })
    }

    pub async fn create<K: Resource + Serialize + DeserializeOwned>(
        &self,
        ns: Option<&str>,
        obj: &K,
    ) -> Result<K, ApiError> {
        let w = self
            .objects
            .create(info_of::<K>()?, ns, to_value(obj)?, WriteOptions::default())
            .await?;
        from_value(w.object)
    }

    async fn put<K: Resource + Serialize + DeserializeOwned>(
        &self,
        obj: &K,
        sub: Option<Subresource>,
    ) -> Result<K, ApiError> {
        let v = to_value(obj)?;
        let (ns, name) = ns_name(&v);
        let w = self
            .objects
            .update(
                info_of::<K>()?,
                ns.as_deref(),
                &name,
                v,
                sub,
                WriteOptions::default(),
            )
            .await?;
        from_value(w.object)
    }

    /// Replace the object (namespace and name from its metadata). A set
    /// `metadata.resourceVersion` is a precondition (409 Conflict if stale).
    pub async fn update<K: Resource + Serialize + DeserializeOwned>(
        &self,
        obj: &K,
    ) -> Result<K, ApiError> {
        self.put(obj, None).await
    }

    /// Replace only the status.
    pub async fn update_status<K: Resource + Serialize + DeserializeOwned>(
        &self,
        obj: &K,
    ) -> Result<K, ApiError> {
        self.put(obj, Some(Subresource::Status)).await
    }

    /// Patch the object (`status`: through the status subresource).
    pub async fn patch<K: Resource + DeserializeOwned>(
        &self,
        ns: Option<&str>,
        name: &str,
        ty: PatchType,
        patch: &Value,
        status: bool,
    ) -> Result<K, ApiError> {
        let sub = status.then_some(Subresource::Status);
        let w = self
            .objects
            .patch(
                info_of::<K>()?,
                ns,
                name,
                ty,
                patch,
                sub,
                WriteOptions::default(),
            )
            .await?;
        from_value(w.object)
    }

    pub async fn delete<K: Resource + DeserializeOwned>(
        &self,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome<K>, ApiError> {
        Ok(
            match self.objects.delete(info_of::<K>()?, ns, name, opts).await? {
                Deleted::Gone(v) => DeleteOutcome::Gone(from_value(v)?),
                Deleted::Pending(v) => DeleteOutcome::Pending(from_value(v)?),
            },
        )
    }

    /// Bind pod `ns/name` to `node` (the `pods/binding` subresource).
    pub async fn bind(&self, ns: &str, name: &str, node: &str) -> Result<(), ApiError> {
        let info = registry::by_kind("v1", "Pod").expect("pods are served");
        let binding = json!({"apiVersion": "v1", "kind": "Binding",
                             "metadata": {"name": name, "namespace": ns},
                             "target": {"kind": "Node", "name": node}});
        self.objects.bind(info, Some(ns), name, &binding).await
    }
}

/// A typed watch; [`Watch::next`] until `None` (the replica stopped).
pub struct Watch<K> {
    stream: WatchStream,
    _kind: PhantomData<fn() -> K>,
}

impl<K: DeserializeOwned> Watch<K> {
    /// The next event; `Err` (410 Expired when the revision is compacted) ends the watch:
    /// list again and watch from the list's revision.
    pub async fn next(&mut self) -> Option<Result<Event<K>, ApiError>> {
        let ev = self.stream.next().await?;
        Some(match ev.kind {
            "ADDED" => from_value(ev.object).map(Event::Added),
            "MODIFIED" => from_value(ev.object).map(Event::Modified),
            "DELETED" => from_value(ev.object).map(Event::Deleted),
            "BOOKMARK" => Ok(Event::Bookmark(
                ev.object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            )),
            _ => Err(ApiError {
                code: ev.object["code"].as_u64().unwrap_or(500) as u16,
                reason: if ev.object["code"] == 410 {
                    "Expired"
                } else {
                    "InternalError"
                },
                message: ev.object["message"].as_str().unwrap_or("").to_string(),
                details: None,
            }),
        })
    }
}
