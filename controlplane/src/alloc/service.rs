//! Cluster IPs and NodePorts of Services, in the API server's create/update/delete path.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::claims::{self, Claim, Owner, NODE_PORTS, SERVICE_IPS};
use super::{pick, Ranges};
use crate::api::error::FieldError;
use crate::api::registry;
use crate::api::ApiError;
use crate::ControlPlane;

/// Values newly claimed by one write; [`Claims::rollback`] them if the write fails.
#[derive(Debug, Default)]
#[must_use = "roll the claims back if the write fails"]
pub struct Claims {
    uid: String,
    ips: Vec<String>,
    ports: Vec<u16>,
}

impl Claims {
    /// Release what this write claimed (the object was not written).
    pub async fn rollback(self, cp: &ControlPlane) {
        for ip in &self.ips {
            claims::release(cp, SERVICE_IPS, ip, &self.uid).await;
        }
        for p in &self.ports {
            claims::release(cp, NODE_PORTS, &p.to_string(), &self.uid).await;
        }
    }
}

fn spec_str<'a>(svc: &'a Value, field: &str) -> &'a str {
    svc.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn uses_node_ports(svc: &Value) -> bool {
    matches!(spec_str(svc, "type"), "NodePort" | "LoadBalancer")
}

/// The cluster IP a Service holds (none for headless and ExternalName services).
pub fn cluster_ip(svc: &Value) -> Option<String> {
    if spec_str(svc, "type") == "ExternalName" {
        return None;
    }
    let ip = spec_str(svc, "clusterIP");
    (!ip.is_empty() && ip != "None").then(|| ip.to_string())
}

/// The NodePorts a Service holds.
pub fn node_ports(svc: &Value) -> Vec<u16> {
    let mut out: Vec<u16> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .filter_map(|n| u16::try_from(n).ok().filter(|n| *n > 0))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn owner(svc: &Value) -> Owner {
    let m = &svc["metadata"];
    Owner {
        name: format!(
            "{}/{}",
            m["namespace"].as_str().unwrap_or(""),
            m["name"].as_str().unwrap_or("")
        ),
        uid: m["uid"].as_str().unwrap_or("").to_string(),
    }
}

/// Before validating an update: keep the allocated values the client left out (the cluster
/// IP, and the NodePort of a port with the same number and protocol), as Kubernetes does.
pub fn carry_allocated(old: &Value, new: &mut Value) {
    if spec_str(new, "type") == "ExternalName" {
        return;
    }
    if spec_str(new, "clusterIP").is_empty() {
        if let Some(ip) = cluster_ip(old) {
            new["spec"]["clusterIP"] = json!(ip);
            new["spec"]["clusterIPs"] = json!([ip]);
        }
    }
    if !uses_node_ports(new) {
        return;
    }
    let old_ports = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned();
    let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return;
    };
    for p in ports.iter_mut().filter(|p| p.get("nodePort").is_none()) {
        let same = old_ports.iter().flatten().find(|o| {
            o.get("port") == p.get("port")
                && o.get("protocol").unwrap_or(&json!("TCP"))
                    == p.get("protocol").unwrap_or(&json!("TCP"))
        });
        if let Some(np) = same.and_then(|o| o.get("nodePort")) {
            p["nodePort"] = np.clone();
        }
    }
}

fn invalid(svc: &Value, errs: Vec<FieldError>) -> ApiError {
    let info = registry::by_kind("v1", "Service").expect("services are served");
    ApiError::invalid(info, svc["metadata"]["name"].as_str().unwrap_or(""), &errs)
}

/// After validation, before writing `new` (`old`: the stored object of an update): claim
/// its cluster IP and NodePorts, allocating the missing ones. On error nothing stays
/// claimed.
pub async fn before_write(
    cp: &ControlPlane,
    old: Option<&Value>,
    new: &mut Value,
) -> Result<Claims, ApiError> {
    let ranges = Ranges::load(cp).await;
    let owner = owner(new);
    let mut claims = Claims {
        uid: owner.uid.clone(),
        ..Default::default()
    };
    match assign(cp, &ranges, &owner, old, new, &mut claims).await {
        Ok(()) => Ok(claims),
        Err(e) => {
            claims.rollback(cp).await;
            Err(e)
        }
    }
}

