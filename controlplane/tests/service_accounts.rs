//! ServiceAccounts through kubectl: every namespace gets (and keeps) its `default` account,
//! and `kubectl create token` issues a TokenRequest naming the account.

mod ctrl;
mod kube;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_have_a_default_account_that_issues_tokens() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    c.ok(&["create", "namespace", "team"]).await;
    let account = || async {
        api.get::<ServiceAccount>(Some("team"), "default")
            .await
            .ok()
    };
    let first = ctrl::eventually("team's default ServiceAccount", account).await;
    // Deleted, it is made again.
    c.ok(&["delete", "serviceaccount", "default", "-n", "team"])
        .await;
    ctrl::eventually("the default ServiceAccount made again", || async {
        account()
            .await
            .filter(|a| a.metadata.uid != first.metadata.uid)
    })
    .await;

    let token = c
        .ok(&[
            "create",
            "token",
            "default",
            "-n",
            "team",
            "--audience=vault",
            "--duration=2h",
        ])
        .await;
    let claims = token.trim().split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:team:default");
    assert_eq!(claims["aud"][0], "vault");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 7200);

    let short = c
        .kubectl(&["create", "token", "default", "-n", "team", "--duration=1m"])
        .await;
    assert!(
        !short.ok && short.stderr.contains("spec.expirationSeconds"),
        "{}",
        short.stderr
    );
    // The subresource takes only its verb: a read is refused, not served the account.
    let read = c
        .kubectl(&[
            "get",
            "--raw",
            "/api/v1/namespaces/team/serviceaccounts/default/token",
        ])
        .await;
    assert!(
        !read.ok && read.stderr.contains("MethodNotAllowed"),
        "{}",
        read.stderr
    );
    let missing = c
        .kubectl(&["create", "token", "nobody", "-n", "team"])
        .await;
    assert!(
        !missing.ok && missing.stderr.contains("not found"),
        "{}",
        missing.stderr
    );
}
