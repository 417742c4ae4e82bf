//! The LimitRanger admission plugin: a namespace's LimitRanges fill in the requests and
//! limits a pod's containers leave out (`default`, `defaultRequest` of `Container` items) and
//! bound what containers, pods and claims ask for (`min`, `max`, `maxLimitRequestRatio`).
//! The messages are Kubernetes' own.

use serde_json::{json, Value};

use super::resources::{self, Amount, List, Side};

/// The annotation naming what the defaults set.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

fn items<'a>(ranges: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    ranges
        .iter()
        .filter_map(|r| r.pointer("/spec/limits").and_then(Value::as_array))
        .flatten()
        .filter(move |i| i.get("type").and_then(Value::as_str) == Some(kind))
}

/// Defaults a LimitRange item gets when stored (kube's `SetDefaults_LimitRangeItem`): for
/// `Container` items, a missing default limit is the max, a missing default request the
/// default limit, else the min.
pub fn default_item(item: &mut Value) {
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let Some(o) = item.as_object_mut() else {
        return;
    };
    let get = |o: &serde_json::Map<String, Value>, f: &str| {
        o.get(f)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let mut default = get(o, "default");
    let mut request = get(o, "defaultRequest");
    for (k, v) in get(o, "max") {
        default.entry(k).or_insert(v);
    }
    for (k, v) in default.iter().chain(get(o, "min").iter()) {
        request.entry(k.clone()).or_insert(v.clone());
    }
    if !default.is_empty() {
        o.insert("default".into(), Value::Object(default));
    }
    if !request.is_empty() {
        o.insert("defaultRequest".into(), Value::Object(request));
    }
}

/// Fill in the containers' missing requests and limits from the ranges' `Container` items
/// and note what was set in [`ANNOTATION`].
pub fn default_pod(ranges: &[Value], pod: &mut Value) {
    let mut notes = Vec::new();
    for item in items(ranges, "Container") {
        for (field, what) in [
            ("containers", "container"),
            ("initContainers", "init container"),
        ] {
            let Some(cs) = pod
                .pointer_mut(&format!("/spec/{field}"))
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for c in cs {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                for (source, side) in [
                    ("defaultRequest", Side::Requests),
                    ("default", Side::Limits),
                ] {
                    let set = fill(c, side, item.get(source));
                    if !set.is_empty() {
                        notes.push(format!(
                            "{} {} for {what} {name}",
                            set.join(", "),
                            match side {
                                Side::Requests => "request",
                                Side::Limits => "limit",
                            }
                        ));
                    }
                }
            }
        }
    }
    if !notes.is_empty() {
        let meta = crate::api::meta::meta_mut(pod);
        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = ann.as_object_mut() {
            a.insert(
                ANNOTATION.into(),
                json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
            );
        }
    }
}

/// Copies the entries of `defaults` that the container's `side` lacks; the names set, sorted.
fn fill(c: &mut Value, side: Side, defaults: Option<&Value>) -> Vec<String> {
    let Some(defaults) = defaults
        .and_then(Value::as_object)
        .filter(|d| !d.is_empty())
    else {
        return Vec::new();
    };
    let Some(obj) = c.as_object_mut() else {
        return Vec::new();
    };
    let res = obj.entry("resources").or_insert_with(|| json!({}));
    let Some(res) = res.as_object_mut() else {
        return Vec::new();
    };
    let have = res.entry(side.field()).or_insert_with(|| json!({}));
    let Some(have) = have.as_object_mut() else {
        return Vec::new();
    };
    let mut set = Vec::new();
    for (k, v) in defaults {
        if !have.contains_key(k) {
            have.insert(k.clone(), v.clone());
            set.push(k.clone());
        }
    }
    set.sort();
    set
}

/// A bound of a LimitRange item: on what (`Container`, `Pod`, ...), which resource, how much.
#[derive(Clone, Copy)]
struct Bound<'a> {
    kind: &'a str,
    res: &'a str,
    value: Amount,
}

/// What is asked for: the request and the limit of one resource.
type Asked = (Option<Amount>, Option<Amount>);

