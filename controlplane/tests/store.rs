//! Single-replica behaviour: command semantics, paging, restart from the data directory,
//! watch resumption and the compacted-revision (410) error.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, start};
use skiff_controlplane::{
    Command, Consistency, ControlPlane, Error, Event, EventKind, Op, OpError, Watcher,
};

const PODS: &str = "/registry/core/pods/default/";

fn pod(name: &str) -> String {
    format!("{PODS}{name}")
}

async fn single(dir: &std::path::Path, history: usize) -> ControlPlane {
    let mut cfg = config(1, dir);
    cfg.watch_history = history;
    let cp = ControlPlane::start(cfg).await.unwrap();
    cp.bootstrap().await.unwrap();
    cp
}

async fn create(cp: &ControlPlane, key: &str, value: &str) -> u64 {
    cp.apply(Op::Create {
        key: key.into(),
        value: value.into(),
    })
    .await
    .unwrap()
    .0
}

#[tokio::test]
async fn commands_revisions_and_paging() {
    let dir = tempfile::tempdir().unwrap();
    let cp = single(dir.path(), 100).await;

    let r1 = create(&cp, &pod("a"), "1").await;
    let err = cp
        .apply(Op::Create {
            key: pod("a"),
            value: "x".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Op(OpError::AlreadyExists { .. })));

    let (r2, out) = cp
        .apply(Op::Update {
            key: pod("a"),
            value: "2".into(),
            expected_revision: Some(r1),
        })
        .await
        .unwrap();
    assert!(r2 > r1);
    assert_eq!(out.prev.as_ref().map(|p| p.value.as_str()), Some("1"));
    let cur = out.current.unwrap();
    assert_eq!((cur.create_revision, cur.mod_revision), (r1, r2));

    let err = cp
        .apply(Op::Update {
            key: pod("a"),
            value: "3".into(),
            expected_revision: Some(r1),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Op(OpError::Conflict { expected, actual, .. }) if expected == r1 && actual == r2)
    );
    let err = cp
        .apply(Op::Delete {
            key: pod("a"),
            expected_revision: Some(r1),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Op(OpError::Conflict { .. })));
    let err = cp
        .apply(Op::Update {
            key: pod("missing"),
            value: "x".into(),
            expected_revision: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Op(OpError::NotFound { .. })));

    // A batch is one revision; each op succeeds or fails on its own.
    let resp = cp
        .write(Command::Batch(vec![
            Op::Create {
                key: pod("b"),
                value: "b".into(),
            },
            Op::Create {
                key: pod("a"),
                value: "dup".into(),
            },
            Op::Delete {
                key: pod("a"),
                expected_revision: Some(r2),
            },
            Op::Create {
                key: "/registry/core/pods/other/c".into(),
                value: "c".into(),
            },
        ]))
        .await
        .unwrap();
    assert_eq!(resp.results.len(), 4);
    assert!(resp.results[0].is_ok() && resp.results[2].is_ok() && resp.results[3].is_ok());
    assert!(matches!(
        resp.results[1],
        Err(OpError::AlreadyExists { .. })
    ));
    assert_eq!(
        resp.results[0]
            .as_ref()
            .unwrap()
            .current
            .as_ref()
            .unwrap()
            .mod_revision,
        resp.revision
    );

    for i in 0..7 {
        create(&cp, &pod(&format!("p{i}")), "{}").await;
    }
    // Paging: 8 keys under the namespace prefix, 3 per page.
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = cp
            .list(PODS, 3, token.as_deref(), Consistency::Linearizable)
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        keys.extend(page.items.into_iter().map(|kv| kv.key));
        match page.continue_token {
            Some(t) => token = Some(t),
            None => break,
        }
        assert!(pages < 10, "paging does not terminate");
    }
    assert_eq!(pages, 3);
    assert_eq!(keys.len(), 8);
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys in order");
    assert!(!keys.iter().any(|k| k.contains("/other/")));
    let (gone, _) = cp.get(&pod("a"), Consistency::Linearizable).await.unwrap();
    assert!(gone.is_none());
    cp.shutdown().await.unwrap();
}

#[tokio::test]
async fn restart_from_data_dir_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let cp = single(dir.path(), 100).await;
    // Enough writes for snapshots (every 20) and log purges to have happened.
    for i in 0..45 {
        create(&cp, &pod(&format!("p{i:02}")), &format!("v{i}")).await;
    }
    let before = cp
        .list("/registry/", 0, None, Consistency::Linearizable)
        .await
        .unwrap();
    assert!(
        cp.raft().metrics().borrow().snapshot.is_some(),
        "a snapshot was taken"
    );
    cp.shutdown().await.unwrap();

    let cp = start(1, dir.path()).await;
    cp.bootstrap().await.unwrap(); // no-op: already initialised
    let after = cp
        .list("/registry/", 0, None, Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(after.items, before.items);
    assert!(after.revision >= before.revision);
    // Still writable, revisions keep increasing.
    let r = create(&cp, &pod("new"), "n").await;
    assert!(r > before.revision);
    cp.shutdown().await.unwrap();
}

async fn next(w: &mut Watcher) -> Arc<Event> {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("event in time")
        .expect("watch open")
        .expect("event")
}

#[tokio::test]
async fn watch_resumes_and_reports_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let cp = single(dir.path(), 8).await;
    let start_rev = cp.reader().revision().unwrap();
    let r_a = create(&cp, &pod("a"), "1").await;
    create(&cp, "/registry/core/services/default/s", "s").await;
    let (r_upd, _) = cp
        .apply(Op::Update {
            key: pod("a"),
            value: "2".into(),
            expected_revision: None,
        })
        .await
        .unwrap();

    // Resume from before the writes: history replay, filtered by prefix.
    let mut w = cp.watch(PODS, start_rev).unwrap();
    let e1 = next(&mut w).await;
    assert_eq!(
        (e1.kind, e1.revision, e1.kv.value.as_str()),
        (EventKind::Added, r_a, "1")
    );
    let e2 = next(&mut w).await;
    assert_eq!((e2.kind, e2.revision), (EventKind::Modified, r_upd));
    assert_eq!(e2.prev.as_ref().map(|p| p.value.as_str()), Some("1"));

    // Live events follow the replay.
    let (r_del, _) = cp
        .apply(Op::Delete {
            key: pod("a"),
            expected_revision: Some(r_upd),
        })
        .await
        .unwrap();
    let e3 = next(&mut w).await;
    assert_eq!(
        (e3.kind, e3.revision, e3.kv.value.as_str()),
        (EventKind::Deleted, r_del, "2")
    );

    // Resume from a later revision skips what came before it.
    let mut w2 = cp.watch(PODS, r_upd).unwrap();
    assert_eq!(next(&mut w2).await.revision, r_del);

    // Push the early revisions out of the 8-event history: too old → Gone (HTTP 410).
    for i in 0..10 {
        create(&cp, &pod(&format!("x{i}")), "x").await;
    }
    let err = cp.watch(PODS, start_rev).err().expect("compacted");
    assert!(
        matches!(err, Error::Gone { requested, oldest } if requested == start_rev && oldest > r_del),
        "{err}"
    );
    // A recent revision still resumes.
    let recent = cp.reader().revision().unwrap() - 3;
    assert!(cp.watch(PODS, recent).is_ok());

    // Shutting the replica down ends open watches.
    let mut live = cp.watch(PODS, cp.reader().revision().unwrap()).unwrap();
    cp.shutdown().await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .expect("watch ends");
    assert!(end.is_none());
}
