use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
    SecretEnvSource, SecretKeySelector, ServicePort, ServiceSpec,
};

use super::*;

fn svc(ns: &str, name: &str, ip: &str, ports: &[(&str, i32, &str)]) -> Service {
    let mut s = Service::default();
    s.metadata.namespace = Some(ns.into());
    s.metadata.name = Some(name.into());
    s.spec = Some(ServiceSpec {
        cluster_ip: Some(ip.into()),
        ports: Some(
            ports
                .iter()
                .map(|(n, p, proto)| ServicePort {
                    name: (!n.is_empty()).then(|| n.to_string()),
                    port: *p,
                    protocol: Some(proto.to_string()),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    });
    s
}

fn pod(ns: &str, links: Option<bool>) -> Pod {
    let mut p = Pod::default();
    p.metadata.namespace = Some(ns.into());
    p.metadata.name = Some("web-0".into());
    p.metadata.uid = Some("u-1".into());
    p.spec = Some(PodSpec {
        enable_service_links: links,
        ..Default::default()
    });
    p
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn service_links_as_the_kubelet_writes_them() {
    let s = svc("shop", "mysql", "10.96.0.20", &[("", 3306, "TCP")]);
    let env = service_vars(&s);
    let want = [
        ("MYSQL_SERVICE_HOST", "10.96.0.20"),
        ("MYSQL_SERVICE_PORT", "3306"),
        ("MYSQL_PORT", "tcp://10.96.0.20:3306"),
        ("MYSQL_PORT_3306_TCP", "tcp://10.96.0.20:3306"),
        ("MYSQL_PORT_3306_TCP_PROTO", "tcp"),
        ("MYSQL_PORT_3306_TCP_PORT", "3306"),
        ("MYSQL_PORT_3306_TCP_ADDR", "10.96.0.20"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(env, want);
}

#[test]
fn named_ports_and_dashes() {
    let s = svc(
        "shop",
        "my-db",
        "10.96.0.21",
        &[("sql", 3306, "TCP"), ("dns", 53, "UDP")],
    );
    let env = service_vars(&s);
    assert_eq!(get(&env, "MY_DB_SERVICE_PORT"), Some("3306"));
    assert_eq!(get(&env, "MY_DB_SERVICE_PORT_SQL"), Some("3306"));
    assert_eq!(get(&env, "MY_DB_SERVICE_PORT_DNS"), Some("53"));
    assert_eq!(get(&env, "MY_DB_PORT_53_UDP"), Some("udp://10.96.0.21:53"));
    assert_eq!(get(&env, "MY_DB_PORT_53_UDP_PROTO"), Some("udp"));
}

#[test]
fn headless_services_and_other_namespaces_are_left_out() {
    let services = vec![
        svc(
            "default",
            "kubernetes",
            "10.96.0.1",
            &[("https", 443, "TCP")],
        ),
        svc("shop", "mysql", "10.96.0.20", &[("", 3306, "TCP")]),
        svc("shop", "headless", "None", &[("", 80, "TCP")]),
        svc("other", "redis", "10.96.0.30", &[("", 6379, "TCP")]),
    ];
    let env = service_env(&pod("shop", None), &services);
    assert_eq!(get(&env, "MYSQL_SERVICE_HOST"), Some("10.96.0.20"));
    assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
    assert!(get(&env, "HEADLESS_SERVICE_HOST").is_none());
    assert!(get(&env, "REDIS_SERVICE_HOST").is_none());
    let off = service_env(&pod("shop", Some(false)), &services);
    assert!(
        get(&off, "MYSQL_SERVICE_HOST").is_none(),
        "enableServiceLinks: false"
    );
    assert_eq!(get(&off, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
}

#[test]
fn expansion_follows_kubernetes() {
    let vars = |n: &str| (n == "A").then(|| "x".to_string());
    assert_eq!(expand("$(A)-$(B)-$$(A)-$", &vars), "x-$(B)-$(A)-$");
}

#[test]
fn values_refs_and_env_from() {
    let p = pod("shop", None);
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let var = |name: &str, from: EnvVarSource| EnvVar {
        name: name.into(),
        value_from: Some(from),
        ..Default::default()
    };
    let c = Container {
        name: "app".into(),
        env_from: Some(vec![EnvFromSource {
            prefix: Some("S_".into()),
            secret_ref: Some(SecretEnvSource {
                name: "creds".into(),
                optional: None,
            }),
            ..Default::default()
        }]),
        env: Some(vec![
            var("NAME", field("metadata.name")),
            var("IP", field("status.podIP")),
            var("NODE", field("spec.nodeName")),
            var(
                "COLOR",
                EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "cfg".into(),
                        key: "color".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ),
            var(
                "MAYBE",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "absent".into(),
                        key: "k".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                },
            ),
            EnvVar {
                name: "GREETING".into(),
                value: Some("hi $(NAME)".into()),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    assert_eq!(
        references(&c),
        (vec!["cfg".into()], vec!["absent".into(), "creds".into()])
    );
    let map = |kv: &[(&str, &str)]| {
        Some(
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    let mut inputs = EnvInputs {
        pod_ip: "10.244.0.5".into(),
        node_name: "n1".into(),
        ..Default::default()
    };
    inputs
        .config_maps
        .insert("cfg".into(), map(&[("color", "blue")]));
    inputs
        .secrets
        .insert("creds".into(), map(&[("user", "root")]));
    inputs.secrets.insert("absent".into(), None);
    let env = resolve(&p, &c, &inputs).unwrap();
    assert_eq!(get(&env, "NAME"), Some("web-0"));
    assert_eq!(get(&env, "IP"), Some("10.244.0.5"));
    assert_eq!(get(&env, "NODE"), Some("n1"));
    assert_eq!(get(&env, "COLOR"), Some("blue"));
    assert_eq!(get(&env, "S_user"), Some("root"));
    assert_eq!(get(&env, "GREETING"), Some("hi web-0"));
    assert!(get(&env, "MAYBE").is_none());
    inputs.config_maps.insert("cfg".into(), None);
    assert_eq!(
        resolve(&p, &c, &inputs).unwrap_err(),
        "configmap \"cfg\" not found"
    );
}
