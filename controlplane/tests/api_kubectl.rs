//! The API server driven by the real `kubectl` binary: apply, tables, YAML round trip,
//! selectors, scale, the three patch types, delete, conflicts, validation errors, watch.

mod kube;

use std::time::Duration;

use kube::{header, start};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n";

const APP: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: team-a
  labels: {app: web, tier: fe}
spec:
  containers:
  - name: web
    image: nginx:1.27
    ports: [{containerPort: 80, name: http}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: team-a
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: web-rc
  namespace: team-a
spec:
  replicas: 2
  selector: {app: rc}
  template:
    metadata:
      labels: {app: rc}
    spec:
      containers: [{name: web, image: nginx}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_workflow() {
    let c = start().await;
    let out = c.ok(&["get", "namespaces"]).await;
    assert_eq!(header(&out), ["NAME", "STATUS", "AGE"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(ns), "{out}");
    }

    // Namespaced creates need the namespace.
    let out = c.apply(APP, &[]).await;
    assert!(
        !out.ok && out.stderr.contains("namespaces \"team-a\" not found"),
        "{out:?}"
    );
    let out = c.apply(NS, &[]).await;
    assert!(out.ok, "{out:?}");
    let out = c.apply(APP, &[]).await;
    assert!(out.ok, "{out:?}");
    assert!(out.stdout.contains("pod/web-0 created"), "{}", out.stdout);
    assert!(out.stdout.contains("replicationcontroller/web-rc created"));
    // Re-applying an unchanged manifest changes nothing.
    let out = c.apply(APP, &[]).await;
    assert!(out.stdout.contains("pod/web-0 unchanged"), "{out:?}");

    // Tables as kubectl prints them against Kubernetes.
    let n = ["-n", "team-a"];
    let pods = c.ok(&["get", "pods", n[0], n[1]]).await;
    assert_eq!(
        header(&pods),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert!(pods.contains("web-0") && pods.contains("0/1") && pods.contains("Pending"));
    let wide = c.ok(&["get", "pods", "-o", "wide", n[0], n[1]]).await;
    assert_eq!(header(&wide)[5..7], ["IP", "NODE"]);
    let svc = c.ok(&["get", "svc", n[0], n[1]]).await;
    assert_eq!(
        header(&svc),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert!(svc.contains("80/TCP"), "{svc}");
    let rc = c.ok(&["get", "rc", n[0], n[1]]).await;
    assert_eq!(header(&rc), ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);

    // YAML round trip: what comes back re-applies cleanly and keeps server fields.
    let yaml = c
        .ok(&["get", "pod", "web-0", "-o", "yaml", n[0], n[1]])
        .await;
    for field in [
        "uid:",
        "resourceVersion:",
        "creationTimestamp:",
        "restartPolicy: Always",
    ] {
        assert!(yaml.contains(field), "missing {field} in\n{yaml}");
    }
    let out = c.kubectl_in(&["replace", "-f", "-"], &yaml).await;
    assert!(out.ok, "{out:?}");

    // Paging: kubectl asks for one item per page and follows the continue tokens.
    let out = c.ok(&["get", "ns", "--chunk-size=1", "-o", "name"]).await;
    assert_eq!(out.lines().count(), 5, "{out}");

    // Label selectors.
    let out = c
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web,tier in (fe,be)",
            "-o",
            "name",
            n[0],
            n[1],
        ])
        .await;
    assert_eq!(out.trim(), "pod/web-0");
    let out = c
        .ok(&["get", "pods", "-l", "app!=web", "-o", "name", n[0], n[1]])
        .await;
    assert_eq!(out.trim(), "");
    let out = c
        .ok(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "metadata.name=web-0",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.trim(), "pod/web-0");

    // Scale through the scale subresource.
    c.ok(&["scale", "rc", "web-rc", "--replicas=5", n[0], n[1]])
        .await;
    let rc = c.json(&["get", "rc", "web-rc", n[0], n[1]]).await;
    assert_eq!(rc["spec"]["replicas"], 5);
    assert_eq!(rc["metadata"]["generation"], 2);

    // The three patch types.
    c.ok(&[
        "patch",
        "pod",
        "web-0",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"m":"1"}}}"#,
        n[0],
        n[1],
    ])
    .await;
    c.ok(&[
        "patch",
        "pod",
        "web-0",
        "-p",
        r#"{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}"#,
        n[0],
        n[1],
    ])
    .await;
    c.ok(&[
        "patch",
        "svc",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels","value":{"j":"2"}}]"#,
        n[0],
        n[1],
    ])
    .await;
    let pod = c.json(&["get", "pod", "web-0", n[0], n[1]]).await;
    assert_eq!(pod["metadata"]["labels"]["m"], "1");
    let ctr = &pod["spec"]["containers"][0];
    assert_eq!(
        ctr["image"], "nginx:1.28",
        "strategic merge keeps the container: {ctr}"
    );
    assert_eq!(ctr["ports"][0]["containerPort"], 80);
    let svc = c.json(&["get", "svc", "web", n[0], n[1]]).await;
    assert_eq!(svc["metadata"]["labels"]["j"], "2");

    // A stale resourceVersion is a conflict.
    let mut stale = pod.clone();
    stale["metadata"]["resourceVersion"] = Value::String("1".into());
    stale["metadata"]["labels"]["stale"] = Value::String("yes".into());
    let out = c
        .kubectl_in(&["replace", "-f", "-"], &stale.to_string())
        .await;
    assert!(!out.ok && out.stderr.contains("Conflict"), "{out:?}");
    assert!(
        out.stderr.contains("the object has been modified"),
        "{out:?}"
    );

    // Invalid: field causes, nothing written.
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: team-a}\n\
               spec:\n  containers: [{name: Bad_Name}]\n";
    let out = c.apply(bad, &[]).await;
    assert!(!out.ok && out.stderr.contains("is invalid"), "{out:?}");
    assert!(
        out.stderr
            .contains("spec.containers[0].image: Required value"),
        "{out:?}"
    );
    assert!(!c.kubectl(&["get", "pod", "bad", n[0], n[1]]).await.ok);
    // A quantity that does not parse and a rollout limit that is not a percent.
    let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad, namespace: team-a}\n\
               spec:\n  selector: {matchLabels: {a: b}}\n\
               \x20 strategy: {rollingUpdate: {maxSurge: \"2\"}}\n\
               \x20 template:\n    metadata: {labels: {a: b}}\n    spec:\n\
               \x20     containers: [{name: c, image: i, resources: {limits: {memory: 512MB}}}]\n";
    let out = c.apply(bad, &[]).await;
    assert!(!out.ok && out.stderr.contains("is invalid"), "{out:?}");
    assert!(
        out.stderr.contains(
            "spec.template.spec.containers[0].resources.limits[memory]: Invalid value: \"512MB\""
        ),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("spec.strategy.rollingUpdate.maxSurge: Invalid value: \"2\""),
        "{out:?}"
    );
    assert!(!c.kubectl(&["get", "deploy", "bad", n[0], n[1]]).await.ok);

    // Unknown fields: rejected with --validate=strict, a warning with --validate=warn.
    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: team-a}\n\
                   data: {a: b}\nfoo: bar\n";
    let out = c.apply(unknown, &["--validate=strict"]).await;
    assert!(
        !out.ok && out.stderr.contains("unknown field \"foo\""),
        "{out:?}"
    );
    assert!(!c.kubectl(&["get", "cm", "cm", n[0], n[1]]).await.ok);
    let out = c.apply(unknown, &["--validate=warn"]).await;
    assert!(
        out.ok && out.stderr.contains("unknown field \"foo\""),
        "{out:?}"
    );

    // OpenAPI v3 schemas for explain.
    let out = c.ok(&["explain", "pods.spec.containers"]).await;
    assert!(
        out.contains("FIELDS:") && out.contains("image\t<string>"),
        "{out}"
    );

    // Delete.
    let out = c.ok(&["delete", "pod", "web-0", n[0], n[1]]).await;
    assert!(out.contains("pod \"web-0\" deleted"), "{out}");
    c.ok(&["delete", "svc", "web", n[0], n[1]]).await;
    let out = c.ok(&["get", "pods,svc", "-o", "name", n[0], n[1]]).await;
    assert_eq!(out.trim(), "");
    c.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_watch_sees_new_pod() {
    let c = start().await;
    let mut child = c
        .kubectl_cmd(&["get", "pods", "--watch", "--output-watch-events"])
        .spawn()
        .expect("spawn kubectl watch");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The watch is open once kubectl printed the (empty) list; create until it reports.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: watched}\n\
               spec: {containers: [{name: c, image: busybox}]}\n";
    let create = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let out = c.apply(pod, &[]).await;
        assert!(out.ok, "{out:?}");
    };
    let seen = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("watched") {
                return line;
            }
        }
        panic!("kubectl watch ended without the event");
    };
    let (line, ()) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(seen, create)
    })
    .await
    .expect("no watch event within 30s");
    assert!(line.contains("ADDED") && line.contains("Pending"), "{line}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_adds_an_ephemeral_container_and_only_that() {
    let c = start().await;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: app}\nspec:\n  containers:\n  \
               - {name: app, image: nginx:1.27}\n";
    assert!(c.apply(pod, &[]).await.ok);
    let out = c
        .kubectl(&[
            "debug",
            "app",
            "-c",
            "dbg",
            "--image=busybox",
            "--profile=general",
            "--",
            "true",
        ])
        .await;
    assert!(out.ok, "kubectl debug: {}\n{}", out.stdout, out.stderr);
    let got = c.json(&["get", "pod", "app"]).await;
    let eph = &got["spec"]["ephemeralContainers"];
    assert_eq!(eph[0]["name"], "dbg", "{got}");
    assert_eq!(eph[0]["image"], "busybox");
    assert_eq!(eph[0]["command"], serde_json::json!(["true"]));

    // A node debugging pod (sent as protobuf): on the node, the host's root at /host.
    assert!(
        c.apply("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n", &[])
            .await
            .ok
    );
    let out = c
        .kubectl(&[
            "debug",
            "node/n1",
            "--image=busybox",
            "--profile=general",
            "--",
            "true",
        ])
        .await;
    assert!(out.ok, "kubectl debug node: {}\n{}", out.stdout, out.stderr);
    let pods = c.json(&["get", "pods"]).await;
    let debugger = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("node-debugger-n1-")
        })
        .unwrap_or_else(|| panic!("no node-debugger pod: {pods}"));
    assert_eq!(debugger["spec"]["nodeName"], "n1");
    assert_eq!(debugger["spec"]["volumes"][0]["hostPath"]["path"], "/");

    // Through the pod itself, ephemeral containers do not change.
    let mut replaced = got.clone();
    replaced["spec"]["ephemeralContainers"] = serde_json::json!([]);
    let out = c
        .kubectl_in(&["replace", "-f", "-"], &replaced.to_string())
        .await;
    assert!(out.ok, "{}", out.stderr);
    let again = c.json(&["get", "pod", "app"]).await;
    assert_eq!(again["spec"]["ephemeralContainers"][0]["name"], "dbg");

    // Through the subresource, one with a port is refused with its field.
    let patch = r#"{"spec":{"ephemeralContainers":[{"name":"dbg","image":"busybox","command":["true"],"terminationMessagePolicy":"File","imagePullPolicy":"Always","terminationMessagePath":"/dev/termination-log"},{"name":"web","image":"busybox","ports":[{"containerPort":80}]}]}}"#;
    let out = c
        .kubectl(&[
            "patch",
            "pod",
            "app",
            "--subresource=ephemeralcontainers",
            "--type=merge",
            "-p",
            patch,
        ])
        .await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("spec.ephemeralContainers[1].ports: Forbidden"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_componentstatuses_shows_a_healthy_control_plane() {
    let c = start().await;
    let table = c.ok(&["get", "componentstatuses"]).await;
    for part in ["controller-manager", "scheduler", "store-1"] {
        let row = table
            .lines()
            .find(|l| l.starts_with(part))
            .unwrap_or_else(|| panic!("no {part} row:\n{table}"));
        assert!(row.contains("Healthy"), "{row}");
    }
    let one = c.json(&["get", "cs", "scheduler"]).await;
    assert_eq!(one["conditions"][0]["type"], "Healthy");
    let refused = c
        .kubectl_in(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: ComponentStatus\nmetadata: {name: x}\n",
        )
        .await;
    assert!(
        !refused.ok && refused.stderr.contains("MethodNotAllowed"),
        "{}",
        refused.stderr
    );
}
