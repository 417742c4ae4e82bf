//! `kubectl create <generator>` (protobuf bodies) and `kubectl apply` three-way merges
//! against the API server.

mod kube;

use kube::{header, start};

/// `kubectl create <generator>` sends protobuf bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_generators() {
    let c = start().await;
    c.ok(&["create", "namespace", "gen"]).await;
    let n = ["-n", "gen"];
    for args in [
        &[
            "create",
            "configmap",
            "cm",
            "--from-literal=a=b",
            "--from-literal=c=",
        ][..],
        &[
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=k=secret",
        ],
        &["create", "service", "clusterip", "svc", "--tcp=80:8080"],
        &[
            "create",
            "deployment",
            "d",
            "--image=nginx:1.27",
            "--replicas=3",
            "--port=80",
        ],
        &["create", "job", "j", "--image=busybox", "--", "echo", "hi"],
        &[
            "create",
            "cronjob",
            "cj",
            "--image=busybox",
            "--schedule=*/5 * * * *",
        ],
        &["create", "serviceaccount", "sa"],
        // A Job copied from the CronJob's (defaulted) template: every PodSpec
        // default must come back through protobuf, enableServiceLinks too.
        &["create", "job", "from-cj", "--from=cronjob/cj"],
        &["create", "quota", "q", "--hard=pods=10,requests.cpu=2"],
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ],
        &[
            "create",
            "rolebinding",
            "rb",
            "--role=reader",
            "--serviceaccount=gen:sa",
        ],
        &[
            "create",
            "poddisruptionbudget",
            "pdb",
            "--selector=app=d",
            "--min-available=1",
        ],
    ] {
        let mut a = n.to_vec();
        a.extend(args);
        c.ok(&a).await;
    }
    let cm = c.json(&["get", "cm", "cm", n[0], n[1]]).await;
    assert_eq!(cm["data"], serde_json::json!({"a": "b", "c": ""}));
    let s = c.json(&["get", "secret", "s", n[0], n[1]]).await;
    assert_eq!(s["data"]["k"], "c2VjcmV0");
    let svc = c.json(&["get", "svc", "svc", n[0], n[1]]).await;
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    let d = c.json(&["get", "deploy", "d", n[0], n[1]]).await;
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "d");
    let ctr = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (&ctr["image"], &ctr["ports"][0]["containerPort"]),
        (&"nginx:1.27".into(), &80.into())
    );
    let j = c.json(&["get", "job", "j", n[0], n[1]]).await;
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["echo", "hi"])
    );
    let from = c.json(&["get", "job", "from-cj", n[0], n[1]]).await;
    assert_eq!(from["spec"]["template"]["spec"]["enableServiceLinks"], true);
    assert_eq!(
        from["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    let q = c.json(&["get", "quota", "q", n[0], n[1]]).await;
    assert_eq!(
        q["spec"]["hard"],
        serde_json::json!({"pods": "10", "requests.cpu": "2"})
    );
    let role = c.json(&["get", "role", "reader", n[0], n[1]]).await;
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "list"])
    );
    let rb = c.json(&["get", "rolebinding", "rb", n[0], n[1]]).await;
    assert_eq!(
        (&rb["roleRef"]["name"], &rb["subjects"][0]["name"]),
        (&"reader".into(), &"sa".into())
    );
    let pdb = c.json(&["get", "pdb", "pdb", n[0], n[1]]).await;
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    for args in [
        &[
            "create",
            "clusterrole",
            "gen-viewer",
            "--verb=get",
            "--resource=nodes",
        ][..],
        &[
            "create",
            "clusterrolebinding",
            "gen-viewer",
            "--clusterrole=gen-viewer",
            "--user=alice",
        ],
        &[
            "create",
            "priorityclass",
            "gen-high",
            "--value=1000",
            "--description=high",
        ],
    ] {
        c.ok(args).await;
    }
    let pc = c.json(&["get", "priorityclass", "gen-high"]).await;
    assert_eq!(
        (&pc["value"], &pc["description"]),
        (&1000.into(), &"high".into())
    );
    let crb = c.json(&["get", "clusterrolebinding", "gen-viewer"]).await;
    assert_eq!(crb["subjects"][0]["name"], "alice");
    let deploys = c.ok(&["get", "deploy", n[0], n[1]]).await;
    assert_eq!(
        header(&deploys),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert!(deploys.contains("0/3"), "{deploys}");
    c.ok(&["scale", "deployment", "d", "--replicas=1", n[0], n[1]])
        .await;
    assert_eq!(
        c.json(&["get", "deploy", "d", n[0], n[1]]).await["spec"]["replicas"],
        1
    );
    let all = c.ok(&["get", "all", n[0], n[1]]).await;
    for want in [
        "service/svc",
        "deployment.apps/d",
        "job.batch/j",
        "cronjob.batch/cj",
    ] {
        assert!(all.contains(want), "{want} missing in\n{all}");
    }
}

