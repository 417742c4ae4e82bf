//! CustomResourceDefinitions driven by the real kubectl: Kubernetes' CronTab example is
//! served with its printer columns, schema (pruning, defaults, validation), status and
//! scale subresources and a second version; its objects are collected with their owners,
//! their namespace and their CRD.

mod ctrl;
mod kube;

use ctrl::eventually;
use kube::header;
use serde_json::json;

const CRD: &str = include_str!("manifests/crontab-crd.yaml");

const CRONTAB: &str = "apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: my-new-cron-object
spec:
  cronSpec: '* * * * */5'
  image: my-awesome-cron-image
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_kind_is_served_like_a_built_in_one() {
    let (c, _ctrl) = ctrl::start().await;
    let out = c.apply(CRD, &[]).await;
    assert!(out.ok, "{out:?}");
    let crd = c.json(&["get", "crd", "crontabs.stable.example.com"]).await;
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    assert!(conditions
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True"));
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    let again = c.apply(CRD, &[]).await;
    assert!(again.stdout.contains("unchanged"), "{again:?}");
    let table = c.ok(&["get", "crd"]).await;
    assert_eq!(header(&table), ["NAME", "CREATED AT"]);

    // Applied at once: the kind is served as soon as the CRD is stored.
    let out = c.apply(CRONTAB, &[]).await;
    assert!(out.ok, "{out:?}");
    let table = c.ok(&["get", "crontabs"]).await;
    assert_eq!(header(&table), ["NAME", "SPEC", "REPLICAS", "AGE"]);
    assert!(
        table.contains("my-new-cron-object   * * * * */5   1"),
        "{table}"
    );
    assert!(c
        .ok(&["get", "all"])
        .await
        .contains("crontab.stable.example.com/my-new-cron-object"));
    let list: serde_json::Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "--raw",
            "/apis/stable.example.com/v1/namespaces/default/crontabs",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(list["kind"], "CronTabList");
    let obj = c.json(&["get", "ct", "my-new-cron-object"]).await;
    assert_eq!(obj["spec"]["replicas"], 1, "the schema's default");
    assert_eq!(obj["metadata"]["generation"], 1);
    let again = c.apply(CRONTAB, &[]).await;
    assert!(again.stdout.contains("unchanged"), "{again:?}");

    // The same objects through the other version.
    let beta = c
        .json(&[
            "get",
            "crontabs.v1beta1.stable.example.com",
            "my-new-cron-object",
        ])
        .await;
    assert_eq!(beta["apiVersion"], "stable.example.com/v1beta1");
    assert_eq!(beta["metadata"]["uid"], obj["metadata"]["uid"]);

    // Unknown fields are refused (kubectl asks for strict validation) or pruned.
    let typo = CRONTAB.replace("my-new-cron-object", "typo") + "  imagePullPolicy: Always\n";
    let out = c.apply(&typo, &[]).await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("strict decoding error: unknown field \"spec.imagePullPolicy\""),
        "{}",
        out.stderr
    );
    let out = c.apply(&typo, &["--validate=false"]).await;
    assert!(out.ok, "{out:?}");
    let pruned = c.json(&["get", "ct", "typo"]).await;
    assert!(pruned["spec"].get("imagePullPolicy").is_none(), "{pruned}");

    // Schema violations are a 422 naming every field.
    let bad = "apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: bad}
spec: {cronSpec: 'every minute', replicas: 11, image: 3}
";
    let out = c.apply(bad, &[]).await;
    assert!(!out.ok);
    for want in [
        "The CronTab \"bad\" is invalid",
        "spec.cronSpec: Invalid value: \"every minute\": spec.cronSpec in body should match",
        "spec.image: Invalid value: \"3\": spec.image in body must be of type string: \"integer\"",
        "spec.replicas: Invalid value: \"11\": spec.replicas in body should be less than or equal to 10",
    ] {
        assert!(out.stderr.contains(want), "{want}\n{}", out.stderr);
    }
    assert!(
        !c.kubectl(&["get", "ct", "bad"]).await.ok,
        "nothing written"
    );

    // Status goes only through its subresource; scale through its paths.
    c.ok(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":7}}"#,
    ])
    .await;
    let obj = c.json(&["get", "ct", "my-new-cron-object"]).await;
    assert!(obj.get("status").is_none(), "{obj}");
    c.ok(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2,"labelSelector":"app=cron"}}"#,
    ])
    .await;
    c.ok(&["scale", "ct", "my-new-cron-object", "--replicas=3"])
        .await;
    let obj = c.json(&["get", "ct", "my-new-cron-object"]).await;
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(obj["status"]["replicas"], 2);
    assert_eq!(
        obj["metadata"]["generation"], 2,
        "status writes keep the generation"
    );
    let path = "/apis/stable.example.com/v1/namespaces/default/crontabs/my-new-cron-object/scale";
    let scale: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "--raw", path]).await).unwrap();
    assert_eq!(
        scale["status"],
        json!({"replicas": 2, "selector": "app=cron"})
    );

    // `kubectl explain` reads the schema from the OpenAPI document of the group version.
    let explained = c.ok(&["explain", "crontab.spec.replicas"]).await;
    assert!(
        explained.contains("FIELD: replicas <integer>"),
        "{explained}"
    );

    // Labels and selectors work as for any kind.
    c.ok(&["label", "ct", "my-new-cron-object", "tier=batch"])
        .await;
    let names = c.ok(&["get", "ct", "-l", "tier=batch", "-o", "name"]).await;
    assert_eq!(
        names.trim(),
        "crontab.stable.example.com/my-new-cron-object"
    );

    // The CRD changes: a new required field and a new column. New objects must have the
    // field; the existing one, which lacks it, can still be changed otherwise (ratcheting).
    let stricter = CRD
        .replacen(
            "              properties:\n                cronSpec:",
            "              required: [owner]\n              properties:\n                owner:\n                  type: string\n                cronSpec:",
            1,
        )
        .replacen(
            "      additionalPrinterColumns:\n",
            "      additionalPrinterColumns:\n        - name: Owner\n          type: string\n          jsonPath: .spec.owner\n",
            1,
        );
    assert_ne!(stricter, CRD);
    let out = c.apply(&stricter, &[]).await;
    assert!(out.ok, "{out:?}");
    let table = eventually("the new column", || async {
        let t = c.ok(&["get", "ct"]).await;
        t.contains("OWNER").then_some(t)
    })
    .await;
    assert_eq!(header(&table), ["NAME", "OWNER", "SPEC", "REPLICAS", "AGE"]);
    let out = c
        .apply(&CRONTAB.replace("my-new-cron-object", "ownerless"), &[])
        .await;
    assert!(out.stderr.contains("spec.owner: Required value"), "{out:?}");
    c.ok(&["label", "ct", "my-new-cron-object", "stage=old"])
        .await;
    c.ok(&["delete", "ct", "my-new-cron-object"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_objects_go_with_their_owner_namespace_and_definition() {
    let (c, _ctrl) = ctrl::start().await;
    assert!(c.apply(CRD, &[]).await.ok);
    c.ok(&["create", "namespace", "jobs"]).await;
    assert!(c.apply(CRONTAB, &["-n", "jobs"]).await.ok);
    let owner = c
        .json(&["get", "ct", "my-new-cron-object", "-n", "jobs"])
        .await;

    // A ConfigMap owned by the custom object goes when its owner goes.
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "owned", "namespace": "jobs", "ownerReferences": [{
            "apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "name": "my-new-cron-object", "uid": owner["metadata"]["uid"],
        }]},
    });
    assert!(c.apply(&cm.to_string(), &[]).await.ok);
    c.ok(&[
        "delete",
        "ct",
        "my-new-cron-object",
        "-n",
        "jobs",
        "--cascade=foreground",
    ])
    .await;
    eventually("the owned ConfigMap to be collected", || async {
        (!c.kubectl(&["get", "cm", "owned", "-n", "jobs"]).await.ok).then_some(())
    })
    .await;

    // Background deletion (the default) too.
    assert!(c.apply(CRONTAB, &["-n", "jobs"]).await.ok);
    let owner = c
        .json(&["get", "ct", "my-new-cron-object", "-n", "jobs"])
        .await;
    let mut cm = cm;
    cm["metadata"]["ownerReferences"][0]["uid"] = owner["metadata"]["uid"].clone();
    assert!(c.apply(&cm.to_string(), &[]).await.ok);
    c.ok(&["delete", "ct", "my-new-cron-object", "-n", "jobs"])
        .await;
    eventually("the owned ConfigMap to be collected", || async {
        (!c.kubectl(&["get", "cm", "owned", "-n", "jobs"]).await.ok).then_some(())
    })
    .await;

    // Namespace deletion takes custom objects along.
    assert!(c.apply(CRONTAB, &["-n", "jobs"]).await.ok);
    c.ok(&["delete", "namespace", "jobs"]).await;
    let left = c.ok(&["get", "ct", "-A", "-o", "name"]).await;
    assert!(left.trim().is_empty(), "{left}");

    // Deleting the CRD deletes its objects, then the kind is no longer served.
    assert!(c.apply(CRONTAB, &[]).await.ok);
    c.ok(&["delete", "crd", "crontabs.stable.example.com"])
        .await;
    let groups = c.ok(&["get", "--raw", "/apis"]).await;
    assert!(!groups.contains("stable.example.com"), "{groups}");
    // Made again, the kind starts empty.
    assert!(c.apply(CRD, &[]).await.ok);
    let left = c.ok(&["get", "ct", "-A", "-o", "name"]).await;
    assert!(left.trim().is_empty(), "{left}");
}