/// What a `min` (`max`) bound refuses, or `None`: the request (limit) must be given, and
/// neither may be below (above) the bound.
fn min_max(is_max: bool, b: Bound<'_>, (req, lim): Asked) -> Option<String> {
    let Bound { kind, res, value } = b;
    let (word, first, second) = if is_max {
        ("maximum", (lim, "limit"), (req, "request"))
    } else {
        ("minimum", (req, "request"), (lim, "limit"))
    };
    let beyond = |a: &Amount| {
        if is_max {
            a.milli > value.milli
        } else {
            a.milli < value.milli
        }
    };
    let Some(f) = first.0 else {
        return Some(format!(
            "{word} {res} usage per {kind} is {value}.  No {} is specified",
            first.1
        ));
    };
    [(Some(f), first.1), second]
        .into_iter()
        .find_map(|(a, name)| a.filter(beyond).map(|a| (a, name)))
        .map(|(a, name)| format!("{word} {res} usage per {kind} is {value}, but {name} is {a}"))
}

fn ratio(b: Bound<'_>, (req, lim): Asked) -> Option<String> {
    let Bound {
        kind,
        res,
        value: bound,
    } = b;
    let (Some(r), Some(l)) = (req.filter(|r| r.milli != 0), lim.filter(|l| l.milli != 0)) else {
        let missing = if req.is_none_or(|r| r.milli == 0) {
            "request"
        } else {
            "limit"
        };
        return Some(format!(
            "{res} max limit to request ratio per {kind} is {bound}, but no {missing} is specified or {missing} is 0"
        ));
    };
    let observed = l.milli as f64 / r.milli as f64;
    (observed * 1000.0 > bound.milli as f64).then(|| {
        format!(
            "{res} max limit to request ratio per {kind} is {bound}, but provided ratio is {observed:.6}"
        )
    })
}

/// Checks one set of requests and limits against an item's `min`, `max` and
/// `maxLimitRequestRatio`.
fn check(item: &Value, kind: &str, req: &List, lim: &List, errs: &mut Vec<String>) {
    type Check = fn(Bound<'_>, Asked) -> Option<String>;
    let checks: [(&str, Check); 3] = [
        ("min", |b, a| min_max(false, b, a)),
        ("max", |b, a| min_max(true, b, a)),
        ("maxLimitRequestRatio", ratio),
    ];
    for (field, f) in checks {
        for (res, value) in resources::list(item.get(field)) {
            let b = Bound {
                kind,
                res: &res,
                value,
            };
            errs.extend(f(b, (req.get(&res).copied(), lim.get(&res).copied())));
        }
    }
}

/// What the ranges refuse of a pod (after [`default_pod`]).
pub fn check_pod(ranges: &[Value], pod: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let empty = Vec::new();
    for item in items(ranges, "Container") {
        for field in ["containers", "initContainers"] {
            for c in spec.get(field).and_then(Value::as_array).unwrap_or(&empty) {
                let (req, lim) = (
                    resources::container(c, Side::Requests),
                    resources::container(c, Side::Limits),
                );
                check(item, "Container", &req, &lim, &mut errs);
            }
        }
    }
    for item in items(ranges, "Pod") {
        let (req, lim) = (
            resources::pod(spec, Side::Requests),
            resources::pod(spec, Side::Limits),
        );
        check(item, "Pod", &req, &lim, &mut errs);
    }
    errs
}

/// What the ranges refuse of a PersistentVolumeClaim's requested size.
pub fn check_claim(ranges: &[Value], claim: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let req = resources::list(claim.pointer("/spec/resources/requests"));
    let kind = "PersistentVolumeClaim";
    for item in items(ranges, kind) {
        for (res, bound) in resources::list(item.get("min")) {
            let b = Bound {
                kind,
                res: &res,
                value: bound,
            };
            errs.extend(min_max(false, b, (req.get(&res).copied(), None)));
        }
        for (res, bound) in resources::list(item.get("max")) {
            let r = req.get(&res).copied();
            errs.extend(match r {
                None => Some(format!(
                    "maximum {res} usage per {kind} is {bound}.  No request is specified"
                )),
                Some(r) if r.milli > bound.milli => Some(format!(
                    "maximum {res} usage per {kind} is {bound}, but request is {r}"
                )),
                _ => None,
            });
        }
    }
    errs
}

#[cfg(test)]
mod tests;
