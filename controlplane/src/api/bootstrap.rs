//! Objects that exist from the start: the system namespaces and the default StorageClass
//! (`local-path`, whose volumes the built-in provisioner makes, as k3s ships it). The
//! `kubernetes` Service needs a cluster IP and is created by the allocation step through
//! [`super::ApiServer::client`].

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controllers::volumes::matching::{DEFAULT_CLASS, IS_DEFAULT_CLASS, PROVISIONER};

use super::client::ApiClient;
use super::error::ApiError;

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Create the default StorageClass unless it exists (also after a user changed it).
pub async fn ensure_storage_class(client: &ApiClient) -> Result<(), ApiError> {
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some(DEFAULT_CLASS.into()),
            annotations: Some([(IS_DEFAULT_CLASS.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("Immediate".into()),
        ..Default::default()
    };
    match client.create(None, &class).await {
        Ok(_) => log::info!("created storage class {DEFAULT_CLASS}"),
        Err(e) if e.reason == "AlreadyExists" => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Create the system namespaces that do not exist yet.
pub async fn ensure_namespaces(client: &ApiClient) -> Result<(), ApiError> {
    for name in SYSTEM_NAMESPACES {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        match client.create(None, &ns).await {
            Ok(_) => log::info!("created namespace {name}"),
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
