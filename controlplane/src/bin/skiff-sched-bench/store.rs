//! The "store" mode: one control-plane replica in a temporary directory, objects created and
//! bindings written through the in-process API client, i.e. through Raft and redb.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use skiff_controlplane::api::bootstrap::ensure_namespaces;
use skiff_controlplane::api::objects::Objects;
use skiff_controlplane::api::ApiClient;
use skiff_controlplane::{ControlPlane, NodeConfig};
use tokio::task::JoinSet;

use super::Result;

/// Concurrent creates while setting up.
const CREATE_CONCURRENCY: usize = 64;

pub struct Store {
    cp: Arc<ControlPlane>,
    pub client: ApiClient,
    dir: PathBuf,
}

impl Store {
    pub async fn start() -> Result<Self> {
        static RUN: AtomicUsize = AtomicUsize::new(0);
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("skiff-sched-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut cfg = NodeConfig::new(1, &dir, "127.0.0.1:0".parse()?);
        cfg.watch_history = 200_000;
        let cp = Arc::new(ControlPlane::start(cfg).await?);
        cp.bootstrap().await?;
        let client = ApiClient::new(Objects::new(cp.clone()));
        // The first write waits for the election.
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = ensure_namespaces(&client).await {
            if Instant::now() > deadline {
                return Err(format!("store never became writable: {}", e.message).into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self { cp, client, dir })
    }

    /// Create every object, `CREATE_CONCURRENCY` at a time, with progress.
    pub async fn create_all<K>(&self, what: &str, ns: Option<&str>, items: Vec<K>) -> Result<()>
    where
        K: Resource + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let total = items.len();
        let start = Instant::now();
        let mut last = Instant::now();
        let mut set = JoinSet::new();
        let mut done = 0;
        for item in items {
            while set.len() >= CREATE_CONCURRENCY {
                if let Some(r) = set.join_next().await {
                    r??;
                    done += 1;
                }
            }
            let (client, ns) = (self.client.clone(), ns.map(str::to_string));
            set.spawn(async move {
                client
                    .create(ns.as_deref(), &item)
                    .await
                    .map(drop)
                    .map_err(|e| format!("create: {}", e.message))
            });
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                println!("  created {done}/{total} {what}");
            }
        }
        while let Some(r) = set.join_next().await {
            r??;
            done += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "  created {done} {what} in {secs:.1} s ({:.0}/s)",
            done as f64 / secs
        );
        Ok(())
    }

    /// Stop the replica and remove its directory.
    pub async fn stop(self) {
        let Self { cp, client, dir } = self;
        drop(client);
        match Arc::try_unwrap(cp) {
            Ok(cp) => {
                if let Err(e) = cp.shutdown().await {
                    eprintln!("  stopping the replica: {e}");
                }
            }
            Err(_) => eprintln!("  replica still referenced; leaving it to process exit"),
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("  removing {}: {e}", dir.display());
        }
    }
}
