//! The workload controllers (kube-controller-manager's share of Skiff): ReplicationController
//! and ReplicaSet ([`replicas`]), Deployment ([`deployment`]), DaemonSet ([`daemonset`]),
//! StatefulSet ([`statefulset`]), Job ([`job`]), CronJob ([`cronjob`]: Jobs on a schedule),
//! HorizontalPodAutoscaler ([`hpa`]), PersistentVolumes and their claims ([`volumes`]), the
//! garbage collector ([`gc`]), ResourceQuota usage ([`quota`]), namespace deletion
//! ([`namespace`]) and the deletion of a
//! CustomResourceDefinition's objects ([`crd`]). Controllers of pods share adoption and release
//! ([`claim`]); all of them say what they did in Events ([`events`]).
//!
//! The runtime is small: one watched cache per kind ([`cache`]), a de-duplicating work queue
//! per controller ([`queue`]), and idempotent `reconcile(key)` functions ([`runtime`]) that
//! never depend on seeing every event (changes of owned objects map to their owner's key,
//! and every key is requeued periodically). Start everything with [`spawn_all`].

pub mod cache;
pub mod claim;
pub mod crd;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod events;
pub mod gc;
pub mod history;
pub mod hpa;
pub mod job;
pub mod job_indexed;
pub mod namespace;
pub mod owners;
pub mod pods;
pub mod queue;
pub mod quota;
pub mod replica_status;
pub mod replicas;
pub mod runtime;
pub mod statefulset;
pub mod volumes;

use std::sync::Arc;

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::api::registry::{self, ResourceInfo};
use crate::api::{ApiClient, ApiError};
use cache::{key_of, Cache};
use queue::WorkQueue;
use runtime::{resync, run, Controller};

/// A failed reconcile (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}")]
    Invalid(String),
}

impl ControllerError {
    /// A lost optimistic-concurrency race: expected, retried quietly.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Api(e) if e.code == 409)
    }
}

/// The running controllers; dropping the handle stops them.
pub struct Controllers {
    tasks: Vec<JoinHandle<()>>,
    /// Runs reflectors of its own for custom kinds.
    gc: Arc<gc::GarbageCollector>,
}

impl Controllers {
    /// Stop every controller and reflector (the same as dropping the handle).
    pub fn shutdown(self) {}
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.gc.stop_following();
    }
}

fn index_of(api_version: &str, kind: &str) -> usize {
    registry::RESOURCES
        .iter()
        .position(|i| i.kind == kind && i.api_version() == api_version)
        .expect("kind is served")
}

/// Enqueue the controller (of `kind`) of an object, or for an orphan every owner candidate
/// in its namespace (adoption).
fn to_owner(queue: &Arc<WorkQueue>, owners: &Arc<Cache>, obj: &Value, adopt: bool) {
    let info: &ResourceInfo = owners.info;
    match owners::controller_ref(obj) {
        Some(r) if r.get("kind").and_then(Value::as_str) == Some(info.kind) => {
            if let (Some(ns), Some(name)) = (
                owners::namespace(obj),
                r.get("name").and_then(Value::as_str),
            ) {
                queue.add(&format!("{ns}/{name}"));
            }
        }
        Some(_) => {}
        None if adopt => {
            for o in owners.list(owners::namespace(obj)) {
                let sel = replicas::selector(info.kind, &o);
                if sel.is_some_and(|s| s.matches(obj)) {
                    queue.add(&key_of(&o));
                }
            }
        }
        None => {}
    }
}

/// Enqueue the changed object itself.
fn watch_primary(cache: &Arc<Cache>, queue: &Arc<WorkQueue>) {
    let q = queue.clone();
    cache.on_change(Arc::new(move |old, new| {
        if let Some(o) = new.or(old) {
            q.add(&key_of(o));
        }
    }));
}

/// Map changes of `children` to their owner in `owners`.
fn watch_owned(children: &Arc<Cache>, owners: &Arc<Cache>, queue: &Arc<WorkQueue>, adopt: bool) {
    let (q, o) = (queue.clone(), owners.clone());
    children.on_change(Arc::new(move |old, new| {
        for obj in [old, new].into_iter().flatten() {
            to_owner(&q, &o, obj, adopt);
        }
    }));
}

fn start<C: Controller>(
    tasks: &mut Vec<JoinHandle<()>>,
    c: C,
    queue: Arc<WorkQueue>,
    primary: &Arc<Cache>,
    caches: Vec<Arc<Cache>>,
    to_key: fn(&str) -> String,
) {
    tasks.push(tokio::spawn(resync(primary.clone(), queue.clone(), to_key)));
    tasks.push(tokio::spawn(run(Arc::new(c), queue, caches)));
}

