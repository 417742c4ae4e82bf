//! Picking a free value: a random start in the range, then the first value without a
//! claim after it; the claim's create settles races with other writers.

use super::claims::{self, Claim, Owner, NODE_PORTS, SERVICE_IPS};
use super::{Cidr, Ranges};
use crate::api::ApiError;
use crate::ControlPlane;

/// A free cluster IP: a random start in the range, then the first unclaimed address after
/// it (skipping the network address, `.1` of the `kubernetes` Service, and the broadcast).
pub async fn ip(cp: &ControlPlane, cidr: &Cidr, owner: &Owner) -> Result<String, ApiError> {
    let size = cidr.size();
    if size < 4 {
        return Err(ApiError::internal(format!(
            "service CIDR {cidr} is too small"
        )));
    }
    for _ in 0..8 {
        let taken = claims::list(cp, SERVICE_IPS).await?;
        let usable = size - 3;
        let start = fastrand::u64(0..usable);
        let free = (0..usable)
            .map(|i| 2 + (start + i) % usable)
            .filter_map(|off| cidr.nth(off))
            .map(|ip| ip.to_string())
            .find(|ip| !taken.contains_key(ip));
        let Some(ip) = free else {
            return Err(full(format!("no cluster IP left in {cidr}")));
        };
        if claims::claim(cp, SERVICE_IPS, &ip, owner).await? == Claim::New {
            return Ok(ip);
        }
    }
    Err(full("lost every race for a cluster IP".into()))
}

pub async fn port(cp: &ControlPlane, ranges: &Ranges, owner: &Owner) -> Result<u16, ApiError> {
    let (min, max) = (ranges.node_port_min, ranges.node_port_max);
    let count = u32::from(max - min) + 1;
    for _ in 0..8 {
        let taken = claims::list(cp, NODE_PORTS).await?;
        let start = fastrand::u32(0..count);
        let free = (0..count)
            .map(|i| min + ((start + i) % count) as u16)
            .find(|p| !taken.contains_key(&p.to_string()));
        let Some(port) = free else {
            return Err(full(format!("no NodePort left in {min}-{max}")));
        };
        if claims::claim(cp, NODE_PORTS, &port.to_string(), owner).await? == Claim::New {
            return Ok(port);
        }
    }
    Err(full("lost every race for a NodePort".into()))
}

fn full(message: String) -> ApiError {
    ApiError::new(500, "InternalError", message)
}
