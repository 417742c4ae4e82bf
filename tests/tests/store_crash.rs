//! The store survives `kill -9` of `skiff server` with writes in flight: every create that
//! was answered 201 is there after a restart on the same data directory, and the store takes
//! writes again.
//!
//! A write is acknowledged once its Raft log record is synced; the state machine's own
//! commits are mostly not synced and a killed process loses those that were not, so the
//! restart has to rebuild them from the log. Needs `SKIFF_BIN` (set by `cargo xtask test`),
//! not root.

#[path = "../src/bench/store/mod.rs"]
#[allow(
    dead_code,
    reason = "the benchmark's modules; this test uses the process helpers"
)]
mod store;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use store::procs::{Proc, ScratchDir};
use store::skiff::HttpJson;

const START: Duration = Duration::from_secs(60);
const WRITERS: usize = 16;
/// Acknowledged creates to reach before the kill (bounded by [`LOAD_DEADLINE`]).
const ACKED_BEFORE_KILL: usize = 600;
const LOAD_DEADLINE: Duration = Duration::from_secs(60);
const CM_PATH: &str = "/api/v1/namespaces/default/configmaps";

fn skiff_bin() -> PathBuf {
    PathBuf::from(std::env::var("SKIFF_BIN").expect("SKIFF_BIN (run through cargo xtask test)"))
}

/// Starts a single-replica server on `data`; returns it and its API address.
fn server(data: &Path) -> (Proc, String) {
    let mut cmd = Command::new(skiff_bin());
    cmd.args(["server", "--listen", "127.0.0.1:0"])
        .args(["--raft-listen", "127.0.0.1:0"])
        .args(["--agent-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "info");
    let mut proc = Proc::spawn("skiff server", cmd).expect("start skiff server");
    let marker = "Kubernetes API on http://";
    let api = proc
        .wait_line(Instant::now() + START, |l| {
            let i = l.find(marker)?;
            l[i + marker.len()..]
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .expect("the server announces its API address");
    (proc, api)
}

/// Waits until the API answers for the `default` namespace.
async fn ready(client: &HttpJson, api: &str) {
    let deadline = Instant::now() + START;
    while client.get(api, "/api/v1/namespaces/default").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "API on {api} not ready in {START:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn configmap(name: &str) -> Bytes {
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"owner": name},
    });
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

async fn names(client: &HttpJson, api: &str) -> BTreeSet<String> {
    let list = client.get(api, CM_PATH).await.expect("list configmaps");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|cm| {
            let name = cm["metadata"]["name"].as_str().unwrap().to_string();
            assert_eq!(cm["data"]["owner"], name.as_str(), "{cm}");
            name
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_kill_9() {
    let dir = ScratchDir::new("crash").unwrap();
    let data = dir.path().join("r1");
    let client = HttpJson::default();
    let (proc, api) = server(&data);
    ready(&client, &api).await;

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, api, acked) = (client.clone(), api.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("cm-{w}-{i}");
                // The first failure is the kill: this writer stops.
                if client.post(&api, CM_PATH, configmap(&name)).await.is_err() {
                    return;
                }
                acked.lock().unwrap().insert(name);
            }
        }));
    }
    let deadline = Instant::now() + LOAD_DEADLINE;
    while acked.lock().unwrap().len() < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "too few creates in {LOAD_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(proc); // SIGKILL with writes in flight
    for w in writers {
        tokio::time::timeout(START, w)
            .await
            .expect("writers stop once the server is gone")
            .unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let (_proc, api) = server(&data);
    ready(&client, &api).await;
    let after = names(&client, &api).await;
    let lost: Vec<_> = acked.difference(&after).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged creates lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    // Unacknowledged ones may or may not have made it; nothing else may appear.
    assert!(after.iter().all(|n| n.starts_with("cm-")), "{after:?}");

    // And the store takes writes again, with revisions after the old ones.
    client
        .post(&api, CM_PATH, configmap("after-restart"))
        .await
        .expect("create after the restart");
    let list = client.get(&api, CM_PATH).await.unwrap();
    let rv = |cm: &serde_json::Value| -> u64 {
        cm["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let items = list["items"].as_array().unwrap();
    let newest = items
        .iter()
        .find(|cm| cm["metadata"]["name"] == "after-restart")
        .map(rv)
        .unwrap();
    let max_old = items
        .iter()
        .filter(|cm| cm["metadata"]["name"] != "after-restart")
        .map(rv)
        .max()
        .unwrap();
    assert!(newest > max_old, "{newest} <= {max_old}");
}
