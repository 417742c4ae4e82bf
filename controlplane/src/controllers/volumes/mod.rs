//! PersistentVolumes and their claims (kube-controller-manager's persistent volume
//! controller, with k3s' `local-path` provisioner built in).
//!
//! - [`Claims`] binds each claim: to the volume its `volumeName` names, else to the best
//!   fitting free volume ([`matching`]), else, for a class whose provisioner is ours,
//!   to a volume it provisions. A claim without a class gets the default class first
//!   (the `local-path` class exists from the start). Binding reserves the volume first
//!   (its `claimRef`, written against its resourceVersion, so two claims never take one
//!   volume), then writes the claim's `volumeName` and status. A claim nothing fits
//!   stays Pending with a Warning event saying why, as in Kubernetes.
//! - [`Volumes`] keeps each volume's phase (Available, Bound, Released) and deletes a
//!   provisioned volume whose claim is gone when its reclaim policy says Delete.
//!
//! A claim of a class with `volumeBindingMode: WaitForFirstConsumer` stays Pending until the
//! scheduler places a pod that uses it and names that pod's node on the claim
//! (`volume.kubernetes.io/selected-node`); it then binds to a volume reachable from that
//! node, or gets one provisioned there.
//!
//! A provisioned volume is a directory the kubelet of the node running the claim's
//! first pod makes under its state directory (the scheduler pins the claim to that node);
//! a `hostPath` or `local` volume is that path.
//! Not yet: removing a deleted volume's directory, dynamic resizing.

pub mod matching;

use std::sync::Arc;

use serde_json::{json, Value};

use super::cache::{key_of, Cache};
use super::events::{Involved, Once, Recorder};
use super::owners;
use super::queue::WorkQueue;
use super::runtime::{Action, Controller};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::{Objects, WriteOptions};
use matching::{
    annotation, best, bound_status, claim_class, claimed_by, default_class, provisioned_volume, s,
    volume_phase, waits_for_consumer, BIND_COMPLETED, BOUND_BY_CONTROLLER, NO_PROVISIONER,
    PROVISIONED_BY, PROVISIONER, SELECTED_NODE,
};

pub struct Claims {
    pub objects: Objects,
    pub claims: Arc<Cache>,
    pub volumes: Arc<Cache>,
    pub classes: Arc<Cache>,
    /// For the labels of the node chosen for a waiting claim's first consumer.
    pub nodes: Arc<Cache>,
    pub events: Recorder,
    /// The last event reported per claim uid, so a resync does not repeat it.
    pub reported: Once,
}

impl Claims {
    /// Reserves `pv` for `claim` (if not already), then binds the claim to it.
    async fn bind(&self, claim: &Value, pv: &Value) -> Result<(), ControllerError> {
        let pv = if claimed_by(pv, claim)
            && s(pv, "/spec/claimRef/uid").is_some_and(|u| !u.is_empty())
        {
            pv.clone()
        } else {
            let patch = json!({
                "metadata": {
                    "resourceVersion": pv.pointer("/metadata/resourceVersion"),
                    "annotations": {BOUND_BY_CONTROLLER: "yes"},
                },
                "spec": {"claimRef": matching::claim_ref(claim)},
            });
            owners::merge_patch(&self.objects, self.volumes.info, pv, &patch, None).await?
        };
        let name = meta::name(&pv);
        let claim = if s(claim, "/spec/volumeName") == Some(name) {
            claim.clone()
        } else {
            let patch = json!({
                "metadata": {
                    "resourceVersion": claim.pointer("/metadata/resourceVersion"),
                    "annotations": {BIND_COMPLETED: "yes", BOUND_BY_CONTROLLER: "yes"},
                },
                "spec": {"volumeName": name},
            });
            owners::merge_patch(&self.objects, self.claims.info, claim, &patch, None).await?
        };
        owners::write_status_if_changed(&self.objects, self.claims.info, &claim, bound_status(&pv))
            .await?;
        log::info!("volumes: bound claim {} to volume {name}", key_of(&claim));
        Ok(())
    }

