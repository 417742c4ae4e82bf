//! Kinds the API server stores without acting on them (volumes, RBAC, ingress, network
//! policy, disruption budgets, autoscalers, storage and priority classes): a bundle of
//! them applies, reads back with kubectl's columns, and goes with its namespace.

mod ctrl;
mod kube;

use kube::header;

const BUNDLE: &str = include_str!("manifests/stored-kinds.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_of_stored_kinds_applies_and_prints_like_kubernetes() {
    let (c, _ctrl) = ctrl::start().await;
    let out = c.apply(BUNDLE, &[]).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 11, "{}", out.stdout);
    // Applying it again changes nothing. kubectl's own three-way merge always sends a
    // PodDisruptionBudget's selector (its patch strategy is "replace"), so that one says
    // "configured", as it does against Kubernetes.
    let again = c.apply(BUNDLE, &[]).await;
    assert!(again.ok, "{again:?}");
    for line in again.stdout.lines() {
        let want = if line.starts_with("poddisruptionbudget") {
            "configured"
        } else {
            "unchanged"
        };
        assert!(line.ends_with(want), "{line}");
    }
    let pdb = c.json(&["get", "pdb", "web", "-n", "kinds"]).await;
    assert_eq!(
        pdb["metadata"]["generation"], 1,
        "the no-op patch changed nothing"
    );
    for (what, columns) in [
        (
            "pvc",
            &[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ][..],
        ),
        ("rolebinding", &["NAME", "ROLE", "AGE"]),
        (
            "ingress",
            &["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        ),
        ("netpol", &["NAME", "POD-SELECTOR", "AGE"]),
        (
            "pdb",
            &[
                "NAME",
                "MIN AVAILABLE",
                "MAX UNAVAILABLE",
                "ALLOWED DISRUPTIONS",
                "AGE",
            ],
        ),
        (
            "hpa",
            &[
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE",
            ],
        ),
    ] {
        let table = c.ok(&["get", what, "-n", "kinds"]).await;
        assert_eq!(header(&table), columns, "{what}:\n{table}");
    }
    let hpa = c
        .ok(&["get", "hpa", "web", "-n", "kinds", "--no-headers"])
        .await;
    assert!(
        hpa.contains("Deployment/web") && hpa.contains("cpu: <unknown>/80%"),
        "{hpa}"
    );
    let sc = c.json(&["get", "storageclass", "local"]).await;
    assert_eq!(sc["provisioner"], "kubernetes.io/no-provisioner");
    let role = c.json(&["get", "role", "reader", "-n", "kinds"]).await;
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "list"])
    );
    // Namespaced ones go with their namespace; cluster-scoped ones stay.
    c.ok(&["delete", "namespace", "kinds", "--timeout=25s"])
        .await;
    for what in [
        "pvc",
        "role",
        "rolebinding",
        "ingress",
        "netpol",
        "pdb",
        "hpa",
    ] {
        let left = c.ok(&["get", what, "-n", "kinds", "-o", "name"]).await;
        assert_eq!(left.trim(), "", "{what} left behind");
    }
    assert!(c
        .ok(&["get", "clusterrole", "kinds-viewer", "-o", "name"])
        .await
        .contains("kinds-viewer"));
    assert!(c
        .ok(&["get", "priorityclass", "high", "-o", "name"])
        .await
        .contains("high"));
}

/// No authorization: `kubectl auth can-i` says yes, for resources and non-resource URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_can_i_answers_yes() {
    let c = kube::start().await;
    for args in [
        &["auth", "can-i", "create", "pods"][..],
        &["auth", "can-i", "delete", "nodes", "--all-namespaces"],
        &["auth", "can-i", "get", "/healthz"],
    ] {
        assert_eq!(c.ok(args).await.trim(), "yes", "{args:?}");
    }
}

/// No authentication: `kubectl auth whoami` names the administrator every caller acts as.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_whoami_names_the_administrator() {
    let c = kube::start().await;
    let out = c.ok(&["auth", "whoami"]).await;
    assert!(out.contains("system:admin"), "{out}");
    assert!(out.contains("system:masters"), "{out}");
}
