//! Run the controllers and the scheduler only on the Raft leader, as Kubernetes' leader
//! election does for kube-controller-manager and kube-scheduler: two servers must not both
//! create a ReplicaSet's pods or bind one pod twice. Started when this replica becomes
//! leader, stopped when it stops being it.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::ApiClient;
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::{alloc, endpoints, nodelifecycle, ControlPlane};

/// The leader-only loops; dropping it stops them.
struct Running {
    tasks: Vec<JoinHandle<()>>,
    _controllers: crate::controllers::Controllers,
    _stop_scheduler: oneshot::Sender<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Point the `kubernetes` Service at this server, retrying until it works.
async fn take_kubernetes_service(cp: Arc<ControlPlane>, client: ApiClient, api: (Ipv4Addr, u16)) {
    loop {
        match alloc::kubernetes::ensure(&cp, &client, api.0, api.1).await {
            Ok(()) => return,
            Err(e) => log::warn!("kubernetes Service endpoints: {}", e.message),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn start(
    cp: &Arc<ControlPlane>,
    client: &ApiClient,
    lifecycle: nodelifecycle::Config,
    api: (Ipv4Addr, u16),
) -> Running {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let sched_api = Arc::new(client.clone());
    let scheduler = tokio::spawn(async move {
        Scheduler::new(SchedulerConfig::default())
            .run(sched_api, async {
                let _ = stop_rx.await;
            })
            .await;
    });
    let tasks = vec![
        tokio::spawn(take_kubernetes_service(cp.clone(), client.clone(), api)),
        tokio::spawn(alloc::repair::run(cp.clone())),
        tokio::spawn(alloc::podcidr::run(cp.clone(), client.clone())),
        tokio::spawn(endpoints::run(client.clone())),
        tokio::spawn(nodelifecycle::run(client.clone(), lifecycle)),
        scheduler,
    ];
    let controllers = crate::controllers::spawn_all(client);
    log::info!(
        "leader: took the kubernetes Service; started node IPAM, allocation repair, endpoints, node lifecycle, workload \
         controllers and the scheduler"
    );
    Running {
        tasks,
        _controllers: controllers,
        _stop_scheduler: stop_tx,
    }
}

/// Follow leadership until the task is dropped (which stops whatever runs).
pub async fn supervise(
    cp: Arc<ControlPlane>,
    client: ApiClient,
    lifecycle: nodelifecycle::Config,
    api: (Ipv4Addr, u16),
) {
    let mut metrics = cp.raft().server_metrics();
    let mut running: Option<Running> = None;
    loop {
        let leading = {
            let m = metrics.borrow_and_update();
            m.state == ServerState::Leader && m.current_leader == Some(cp.id())
        };
        match (leading, running.is_some()) {
            (true, false) => running = Some(start(&cp, &client, lifecycle, api)),
            (false, true) => {
                running = None;
                log::info!("no longer leader: controllers and scheduler stopped");
            }
            _ => {}
        }
        if metrics.changed().await.is_err() {
            break;
        }
    }
}