/// Start every controller on the current tokio runtime.
pub fn spawn_all(client: &ApiClient) -> Controllers {
    let objects = client.objects().clone();
    // The kinds the controllers below read in full; the garbage collector needs only
    // metadata of the others.
    const FULL: [(&str, &str); 17] = [
        ("v1", "Pod"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("v1", "ReplicationController"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "DaemonSet"),
        ("v1", "Node"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "PersistentVolume"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "ControllerRevision"),
        ("v1", "Namespace"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("v1", "ResourceQuota"),
    ];
    let caches: Vec<Arc<Cache>> = registry::RESOURCES
        .iter()
        .map(|info| {
            if FULL.contains(&(info.api_version().as_ref(), info.kind)) {
                Cache::new(info)
            } else {
                Cache::metadata_only(info)
            }
        })
        .collect();
    let cache = |av, kind| caches[index_of(av, kind)].clone();
    let (pods, rcs, rss) = (
        cache("v1", "Pod"),
        cache("v1", "ReplicationController"),
        cache("apps/v1", "ReplicaSet"),
    );
    let (deploys, nss) = (cache("apps/v1", "Deployment"), cache("v1", "Namespace"));
    let (events, writer) = events::Recorder::start(objects.clone());
    let mut tasks = vec![
        writer,
        tokio::spawn(events::expire_forever(objects.clone())),
    ];
    let same: fn(&str) -> String = str::to_string;

    for owners in [&rcs, &rss] {
        let q = WorkQueue::new();
        watch_primary(owners, &q);
        watch_owned(&pods, owners, &q, true);
        let c = replicas::Replicas {
            objects: objects.clone(),
            owners: owners.clone(),
            pods: pods.clone(),
            expectations: Default::default(),
            events: events.clone(),
        };
        start(
            &mut tasks,
            c,
            q,
            owners,
            vec![owners.clone(), pods.clone()],
            same,
        );
    }

    let q = WorkQueue::new();
    watch_primary(&deploys, &q);
    watch_owned(&rss, &deploys, &q, false);
    let c = deployment::Deployments::new(
        objects.clone(),
        deploys.clone(),
        rss.clone(),
        events.clone(),
    );
    start(
        &mut tasks,
        c,
        q,
        &deploys,
        vec![deploys.clone(), rss.clone()],
        same,
    );

    let (sets, nodes) = (cache("apps/v1", "DaemonSet"), cache("v1", "Node"));
    let revisions = cache("apps/v1", "ControllerRevision");
    let q = WorkQueue::new();
    watch_primary(&sets, &q);
    watch_owned(&pods, &sets, &q, true);
    watch_owned(&revisions, &sets, &q, false);
    // A node added or removed, or with new labels or spec (taints, unschedulable), may
    // add or remove a daemon pod of any set; its status (heartbeats) does not.
    let (q2, s2) = (q.clone(), sets.clone());
    nodes.on_change(Arc::new(move |old, new| {
        if node_placement(old) != node_placement(new) {
            for k in s2.keys() {
                q2.add(&k);
            }
        }
    }));
    let c = daemonset::DaemonSets {
        objects: objects.clone(),
        sets: sets.clone(),
        nodes: nodes.clone(),
        pods: pods.clone(),
        revisions: revisions.clone(),
        expectations: Default::default(),
        failed_backoff: Default::default(),
        events: events.clone(),
    };
    start(
        &mut tasks,
        c,
        q,
        &sets,
        vec![sets.clone(), nodes.clone(), pods.clone(), revisions.clone()],
        same,
    );

    let stateful = cache("apps/v1", "StatefulSet");
    let q = WorkQueue::new();
    watch_primary(&stateful, &q);
    watch_owned(&pods, &stateful, &q, true);
    watch_owned(&revisions, &stateful, &q, false);
    let c = statefulset::StatefulSets {
        objects: objects.clone(),
        sets: stateful.clone(),
        pods: pods.clone(),
        revisions: revisions.clone(),
        claims: cache("v1", "PersistentVolumeClaim"),
        expectations: Default::default(),
        events: events.clone(),
    };
    start(
        &mut tasks,
        c,
        q,
        &stateful,
        vec![stateful.clone(), pods.clone(), revisions.clone()],
        same,
    );

    let jobs = cache("batch/v1", "Job");
    let q = WorkQueue::new();
    watch_primary(&jobs, &q);
    watch_owned(&pods, &jobs, &q, false);
    let c = job::Jobs {
        objects: objects.clone(),
        jobs: jobs.clone(),
        pods: pods.clone(),
        expectations: Default::default(),
        finished: Default::default(),
        events: events.clone(),
    };
    start(
        &mut tasks,
        c,
        q,
        &jobs,
        vec![jobs.clone(), pods.clone()],
        same,
    );

    let cronjobs = cache("batch/v1", "CronJob");
    let q = WorkQueue::new();
    watch_primary(&cronjobs, &q);
    watch_owned(&jobs, &cronjobs, &q, false);
    let c = cronjob::CronJobs {
        objects: objects.clone(),
        cronjobs: cronjobs.clone(),
        jobs: jobs.clone(),
        job_writes: Default::default(),
        status_writes: Default::default(),
        events: events.clone(),
        said: Default::default(),
    };
    start(
        &mut tasks,
        c,
        q,
        &cronjobs,
        vec![cronjobs.clone(), jobs.clone()],
        same,
    );

    let hpas = cache("autoscaling/v2", "HorizontalPodAutoscaler");
    let q = WorkQueue::new();
    watch_primary(&hpas, &q);
    let c = hpa::Autoscalers {
        objects: objects.clone(),
        hpas: hpas.clone(),
        pods: pods.clone(),
        nodes: nodes.clone(),
        state: Default::default(),
        events: events.clone(),
    };
    start(
        &mut tasks,
        c,
        q,
        &hpas,
        vec![hpas.clone(), pods.clone(), nodes.clone()],
        same,
    );

    let claims = cache("v1", "PersistentVolumeClaim");
    let (pvs, classes) = (
        cache("v1", "PersistentVolume"),
        cache("storage.k8s.io/v1", "StorageClass"),
    );
    let (claim_q, volume_q) = (WorkQueue::new(), WorkQueue::new());
    volumes::watch(&claims, &pvs, &classes, &claim_q, &volume_q);
    let c = volumes::Claims {
        objects: objects.clone(),
        claims: claims.clone(),
        volumes: pvs.clone(),
        classes: classes.clone(),
        nodes: nodes.clone(),
        events: events.clone(),
        reported: Default::default(),
    };
    let all = vec![claims.clone(), pvs.clone(), classes.clone(), nodes.clone()];
    start(&mut tasks, c, claim_q, &claims, all.clone(), same);
    let c = volumes::Volumes {
        objects: objects.clone(),
        volumes: pvs.clone(),
        claims: claims.clone(),
    };
    start(&mut tasks, c, volume_q, &pvs, all, same);

    let q = WorkQueue::new();
    watch_primary(&nss, &q);
    let accounts = cache("v1", "ServiceAccount");
    let q2 = q.clone();
    // A deleted default ServiceAccount is made again.
    accounts.on_change(Arc::new(move |old, new| {
        if let (Some(gone), None) = (old, new) {
            if crate::api::meta::name(gone) == namespace::DEFAULT_ACCOUNT {
                q2.add(owners::namespace(gone).unwrap_or("default"));
            }
        }
    }));
    let c = namespace::Namespaces {
        objects: objects.clone(),
        namespaces: nss.clone(),
        accounts: accounts.clone(),
    };
    start(&mut tasks, c, q, &nss, vec![nss.clone(), accounts], same);

    let crds = cache("apiextensions.k8s.io/v1", "CustomResourceDefinition");
    let q = WorkQueue::new();
    watch_primary(&crds, &q);
    let c = crd::Definitions {
        objects: objects.clone(),
        crds: crds.clone(),
    };
    start(&mut tasks, c, q, &crds, vec![crds.clone()], same);

    let quotas = cache("v1", "ResourceQuota");
    let q = WorkQueue::new();
    quota::watch(&caches, &quotas, &q);
    let c = quota::Quotas {
        objects: objects.clone(),
    };
    start(&mut tasks, c, q, &quotas, vec![quotas.clone()], same);

    let q = WorkQueue::new();
    let gc = Arc::new(gc::GarbageCollector::new(objects.clone(), caches.clone()));
    for (idx, c) in caches.iter().enumerate() {
        let (q, gc) = (q.clone(), gc.clone());
        c.on_change(Arc::new(move |old, new| {
            for k in gc.observe(idx, old, new) {
                q.add(&k);
            }
        }));
    }
    // The kinds of CRDs are collected too, each from a cache of its own.
    let (weak_gc, q2) = (Arc::downgrade(&gc), q.clone());
    crds.on_change(Arc::new(move |old, new| {
        let name = crate::api::meta::name(new.or(old).expect("a change has a side"));
        if let Some(gc) = weak_gc.upgrade() {
            gc.follow_definition(new, name, &q2);
        }
    }));
    tasks.push(tokio::spawn(run(gc.clone(), q, caches.clone())));

    for c in caches {
        tasks.push(tokio::spawn(cache::reflect(c, objects.clone())));
    }
    Controllers { tasks, gc }
}

/// What of a node decides where daemon pods go: that it exists, its labels and its spec.
fn node_placement(n: Option<&Value>) -> Option<(Option<&Value>, Option<&Value>)> {
    n.map(|n| (n.pointer("/metadata/labels"), n.get("spec")))
}