const DEPLOY_V1: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: {app: api, stage: one}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: api
        image: nginx:1.26
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
      - name: side
        image: busybox
"#;

/// `kubectl apply` computes a three-way strategic merge patch; `kubectl delete --all`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_updates_and_deletes() {
    let c = start().await;
    assert!(c.apply(DEPLOY_V1, &[]).await.ok);
    // v2: new image, env B dropped, label dropped, side container removed.
    let v2 = DEPLOY_V1
        .replace("nginx:1.26", "nginx:1.27")
        .replace(", {name: B, value: \"2\"}", "")
        .replace(", stage: one", "")
        .replace("      - name: side\n        image: busybox\n", "");
    let out = c.apply(&v2, &[]).await;
    assert!(out.ok && out.stdout.contains("configured"), "{out:?}");
    let d = c.json(&["get", "deploy", "api"]).await;
    assert_eq!(d["metadata"]["labels"], serde_json::json!({"app": "api"}));
    let ctrs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(ctrs.len(), 1, "{ctrs:?}");
    assert_eq!(ctrs[0]["image"], "nginx:1.27");
    assert_eq!(
        ctrs[0]["env"],
        serde_json::json!([{"name": "A", "value": "1"}])
    );
    assert_eq!(d["metadata"]["generation"], 2);

    for i in 0..3 {
        c.ok(&["create", "configmap", &format!("cm{i}")]).await;
    }
    let out = c.ok(&["delete", "configmaps", "--all"]).await;
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_eq!(c.ok(&["get", "cm", "-o", "name"]).await.trim(), "");
}

/// `kubectl apply --server-side`: creates, then merges a changed configuration
/// into the live object; applying it again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_server_side() {
    let c = start().await;
    let v2 = DEPLOY_V1.replace("nginx:1.26", "nginx:1.27");
    let mut d = serde_json::Value::Null;
    for (manifest, image) in [(DEPLOY_V1, "nginx:1.26"), (v2.as_str(), "nginx:1.27")] {
        let out = c.apply(manifest, &["--server-side"]).await;
        assert!(
            out.ok && out.stdout.contains("serverside-applied"),
            "{out:?}"
        );
        d = c.json(&["get", "deploy", "api"]).await;
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            image
        );
    }
    assert_eq!(d["metadata"]["generation"], 2);
    // The same configuration again changes nothing.
    assert!(c.apply(&v2, &["--server-side"]).await.ok);
    let again = c.json(&["get", "deploy", "api"]).await;
    assert_eq!(again["metadata"]["generation"], 2);
    // A ConfigMap from stdin, then its data changed.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: \"1\"}\n";
    assert!(c.apply(cm, &["--server-side"]).await.ok);
    assert!(
        c.apply(&cm.replace("\"1\"", "\"2\""), &["--server-side"])
            .await
            .ok
    );
    let got = c.json(&["get", "cm", "ssa"]).await;
    assert_eq!(got["data"], serde_json::json!({"a": "2"}));
    // What was applied diffs empty, server-side or not (no stored `annotations: {}`).
    for args in [
        &["diff", "--server-side", "-f", "-"][..],
        &["diff", "-f", "-"],
    ] {
        let diff = c.kubectl_in(args, &v2).await;
        assert!(diff.ok && diff.stdout.is_empty(), "{args:?}: {diff:?}");
    }
}

