//! Defaulting hook: [`default`] fills the fields Kubernetes defaults, per kind, from the
//! [`DEFAULTERS`] table. Runs on every create and update, before validation; must be
//! idempotent.

use serde_json::{json, Map, Value};

use super::admission;

pub type Defaulter = fn(&mut Value);

pub const DEFAULTERS: &[(&str, Defaulter)] = &[
    ("Namespace", namespace),
    ("Pod", pod),
    ("Service", service),
    ("Secret", secret),
    ("ReplicationController", replication_controller),
    ("ReplicaSet", workload),
    ("Deployment", deployment),
    ("StatefulSet", statefulset),
    ("DaemonSet", daemonset),
    ("Job", job),
    ("CronJob", cron_job),
    ("PersistentVolume", persistent_volume),
    ("PersistentVolumeClaim", persistent_volume_claim),
    ("LimitRange", limit_range),
    (
        "CustomResourceDefinition",
        super::custom::definition::default,
    ),
];

/// Apply the kind's defaults to `obj`.
pub fn default(kind: &str, obj: &mut Value) {
    if let Some((_, f)) = DEFAULTERS.iter().find(|(k, _)| *k == kind) {
        f(obj);
    }
}

/// The object at `ptr`, created (as `{}`) along the way if missing.
fn obj_at<'a>(v: &'a mut Value, ptr: &str) -> &'a mut Map<String, Value> {
    let mut cur = v;
    for seg in ptr.split('/').filter(|s| !s.is_empty()) {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("object")
            .entry(seg)
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut().expect("object")
}

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    match m.get(key) {
        None | Some(Value::Null) => {
            m.insert(key.to_string(), v);
        }
        _ => {}
    }
}

/// Each item's defaults ([`super::admission::limit_range::default_item`]).
fn limit_range(obj: &mut Value) {
    if let Some(items) = obj
        .pointer_mut("/spec/limits")
        .and_then(Value::as_array_mut)
    {
        items
            .iter_mut()
            .for_each(super::admission::limit_range::default_item);
    }
}

/// A volume made by hand is kept when its claim goes (Retain), and is a filesystem.
fn persistent_volume(obj: &mut Value) {
    let spec = obj_at(obj, "spec");
    set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
    set_default(spec, "volumeMode", json!("Filesystem"));
    // Until the volume controller sees it (Available, Bound ...), as in Kubernetes.
    set_default(obj_at(obj, "status"), "phase", json!("Pending"));
}

fn persistent_volume_claim(obj: &mut Value) {
    set_default(obj_at(obj, "spec"), "volumeMode", json!("Filesystem"));
    set_default(obj_at(obj, "status"), "phase", json!("Pending"));
}

fn namespace(obj: &mut Value) {
    let name = super::meta::name(obj).to_string();
    let labels = obj_at(obj, "metadata/labels");
    labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    set_default(obj_at(obj, "spec"), "finalizers", json!(["kubernetes"]));
    set_default(obj_at(obj, "status"), "phase", json!("Active"));
}

fn containers(spec: &mut Map<String, Value>, list: &str) {
    let Some(Value::Array(cs)) = spec.get_mut(list) else {
        return;
    };
    for c in cs.iter_mut().filter_map(Value::as_object_mut) {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let last = image.rsplit('/').next().unwrap_or("");
        let latest = !last.contains(':') || last.ends_with(":latest");
        let policy = if latest && !image.contains('@') {
            "Always"
        } else {
            "IfNotPresent"
        };
        set_default(c, "imagePullPolicy", json!(policy));
        set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
        set_default(c, "terminationMessagePolicy", json!("File"));
        set_default(c, "resources", json!({}));
        if let Some(Value::Array(ports)) = c.get_mut("ports") {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
}

/// Defaults of a pod spec (also used for templates).
fn pod_spec(spec: &mut Map<String, Value>, restart: &str) {
    set_default(spec, "restartPolicy", json!(restart));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    containers(spec, "containers");
    containers(spec, "initContainers");
    containers(spec, "ephemeralContainers");
}

fn pod(obj: &mut Value) {
    let spec = obj_at(obj, "spec");
    pod_spec(spec, "Always");
    host_network_ports(spec);
    let spec = obj.get_mut("spec").expect("made above");
    admission::resources::default_requests_from_limits(spec);
    let qos = admission::resources::qos_class(spec);
    let status = obj_at(obj, "status");
    set_default(status, "phase", json!("Pending"));
    set_default(status, "qosClass", json!(qos));
}

/// On the node's network a container port is a port of the node: `hostPort` defaults to
/// `containerPort` (for pods only, not templates, as Kubernetes since 1.28).
fn host_network_ports(spec: &mut Map<String, Value>) {
    if spec.get("hostNetwork") == Some(&json!(true)) {
        for list in ["containers", "initContainers"] {
            for c in spec
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                for p in c
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object_mut)
                {
                    if let Some(port) = p.get("containerPort").cloned() {
                        set_default(p, "hostPort", port);
                    }
                }
            }
        }
    }
}

