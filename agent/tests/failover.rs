//! Three `skiff server` replicas as separate processes under a write load: the leader is
//! killed with SIGKILL five times, each time once the replica killed before has restarted and
//! caught up (one fault at a time). Writes must resume within 2 s of each kill, every
//! acknowledged write must be present afterwards, and all replicas restarted from disk must
//! hold identical state.

mod server_proc;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use server_proc::{free_port, http, spawn, ServerProc, Starting, TempDir, DEADLINE};

const WRITERS: usize = 8;
const KILLS: usize = 5;
const RESUME_LIMIT: Duration = Duration::from_secs(2);
/// Bounds of the load loop, whatever happens.
const MAX_WRITES: usize = 200_000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(240);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// One replica: fixed ports so it comes back where its peers expect it.
struct Replica {
    id: u64,
    api: String,
    raft: String,
    data: PathBuf,
    proc: Option<ServerProc>,
}

impl Replica {
    fn new(id: u64, dir: &TempDir) -> Self {
        Self {
            id,
            api: format!("127.0.0.1:{}", free_port()),
            raft: format!("127.0.0.1:{}", free_port()),
            data: dir.0.join(format!("replica-{id}")),
            proc: None,
        }
    }

    fn start(&mut self, join: Option<&str>) {
        self.proc = Some(self.spawn(join).ready());
    }

    fn spawn(&self, join: Option<&str>) -> Starting {
        let id = self.id.to_string();
        let mut args = vec![
            "--listen",
            &self.api,
            "--raft-listen",
            &self.raft,
            "--node-id",
            &id,
        ];
        if let Some(seed) = join {
            args.extend(["--join", seed]);
        }
        spawn(&format!("replica-{}", self.id), &self.data, &args)
    }
}

/// An acknowledged write: its name, when it was sent and when the answer came.
#[derive(Clone)]
struct Ack {
    name: String,
    sent: Instant,
    acked: Instant,
}

struct Load {
    stop: AtomicBool,
    targets: Vec<String>,
    acks: Mutex<Vec<Ack>>,
}

fn configmap(name: &str, seq: usize) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"load": "failover"}},
        "data": {"seq": seq.to_string(), "payload": "x".repeat(256)},
    })
    .to_string()
}

