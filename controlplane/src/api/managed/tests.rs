use serde_json::{json, Value};

use super::fieldset::{fields_of, FieldSet};
use super::*;

fn w(manager: &str) -> Writer<'_> {
    Writer {
        manager,
        api_version: "apps/v1",
        subresource: None,
    }
}

fn deployment(replicas: i64, labels: Value, env: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "env": env}]},
            },
        },
    })
}

/// `cfg` created by an apply of `kubectl`.
fn applied(cfg: Value) -> Value {
    apply(None, &cfg, w("kubectl"), false).unwrap()
}

fn owners_of(obj: &Value) -> Vec<(String, String)> {
    entries(obj)
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.manager, e.operation))
        .collect()
}

#[test]
fn fields_of_lists_leaves_keyed_items_and_sets() {
    let obj = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "uid": "u", "labels": {"a": "1"}, "finalizers": ["x"]},
        "spec": {
            "nodeSelector": {"disk": "ssd"},
            "containers": [{"name": "c", "image": "i", "args": ["-v"], "resources": {}}],
        },
        "status": {"phase": "Running"},
    });
    let set = fields_of(&obj);
    let got: Vec<String> = set.paths().iter().map(|p| p.join(" ")).collect();
    assert_eq!(
        got,
        [
            "f:metadata f:finalizers v:\"x\"",
            "f:metadata f:labels f:a",
            "f:spec f:containers k:{\"name\":\"c\"}",
            "f:spec f:containers k:{\"name\":\"c\"} f:args",
            "f:spec f:containers k:{\"name\":\"c\"} f:image",
            "f:spec f:containers k:{\"name\":\"c\"} f:name",
            "f:spec f:containers k:{\"name\":\"c\"} f:resources",
            "f:spec f:nodeSelector",
        ]
    );
    // fieldsV1 round trip, with "." on an item that has fields inside.
    let v1 = set.to_json();
    assert_eq!(
        v1["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["."],
        json!({})
    );
    assert_eq!(FieldSet::from_json(&v1).unwrap(), set);
}

#[test]
fn a_field_left_out_of_the_next_apply_is_removed() {
    let first = deployment(
        2,
        json!({"a": "1", "b": "2"}),
        json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]),
    );
    let live = apply(None, &first, w("kubectl"), false).unwrap();
    let second = deployment(2, json!({"a": "1"}), json!([{"name": "X", "value": "1"}]));
    let out = apply(Some(&live), &second, w("kubectl"), false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "X", "value": "1"}])
    );
    assert_eq!(owners_of(&out), [("kubectl".into(), "Apply".into())]);
}

#[test]
fn a_field_another_manager_changed_conflicts_unless_forced() {
    let cfg = deployment(2, json!({"a": "1"}), json!([]));
    let live = applied(cfg.clone());
    // `kubectl scale`: an update of spec.replicas by another manager.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(3);
    let scale = Writer {
        subresource: Some("scale"),
        ..w("kubectl")
    };
    record_update(&live, &mut scaled, scale);
    assert_eq!(
        owners_of(&scaled),
        [
            ("kubectl".into(), "Apply".into()),
            ("kubectl".into(), "Update".into())
        ]
    );
    // The same value again is no conflict (shared); a different one is.
    let same = deployment(3, json!({"a": "1"}), json!([]));
    apply(Some(&scaled), &same, w("kubectl"), false).unwrap();
    let other = deployment(4, json!({"a": "1"}), json!([]));
    let err = apply(Some(&scaled), &other, w("kubectl"), false).unwrap_err();
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" \
         using apps/v1: .spec.replicas"
    );
    assert_eq!(err.details.unwrap()["causes"][0]["field"], ".spec.replicas");
    // Forced: the field is taken over.
    let out = apply(Some(&scaled), &other, w("kubectl"), true).unwrap();
    assert_eq!(out["spec"]["replicas"], 4);
    let owners = entries(&out).unwrap();
    assert!(owners.iter().all(|e| e.subresource.is_none()));
}

#[test]
fn a_field_someone_else_also_owns_stays_when_left_out() {
    let cfg = deployment(2, json!({"a": "1", "b": "2"}), json!([]));
    let live = applied(cfg.clone());
    let both = deployment(2, json!({"b": "2"}), json!([]));
    let live = apply(Some(&live), &both, w("ci"), false).unwrap();
    let narrower = deployment(2, json!({"a": "1"}), json!([]));
    let out = apply(Some(&live), &narrower, w("kubectl"), false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "2"}));
}

#[test]
fn the_first_apply_to_an_untracked_object_meets_before_first_apply() {
    let live = deployment(1, json!({"a": "1"}), json!([]));
    let err = apply(
        Some(&live),
        &deployment(5, json!({"a": "1"}), json!([])),
        w("kubectl"),
        false,
    )
    .unwrap_err();
    assert!(
        err.message.contains("\"before-first-apply\""),
        "{}",
        err.message
    );
    let out = apply(
        Some(&live),
        &deployment(1, json!({"a": "1"}), json!([])),
        w("kubectl"),
        false,
    )
    .unwrap();
    assert!(owners_of(&out).contains(&("kubectl".into(), "Apply".into())));
}

