//! Per-kind validators (see [`super::KIND_VALIDATORS`]). Basic checks only: required fields,
//! name syntax, value ranges, selectors matching their templates.

use serde_json::Value;

use super::names;
use crate::api::error::FieldError;
use crate::api::selector::{labels, string_map, LabelSelector};
use crate::controllers::cronjob::schedule::{time_zone, Schedule};

fn s<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn port_range(errs: &mut Vec<FieldError>, field: String, v: Option<&Value>, required: bool) {
    match v.and_then(Value::as_i64) {
        None if required => errs.push(FieldError::required(field)),
        Some(p) if !(1..=65535).contains(&p) => errs.push(FieldError::invalid(
            field,
            &p.to_string(),
            "must be between 1 and 65535, inclusive",
        )),
        _ => {}
    }
}

fn containers(errs: &mut Vec<FieldError>, spec: &Value, field: &str, list: &str, required: bool) {
    let cs = arr(spec, &format!("/{list}"));
    if cs.is_empty() && required {
        errs.push(FieldError::required(format!("{field}.{list}")));
    }
    let mut seen = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let f = format!("{field}.{list}[{i}]");
        match s(c, "/name") {
            None => errs.push(FieldError::required(format!("{f}.name"))),
            Some(n) => {
                if let Some(e) = names::dns1123_label(n) {
                    errs.push(FieldError::invalid(format!("{f}.name"), n, e));
                } else if seen.contains(&n) {
                    errs.push(FieldError::duplicate(format!("{f}.name"), n));
                }
                seen.push(n);
            }
        }
        if s(c, "/image").is_none() {
            errs.push(FieldError::required(format!("{f}.image")));
        }
        super::resources::container(errs, c, &f);
        for (j, p) in arr(c, "/ports").iter().enumerate() {
            port_range(
                errs,
                format!("{f}.ports[{j}].containerPort"),
                p.get("containerPort"),
                true,
            );
        }
        for (j, e) in arr(c, "/env").iter().enumerate() {
            if s(e, "/name").is_none() {
                errs.push(FieldError::required(format!("{f}.env[{j}].name")));
            }
        }
    }
}

/// What an ephemeral container may not set: it joins a running pod, without ports, probes,
/// hooks or resources of its own.
const NOT_FOR_EPHEMERAL: &[&str] = &[
    "restartPolicy",
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resources",
];