    /// No volume fits: provision one if the claim's class (`found`, if it exists) is ours
    /// (on `node`, when the claim waited for its first consumer), else say why it waits.
    async fn provision_or_wait(
        &self,
        claim: &Value,
        found: Option<&Value>,
        node: Option<&str>,
    ) -> Result<(), ControllerError> {
        let class = claim_class(claim);
        let (reason, message, warning) = match found {
            Some(k) if s(k, "/provisioner") == Some(PROVISIONER) => {
                let pv = provisioned_volume(claim, k, node);
                let written = self
                    .objects
                    .create(self.volumes.info, None, pv, WriteOptions::default())
                    .await;
                match written {
                    Ok(_) => log::info!(
                        "volumes: provisioned pvc-{} for {}",
                        owners::uid(claim),
                        key_of(claim)
                    ),
                    Err(e) if e.reason == "AlreadyExists" => {}
                    Err(e) => return Err(e.into()),
                }
                return Ok(());
            }
            Some(k) => (
                "ExternalProvisioning",
                format!(
                    "waiting for a volume to be created either by the external provisioner {:?} \
                     or manually by the system administrator",
                    s(k, "/provisioner").unwrap_or_default()
                ),
                false,
            ),
            None if class.is_empty() => (
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set".into(),
                true,
            ),
            None => (
                "ProvisioningFailed",
                format!("storageclass.storage.k8s.io {class:?} not found"),
                true,
            ),
        };
        self.report(claim, reason, &message, warning);
        Ok(())
    }

    /// Drops the claim's selected node (the scheduler places its consumer again) and
    /// says why.
    async fn unpin(&self, claim: &Value, why: &str) -> Result<Action, ControllerError> {
        let patch = json!({"metadata": {"annotations": {SELECTED_NODE: null}}});
        owners::merge_patch(&self.objects, self.claims.info, claim, &patch, None).await?;
        self.report(claim, "FailedBinding", why, true);
        Ok(Action::Done)
    }

    /// A Warning or Normal event on the claim, once per message.
    fn report(&self, claim: &Value, reason: &'static str, message: &str, warning: bool) {
        if !self.reported.first(owners::uid(claim), message) {
            return;
        }
        let on = Involved::of(claim);
        if warning {
            self.events.warning(on, reason, message);
        } else {
            self.events.normal(on, reason, message);
        }
    }
}

impl Controller for Claims {
    fn name(&self) -> &'static str {
        "persistentvolumeclaims"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(claim) = self.claims.get(key) else {
            return Ok(Action::Done);
        };
        if meta::is_deleting(&claim) {
            return Ok(Action::Done);
        }
        let phase = s(&claim, "/status/phase");
        if let Some(name) = s(&claim, "/spec/volumeName").filter(|n| !n.is_empty()) {
            match self.volumes.get_named(None, name) {
                Some(pv)
                    if claimed_by(&pv, &claim)
                        || pv.pointer("/spec/claimRef").is_none_or(Value::is_null) =>
                {
                    self.bind(&claim, &pv).await?;
                }
                Some(_) => {
                    let msg = format!("volume {name:?} is bound to another claim");
                    self.report(&claim, "FailedBinding", &msg, true);
                }
                None if phase == Some("Bound") => {
                    let lost = json!({"phase": "Lost"});
                    owners::write_status_if_changed(&self.objects, self.claims.info, &claim, lost)
                        .await?;
                }
                None => {
                    let msg = format!("volume {name:?} not found");
                    self.report(&claim, "FailedBinding", &msg, true);
                }
            }
            return Ok(Action::Done);
        }
        if phase == Some("Bound") {
            // Bound before volumes were objects: a node-local directory, as then.
            return Ok(Action::Done);
        }
        if claim
            .pointer("/spec/storageClassName")
            .is_none_or(Value::is_null)
        {
            if let Some(class) = default_class(&self.classes.list(None)) {
                let patch = json!({"spec": {"storageClassName": meta::name(class)}});
                owners::merge_patch(&self.objects, self.claims.info, &claim, &patch, None).await?;
                return Ok(Action::Done);
            }
        }
        let volumes = self.volumes.list(None);
        let class = Some(claim_class(&claim))
            .filter(|c| !c.is_empty())
            .and_then(|c| self.classes.get_named(None, c));
        let delayed = class.as_ref().is_some_and(waits_for_consumer);
        let selected = annotation(&claim, SELECTED_NODE).filter(|n| !n.is_empty());
        let node = match (delayed, selected) {
            (false, _) => None,
            (true, None) => {
                // Only a volume pre-bound to the claim binds before a consumer exists.
                if let Some(pv) = volumes.iter().find(|pv| claimed_by(pv, &claim)) {
                    self.bind(&claim, pv).await?;
                } else {
                    let msg = "waiting for first consumer to be created before binding";
                    self.report(&claim, "WaitForFirstConsumer", msg, false);
                }
                return Ok(Action::Done);
            }
            (true, Some(name)) => match self.nodes.get_named(None, name) {
                Some(node) => Some(node),
                None => {
                    let msg = format!("the node {name:?} chosen for the claim's consumer is gone");
                    return self.unpin(&claim, &msg).await;
                }
            },
        };
        match best(&claim, &volumes, node.as_ref()) {
            Some(pv) => self.bind(&claim, pv).await?,
            None => {
                let made_by_hand = class
                    .as_ref()
                    .is_some_and(|k| s(k, "/provisioner") == Some(NO_PROVISIONER));
                if let (Some(node), true) = (&node, made_by_hand) {
                    // Taken meanwhile by another claim: the consumer must go elsewhere.
                    let msg = format!(
                        "no available persistent volume is reachable from node {:?}",
                        meta::name(node)
                    );
                    return self.unpin(&claim, &msg).await;
                }
                self.provision_or_wait(&claim, class.as_ref(), node.as_ref().map(meta::name))
                    .await?
            }
        }
        Ok(Action::Done)
    }
}

