//! A 3-replica cluster on loopback: replication, follower forwarding, leader loss, restart
//! from the data directory (catching up through a snapshot).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{applied, eventually, start};
use skiff_controlplane::{Consistency, ControlPlane, Error, Op, OpError};

const T: Duration = Duration::from_secs(20);

fn key(i: usize) -> String {
    format!("/registry/core/configmaps/default/cm-{i:03}")
}

/// Write `range` through `via`; return the acknowledged (key, value, revision).
async fn write_keys(
    via: &ControlPlane,
    range: std::ops::Range<usize>,
    acked: &mut BTreeMap<String, (String, u64)>,
) {
    for i in range {
        let value = format!("{{\"data\":{{\"i\":\"{i}\"}}}}");
        let (rev, outcome) = via
            .apply(Op::Create {
                key: key(i),
                value: value.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("create {} via {}: {e}", key(i), via.id()));
        assert_eq!(
            outcome.current.as_ref().map(|kv| kv.mod_revision),
            Some(rev)
        );
        acked.insert(key(i), (value, rev));
    }
}

async fn leader_among(nodes: &[&ControlPlane]) -> u64 {
    eventually(T, "a leader all replicas agree on", || async {
        let leaders: Vec<_> = nodes.iter().map(|n| n.leader().map(|l| l.0)).collect();
        let first = leaders[0]?;
        let alive = nodes.iter().any(|n| n.id() == first);
        (alive && leaders.iter().all(|l| *l == Some(first))).then_some(first)
    })
    .await
}

async fn assert_has_all(node: &ControlPlane, acked: &BTreeMap<String, (String, u64)>) {
    let max = acked.values().map(|(_, r)| *r).max().unwrap_or(0);
    applied(node, max).await;
    let page = node
        .list("/registry/core/configmaps/", 0, None, Consistency::Local)
        .await
        .unwrap();
    let got: BTreeMap<_, _> = page
        .items
        .into_iter()
        .map(|kv| (kv.key, (kv.value, kv.mod_revision)))
        .collect();
    for (k, v) in acked {
        assert_eq!(
            got.get(k),
            Some(v),
            "replica {} lost acknowledged write {k}",
            node.id()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_survive_leader_loss_and_restart() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let n1 = start(1, dirs[0].path()).await;
    n1.bootstrap().await.unwrap();
    let n2 = start(2, dirs[1].path()).await;
    let n3 = start(3, dirs[2].path()).await;
    n2.join(n1.addr()).await.expect("join n2");
    n3.join(n2.addr())
        .await
        .expect("join n3 through a follower");
    let voters = n1
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .count();
    assert_eq!(voters, 3);

    let mut acked = BTreeMap::new();
    // Through a follower (forwarded) and through the leader.
    write_keys(&n2, 0..15, &mut acked).await;
    write_keys(&n1, 15..30, &mut acked).await;

    // Optimistic concurrency and create-if-absent, cluster-wide.
    let stale = acked[&key(0)].1 - 1;
    let err = n3
        .apply(Op::Update {
            key: key(0),
            value: "{}".into(),
            expected_revision: Some(stale),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Op(OpError::Conflict { .. })), "{err}");
    let err = n3
        .apply(Op::Create {
            key: key(1),
            value: "{}".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Op(OpError::AlreadyExists { .. })),
        "{err}"
    );

    // Linearizable read from a follower sees the last acknowledged write.
    let (kv, _) = n3.get(&key(29), Consistency::Linearizable).await.unwrap();
    assert_eq!(kv.map(|kv| kv.value), Some(acked[&key(29)].0.clone()));

    // Kill the leader.
    let mut nodes = vec![Some(n1), Some(n2), Some(n3)];
    let all: Vec<&ControlPlane> = nodes.iter().flatten().collect();
    let old_leader = leader_among(&all).await;
    let old_idx = (old_leader - 1) as usize;
    let old_node = nodes[old_idx].take().unwrap();
    let old_addr = old_node.addr().to_string();
    let old_last_log = old_node
        .raft()
        .metrics()
        .borrow()
        .last_log_index
        .unwrap_or(0);
    old_node.shutdown().await.unwrap();
    let survivors: Vec<&ControlPlane> = nodes.iter().flatten().collect();
    let new_leader = leader_among(&survivors).await;
    assert_ne!(new_leader, old_leader);

    // Keep writing through both survivors.
    write_keys(survivors[0], 30..45, &mut acked).await;
    write_keys(survivors[1], 45..60, &mut acked).await;
    for n in &survivors {
        assert_has_all(n, &acked).await;
    }

    // Write until the leader has compacted its log past the dead replica's last entry, so
    // catching up needs a snapshot install (bounded in count).
    let leader_node = *survivors.iter().find(|n| n.id() == new_leader).unwrap();
    let mut next = 60;
    while leader_node
        .raft()
        .metrics()
        .borrow()
        .purged
        .map_or(0, |p| p.index)
        <= old_last_log
    {
        assert!(
            next < 300,
            "leader never compacted its log past {old_last_log}"
        );
        write_keys(leader_node, next..next + 5, &mut acked).await;
        next += 5;
    }

    // Restart the old leader from its data directory: it rejoins with its persisted
    // membership and catches up (its log is behind the survivors' snapshots). Peers know it
    // by address, so it comes back on the same one.
    let mut cfg = common::config(old_leader, dirs[old_idx].path());
    cfg.listen = old_addr.parse().unwrap();
    let restarted = ControlPlane::start(cfg).await.expect("restart old leader");
    assert_has_all(&restarted, &acked).await;
    let snap = restarted
        .raft()
        .metrics()
        .borrow()
        .snapshot
        .map_or(0, |s| s.index);
    assert!(
        snap > old_last_log,
        "restarted replica caught up without installing a snapshot"
    );
    let want = leader_node
        .list("/registry/", 0, None, Consistency::Linearizable)
        .await
        .unwrap();
    applied(&restarted, want.revision).await;
    let got = restarted
        .list("/registry/", 0, None, Consistency::Local)
        .await
        .unwrap();
    assert_eq!(
        got.items, want.items,
        "restarted replica differs from the leader"
    );

    restarted.shutdown().await.unwrap();
    for n in nodes.into_iter().flatten() {
        n.shutdown().await.unwrap();
    }
}
