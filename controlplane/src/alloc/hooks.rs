//! The calls the API server's generic write path makes (create, update, patch, delete); they
//! act on Services and do nothing for other kinds.

use serde_json::Value;

use super::service;
use crate::api::ApiError;
use crate::ControlPlane;

/// Hook for the generic write path: [`service::carry_allocated`] for Services, nothing otherwise.
pub fn carry(kind: &str, old: &Value, new: &mut Value) {
    if kind == "Service" {
        service::carry_allocated(old, new);
    }
}

/// Hook for the generic write path: [`service::before_write`] for Services, nothing otherwise.
pub async fn before_write(
    cp: &ControlPlane,
    kind: &str,
    old: Option<&Value>,
    new: &mut Value,
) -> Result<service::Claims, ApiError> {
    if kind == "Service" {
        service::before_write(cp, old, new).await
    } else {
        Ok(service::Claims::default())
    }
}

/// Hook for the generic write path: [`service::release_unused`] for Services, nothing otherwise.
pub async fn written(cp: &ControlPlane, kind: &str, old: &Value, new: Option<&Value>) {
    if kind == "Service" {
        service::release_unused(cp, old, new).await;
    }
}