/// One writer: unique names, retried on every server in turn until acknowledged (a 409
/// means an earlier attempt whose answer was lost did land).
fn writer(load: Arc<Load>, w: usize) {
    let started = Instant::now();
    for seq in 0.. {
        if load.stop.load(Ordering::Relaxed)
            || started.elapsed() > MAX_LOAD_TIME
            || seq * WRITERS >= MAX_WRITES
        {
            return;
        }
        let name = format!("w{w}-{seq}");
        let body = configmap(&name, seq);
        let sent = Instant::now();
        for attempt in 0.. {
            if load.stop.load(Ordering::Relaxed) {
                return;
            }
            let target = &load.targets[(w + attempt) % load.targets.len()];
            let path = "/api/v1/namespaces/default/configmaps";
            match http(target, "POST", path, Some(&body), REQUEST_TIMEOUT) {
                Ok((201 | 409, _)) => {
                    let acked = Instant::now();
                    load.acks.lock().unwrap().push(Ack {
                        name: name.clone(),
                        sent,
                        acked,
                    });
                    break;
                }
                // Refused, reset, timed out or no leader yet: the next server, after a
                // short back-off so a dead port is not hammered.
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

fn status(api: &str) -> Option<Value> {
    match http(api, "GET", "/skiff/v1/status", None, REQUEST_TIMEOUT) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// The leader's id as the live replicas report it, once they agree on one.
fn wait_leader(replicas: &[Replica]) -> u64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let seen: Vec<Option<u64>> = replicas
            .iter()
            .filter(|r| r.proc.is_some())
            .map(|r| status(&r.api).and_then(|s| s["leader"].as_u64()))
            .collect();
        if let Some(Some(l)) = seen.first() {
            if seen.iter().all(|s| *s == Some(*l)) {
                return *l;
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the leader reports every replica's log at or past the index the leader had
/// applied when the wait began: the replica restarted after the previous kill has caught up,
/// so the next kill is a single fault on a healthy cluster (not a second one while a voter is
/// still recovering).
fn wait_caught_up(replicas: &[Replica], leader: u64) {
    let api = &replicas.iter().find(|r| r.id == leader).unwrap().api;
    let deadline = Instant::now() + DEADLINE;
    let index = |s: &Value, id: u64| {
        s["replicas"]
            .as_array()?
            .iter()
            .find(|r| r["id"].as_u64() == Some(id))?["lastApplied"]
            .as_u64()
    };
    let target = loop {
        if let Some(t) = status(api).and_then(|s| index(&s, leader)) {
            break t;
        }
        assert!(Instant::now() < deadline, "no status from leader {leader}");
        std::thread::sleep(Duration::from_millis(20));
    };
    loop {
        let behind: Vec<u64> = match status(api) {
            Some(s) => replicas
                .iter()
                .filter(|r| index(&s, r.id).is_none_or(|i| i < target))
                .map(|r| r.id)
                .collect(),
            None => replicas.iter().map(|r| r.id).collect(),
        };
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replicas {behind:?} never reached index {target}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until `n` more writes than `from` were acknowledged.
fn wait_acks(load: &Load, from: usize, n: usize) {
    let deadline = Instant::now() + DEADLINE;
    while load.acks.lock().unwrap().len() < from + n {
        assert!(Instant::now() < deadline, "the write load stalled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// This replica's own copy of the load's ConfigMaps (`resourceVersion=0`: served from the
/// local state machine, no read through the leader): name → (resourceVersion, data).
fn local_state(api: &str) -> Option<BTreeMap<String, (String, Value)>> {
    let path =
        "/api/v1/namespaces/default/configmaps?labelSelector=load%3Dfailover&resourceVersion=0";
    let (code, body) = http(api, "GET", path, None, Duration::from_secs(10)).ok()?;
    if code != 200 {
        return None;
    }
    let list: Value = serde_json::from_str(&body).ok()?;
    let items = list["items"].as_array()?;
    Some(
        items
            .iter()
            .map(|cm| {
                let name = cm["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let rv = cm["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                (name, (rv, cm["data"].clone()))
            })
            .collect(),
    )
}

/// Wait until every replica holds the same state, and return it.
fn converged(replicas: &[Replica]) -> BTreeMap<String, (String, Value)> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let states: Vec<_> = replicas.iter().map(|r| local_state(&r.api)).collect();
        if let Some(Some(first)) = states.first() {
            if states.iter().all(|s| s.as_ref() == Some(first)) {
                return first.clone();
            }
        }
        let sizes: Vec<_> = states
            .iter()
            .map(|s| s.as_ref().map(BTreeMap::len))
            .collect();
        assert!(
            Instant::now() < deadline,
            "replicas did not converge: sizes {sizes:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn leader_killed_five_times_under_write_load() {
    let dir = TempDir::new("failover");
    let mut replicas: Vec<Replica> = (1..=3).map(|id| Replica::new(id, &dir)).collect();
    replicas[0].start(None);
    let seed = replicas[0].raft.clone();
    for r in &mut replicas[1..] {
        r.start(Some(&seed));
    }
    wait_leader(&replicas);

    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        targets: replicas.iter().map(|r| r.api.clone()).collect(),
        acks: Mutex::new(Vec::new()),
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let load = load.clone();
            std::thread::spawn(move || writer(load, w))
        })
        .collect();

    let mut resumed = Vec::new();
    for kill in 0..KILLS {
        let acked = load.acks.lock().unwrap().len();
        wait_acks(&load, acked, 50);
        let leader = wait_leader(&replicas);
        wait_caught_up(&replicas, leader);
        let victim = replicas.iter_mut().find(|r| r.id == leader).unwrap();
        let killed_at = Instant::now();
        victim.proc.take().unwrap().kill9();
        eprintln!("kill {}: SIGKILL to leader {leader}", kill + 1);
        // The first write sent after the kill that was acknowledged.
        let deadline = killed_at + DEADLINE;
        let first = loop {
            let after = load
                .acks
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.sent >= killed_at)
                .map(|a| a.acked)
                .min();
            if let Some(t) = after {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "writes never resumed after kill {kill}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = first - killed_at;
        eprintln!("kill {}: writes resumed after {took:?}", kill + 1);
        resumed.push(took);
        victim.start(None);
    }
    let acked = load.acks.lock().unwrap().len();
    wait_acks(&load, acked, 50);
    load.stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked: Vec<String> = load
        .acks
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.name.clone())
        .collect();
    eprintln!(
        "{} writes acknowledged; resumed after {resumed:?}",
        acked.len()
    );
    assert!(
        resumed.iter().all(|t| *t <= RESUME_LIMIT),
        "writes must resume within {RESUME_LIMIT:?} of each kill: {resumed:?}"
    );

    let before = converged(&replicas);
    let lost: Vec<&String> = acked.iter().filter(|n| !before.contains_key(*n)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

    // All three down hard, all three back from their data directories.
    for r in &mut replicas {
        r.proc.take().unwrap().kill9();
    }
    // Together, as a cluster's hosts come back: each waits for a quorum.
    let starting: Vec<Starting> = replicas.iter().map(|r| r.spawn(None)).collect();
    for (r, s) in replicas.iter_mut().zip(starting) {
        r.proc = Some(s.ready());
    }
    wait_leader(&replicas);
    let after = converged(&replicas);
    assert_eq!(
        after.len(),
        before.len(),
        "state changed across the restart"
    );
    assert!(after == before, "state changed across the restart");
}