/// Container names are unique across the pod's lists; ephemeral containers set nothing of
/// [`NOT_FOR_EPHEMERAL`].
fn across_lists(errs: &mut Vec<FieldError>, spec: &Value, field: &str) {
    let mut seen: Vec<&str> = Vec::new();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        let mut own: Vec<&str> = Vec::new();
        for (i, c) in arr(spec, &format!("/{list}")).iter().enumerate() {
            let f = format!("{field}.{list}[{i}]");
            if let Some(n) = s(c, "/name") {
                if seen.contains(&n) {
                    errs.push(FieldError::duplicate(format!("{f}.name"), n));
                }
                own.push(n);
            }
            if list != "ephemeralContainers" {
                continue;
            }
            for key in NOT_FOR_EPHEMERAL {
                let set = match c.get(*key) {
                    None | Some(Value::Null) => false,
                    Some(Value::Object(m)) => !m.is_empty(),
                    Some(Value::Array(a)) => !a.is_empty(),
                    Some(_) => true,
                };
                if set {
                    errs.push(FieldError::forbidden(
                        format!("{f}.{key}"),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
        seen.extend(own);
    }
}

/// On the node's network a container port is the node's port: a `hostPort`, if given, is
/// the same number.
fn host_network_ports(errs: &mut Vec<FieldError>, spec: &Value, field: &str) {
    for list in ["containers", "initContainers"] {
        for (i, c) in arr(spec, &format!("/{list}")).iter().enumerate() {
            for (j, p) in arr(c, "/ports").iter().enumerate() {
                let host = p.get("hostPort").and_then(Value::as_i64);
                let container = p.get("containerPort").and_then(Value::as_i64);
                if let (Some(h), Some(c)) = (host, container) {
                    if h != c {
                        errs.push(FieldError::invalid(
                            format!("{field}.{list}[{i}].ports[{j}].hostPort"),
                            &h.to_string(),
                            "must match `containerPort` when `hostNetwork` is true",
                        ));
                    }
                }
            }
        }
    }
}

/// A pod spec at `field` (`spec` or `spec.template.spec`).
fn pod_spec(spec: &Value, field: &str, restart: &[&str]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    containers(&mut errs, spec, field, "containers", true);
    containers(&mut errs, spec, field, "initContainers", false);
    containers(&mut errs, spec, field, "ephemeralContainers", false);
    across_lists(&mut errs, spec, field);
    if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
        host_network_ports(&mut errs, spec, field);
    }
    if field != "spec" && !arr(spec, "/ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            format!("{field}.ephemeralContainers"),
            "cannot be set in a pod template",
        ));
    }
    if let Some(r) = s(spec, "/restartPolicy") {
        if !restart.contains(&r) {
            errs.push(FieldError::not_supported(
                format!("{field}.restartPolicy"),
                r,
                restart,
            ));
        }
    }
    let mut vols = Vec::new();
    for (i, v) in arr(spec, "/volumes").iter().enumerate() {
        match s(v, "/name") {
            None => errs.push(FieldError::required(format!("{field}.volumes[{i}].name"))),
            Some(n) if vols.contains(&n) => errs.push(FieldError::duplicate(
                format!("{field}.volumes[{i}].name"),
                n,
            )),
            Some(n) => vols.push(n),
        }
    }
    errs
}

const ALL_RESTART: &[&str] = &["Always", "OnFailure", "Never"];

pub fn pod(obj: &Value) -> Vec<FieldError> {
    pod_spec(obj.get("spec").unwrap_or(&Value::Null), "spec", ALL_RESTART)
}

pub fn service(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    let ty = s(obj, "/spec/type").unwrap_or("ClusterIP");
    if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("spec.type", ty, TYPES));
    }
    let ports = arr(obj, "/spec/ports");
    let headless = s(obj, "/spec/clusterIP") == Some("None");
    if ty == "ExternalName" {
        if s(obj, "/spec/externalName").is_none() {
            errs.push(FieldError::required("spec.externalName"));
        }
    } else if ports.is_empty() && !headless {
        errs.push(FieldError::required("spec.ports"));
    }
    let mut names_seen = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        port_range(
            &mut errs,
            format!("spec.ports[{i}].port"),
            p.get("port"),
            true,
        );
        match s(p, "/name") {
            None if ports.len() > 1 => {
                errs.push(FieldError::required(format!("spec.ports[{i}].name")))
            }
            Some(n) if names_seen.contains(&n) => {
                errs.push(FieldError::duplicate(format!("spec.ports[{i}].name"), n))
            }
            Some(n) => names_seen.push(n),
            None => {}
        }
        const PROTOS: &[&str] = &["TCP", "UDP", "SCTP"];
        if let Some(pr) = s(p, "/protocol") {
            if !PROTOS.contains(&pr) {
                errs.push(FieldError::not_supported(
                    format!("spec.ports[{i}].protocol"),
                    pr,
                    PROTOS,
                ));
            }
        }
    }
    errs
}

