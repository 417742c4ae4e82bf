use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::super::fixtures::*;
use super::super::resources::*;

fn container(cpu: &str, mem: &str, restart: Option<&str>) -> Container {
    Container {
        name: "c".into(),
        restart_policy: restart.map(Into::into),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(cpu.into())),
                ("memory".to_string(), Quantity(mem.into())),
            ])),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    }
}

fn r(milli_cpu: i64, memory: i64) -> Resources {
    Resources { milli_cpu, memory }
}

#[test]
fn app_init_sidecar_overhead() {
    let mut p = pod("p", "100m", "100Mi");
    let spec = p.spec.as_mut().unwrap();
    spec.containers.push(container("200m", "100Mi", None));
    // Init containers run one at a time: the max counts, unless it is below the app sum.
    spec.init_containers = Some(vec![
        container("1", "10Mi", None),
        container("50m", "1Gi", None),
    ]);
    let got = pod_requests(spec).unwrap().requests;
    assert_eq!(got, r(1000, 1 << 30));

    spec.init_containers = Some(vec![
        container("100m", "10Mi", Some("Always")), // sidecar: runs for the pod's lifetime
        container("500m", "10Mi", None),           // runs next to the sidecar: 600m
    ]);
    let got = pod_requests(spec).unwrap().requests;
    assert_eq!(got, r(600, (200 << 20) + (10 << 20)));

    spec.init_containers = None;
    spec.overhead = Some(BTreeMap::from([(
        "cpu".to_string(),
        Quantity("250m".into()),
    )]));
    assert_eq!(pod_requests(spec).unwrap().requests, r(550, 200 << 20));
}

#[test]
fn limits_default_requests_and_non_zero() {
    let mut p = pod("p", "", "");
    let c = &mut p.spec.as_mut().unwrap().containers[0];
    c.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([("cpu".to_string(), Quantity("2".into()))])),
        ..ResourceRequirements::default()
    });
    let req = pod_requests(p.spec.as_ref().unwrap()).unwrap();
    assert_eq!(req.requests, r(2000, 0));
    assert_eq!(req.non_zero, r(2000, DEFAULT_MEMORY_REQUEST));
    let zero = pod_requests(pod("p", "0", "0").spec.as_ref().unwrap()).unwrap();
    assert_eq!(zero.non_zero, r(0, 0), "an explicit zero stays zero");
    assert!(pod_requests(pod("p", "1Gb", "").spec.as_ref().unwrap()).is_err());
}

#[test]
fn host_port_extraction_and_conflicts() {
    let p = with_host_port(with_host_port(pod("p", "", ""), 80, "TCP"), 53, "UDP");
    let ports = host_ports(p.spec.as_ref().unwrap());
    assert_eq!(ports.len(), 2);
    let hp = |ip: Option<&str>, port| HostPort {
        ip: ip.map(Into::into),
        protocol: Protocol::Tcp,
        port,
    };
    assert!(hp(None, 80).conflicts(&hp(Some("10.0.0.1"), 80)));
    assert!(hp(Some("10.0.0.1"), 80).conflicts(&hp(Some("10.0.0.1"), 80)));
    assert!(!hp(Some("10.0.0.1"), 80).conflicts(&hp(Some("10.0.0.2"), 80)));
    assert!(!hp(None, 80).conflicts(&hp(None, 81)));
}
