//! The agent API's own listener.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use super::proto::agent_server::AgentServer;
use super::AgentService;
use crate::api::ApiClient;

/// Failure to start the agent API.
#[derive(Debug, thiserror::Error)]
#[error("binding the agent API (gRPC) to {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// A running agent API server; stop it with [`AgentApiServer::shutdown`].
pub struct AgentApiServer {
    addr: SocketAddr,
    stop_watches: watch::Sender<bool>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Serve the agent API on `listen` (port 0: a free one).
pub async fn serve(client: ApiClient, listen: SocketAddr) -> Result<AgentApiServer, BindError> {
    let bind_err = |source| BindError {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    let (stop_watches, watches) = watch::channel(false);
    let service = AgentService::new(client, watches);
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(async move {
        let res = tonic::transport::Server::builder()
            .add_service(AgentServer::new(service))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = res {
            log::error!("agent API on {addr} failed: {e}");
        }
    });
    log::info!("agent API (gRPC) serving on {addr}");
    Ok(AgentApiServer {
        addr,
        stop_watches,
        stop,
        task,
    })
}

impl AgentApiServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// End the open watches, then stop serving (connections get a few seconds to drain).
    pub async fn shutdown(self) {
        let _ = self.stop_watches.send(true);
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            log::warn!(
                "agent API on {}: connections still open, closing them",
                self.addr
            );
            task.abort();
        }
    }
}
