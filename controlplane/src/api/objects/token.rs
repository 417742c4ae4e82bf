//! `serviceaccounts/token` (authentication.k8s.io/v1 `TokenRequest`, `kubectl create
//! token`): a token naming the ServiceAccount, its audiences and its expiry, in the JWT
//! claims the kube-apiserver issues.
//!
//! The API server does not authenticate requests (see ARCHITECTURE.md), so the token is
//! unsigned (`alg: none`): it carries who it stands for to clients that read it, and any
//! client may present it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use super::Objects;
use crate::api::error::{ApiError, FieldError};
use crate::api::meta;
use crate::api::registry::ResourceInfo;

/// The issuer (and default audience) of the cluster's tokens.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// `spec.expirationSeconds` when not given, and its floor (Kubernetes' values).
const DEFAULT_EXPIRY: i64 = 3600;
const MIN_EXPIRY: i64 = 600;
const MAX_EXPIRY: i64 = 1 << 32;

/// The token's claims for ServiceAccount `account` (its object) at `now`.
fn claims(account: &Value, audiences: &[Value], expiry: i64, now: i64) -> Value {
    let ns = account
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let name = meta::name(account);
    json!({
        "aud": audiences,
        "exp": now + expiry,
        "iat": now,
        "nbf": now,
        "iss": ISSUER,
        "jti": format!("{:032x}", fastrand::u128(..)),
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io": {
            "namespace": ns,
            "serviceaccount": {"name": name, "uid": account.pointer("/metadata/uid")},
        },
    })
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `header.claims.` of an unsigned JWT.
fn unsigned_jwt(claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        part(&json!({"alg": "none", "typ": "JWT"})),
        part(claims)
    )
}

impl Objects {
    /// Answers a TokenRequest for ServiceAccount `name` (404 if it does not exist).
    pub async fn token_request(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        request: &Value,
    ) -> Result<Value, ApiError> {
        let expiry = match request.pointer("/spec/expirationSeconds") {
            None | Some(Value::Null) => DEFAULT_EXPIRY,
            Some(v) => {
                let why = match v.as_i64() {
                    Some(s) if (MIN_EXPIRY..=MAX_EXPIRY).contains(&s) => None,
                    Some(s) if s < MIN_EXPIRY => {
                        Some("may not specify a duration less than 10 minutes")
                    }
                    Some(_) => Some("may not specify a duration larger than 2^32 seconds"),
                    None => Some("must be an integer number of seconds"),
                };
                match why {
                    None => v.as_i64().unwrap_or(DEFAULT_EXPIRY),
                    Some(why) => {
                        let field = "spec.expirationSeconds";
                        let err = FieldError::invalid(field, &v.to_string(), why);
                        return Err(ApiError::invalid(info, name, &[err]));
                    }
                }
            }
        };
        let account = self.get(info, ns, name).await?;
        let audiences = match request.pointer("/spec/audiences").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a.clone(),
            _ => vec![json!(ISSUER)],
        };
        let now = Utc::now();
        let token = unsigned_jwt(&claims(&account, &audiences, expiry, now.timestamp()));
        let expires = now + Duration::seconds(expiry);
        let mut spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
        spec["audiences"] = json!(audiences);
        spec["expirationSeconds"] = json!(expiry);
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": ns.unwrap_or("default"),
                "creationTimestamp": rfc3339(now),
            },
            "spec": spec,
            "status": {
                "token": token,
                "expirationTimestamp": rfc3339(expires),
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_names_its_account_and_audiences() {
        let sa = json!({"metadata": {"name": "builder", "namespace": "ci", "uid": "u-1"}});
        let c = claims(&sa, &[json!("vault")], 3600, 1_000);
        assert_eq!(c["sub"], "system:serviceaccount:ci:builder");
        assert_eq!(
            (c["exp"].as_i64(), c["aud"][0].as_str()),
            (Some(4600), Some("vault"))
        );
        assert_eq!(c["kubernetes.io"]["serviceaccount"]["uid"], "u-1");
        let jwt = unsigned_jwt(&c);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let body: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body, c);
    }
}
