//! A watch that survives dropped streams: it resumes from the last resourceVersion it
//! delivered, and when the control plane no longer keeps that version (OUT_OF_RANGE) it
//! lists again, telling the caller to replace its state ([`WatchItem::Relist`] …
//! [`WatchItem::Synced`]).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use skiff_controlplane::agentapi::proto::{EventType, WatchEvent};
use tonic::{Code, Streaming};

use super::{from_json, CpClient, CpError};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The pods bound to this node.
    Pods(String),
    /// Services and EndpointSlices.
    Services,
}

/// A watched object.
#[derive(Debug, Clone)]
pub enum WatchObject {
    Pod(Box<Pod>),
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
}

/// What [`ResumingWatch::next`] yields.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// A full list follows: the objects up to the next [`WatchItem::Synced`] are the whole
    /// state; drop what was known before once it arrives.
    Relist,
    /// The list is complete (or, after a resume, the stream is live again).
    Synced { resource_version: String },
    /// A change.
    Event {
        kind: EventType,
        object: WatchObject,
        resource_version: String,
    },
}

pub struct ResumingWatch {
    client: CpClient,
    target: Target,
    /// Where to resume; `None`: list.
    rv: Option<String>,
    stream: Option<Streaming<WatchEvent>>,
    /// The current stream started with a list whose end has not been seen.
    listing: bool,
    failures: u32,
}

fn decode(kind: &str, json: &[u8]) -> Result<WatchObject, CpError> {
    const CALL: &str = "watch";
    Ok(match kind {
        "Pod" => WatchObject::Pod(Box::new(from_json(CALL, "Pod", json)?)),
        "Service" => WatchObject::Service(Box::new(from_json(CALL, "Service", json)?)),
        "EndpointSlice" => {
            WatchObject::EndpointSlice(Box::new(from_json(CALL, "EndpointSlice", json)?))
        }
        other => {
            return Err(CpError::Rpc {
                call: CALL,
                code: Code::Internal,
                message: format!("event of unexpected kind {other:?}"),
            })
        }
    })
}

impl ResumingWatch {
    pub fn new(client: CpClient, target: Target) -> Self {
        Self::from(client, target, None)
    }

    /// Start from `resource_version` (`None`: list first).
    pub fn from(client: CpClient, target: Target, resource_version: Option<String>) -> Self {
        Self {
            client,
            target,
            rv: resource_version,
            stream: None,
            listing: false,
            failures: 0,
        }
    }

    /// The resourceVersion a new stream would resume from.
    pub fn resource_version(&self) -> Option<&str> {
        self.rv.as_deref()
    }

    async fn open(&mut self) -> Result<Streaming<WatchEvent>, CpError> {
        let rv = self.rv.clone().unwrap_or_default();
        match &self.target {
            Target::Pods(node) => self.client.watch_pods_raw(node, &rv).await,
            Target::Services => self.client.watch_services_raw(&rv).await,
        }
    }

    /// Wait before the next attempt (exponential, capped).
    async fn back_off(&mut self, why: &CpError) {
        let pause = FIRST_BACKOFF
            .saturating_mul(1 << self.failures.min(6))
            .min(MAX_BACKOFF);
        self.failures += 1;
        log::warn!(
            "control-plane watch of {:?} at {}: {why}; retrying in {pause:?}",
            self.target,
            self.client.addr()
        );
        tokio::time::sleep(pause).await;
    }

    /// The next item. Dropped streams and unreachable servers are retried forever with
    /// backoff; an error is returned only for what retrying cannot fix (a rejected
    /// request, an undecodable object).
    pub async fn next(&mut self) -> Result<WatchItem, CpError> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                match self.open().await {
                    Ok(s) => {
                        self.stream = Some(s);
                        if self.rv.is_none() {
                            self.listing = true;
                            return Ok(WatchItem::Relist);
                        }
                        continue;
                    }
                    Err(e) if e.code() == Some(Code::OutOfRange) => {
                        self.rv = None;
                        continue;
                    }
                    Err(e) if e.is_transient() => {
                        self.back_off(&e).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            let msg = stream.message().await;
            let ev = match msg {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    log::debug!("watch of {:?}: stream ended; resuming", self.target);
                    self.stream = None;
                    continue;
                }
                Err(s) if s.code() == Code::OutOfRange => {
                    log::info!("watch of {:?}: {}; listing again", self.target, s.message());
                    self.stream = None;
                    self.rv = None;
                    continue;
                }
                Err(s) => {
                    let e = CpError::rpc("watch", s);
                    self.stream = None;
                    if e.is_transient() {
                        self.back_off(&e).await;
                        continue;
                    }
                    return Err(e);
                }
            };
            self.failures = 0;
            let rv = ev.resource_version;
            if !rv.is_empty() {
                self.rv = Some(rv.clone());
            }
            match EventType::try_from(ev.r#type).unwrap_or(EventType::Unspecified) {
                EventType::Bookmark => {
                    if self.listing {
                        self.listing = false;
                        return Ok(WatchItem::Synced {
                            resource_version: rv,
                        });
                    }
                }
                EventType::Unspecified => {}
                kind => {
                    return Ok(WatchItem::Event {
                        kind,
                        object: decode(&ev.kind, &ev.object)?,
                        resource_version: rv,
                    })
                }
            }
        }
    }
}
