//! Claim keys: one store key per allocated value, created only if absent.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::{Consistency, ControlPlane, Op, OpError};

pub const SERVICE_IPS: &str = "/skiff/alloc/serviceips/";
pub const NODE_PORTS: &str = "/skiff/alloc/nodeports/";
pub const POD_CIDRS: &str = "/skiff/alloc/podcidrs/";

/// Who holds a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// `namespace/name` or `name`.
    pub name: String,
    pub uid: String,
}

/// The result of a claim attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Newly claimed by this call.
    New,
    /// Already held by the same owner.
    Held,
    /// Held by another owner.
    Taken(Owner),
}

fn store_err(e: crate::Error) -> ApiError {
    ApiError::internal(format!("allocation store: {e}"))
}

/// Claim `prefix + value` for `owner`.
pub async fn claim(
    cp: &ControlPlane,
    prefix: &str,
    value: &str,
    owner: &Owner,
) -> Result<Claim, ApiError> {
    let key = format!("{prefix}{value}");
    let body = serde_json::to_string(owner).expect("owner serializes");
    match cp
        .apply(Op::Create {
            key: key.clone(),
            value: body,
        })
        .await
    {
        Ok(_) => Ok(Claim::New),
        Err(crate::Error::Op(OpError::AlreadyExists { .. })) => {
            let (kv, _) = cp
                .get(&key, Consistency::Linearizable)
                .await
                .map_err(store_err)?;
            let holder = kv.and_then(|kv| serde_json::from_str::<Owner>(&kv.value).ok());
            Ok(match holder {
                Some(h) if h.uid == owner.uid => Claim::Held,
                Some(h) => Claim::Taken(h),
                None => Claim::Taken(Owner {
                    name: "<released>".into(),
                    uid: String::new(),
                }),
            })
        }
        Err(e) => Err(store_err(e)),
    }
}

/// Release `prefix + value` if `uid` holds it.
pub async fn release(cp: &ControlPlane, prefix: &str, value: &str, uid: &str) {
    let key = format!("{prefix}{value}");
    let Ok((Some(kv), _)) = cp.get(&key, Consistency::Linearizable).await else {
        return;
    };
    if serde_json::from_str::<Owner>(&kv.value).is_ok_and(|o| o.uid == uid) {
        let op = Op::Delete {
            key: key.clone(),
            expected_revision: Some(kv.mod_revision),
        };
        if let Err(e) = cp.apply(op).await {
            log::warn!("releasing {key}: {e}");
        }
    }
}

/// Every claim under `prefix`: value → (owner, claim revision).
pub async fn list(
    cp: &ControlPlane,
    prefix: &str,
) -> Result<HashMap<String, (Owner, u64)>, ApiError> {
    let page = cp
        .list(prefix, 0, None, Consistency::Linearizable)
        .await
        .map_err(store_err)?;
    Ok(page
        .items
        .into_iter()
        .filter_map(|kv| {
            let owner = serde_json::from_str::<Owner>(&kv.value).ok()?;
            let v = kv.key.strip_prefix(prefix)?.to_string();
            Some((v, (owner, kv.mod_revision)))
        })
        .collect())
}