#[test]
fn an_unchanged_apply_changes_nothing() {
    let cfg = deployment(2, json!({"a": "1"}), json!([]));
    let live = applied(cfg.clone());
    assert_eq!(apply(Some(&live), &cfg, w("kubectl"), false).unwrap(), live);
}

#[test]
fn updates_of_untracked_objects_stay_untracked() {
    let cur = deployment(1, json!({}), json!([]));
    let mut new = cur.clone();
    new["spec"]["replicas"] = json!(2);
    record_update(&cur, &mut new, w("kubectl-scale"));
    assert!(new["metadata"].get("managedFields").is_none());
}

#[test]
fn an_update_without_managed_fields_keeps_the_stored_ones() {
    let live = applied(deployment(1, json!({"a": "1"}), json!([])));
    // A PUT of an object read without them (kubectl replace).
    let mut new = live.clone();
    new["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    new["metadata"]["labels"]["b"] = json!("2");
    record_update(&live, &mut new, w("kubectl-replace"));
    let owners = entries(&new).unwrap();
    let replace = owners
        .iter()
        .find(|e| e.manager == "kubectl-replace")
        .unwrap();
    assert_eq!(
        replace.fields.paths(),
        [vec![
            "f:metadata".to_string(),
            "f:labels".into(),
            "f:b".into()
        ]]
    );
}

#[test]
fn kubectl_takes_over_what_its_client_side_apply_set() {
    let cfg = deployment(2, json!({"a": "1", "b": "2"}), json!([]));
    let mut live = cfg.clone();
    live["metadata"]["annotations"] = json!({LAST_APPLIED: cfg.to_string()});
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
    // Changed image, label b left out: no conflict, b goes, defaults stay.
    let mut next = deployment(2, json!({"a": "1"}), json!([]));
    next["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:2");
    let out = apply(Some(&live), &next, w("kubectl"), false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
    let c = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (c["image"].as_str(), c["imagePullPolicy"].as_str()),
        (Some("busybox:2"), Some("Always"))
    );
    // Another manager gets no such pass.
    assert_eq!(
        apply(Some(&live), &next, w("flux"), false)
            .unwrap_err()
            .code,
        409
    );
}

#[test]
fn an_item_someone_else_changed_stays_whole_when_left_out() {
    let cfg = deployment(1, json!({"a": "1"}), json!([{"name": "X", "value": "1"}]));
    let live = applied(cfg.clone());
    // `kubectl set env`: another manager changes X's value.
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("2");
    record_update(&live, &mut edited, w("kubectl-set"));
    let out = apply(
        Some(&edited),
        &deployment(1, json!({"a": "1"}), json!([])),
        w("kubectl"),
        false,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "X", "value": "2"}]),
        "the item keeps its key"
    );
}

#[test]
fn an_empty_map_owns_without_clearing() {
    let mut cfg = deployment(1, json!({"a": "1"}), json!([]));
    let live = applied(cfg.clone());
    let mut limited = live.clone();
    limited["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": "1"}});
    record_update(&live, &mut limited, w("kubectl-set"));
    cfg["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({});
    let out = apply(Some(&limited), &cfg, w("kubectl"), false).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "1"}})
    );
}

#[test]
fn ports_are_keyed_by_port_and_protocol() {
    let svc = |ports: Value| {
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "dns"}, "spec": {"ports": ports}})
    };
    let both = svc(json!([{"port": 53, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]));
    let live = apply(None, &both, w("kubectl"), false).unwrap();
    let paths = fields_of(&live).paths();
    assert!(paths
        .iter()
        .any(|p| p.join(" ") == r#"f:spec f:ports k:{"port":53,"protocol":"UDP"}"#));
    let out = apply(
        Some(&live),
        &svc(json!([{"port": 53, "protocol": "TCP"}])),
        w("kubectl"),
        false,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 53, "protocol": "TCP"}])
    );
}

#[test]
fn managed_fields_a_write_sends_are_the_owners_its_changes_go_to() {
    let live = applied(deployment(1, json!({"a": "1"}), json!([])));
    let mut new = live.clone();
    new["metadata"]["managedFields"] = json!([{"manager": "restored", "operation": "Apply",
        "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}}}}]);
    new["spec"]["replicas"] = json!(2);
    record_update(&live, &mut new, w("kubectl-edit"));
    let owners: Vec<String> = entries(&new)
        .unwrap()
        .into_iter()
        .map(|e| e.manager)
        .collect();
    assert_eq!(owners, ["restored", "kubectl-edit"]);
    // Invalid ones are ignored: the stored owners stay.
    let mut bad = live.clone();
    bad["metadata"]["managedFields"] = json!([{"manager": "x", "fieldsV1": "nope"}]);
    record_update(&live, &mut bad, w("kubectl-edit"));
    assert_eq!(owners_of(&bad), owners_of(&live));
}
