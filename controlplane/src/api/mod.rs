//! The Kubernetes REST API server over the replicated store, for stock `kubectl` and client
//! libraries (plain HTTP, no authentication yet).
//!
//! Layout: [`registry`] (served kinds), [`http`] (routing, verbs, encoding), [`objects`]
//! (the generic resource logic shared with the in-process [`client`]), [`admission`]
//! (LimitRanges and ResourceQuotas), [`decode`],
//! [`defaults`], [`validation`], [`patch`], [`selector`], [`table`], [`discovery`],
//! [`openapi`], [`bootstrap`].

pub mod admission;
pub mod bootstrap;
pub mod client;
pub mod custom;
pub mod decode;
pub mod defaults;
pub mod discovery;
pub mod error;
pub(crate) mod http;
pub mod managed;
pub mod meta;
pub mod objects;
pub mod openapi;
pub mod openapi_v2;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod selector;
pub mod table;
pub mod validation;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use client::ApiClient;
pub use error::{ApiError, FieldError};

use crate::ControlPlane;

/// Failure to start the API server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding the API server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("bootstrapping the API objects: {0}")]
    Bootstrap(#[source] ApiError),
}

/// A running API server; stop it with [`ApiServer::shutdown`].
pub struct ApiServer {
    addr: SocketAddr,
    client: ApiClient,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    /// Follows the CRDs (see [`custom::follow`]); stopped when the server is dropped.
    follower: AbortOnDrop,
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ApiServer {
    /// The bound address (`http://{addr}` for kubeconfigs).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// An in-process client going through the same request logic.
    pub fn client(&self) -> ApiClient {
        self.client.clone()
    }

    /// Stop accepting requests and end open watches.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        drop(self.follower);
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Create the system namespaces, then serve the Kubernetes API on `listen` (port 0 picks a
/// free port; see [`ApiServer::local_addr`]).
pub async fn serve(cp: Arc<ControlPlane>, listen: SocketAddr) -> Result<ApiServer, ServeError> {
    let objects = objects::Objects::new(cp);
    let client = ApiClient::new(objects.clone());
    bootstrap::ensure_namespaces(&client)
        .await
        .map_err(ServeError::Bootstrap)?;
    bootstrap::ensure_storage_class(&client)
        .await
        .map_err(ServeError::Bootstrap)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: listen,
        source,
    })?;
    let follower = AbortOnDrop(tokio::spawn(custom::follow(objects.clone())));
    let app = http::router(objects, addr.to_string());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        // Small responses go out at once instead of waiting on Nagle.
        let listener = listener.tap_io(|s| {
            let _ = s.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            log::error!("API server on {addr} failed: {e}");
        }
    });
    log::info!("Kubernetes API serving on http://{addr}");
    Ok(ApiServer {
        addr,
        client,
        stop,
        task,
        follower,
    })
}