/// A `v1/List` (what `kubectl get -o yaml` writes) applies item by item: kubectl validates
/// the List against `/openapi/v2` and leaves each item to the server's strict validation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_a_list() {
    let c = start().await;
    let list = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: one}, data: {a: "1"}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: two}, data: {b: "2"}}
"#;
    let out = c.apply(list, &[]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("configmap/one created"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("configmap/two created"),
        "{}",
        out.stdout
    );
    let bad = list.replace("data: {b: \"2\"}", "data: {b: \"2\"}, bogus: 1");
    let out = c.apply(&bad, &[]).await;
    assert!(!out.ok, "an unknown field in an item is refused");
    assert!(out.stderr.contains("bogus"), "{}", out.stderr);
    let doc = c.ok(&["get", "--raw", "/openapi/v2"]).await;
    assert!(doc.contains("\"swagger\":\"2.0\""), "{doc}");
}

const OWNED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: owned
  labels: {a: "1", b: "2"}
spec:
  replicas: 2
  selector: {matchLabels: {app: owned}}
  template:
    metadata: {labels: {app: owned}}
    spec:
      containers:
      - name: c
        image: busybox
        env: [{name: X, value: "1"}, {name: "Z", value: "2"}]
"#;

/// `kubectl apply --server-side` keeps field ownership (`managedFields`): a field left out
/// of the next apply goes, a field another manager changed conflicts until forced, and an
/// object kubectl applied client-side before moves over without conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_server_side_owns_fields() {
    let c = start().await;
    assert!(c.apply(OWNED, &["--server-side"]).await.ok);
    let narrower = OWNED
        .replace(", b: \"2\"", "")
        .replace(", {name: \"Z\", value: \"2\"}", "");
    let out = c.apply(&narrower, &["--server-side"]).await;
    assert!(out.ok, "{out:?}");
    let d = c
        .json(&["get", "deploy", "owned", "--show-managed-fields"])
        .await;
    assert_eq!(d["metadata"]["labels"], serde_json::json!({"a": "1"}));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"],
        serde_json::json!([{"name": "X", "value": "1"}])
    );
    let managers = |d: &serde_json::Value| -> Vec<String> {
        d["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["manager"].as_str().unwrap(),
                    e["operation"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(managers(&d), ["kubectl/Apply"]);

    c.ok(&["scale", "deploy", "owned", "--replicas=3"]).await;
    let four = narrower.replace("replicas: 2", "replicas: 4");
    let out = c.apply(&four, &["--server-side"]).await;
    assert!(!out.ok, "{out:?}");
    assert!(
        out.stderr.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\""
        ) && out.stderr.contains(".spec.replicas"),
        "{}",
        out.stderr
    );
    let out = c
        .apply(&four, &["--server-side", "--force-conflicts"])
        .await;
    assert!(out.ok, "{out:?}");
    let d = c
        .json(&["get", "deploy", "owned", "--show-managed-fields"])
        .await;
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(
        managers(&d),
        ["kubectl/Apply"],
        "the scale lost its only field"
    );

    // Client-side apply first, then server-side with a changed and a dropped key.
    let cm =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: moved}\ndata: {a: \"1\", b: \"2\"}\n";
    assert!(c.apply(cm, &[]).await.ok);
    let next = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: moved}\ndata: {a: \"3\"}\n";
    let out = c.apply(next, &["--server-side"]).await;
    assert!(out.ok, "{out:?}");
    let got = c.json(&["get", "cm", "moved"]).await;
    assert_eq!(got["data"], serde_json::json!({"a": "3"}));
}
