//! Allocation of cluster-wide ranges: service cluster IPs, NodePorts and node pod CIDRs.
//!
//! Every allocated value is a claim key in the replicated store (`/skiff/alloc/<range>/<v>`,
//! value: the owner), written with a create that fails if the key exists: two API servers
//! racing for one value cannot both win, and the set of claims is the allocator's bitmap,
//! the same on every replica. The ranges themselves live in the store too ([`Ranges`], like
//! Kubernetes' range allocation objects). [`repair`] reconciles claims with the stored
//! objects (claims of deleted owners, values of objects without a claim).
//!
//! The API server's write path calls [`hooks`] ([`service`] does the work).
//! [`podcidr`] is the node IPAM controller; [`kubernetes`] creates the `kubernetes`
//! Service.

pub mod cidr;
pub mod claims;
pub mod hooks;
pub mod kubernetes;
mod pick;
pub mod podcidr;
pub mod repair;
pub mod service;

use serde::{Deserialize, Serialize};

pub use cidr::{Cidr, CidrError};

use crate::{Consistency, ControlPlane, Op};

/// Store key of the cluster's ranges.
pub const RANGES_KEY: &str = "/skiff/ranges";

/// The ranges allocated from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ranges {
    pub service_cidr: String,
    pub node_port_min: u16,
    pub node_port_max: u16,
    pub cluster_cidr: String,
    pub node_cidr_mask: u8,
}

impl Default for Ranges {
    fn default() -> Self {
        Self {
            service_cidr: "10.96.0.0/12".into(),
            node_port_min: 30000,
            node_port_max: 32767,
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask: 24,
        }
    }
}

/// Failure to configure the ranges.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    #[error(transparent)]
    Cidr(#[from] CidrError),
    #[error("node CIDR mask /{mask} does not fit in cluster CIDR {cluster}")]
    Mask { mask: u8, cluster: String },
    #[error("node port range {min}-{max} is empty")]
    Ports { min: u16, max: u16 },
    #[error("storing the ranges: {0}")]
    Store(#[from] crate::Error),
}

impl Ranges {
    pub fn service(&self) -> Cidr {
        self.service_cidr.parse().unwrap_or_else(|_| {
            Ranges::default()
                .service_cidr
                .parse()
                .expect("default CIDR")
        })
    }

    pub fn cluster(&self) -> Cidr {
        self.cluster_cidr.parse().unwrap_or_else(|_| {
            Ranges::default()
                .cluster_cidr
                .parse()
                .expect("default CIDR")
        })
    }

    /// Check the values.
    pub fn validate(&self) -> Result<(), RangeError> {
        self.service_cidr.parse::<Cidr>()?;
        let cluster: Cidr = self.cluster_cidr.parse()?;
        if self.node_cidr_mask < cluster.prefix() || self.node_cidr_mask > 30 {
            return Err(RangeError::Mask {
                mask: self.node_cidr_mask,
                cluster: self.cluster_cidr.clone(),
            });
        }
        if self.node_port_min > self.node_port_max || self.node_port_min == 0 {
            return Err(RangeError::Ports {
                min: self.node_port_min,
                max: self.node_port_max,
            });
        }
        Ok(())
    }

    /// The ranges in the store (defaults if none were stored).
    pub async fn load(cp: &ControlPlane) -> Ranges {
        match cp.get(RANGES_KEY, Consistency::Local).await {
            Ok((Some(kv), _)) => serde_json::from_str(&kv.value).unwrap_or_default(),
            _ => Ranges::default(),
        }
    }

    /// Store these ranges (on every server start; the last start's flags win, with a
    /// warning when they change, since values allocated from the old ranges stay).
    pub async fn store(&self, cp: &ControlPlane) -> Result<(), RangeError> {
        self.validate()?;
        let value = serde_json::to_string(self).expect("ranges serialize");
        let (cur, _) = cp.get(RANGES_KEY, Consistency::Linearizable).await?;
        let op = match cur {
            Some(kv) if kv.value == value => return Ok(()),
            Some(kv) => {
                log::warn!("allocation ranges change from {} to {value}", kv.value);
                Op::Update {
                    key: RANGES_KEY.into(),
                    value,
                    expected_revision: Some(kv.mod_revision),
                }
            }
            None => Op::Create {
                key: RANGES_KEY.into(),
                value,
            },
        };
        cp.apply(op).await?;
        Ok(())
    }
}
