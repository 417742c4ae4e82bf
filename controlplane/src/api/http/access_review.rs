//! `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (`kubectl auth can-i`) and
//! `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`).
//! Skiff neither authenticates nor authorizes requests (as Kubernetes' `AlwaysAllow` mode):
//! every caller acts as the cluster's administrator, so every access review is answered
//! allowed and whoami names `system:admin` in `system:masters`. Reviews are not stored, as
//! in Kubernetes.

use serde_json::{json, Value};

use crate::api::error::ApiError;

pub const PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
/// Where `kubectl auth whoami` asks first (then v1beta1, v1alpha1).
pub const WHOAMI_PATH: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

/// The SelfSubjectReview of every caller.
pub fn whoami() -> Value {
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {
            "username": "system:admin",
            "groups": ["system:masters", "system:authenticated"],
        }},
    })
}

/// The review `body` with its `status` filled in. kubectl sends it as protobuf, which is
/// not decoded: the answer does not depend on it, so the reply's `spec` is then empty.
pub fn review(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    if content_type.starts_with(crate::api::protobuf::CONTENT_TYPE) {
        return review("application/json", br#"{"spec":{"resourceAttributes":{}}}"#);
    }
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    let spec = v.get("spec").filter(|s| {
        s.get("resourceAttributes").is_some() || s.get("nonResourceAttributes").is_some()
    });
    if spec.is_none() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "SelfSubjectAccessReview: spec.resourceAttributes or spec.nonResourceAttributes is required",
        ));
    }
    v["apiVersion"] = json!("authorization.k8s.io/v1");
    v["kind"] = json!("SelfSubjectAccessReview");
    v["status"] = json!({
        "allowed": true,
        "reason": "Skiff does not authorize requests: every request is allowed",
    });
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_review_is_allowed_and_an_empty_spec_is_invalid() {
        let body = br#"{"spec":{"resourceAttributes":{"verb":"create","resource":"pods"}}}"#;
        let v = review("application/json", body).unwrap();
        assert_eq!(v["status"]["allowed"], true);
        assert_eq!(v["spec"]["resourceAttributes"]["verb"], "create");
        assert_eq!(review("", br#"{"spec":{}}"#).unwrap_err().code, 422);
        assert_eq!(review("", b"nope").unwrap_err().code, 400);
        let pb = review("application/vnd.kubernetes.protobuf", b"k8s\0...").unwrap();
        assert_eq!(pb["status"]["allowed"], true);
    }

    #[test]
    fn whoami_names_the_administrator() {
        let v = whoami();
        assert_eq!(v["kind"], "SelfSubjectReview");
        assert_eq!(v["status"]["userInfo"]["username"], "system:admin");
    }
}