pub struct Volumes {
    pub objects: Objects,
    pub volumes: Arc<Cache>,
    pub claims: Arc<Cache>,
}

impl Controller for Volumes {
    fn name(&self) -> &'static str {
        "persistentvolumes"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(pv) = self.volumes.get(key) else {
            return Ok(Action::Done);
        };
        if meta::is_deleting(&pv) {
            return Ok(Action::Done);
        }
        let claim = pv
            .pointer("/spec/claimRef")
            .filter(|r| r.is_object())
            .and_then(|r| {
                let ns = s(r, "/namespace").unwrap_or("default");
                self.claims.get_named(Some(ns), s(r, "/name")?)
            });
        let phase = volume_phase(&pv, claim.as_ref());
        let ours = annotation(&pv, PROVISIONED_BY) == Some(PROVISIONER);
        let delete = s(&pv, "/spec/persistentVolumeReclaimPolicy") == Some("Delete");
        if phase == "Released" && ours && delete {
            let opts = Default::default();
            match self
                .objects
                .delete(self.volumes.info, None, meta::name(&pv), &opts)
                .await
            {
                Ok(_) => log::info!("volumes: deleted {}, its claim is gone", meta::name(&pv)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(Action::Done);
        }
        owners::write_status_if_changed(
            &self.objects,
            self.volumes.info,
            &pv,
            json!({"phase": phase}),
        )
        .await?;
        Ok(Action::Done)
    }
}

/// Wires the queues: a claim's change requeues it and its volume; a volume's change
/// requeues it, its claim, and every claim still waiting (it may fit now); a class's
/// change requeues the waiting claims.
pub fn watch(
    claims: &Arc<Cache>,
    volumes: &Arc<Cache>,
    classes: &Arc<Cache>,
    claim_q: &Arc<WorkQueue>,
    volume_q: &Arc<WorkQueue>,
) {
    let (cq, vq) = (claim_q.clone(), volume_q.clone());
    claims.on_change(Arc::new(move |old, new| {
        for c in [old, new].into_iter().flatten() {
            cq.add(&key_of(c));
            if let Some(v) = s(c, "/spec/volumeName") {
                vq.add(v);
            }
        }
    }));
    let waiting = |claims: &Cache, q: &WorkQueue| {
        for c in claims.list(None) {
            if s(&c, "/status/phase") != Some("Bound") {
                q.add(&key_of(&c));
            }
        }
    };
    let (cq, vq, cs) = (claim_q.clone(), volume_q.clone(), claims.clone());
    volumes.on_change(Arc::new(move |old, new| {
        for v in [old, new].into_iter().flatten() {
            vq.add(meta::name(v));
            if let (Some(ns), Some(name)) = (
                s(v, "/spec/claimRef/namespace"),
                s(v, "/spec/claimRef/name"),
            ) {
                cq.add(&format!("{ns}/{name}"));
            }
        }
        waiting(&cs, &cq);
    }));
    let (cq, cs) = (claim_q.clone(), claims.clone());
    classes.on_change(Arc::new(move |_, _| waiting(&cs, &cq)));
}