fn replicas(errs: &mut Vec<FieldError>, obj: &Value) {
    if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64) {
        if r < 0 {
            errs.push(FieldError::invalid(
                "spec.replicas",
                &r.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// Selector present, non-empty and matching the template's labels.
fn template_selector(errs: &mut Vec<FieldError>, obj: &Value, sel: Option<LabelSelector>) {
    let tmpl = labels(obj.pointer("/spec/template").unwrap_or(&Value::Null));
    match sel {
        None => errs.push(FieldError::required("spec.selector")),
        Some(sel) if sel.is_empty() => errs.push(FieldError::invalid(
            "spec.selector",
            "",
            "empty selector is invalid for deployment",
        )),
        Some(sel) if !sel.matches_labels(&tmpl) => {
            let shown: Vec<String> = tmpl.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                &format!("map[{}]", shown.join(" ")),
                "`selector` does not match template `labels`",
            ))
        }
        _ => {}
    }
    errs.extend(super::validate_labels(
        obj.pointer("/spec/template/metadata/labels"),
        "spec.template.metadata.labels",
    ));
}

fn template_spec(errs: &mut Vec<FieldError>, obj: &Value, restart: &[&str]) {
    match obj.pointer("/spec/template/spec") {
        Some(spec) => errs.extend(pod_spec(spec, "spec.template.spec", restart)),
        None => errs.push(FieldError::required("spec.template")),
    }
}

pub fn replication_controller(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    replicas(&mut errs, obj);
    let sel = obj
        .pointer("/spec/selector")
        .map(|m| LabelSelector::from_map(&string_map(Some(m))));
    template_selector(&mut errs, obj, sel);
    template_spec(&mut errs, obj, &["Always"]);
    errs
}

pub fn selector_workload(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    replicas(&mut errs, obj);
    let sel = obj
        .pointer("/spec/selector")
        .map(LabelSelector::from_object);
    template_selector(&mut errs, obj, sel);
    template_spec(&mut errs, obj, &["Always"]);
    errs
}

pub fn deployment(obj: &Value) -> Vec<FieldError> {
    let mut errs = selector_workload(obj);
    let ru = "/spec/strategy/rollingUpdate";
    super::rollout::rolling_update(&mut errs, obj, ru, "spec.strategy.rollingUpdate");
    errs
}

pub fn daemon_set(obj: &Value) -> Vec<FieldError> {
    let mut errs = selector_workload(obj);
    let ru = "/spec/updateStrategy/rollingUpdate";
    super::rollout::rolling_update(&mut errs, obj, ru, "spec.updateStrategy.rollingUpdate");
    errs
}

pub fn job(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let sel = obj
        .pointer("/spec/selector")
        .map(LabelSelector::from_object);
    template_selector(&mut errs, obj, sel);
    template_spec(&mut errs, obj, &["OnFailure", "Never"]);
    job_timing(&mut errs, obj, "spec");
    errs
}

/// `activeDeadlineSeconds` (positive) and `ttlSecondsAfterFinished` (non-negative, an
/// int32) of a Job spec at `at` (`spec`, or a CronJob's `spec.jobTemplate.spec`).
fn job_timing(errs: &mut Vec<FieldError>, obj: &Value, at: &str) {
    let ptr = |f: &str| format!("/{}/{f}", at.replace('.', "/"));
    // An Indexed Job has one index per completion: it needs their number.
    match obj.pointer(&ptr("completionMode")).and_then(Value::as_str) {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if obj.pointer(&ptr("completions")).is_none_or(Value::is_null) {
                errs.push(FieldError::required(format!("{at}.completions")));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            format!("{at}.completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    if let Some(d) = obj
        .pointer(&ptr("activeDeadlineSeconds"))
        .and_then(Value::as_i64)
    {
        if d <= 0 {
            let field = format!("{at}.activeDeadlineSeconds");
            errs.push(FieldError::invalid(
                field,
                &d.to_string(),
                "must be greater than 0",
            ));
        }
    }
    if let Some(t) = obj
        .pointer(&ptr("ttlSecondsAfterFinished"))
        .and_then(Value::as_i64)
    {
        let field = format!("{at}.ttlSecondsAfterFinished");
        if t < 0 {
            errs.push(FieldError::invalid(
                field,
                &t.to_string(),
                "must be greater than or equal to 0",
            ));
        } else if t > i64::from(i32::MAX) {
            errs.push(FieldError::invalid(
                field,
                &t.to_string(),
                "must be less than or equal to 2147483647",
            ));
        }
    }
}

/// Longest CronJob name: its Jobs add `-` and the scheduled time in minutes (11 chars).
const CRON_JOB_NAME_MAX: usize = 52;

pub fn cron_job(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = s(obj, "/metadata/name").unwrap_or("");
    if name.len() > CRON_JOB_NAME_MAX {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            format!("must be no more than {CRON_JOB_NAME_MAX} characters"),
        ));
    }
    match s(obj, "/spec/schedule") {
        None => errs.push(FieldError::required("spec.schedule")),
        Some(sched) => {
            if let Err(e) = sched.parse::<Schedule>() {
                errs.push(FieldError::invalid("spec.schedule", sched, e.to_string()));
            }
        }
    }
    if let Some(tz) = obj.pointer("/spec/timeZone").and_then(Value::as_str) {
        if let Err(e) = time_zone(tz) {
            errs.push(FieldError::invalid("spec.timeZone", tz, e.to_string()));
        }
    }
    let policies = ["Allow", "Forbid", "Replace"];
    if let Some(p) = s(obj, "/spec/concurrencyPolicy").filter(|p| !policies.contains(p)) {
        errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            p,
            &policies,
        ));
    }
    for f in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        let v = obj.pointer(&format!("/spec/{f}")).and_then(Value::as_i64);
        if let Some(v) = v.filter(|v| *v < 0) {
            let detail = "must be greater than or equal to 0";
            errs.push(FieldError::invalid(
                format!("spec.{f}"),
                &v.to_string(),
                detail,
            ));
        }
    }
    match obj.pointer("/spec/jobTemplate/spec/template/spec") {
        Some(spec) => errs.extend(pod_spec(
            spec,
            "spec.jobTemplate.spec.template.spec",
            &["OnFailure", "Never"],
        )),
        None => errs.push(FieldError::required("spec.jobTemplate.spec.template")),
    }
    job_timing(&mut errs, obj, "spec.jobTemplate.spec");
    errs
}

/// ConfigMap and Secret data keys.
pub fn config_map(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for field in ["data", "binaryData", "stringData"] {
        for k in obj
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|m| m.0)
        {
            let ok = !k.is_empty()
                && k.len() <= 253
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
            if !ok {
                errs.push(FieldError::invalid(
                    field,
                    k,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
                     (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for \
                     validation is '[-._a-zA-Z0-9]+')",
                ));
            }
        }
    }
    errs
}
