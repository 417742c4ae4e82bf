//! Concurrent writes packed into shared log entries: every write keeps a revision of its own,
//! watches see each one once in revision order (also when resumed mid-entry), revisions keep
//! growing across a restart and a snapshot, and a guarded create checks its namespace in
//! the same step as the write.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::config;
use skiff_controlplane::{ControlPlane, Error, Op, OpError, Watcher};

const CMS: &str = "/registry/core/configmaps/default/";
const WRITES: usize = 200;

async fn single(dir: &std::path::Path) -> Arc<ControlPlane> {
    let mut cfg = config(1, dir);
    cfg.watch_history = 10_000;
    let cp = ControlPlane::start(cfg).await.unwrap();
    cp.bootstrap().await.unwrap();
    Arc::new(cp)
}

async fn next_revision(w: &mut Watcher) -> u64 {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("event in time")
        .expect("watch open")
        .expect("event")
        .revision
}

async fn create_all(cp: &Arc<ControlPlane>, prefix: &str) -> Vec<u64> {
    let tasks: Vec<_> = (0..WRITES)
        .map(|i| {
            let cp = cp.clone();
            let key = format!("{CMS}{prefix}{i}");
            tokio::spawn(async move {
                cp.apply(Op::Create {
                    key,
                    value: "{}".into(),
                })
                .await
                .unwrap()
                .0
            })
        })
        .collect();
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs
}

#[tokio::test]
async fn packed_writes_keep_unique_ordered_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let cp = single(dir.path()).await;
    let start = cp.reader().revision().unwrap();
    let first_index = cp.raft().metrics().borrow().last_log_index.unwrap_or(0);

    let revs = create_all(&cp, "a").await;
    let unique: BTreeSet<u64> = revs.iter().copied().collect();
    assert_eq!(unique.len(), WRITES, "every write has its own revision");
    let entries = cp.raft().metrics().borrow().last_log_index.unwrap_or(0) - first_index;
    assert!(
        entries < WRITES as u64,
        "{WRITES} concurrent writes took {entries} log entries: none were packed"
    );
    let listed = cp
        .list(CMS, 0, None, skiff_controlplane::Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), WRITES);
    assert!(listed.revision >= *unique.last().unwrap());
    for kv in &listed.items {
        assert!(unique.contains(&kv.mod_revision));
    }

    // A watch from before sees each write once, in revision order.
    let mut w = cp.watch(CMS, start).unwrap();
    let mut seen = Vec::new();
    for _ in 0..WRITES {
        seen.push(next_revision(&mut w).await);
    }
    assert_eq!(seen, unique.iter().copied().collect::<Vec<_>>());
    // Resumed from a write in the middle of an entry: exactly the later ones.
    let mid = seen[WRITES / 2];
    let mut w = cp.watch(CMS, mid).unwrap();
    assert_eq!(next_revision(&mut w).await, seen[WRITES / 2 + 1]);

    // Restart (the snapshot policy of the test config has taken snapshots meanwhile):
    // later writes get larger revisions than everything before.
    let cp = Arc::into_inner(cp).expect("one owner");
    cp.shutdown().await.unwrap();
    let cp = Arc::new(ControlPlane::start(config(1, dir.path())).await.unwrap());
    let max_before = *unique.last().unwrap();
    let after = create_all(&cp, "b").await;
    assert!(
        after.iter().all(|r| *r > max_before),
        "{after:?} vs {max_before}"
    );
    Arc::into_inner(cp).unwrap().shutdown().await.unwrap();
}

#[tokio::test]
async fn guarded_write_requires_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let cp = single(dir.path()).await;
    let ns = "/registry/core/namespaces/default".to_string();
    let err = cp
        .apply_if_exists(
            ns.clone(),
            Op::Create {
                key: format!("{CMS}x"),
                value: "{}".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Op(OpError::Missing { ref key }) if *key == ns),
        "{err}"
    );
    let (gone, _) = cp
        .get(
            &format!("{CMS}x"),
            skiff_controlplane::Consistency::Linearizable,
        )
        .await
        .unwrap();
    assert!(gone.is_none(), "a rejected guarded write wrote nothing");

    cp.apply(Op::Create {
        key: ns.clone(),
        value: "{}".into(),
    })
    .await
    .unwrap();
    let (rev, out) = cp
        .apply_if_exists(
            ns,
            Op::Create {
                key: format!("{CMS}x"),
                value: "{}".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(out.current.map(|kv| kv.mod_revision), Some(rev));
    Arc::into_inner(cp).unwrap().shutdown().await.unwrap();
}

#[tokio::test]
async fn atomic_writes_apply_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cp = single(dir.path()).await;
    let (quota, obj) = (format!("{CMS}quota"), format!("{CMS}obj"));
    let (rev, _) = cp
        .apply(Op::Create {
            key: quota.clone(),
            value: "0".into(),
        })
        .await
        .unwrap();
    let charge = |value: &str, expected| Op::Update {
        key: quota.clone(),
        value: value.into(),
        expected_revision: Some(expected),
    };
    let create = || Op::Create {
        key: obj.clone(),
        value: "{}".into(),
    };
    // A stale charge refuses the create with it.
    let err = cp
        .apply_all(None, vec![charge("1", rev + 100), create()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Op(OpError::Conflict { ref key, .. }) if *key == quota),
        "{err}"
    );
    let read = |k: String| {
        let cp = &cp;
        async move {
            cp.get(&k, skiff_controlplane::Consistency::Linearizable)
                .await
                .unwrap()
                .0
        }
    };
    assert!(read(obj.clone()).await.is_none(), "nothing written");

    let (rev2, outs) = cp
        .apply_all(None, vec![charge("1", rev), create()])
        .await
        .unwrap();
    assert_eq!(outs.len(), 2);
    assert_eq!(read(quota.clone()).await.unwrap().value, "1");
    assert_eq!(read(obj.clone()).await.unwrap().mod_revision, rev2);

    // The create fails (it exists): the charge is not applied either.
    let err = cp
        .apply_all(None, vec![charge("2", rev2), create()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Op(OpError::AlreadyExists { .. })),
        "{err}"
    );
    assert_eq!(read(quota.clone()).await.unwrap().value, "1");
    // The same key twice: the second op is checked against the first's write.
    let err = cp
        .apply_all(None, vec![charge("2", rev2), charge("3", rev2)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Op(OpError::Conflict { .. })), "{err}");
    assert_eq!(read(quota.clone()).await.unwrap().value, "1");
    // A missing requirement refuses everything.
    let err = cp
        .apply_all(Some(format!("{CMS}nope")), vec![charge("3", rev2)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Op(OpError::Missing { .. })), "{err}");
    Arc::into_inner(cp).unwrap().shutdown().await.unwrap();
}
