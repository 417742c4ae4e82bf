//! The pod manager: watches the pods bound to this node and keeps one worker per pod uid.
//! A worker gets the latest version of its pod (or `None` once the pod is gone) and
//! converges on it by itself; after the first complete list, sandboxes and containers of
//! pods no longer bound here (orphans) get a worker that tears them down.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use skiff_controlplane::agentapi::proto::EventType;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::worker::Worker;
use super::{layout, Ctx, KubeletError};
use crate::cpclient::{WatchItem, WatchObject};

struct Handle {
    desired: watch::Sender<Option<Arc<Pod>>>,
    task: JoinHandle<()>,
}

struct Workers {
    ctx: Arc<Ctx>,
    map: HashMap<String, Handle>,
}

impl Workers {
    fn send(&mut self, uid: &str, pod: Option<Arc<Pod>>) {
        self.map.retain(|_, h| !h.task.is_finished());
        match self.map.get(uid) {
            Some(h) => {
                h.desired.send_replace(pod);
            }
            None => {
                if pod.is_none() && !on_disk(&self.ctx, uid) {
                    return;
                }
                let (tx, rx) = watch::channel(pod);
                let task = tokio::spawn(Worker::new(self.ctx.clone(), uid.to_owned(), rx).run());
                self.map
                    .insert(uid.to_owned(), Handle { desired: tx, task });
            }
        }
    }
}

/// Whether pod `uid` has anything on this node.
fn on_disk(ctx: &Ctx, uid: &str) -> bool {
    ctx.net.netns_path(uid).exists() || layout::pod_dir(&ctx.cfg.state_dir, uid).exists() || {
        let ids = ctx.runtime.list().unwrap_or_default();
        ids.iter()
            .any(|id| layout::parse_container_id(id).is_some_and(|k| k.uid == uid))
    }
}

/// Pod uids with a sandbox, a pod directory (pods on the node's network have no sandbox)
/// or containers on this node.
fn uids_on_disk(ctx: &Ctx) -> HashSet<String> {
    let mut out: HashSet<String> = ctx.net.list().unwrap_or_default().into_iter().collect();
    let pods = layout::pods_dir(&ctx.cfg.state_dir);
    for entry in std::fs::read_dir(pods).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if crate::sandbox::valid_uid(&name) {
            out.insert(name);
        }
    }
    for id in ctx.runtime.list().unwrap_or_default() {
        if let Some(k) = layout::parse_container_id(&id) {
            out.insert(k.uid);
        }
    }
    out
}

pub async fn run(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) -> Result<(), KubeletError> {
    let mut w = ctx.client.watch_pods(&ctx.cfg.node_name);
    let mut workers = Workers {
        ctx: ctx.clone(),
        map: HashMap::new(),
    };
    let mut listing: Option<HashSet<String>> = None;
    let mut adopted = false;
    let result = loop {
        let item = tokio::select! {
            _ = stop.wait_for(|s| *s) => break Ok(()),
            item = w.next() => item,
        };
        match item {
            Err(e) => break Err(KubeletError::Watch(e)),
            Ok(WatchItem::Relist) => listing = Some(HashSet::new()),
            Ok(WatchItem::Synced { .. }) => {
                let Some(seen) = listing.take() else { continue };
                let gone: Vec<String> = workers
                    .map
                    .keys()
                    .filter(|u| !seen.contains(*u))
                    .cloned()
                    .collect();
                for uid in gone {
                    workers.send(&uid, None);
                }
                if !adopted {
                    adopted = true;
                    let orphans: Vec<String> = uids_on_disk(&ctx)
                        .into_iter()
                        .filter(|u| !seen.contains(u))
                        .collect();
                    for uid in orphans {
                        log::info!("kubelet: pod {uid} is no longer bound here: tearing it down");
                        workers.send(&uid, None);
                    }
                }
            }
            Ok(WatchItem::Event {
                kind,
                object: WatchObject::Pod(pod),
                ..
            }) => {
                let Some(uid) = pod.metadata.uid.clone() else {
                    continue;
                };
                if let Some(seen) = listing.as_mut() {
                    seen.insert(uid.clone());
                }
                let desired = (kind != EventType::Deleted).then(|| Arc::new(*pod));
                workers.send(&uid, desired);
            }
            Ok(WatchItem::Event { .. }) => {}
        }
    };
    for (_, h) in workers.map.drain() {
        h.task.abort();
    }
    result
}