fn service(obj: &mut Value) {
    let spec = obj_at(obj, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    if spec.get("type") != Some(&json!("ExternalName")) {
        set_default(spec, "sessionAffinity", json!("None"));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
    set_default(obj_at(obj, "status"), "loadBalancer", json!({}));
}

fn secret(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        set_default(m, "type", json!("Opaque"));
    }
}

fn template(obj: &mut Value, restart: &str) {
    pod_spec(obj_at(obj, "spec/template/spec"), restart);
}

fn replication_controller(obj: &mut Value) {
    let labels = obj.pointer("/spec/template/metadata/labels").cloned();
    let spec = obj_at(obj, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "minReadySeconds", json!(0));
    if let Some(l) = labels {
        set_default(spec, "selector", l.clone());
        if obj.pointer("/metadata/labels").is_none() {
            obj_at(obj, "metadata").insert("labels".into(), l);
        }
    }
    template(obj, "Always");
}

fn workload(obj: &mut Value) {
    set_default(obj_at(obj, "spec"), "replicas", json!(1));
    template(obj, "Always");
}

fn deployment(obj: &mut Value) {
    workload(obj);
    let spec = obj_at(obj, "spec");
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = obj_at(obj, "spec/strategy");
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type") == Some(&json!("RollingUpdate")) {
        set_default(
            strategy,
            "rollingUpdate",
            json!({"maxUnavailable": "25%", "maxSurge": "25%"}),
        );
    }
}

fn statefulset(obj: &mut Value) {
    workload(obj);
    let spec = obj_at(obj, "spec");
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(
        spec,
        "updateStrategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    );
}

fn daemonset(obj: &mut Value) {
    template(obj, "Always");
    let spec = obj_at(obj, "spec");
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(
        spec,
        "updateStrategy",
        json!({"type": "RollingUpdate",
               "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
    );
}

/// Jobs get a generated selector on their own uid unless `manualSelector` is set.
fn job(obj: &mut Value) {
    let uid = super::meta::str_field(obj, "uid").unwrap_or("").to_string();
    let name = super::meta::name(obj).to_string();
    let manual = obj.pointer("/spec/manualSelector") == Some(&json!(true));
    if !manual && !uid.is_empty() && obj.pointer("/spec/selector").is_none() {
        obj_at(obj, "spec").insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
        let labels = obj_at(obj, "spec/template/metadata/labels");
        set_default(labels, "batch.kubernetes.io/controller-uid", json!(uid));
        set_default(labels, "batch.kubernetes.io/job-name", json!(name));
        set_default(labels, "controller-uid", json!(uid));
        set_default(labels, "job-name", json!(name));
    }
    let spec = obj_at(obj, "spec");
    // As upstream: one completion only when neither is given; `parallelism` alone makes a
    // work queue (no `completions`).
    let unset =
        |spec: &serde_json::Map<String, Value>, f: &str| spec.get(f).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    template(obj, "Never");
}

fn cron_job(obj: &mut Value) {
    let spec = obj_at(obj, "spec");
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    pod_spec(obj_at(obj, "spec/jobTemplate/spec/template/spec"), "Never");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_spec(spec: Value) -> Value {
        let mut obj = json!({"metadata": {"name": "j", "uid": "u"}, "spec": spec});
        default("Job", &mut obj);
        obj["spec"].clone()
    }

    #[test]
    fn a_job_gets_one_completion_only_when_it_gives_neither_count() {
        let s = job_spec(json!({}));
        assert_eq!(
            (&s["completions"], &s["parallelism"]),
            (&json!(1), &json!(1))
        );
        // A work queue: parallelism alone, completions stays unset.
        let s = job_spec(json!({"parallelism": 3}));
        assert_eq!((s.get("completions"), &s["parallelism"]), (None, &json!(3)));
        let s = job_spec(json!({"completions": 5}));
        assert_eq!(
            (&s["completions"], &s["parallelism"]),
            (&json!(5), &json!(1))
        );
    }

    #[test]
    fn host_network_ports_are_host_ports() {
        let mut pod = json!({"spec": {"hostNetwork": true, "containers": [
            {"name": "a", "ports": [{"containerPort": 9100}, {"containerPort": 80, "hostPort": 8080}]},
        ]}});
        default("Pod", &mut pod);
        let ports = &pod["spec"]["containers"][0]["ports"];
        assert_eq!(
            (&ports[0]["hostPort"], &ports[1]["hostPort"]),
            (&json!(9100), &json!(8080))
        );
        let mut plain =
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}});
        default("Pod", &mut plain);
        assert!(plain["spec"]["containers"][0]["ports"][0]
            .get("hostPort")
            .is_none());
        let mut deploy = json!({"spec": {"template": {"spec": {"hostNetwork": true,
            "containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}}});
        default("Deployment", &mut deploy);
        assert!(
            deploy["spec"]["template"]["spec"]["containers"][0]["ports"][0]
                .get("hostPort")
                .is_none(),
            "templates are not defaulted"
        );
    }
}
