//! Objects that exist from the start: the system namespaces. The `kubernetes` Service needs
//! a cluster IP and is created by the allocation step through [`super::ApiServer::client`].

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::client::ApiClient;
use super::error::ApiError;

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

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
