//! The worked example of the user's notes (seeds), verbatim, driven with the real kubectl:
//! a MySQL ReplicationController and Service, a web ReplicationController and a NodePort
//! 30001 Service, and the notes' busybox Pod. create, get tables, describe, `-o yaml`
//! round trip, label selectors, scale, a taken nodePort, invalid manifests, a conflict, and
//! delete with each cascade.

mod ctrl;
mod kube;

use std::path::{Path, PathBuf};

use skiff_controlplane::api::ApiClient;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/docs_examples")
        .join(name)
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

async fn pod_count(api: &ApiClient, app: &str, n: usize) {
    ctrl::eventually(&format!("{n} pods of {app}"), || async {
        let ready = ctrl::ready_all(api, "default", &format!("app={app}")).await;
        (ready == n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notes_example_with_kubectl() {
    let (c, _controllers) = ctrl::start().await;
    let api = c.server.client();
    for file in [
        "mysql-rc.yaml",
        "mysql-svc.yaml",
        "myweb-rc.yaml",
        "myweb-svc.yaml",
        "myapp-pod.yaml",
    ] {
        let out = c.ok(&["create", "-f", arg(&example(file))]).await;
        assert!(out.contains("created"), "{file}: {out}");
    }
    pod_count(&api, "mysql", 1).await;
    pod_count(&api, "myweb", 1).await;

    // Tables as the notes show them.
    let rc = c.ok(&["get", "rc"]).await;
    assert_eq!(
        kube::header(&rc),
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    );
    let mysql = rc.lines().find(|l| l.starts_with("mysql ")).unwrap();
    let cells: Vec<&str> = mysql.split_whitespace().collect();
    assert_eq!(cells[1..4], ["1", "1", "1"], "{rc}");
    let svc = c.ok(&["get", "svc"]).await;
    let myweb = svc.lines().find(|l| l.starts_with("myweb ")).unwrap();
    assert!(
        myweb.contains("NodePort") && myweb.contains("8080:30001/TCP"),
        "{svc}"
    );
    let mysql = svc.lines().find(|l| l.starts_with("mysql ")).unwrap();
    assert!(
        mysql.contains("ClusterIP") && mysql.contains("3306/TCP"),
        "{svc}"
    );
    let pods = c
        .ok(&["get", "pods", "-l", "app=myweb", "-o", "name"])
        .await;
    assert_eq!(pods.lines().count(), 1, "{pods}");

    // describe, as the notes use it to find out why a pod does not start.
    let d = c.ok(&["describe", "svc", "myweb"]).await;
    for want in [
        "Name:",
        "myweb",
        "Type:",
        "NodePort",
        "30001/TCP",
        "Selector:",
        "app=myweb",
    ] {
        assert!(d.contains(want), "describe svc lacks {want:?}:\n{d}");
    }
    let d = c.ok(&["describe", "rc", "mysql"]).await;
    for want in [
        "Replicas:",
        "1 current / 1 desired",
        "Pods Status:",
        "MYSQL_ROOT_PASSWORD",
    ] {
        assert!(d.contains(want), "describe rc lacks {want:?}:\n{d}");
    }
    let d = c.ok(&["describe", "pod", "myapp-pod"]).await;
    for want in [
        "myapp-pod",
        "busybox",
        "Hello Kubernetes!",
        "app=myapp",
        "Events:",
    ] {
        assert!(d.contains(want), "describe pod lacks {want:?}:\n{d}");
    }

    // -o yaml round trip: what kubectl prints applies back unchanged.
    let yaml = c.ok(&["get", "svc", "myweb", "-o", "yaml"]).await;
    let out = c.kubectl_in(&["replace", "-f", "-"], &yaml).await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let port = c
        .ok(&[
            "get",
            "svc",
            "myweb",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .await;
    assert_eq!(port, "30001");
    // Once the Service changes, that YAML's resourceVersion is stale: a conflict.
    c.ok(&["label", "svc", "myweb", "tier=web"]).await;
    let out = c.kubectl_in(&["replace", "-f", "-"], &yaml).await;
    assert!(
        !out.ok && out.stderr.contains("the object has been modified"),
        "{}",
        out.stderr
    );

    // A second Service on nodePort 30001 is refused as Kubernetes refuses it.
    let taken = std::fs::read_to_string(example("myweb-svc.yaml"))
        .unwrap()
        .replace("name: myweb", "name: myweb2");
    let out = c.kubectl_in(&["create", "-f", "-"], &taken).await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("spec.ports[0].nodePort")
            && out.stderr.contains("provided port is already allocated"),
        "{}",
        out.stderr
    );
    // The notes' warning: a selector that does not match the template fails.
    let bad = std::fs::read_to_string(example("myweb-rc.yaml"))
        .unwrap()
        .replacen("app: myweb", "app: other", 1)
        .replace("name: myweb", "name: broken");
    let out = c.kubectl_in(&["create", "-f", "-"], &bad).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("spec.template.metadata.labels")
            && out
                .stderr
                .contains("`selector` does not match template `labels`"),
        "{}",
        out.stderr
    );
    // An unknown field under strict validation names the field.
    let typo = std::fs::read_to_string(example("mysql-svc.yaml"))
        .unwrap()
        .replace("name: mysql", "name: typo")
        .replace("  selector:", "  selectr:");
    let out = c
        .kubectl_in(&["create", "--validate=strict", "-f", "-"], &typo)
        .await;
    assert!(!out.ok && out.stderr.contains("selectr"), "{}", out.stderr);
    assert!(c
        .kubectl(&["get", "svc", "typo"])
        .await
        .stderr
        .contains("NotFound"));

    // scale, then delete with each cascade.
    c.ok(&["scale", "rc", "myweb", "--replicas=2"]).await;
    pod_count(&api, "myweb", 2).await;
    c.ok(&["delete", "rc", "myweb"]).await;
    pod_count(&api, "myweb", 0).await;
    c.ok(&["delete", "rc", "mysql", "--cascade=orphan"]).await;
    let orphans = ctrl::eventually("the mysql pod released", || async {
        let pods = ctrl::live_pods(&api, "default", "app=mysql").await;
        let released = pods.iter().all(|p| {
            p.metadata
                .owner_references
                .as_ref()
                .is_none_or(|o| o.is_empty())
        });
        (!pods.is_empty() && released).then_some(pods.len())
    })
    .await;
    assert_eq!(orphans, 1);
    c.ok(&["delete", "pod", "myapp-pod", "--grace-period=0", "--force"])
        .await;
    let left = c
        .ok(&["get", "pods", "-l", "app=myapp", "-o", "name"])
        .await;
    assert!(left.trim().is_empty(), "{left}");
}