async fn assign(
    cp: &ControlPlane,
    ranges: &Ranges,
    owner: &Owner,
    old: Option<&Value>,
    new: &mut Value,
    claims: &mut Claims,
) -> Result<(), ApiError> {
    let ty = spec_str(new, "type").to_string();
    if ty != "ExternalName" && spec_str(new, "clusterIP") != "None" {
        let cidr = ranges.service();
        let ip = match spec_str(new, "clusterIP") {
            "" => pick::ip(cp, &cidr, owner).await?,
            requested => {
                let requested = requested.to_string();
                let in_range = requested
                    .parse::<Ipv4Addr>()
                    .is_ok_and(|ip| cidr.contains(ip));
                if !in_range {
                    let msg = format!(
                        "provided IP is not in the valid range. The range of valid IPs is {cidr}"
                    );
                    return Err(invalid(
                        new,
                        vec![FieldError::invalid("spec.clusterIP", &requested, msg)],
                    ));
                }
                let claim = claims::claim(cp, SERVICE_IPS, &requested, owner).await?;
                // Held under this very name: a create of an existing Service, which the
                // store refuses with AlreadyExists.
                let same_name =
                    matches!(&claim, Claim::Taken(o) if old.is_none() && o.name == owner.name);
                if matches!(claim, Claim::Taken(_)) && !same_name {
                    return Err(invalid(
                        new,
                        vec![FieldError::invalid(
                            "spec.clusterIP",
                            &requested,
                            "provided IP is already allocated",
                        )],
                    ));
                }
                requested
            }
        };
        if old.and_then(cluster_ip).as_deref() != Some(ip.as_str()) {
            claims.ips.push(ip.clone());
        }
        let spec = &mut new["spec"];
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
        spec["ipFamilies"] = json!(["IPv4"]);
        if spec.get("ipFamilyPolicy").is_none() {
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }
    }
    if ty != "ExternalName" && spec_str(new, "clusterIP") == "None" {
        new["spec"]["clusterIPs"] = json!(["None"]);
    }
    let node_ports = uses_node_ports(new);
    let held = old.map(node_ports_of).unwrap_or_default();
    let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    let mut errs = Vec::new();
    for (i, p) in ports.iter_mut().enumerate() {
        if !node_ports {
            if let Some(o) = p.as_object_mut() {
                o.remove("nodePort");
            }
            continue;
        }
        let requested = p.get("nodePort").and_then(Value::as_u64).unwrap_or(0);
        if requested == 0 {
            let np = pick::port(cp, ranges, owner).await?;
            claims.ports.push(np);
            p["nodePort"] = json!(np);
            continue;
        }
        let field = format!("spec.ports[{i}].nodePort");
        let in_range = (u64::from(ranges.node_port_min)..=u64::from(ranges.node_port_max))
            .contains(&requested);
        if !in_range {
            let msg = format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                ranges.node_port_min, ranges.node_port_max
            );
            errs.push(int_invalid(field, requested, &msg));
            continue;
        }
        let np = requested as u16;
        match claims::claim(cp, NODE_PORTS, &np.to_string(), owner).await? {
            Claim::New if !held.contains(&np) => claims.ports.push(np),
            Claim::New | Claim::Held => {}
            Claim::Taken(_) => errs.push(int_invalid(
                field,
                requested,
                "provided port is already allocated",
            )),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(new, errs))
    }
}

/// An invalid integer value, shown unquoted as Kubernetes does.
fn int_invalid(field: String, value: u64, detail: &str) -> FieldError {
    FieldError {
        reason: "FieldValueInvalid",
        field,
        message: format!("Invalid value: {value}: {detail}"),
    }
}

fn node_ports_of(svc: &Value) -> Vec<u16> {
    if uses_node_ports(svc) {
        node_ports(svc)
    } else {
        Vec::new()
    }
}

/// After a write of `old` → `new` (`None`: removed) succeeded: release the values `old`
/// held that `new` does not.
pub async fn release_unused(cp: &ControlPlane, old: &Value, new: Option<&Value>) {
    let uid = owner(old).uid;
    let keep_ip = new.and_then(cluster_ip);
    if let Some(ip) = cluster_ip(old).filter(|ip| Some(ip) != keep_ip.as_ref()) {
        claims::release(cp, SERVICE_IPS, &ip, &uid).await;
    }
    let keep = new.map(node_ports_of).unwrap_or_default();
    for p in node_ports_of(old).into_iter().filter(|p| !keep.contains(p)) {
        claims::release(cp, NODE_PORTS, &p.to_string(), &uid).await;
    }
}
