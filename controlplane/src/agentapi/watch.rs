//! The watch streams of the agent API: a node's pods, and Services merged with
//! EndpointSlices. Each runs as a task feeding a channel; it ends when the client goes
//! away, the server stops, or the store ends the watch (the client resumes from the last
//! `resource_version` it got, or relists after OUT_OF_RANGE).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::convert::{encode, status};
use super::proto::{EventType, WatchEvent};
use crate::api::client::{Event, Selectors, Watch};
use crate::api::{ApiClient, ApiError};

/// Events buffered per stream before the task waits for the client.
const BUFFER: usize = 256;

type Item = Result<WatchEvent, Status>;

/// The stream handed to tonic.
pub struct EventStream(mpsc::Receiver<Item>);

impl Stream for EventStream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.0.poll_recv(cx)
    }
}

/// Where a task sends, and what stops it.
struct Sink {
    tx: mpsc::Sender<Item>,
    stop: watch::Receiver<bool>,
}

impl Sink {
    /// `false` once the client is gone.
    async fn send(&self, item: Item) -> bool {
        self.tx.send(item).await.is_ok()
    }

    /// Resolves when the client is gone or the server stops.
    async fn done(&mut self) {
        tokio::select! {
            _ = self.tx.closed() => {}
            _ = self.stop.wait_for(|s| *s) => {}
        }
    }
}

fn event<K: Serialize>(ty: EventType, obj: &K, kind: &str, rv: String) -> Item {
    Ok(WatchEvent {
        r#type: ty as i32,
        kind: kind.to_string(),
        object: encode(obj)?,
        resource_version: rv,
    })
}

fn bookmark(rv: u64) -> Item {
    Ok(WatchEvent {
        r#type: EventType::Bookmark as i32,
        kind: String::new(),
        object: Vec::new(),
        resource_version: rv.to_string(),
    })
}

fn rv_of<K: Resource + Metadata<Ty = ObjectMeta>>(obj: &K) -> u64 {
    obj.metadata()
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A typed event as (type, object, revision).
fn convert<K>(ev: Event<K>) -> (EventType, Option<K>, Option<u64>)
where
    K: Resource + Metadata<Ty = ObjectMeta>,
{
    match ev {
        Event::Added(o) => {
            let rv = rv_of(&o);
            (EventType::Added, Some(o), Some(rv))
        }
        Event::Modified(o) => {
            let rv = rv_of(&o);
            (EventType::Modified, Some(o), Some(rv))
        }
        Event::Deleted(o) => {
            let rv = rv_of(&o);
            (EventType::Deleted, Some(o), Some(rv))
        }
        Event::Bookmark(rv) => (EventType::Bookmark, None, Some(rv)),
    }
}

/// List `K` (ADDED events with no resume point, then a BOOKMARK at the list's revision),
/// or start from `rv`; then open the watch.
async fn start<K>(
    client: &ApiClient,
    sel: &Selectors,
    rv: Option<u64>,
    initial: &mut Vec<Item>,
) -> Result<(Watch<K>, u64), ApiError>
where
    K: Resource + DeserializeOwned + Serialize,
{
    let from = match rv {
        Some(rv) => rv,
        None => {
            let list = client.list::<K>(None, sel).await?;
            for o in &list.items {
                initial.push(event(EventType::Added, o, K::KIND, String::new()));
            }
            list.resource_version
        }
    };
    Ok((client.watch::<K>(None, sel, Some(from)).await?, from))
}

/// The pods with `spec.nodeName == node`.
pub async fn pods(
    client: &ApiClient,
    node: &str,
    rv: Option<u64>,
    stop: watch::Receiver<bool>,
) -> Result<EventStream, Status> {
    let sel = Selectors {
        fields: format!("spec.nodeName={node}"),
        ..Default::default()
    };
    let mut initial = Vec::new();
    let (mut w, from) = start::<Pod>(client, &sel, rv, &mut initial)
        .await
        .map_err(status)?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut sink = Sink { tx, stop };
    tokio::spawn(async move {
        for item in initial {
            if !sink.send(item).await {
                return;
            }
        }
        if rv.is_none() && !sink.send(bookmark(from)).await {
            return;
        }
        loop {
            let ev = tokio::select! {
                _ = sink.done() => return,
                ev = w.next() => ev,
            };
            let item = match ev {
                None => return,
                Some(Err(e)) => Err(status(e)),
                Some(Ok(ev)) => match convert(ev) {
                    (_, None, rv) => bookmark(rv.unwrap_or(from)),
                    (ty, Some(o), rv) => event(ty, &o, Pod::KIND, rv.unwrap_or(0).to_string()),
                },
            };
            let fatal = item.is_err();
            if !sink.send(item).await || fatal {
                return;
            }
        }
    });
    Ok(EventStream(rx))
}

/// Services and EndpointSlices of every namespace, merged. Both watches read one store,
/// whose revisions are cluster-wide, so one resourceVersion resumes both: each event's
/// resume point is the lower of the two watches' progress (a resume may repeat a few
/// events of the other kind; applied in order, they converge on the same state).
pub async fn services(
    client: &ApiClient,
    rv: Option<u64>,
    stop: watch::Receiver<bool>,
) -> Result<EventStream, Status> {
    let all = Selectors::default();
    let mut initial = Vec::new();
    let (mut svc, from_svc) = start::<Service>(client, &all, rv, &mut initial)
        .await
        .map_err(status)?;
    let (mut eps, from_eps) = start::<EndpointSlice>(client, &all, rv, &mut initial)
        .await
        .map_err(status)?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut sink = Sink { tx, stop };
    tokio::spawn(async move {
        let mut progress = [from_svc, from_eps];
        for item in initial {
            if !sink.send(item).await {
                return;
            }
        }
        if rv.is_none() && !sink.send(bookmark(from_svc.min(from_eps))).await {
            return;
        }
        loop {
            let (i, item) = tokio::select! {
                _ = sink.done() => return,
                ev = svc.next() => (0, ev.map(|r| r.map(|e| {
                    let (ty, o, rv) = convert(e);
                    (ty, o.map(|o| encode(&o)), rv, Service::KIND)
                }))),
                ev = eps.next() => (1, ev.map(|r| r.map(|e| {
                    let (ty, o, rv) = convert(e);
                    (ty, o.map(|o| encode(&o)), rv, EndpointSlice::KIND)
                }))),
            };
            let item = match item {
                None => return,
                Some(Err(e)) => Err(status(e)),
                Some(Ok((ty, obj, rev, kind))) => {
                    if let Some(rev) = rev {
                        progress[i] = progress[i].max(rev);
                    }
                    let resume = progress[0].min(progress[1]);
                    match obj {
                        None => bookmark(resume),
                        Some(Err(e)) => Err(e),
                        Some(Ok(object)) => Ok(WatchEvent {
                            r#type: ty as i32,
                            kind: kind.to_string(),
                            object,
                            resource_version: resume.to_string(),
                        }),
                    }
                }
            };
            let fatal = item.is_err();
            if !sink.send(item).await || fatal {
                return;
            }
        }
    });
    Ok(EventStream(rx))
}
