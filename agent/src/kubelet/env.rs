//! A container's environment as the kubelet builds it: the Service variables of the pod's
//! namespace (`enableServiceLinks`) and of the `kubernetes` Service, then `envFrom`, then
//! `env` (value with `$(VAR)` expansion, fieldRef, configMapKeyRef, secretKeyRef).
//! Pure: ConfigMaps and Secrets are fetched by the caller ([`references`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Data of the ConfigMaps or Secrets a container refers to (`None`: not found).
pub type Sources = BTreeMap<String, Option<BTreeMap<String, String>>>;

/// What [`resolve`] needs besides the pod and container.
#[derive(Debug, Default)]
pub struct EnvInputs<'a> {
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
    /// Every Service the node knows of (filtered here).
    pub services: &'a [Service],
    pub config_maps: Sources,
    pub secrets: Sources,
}

/// The ConfigMaps and Secrets a container's env refers to.
pub fn references(c: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for f in c.env_from.iter().flatten() {
        cms.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        cms.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// `my-svc` → `MY_SVC`.
fn env_name(s: &str) -> String {
    s.to_uppercase().replace('-', "_")
}

/// The variables of one Service (Kubernetes' `envvars.FromServices`).
pub fn service_vars(svc: &Service) -> Vec<(String, String)> {
    let Some(spec) = &svc.spec else { return vec![] };
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ip.is_empty() || ip == "None" || ports.is_empty() {
        return vec![];
    }
    let prefix = env_name(svc.metadata.name.as_deref().unwrap_or_default());
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.clone()),
        (format!("{prefix}_SERVICE_PORT"), ports[0].port.to_string()),
    ];
    for p in ports {
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", env_name(n)),
                p.port.to_string(),
            ));
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let url = format!("{}://{ip}:{}", proto.to_lowercase(), p.port);
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
        out.push((pp.clone(), url));
        out.push((format!("{pp}_PROTO"), proto.to_lowercase()));
        out.push((format!("{pp}_PORT"), p.port.to_string()));
        out.push((format!("{pp}_ADDR"), ip.clone()));
    }
    out
}

/// The Service variables a pod gets: its namespace's Services when `enableServiceLinks`
/// (default true), and always the `kubernetes` Service of `default`. A Service of the
/// pod's namespace wins over the master one of the same name, as in the kubelet.
pub fn service_env(pod: &Pod, services: &[Service]) -> Vec<(String, String)> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for s in services {
        let (sns, name) = (
            s.metadata.namespace.as_deref().unwrap_or("default"),
            s.metadata.name.as_deref().unwrap_or_default(),
        );
        if sns == "default" && name == "kubernetes" && !chosen.contains_key(name) {
            chosen.insert(name, s);
        }
    }
    if links {
        for s in services {
            if s.metadata.namespace.as_deref().unwrap_or("default") == ns {
                chosen.insert(s.metadata.name.as_deref().unwrap_or_default(), s);
            }
        }
    }
    chosen.values().flat_map(|s| service_vars(s)).collect()
}

/// Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` is a literal `$`,
/// unknown references stay as written.
pub fn expand(s: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(j) => {
                    let name = &body[..j];
                    match vars(name) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &body[j + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A pod metadata field both env and downwardAPI volumes resolve: name, namespace, uid, or
/// one label or annotation (`metadata.labels['key']`; absent → empty). `None`: not one of
/// these.
pub fn metadata_field(m: &ObjectMeta, path: &str) -> Option<String> {
    let one = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|l| l.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    match path {
        "metadata.name" => Some(m.name.clone().unwrap_or_default()),
        "metadata.namespace" => Some(m.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Some(m.uid.clone().unwrap_or_default()),
        _ => one("metadata.labels['", &m.labels)
            .or_else(|| one("metadata.annotations['", &m.annotations)),
    }
}

/// `fieldRef` values the kubelet supports for env.
pub fn field_value(pod: &Pod, path: &str, inputs: &EnvInputs) -> Result<String, String> {
    if let Some(v) = metadata_field(&pod.metadata, path) {
        return Ok(v);
    }
    Ok(match path {
        "spec.nodeName" => inputs.node_name.clone(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => inputs.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => inputs.host_ip.clone(),
        p => return Err(format!("unsupported fieldRef {p:?}")),
    })
}

fn lookup(
    sources: &Sources,
    kind: &str,
    name: &str,
    key: &str,
    optional: bool,
) -> Result<Option<String>, String> {
    match sources.get(name).and_then(Option::as_ref) {
        Some(data) => match data.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {key} in {kind} {name}")),
        },
        None if optional => Ok(None),
        None => Err(format!("{kind} {name:?} not found")),
    }
}

/// The container's variables in order (later entries override earlier ones); an error
/// (a missing ConfigMap, Secret or key that is not optional) is the kubelet's
/// `CreateContainerConfigError` message.
pub fn resolve(
    pod: &Pod,
    c: &Container,
    inputs: &EnvInputs,
) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = service_env(pod, inputs.services);
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| match out
        .iter_mut()
        .find(|(ek, _)| *ek == k)
    {
        Some(e) => e.1 = v,
        None => out.push((k, v)),
    };
    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.clone().unwrap_or_default();
        let (kind, name, optional, sources) = match (&f.config_map_ref, &f.secret_ref) {
            (Some(r), _) => (
                "configmap",
                &r.name,
                r.optional.unwrap_or(false),
                &inputs.config_maps,
            ),
            (None, Some(r)) => (
                "secret",
                &r.name,
                r.optional.unwrap_or(false),
                &inputs.secrets,
            ),
            (None, None) => continue,
        };
        match sources.get(name.as_str()).and_then(Option::as_ref) {
            Some(data) => {
                for (k, v) in data {
                    set(&mut out, format!("{prefix}{k}"), v.clone());
                }
            }
            None if optional => {}
            None => return Err(format!("{kind} {name:?} not found")),
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let known = out.clone();
                let v = e.value.clone().unwrap_or_default();
                expand(&v, &|n| {
                    known.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
                })
            }
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path, inputs)?
                } else if let Some(r) = &from.config_map_key_ref {
                    let opt = r.optional.unwrap_or(false);
                    match lookup(&inputs.config_maps, "configmap", &r.name, &r.key, opt)? {
                        Some(v) => v,
                        None => continue,
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let opt = r.optional.unwrap_or(false);
                    match lookup(&inputs.secrets, "secret", &r.name, &r.key, opt)? {
                        Some(v) => v,
                        None => continue,
                    }
                } else {
                    return Err(format!("env {}: unsupported valueFrom", e.name));
                }
            }
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
