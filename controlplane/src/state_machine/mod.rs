//! The replicated state machine: a key-value store of Kubernetes objects in redb
//! (openraft storage v2 `RaftStateMachine`).
//!
//! Each `apply` batch is one write transaction that also records the last applied log id and
//! membership, so state and progress never disagree after a crash. Most are committed with
//! `Durability::None` (no fsync of their own): the Raft log (`log_store`) is the durable
//! record. One commit every [`DURABLE_EVERY`] or [`DURABLE_ENTRIES`] entries is durable, which
//! makes all before it durable too (redb also only frees pages at durable commits). After a
//! crash the state machine is whole as of its last durable commit, and openraft re-applies the
//! log from that applied id up to the saved committed id; the rest is re-applied when the
//! leader next tells the replica its commit index. The log is never purged past durable state:
//! purges follow a snapshot, whose save is a durable commit. Snapshots and their installation
//! are durable commits. Snapshots are the full key-value content as of one read transaction
//! (redb MVCC gives a consistent view while writes continue); installing one replaces the
//! content.

#![expect(
    clippy::result_large_err,
    reason = "openraft's StorageError is the error type of its storage traits"
)]

pub mod answers;
mod apply;
mod read;
pub mod watch;

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftLogId, RaftSnapshotBuilder};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::command::{CommandResponse, KeyValue};
use crate::db::{self, blocking, from_json, read_err, to_json, write_err};
use crate::error::Error;
use crate::log_store::LogDurability;
use crate::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use answers::Answers;
pub use read::{ListPage, StoreReader};
use watch::WatchHub;

/// Snapshot payload: the whole object store.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    kv: Vec<KeyValue>,
    /// The last revision given out (absent in snapshots from before revisions could run
    /// ahead of log indexes).
    #[serde(default)]
    revision: u64,
}

/// An apply commit is durable when this long has passed since the last durable one...
const DURABLE_EVERY: Duration = Duration::from_secs(1);
/// ...or this many entries were applied since.
const DURABLE_ENTRIES: u64 = 4096;

/// When the last durable apply commit was, and how many entries were applied since.
struct DurableMark {
    at: Instant,
    entries: u64,
}

impl DurableMark {
    /// Counts `n` more entries; true when this commit is to be durable. Apply waits for the
    /// log to have synced what it applies, so durable state never gets ahead of the log's.
    /// (A snapshot's save is durable regardless; openraft's start-up purges the log up to the
    /// applied id if it finds the log behind it, which is safe since the snapshot holds that
    /// state.)
    fn due(&mut self, n: u64) -> bool {
        self.entries += n;
        if self.entries < DURABLE_ENTRIES && self.at.elapsed() < DURABLE_EVERY {
            return false;
        }
        self.at = Instant::now();
        self.entries = 0;
        true
    }
}

/// The state machine handed to openraft. Cheap to clone; [`StateMachineStore::reader`] gives
/// the read side used by the API.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<Database>,
    hub: Arc<WatchHub>,
    durable: Arc<Mutex<DurableMark>>,
    /// How far the Raft log is on disk, when known ([`StateMachineStore::with_log`]).
    log: Option<LogDurability>,
    /// Writes proposed on this replica, answered as their entries are applied.
    answers: Answers,
}

impl StateMachineStore {
    /// `history` is the number of events kept for watch resumption.
    pub fn new(db: Arc<Database>, history: usize) -> Result<Self, Error> {
        let applied = read::applied_revision(&db).map_err(Error::Read)?;
        let hub = Arc::new(WatchHub::new(history, applied));
        let durable = Arc::new(Mutex::new(DurableMark {
            at: Instant::now(),
            entries: 0,
        }));
        Ok(Self {
            db,
            hub,
            durable,
            log: None,
            answers: Answers::default(),
        })
    }

    /// The registry the write batcher registers its proposals in.
    pub fn answers(&self) -> Answers {
        self.answers.clone()
    }

    /// Applies only what `log` (`LogStore::durability`) has on disk, and keeps durable apply
    /// commits behind it.
    pub fn with_log(mut self, log: LogDurability) -> Self {
        self.log = Some(log);
        self
    }

    pub fn reader(&self) -> StoreReader {
        StoreReader::new(self.db.clone(), self.hub.clone())
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StorageError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(db::SM_META).map_err(read_err)?;
        match table.get(name).map_err(read_err)? {
            Some(v) => Ok(Some(from_json(v.value())?)),
            None => Ok(None),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let db = self.db.clone();
        blocking(move || -> Result<Snapshot, StorageError> {
            let (last_applied, membership, data) = {
                let txn = db.begin_read().map_err(read_err)?;
                let meta = txn.open_table(db::SM_META).map_err(read_err)?;
                let get = |k: &str| -> Result<Option<Vec<u8>>, StorageError> {
                    Ok(meta.get(k).map_err(read_err)?.map(|v| v.value().to_vec()))
                };
                let last_applied: Option<LogId> =
                    get(db::LAST_APPLIED)?.map(|b| from_json(&b)).transpose()?;
                let revision: u64 = get(db::REVISION)?
                    .map(|b| from_json(&b))
                    .transpose()?
                    .unwrap_or(0);
                let membership: StoredMembership = get(db::MEMBERSHIP)?
                    .map(|b| from_json(&b))
                    .transpose()?
                    .unwrap_or_default();
                let table = txn.open_table(db::KV).map_err(read_err)?;
                let mut kv = Vec::new();
                for item in table.iter().map_err(read_err)? {
                    let (k, v) = item.map_err(read_err)?;
                    kv.push(from_json::<apply::StoredValue>(v.value())?.into_kv(k.value()));
                }
                (
                    last_applied,
                    membership,
                    to_json(&SnapshotData { kv, revision })?,
                )
            };
            let snapshot_id = match last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, data.len()),
                None => format!("none-{}", data.len()),
            };
            let meta = SnapshotMeta {
                last_log_id: last_applied,
                last_membership: membership,
                snapshot_id,
            };
            save_snapshot(&db, &meta, &data, None)?;
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })
        })
        .await
    }
}

/// Persist a snapshot (and, when installing, the state it carries) in one transaction.
fn save_snapshot(
    db: &Database,
    meta: &SnapshotMeta,
    data: &[u8],
    install: Option<&SnapshotData>,
) -> Result<(), StorageError> {
    let txn = db.begin_write().map_err(write_err)?;
    {
        let mut sm = txn.open_table(db::SM_META).map_err(write_err)?;
        sm.insert(db::SNAPSHOT_META, to_json(meta)?.as_slice())
            .map_err(write_err)?;
        sm.remove(db::SNAPSHOT_DATA).map_err(write_err)?;
        let mut snap = txn.open_table(db::SNAPSHOT).map_err(write_err)?;
        snap.insert(db::SNAPSHOT_DATA, data).map_err(write_err)?;
        if let Some(content) = install {
            sm.insert(db::LAST_APPLIED, to_json(&meta.last_log_id)?.as_slice())
                .map_err(write_err)?;
            sm.insert(db::MEMBERSHIP, to_json(&meta.last_membership)?.as_slice())
                .map_err(write_err)?;
            sm.insert(db::REVISION, to_json(&content.revision)?.as_slice())
                .map_err(write_err)?;
            let mut kv = txn.open_table(db::KV).map_err(write_err)?;
            kv.retain(|_, _| false).map_err(write_err)?;
            for item in &content.kv {
                let bytes = to_json(&apply::StoredValue::from_kv(item))?;
                kv.insert(item.key.as_str(), bytes.as_slice())
                    .map_err(write_err)?;
            }
        }
    }
    txn.commit().map_err(write_err)
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let last: Option<LogId> = self.meta::<Option<LogId>>(db::LAST_APPLIED)?.flatten();
        let membership = self.meta(db::MEMBERSHIP)?.unwrap_or_default();
        Ok((last, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let Some(last_index) = entries.last().map(|e| e.get_log_id().index) else {
            return Ok(Vec::new());
        };
        // The log acknowledges appends before their sync (see `log_store`): an entry is
        // committed on a quorum's disks, but this replica's copy may still be on its way.
        if let Some(log) = &self.log {
            log.wait_index(last_index).await?;
        }
        let waiters: Vec<(u64, usize)> = entries
            .iter()
            .enumerate()
            .filter_map(|(at, e)| match &e.payload {
                EntryPayload::Normal(p) => p.waiter.map(|token| (token, at)),
                _ => None,
            })
            .collect();
        let durable = self
            .durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .due(entries.len() as u64);
        let commit = move |mut txn: WriteTransaction| {
            // See the module doc: the log, not this commit, is what makes a write durable.
            if !durable {
                txn.set_durability(Durability::None).map_err(write_err)?;
            }
            let mut responses = Vec::with_capacity(entries.len());
            let mut events = Vec::new();
            {
                let mut kv = txn.open_table(db::KV).map_err(write_err)?;
                let mut sm = txn.open_table(db::SM_META).map_err(write_err)?;
                let mut last_revision: u64 = match sm.get(db::REVISION).map_err(write_err)? {
                    Some(v) => from_json(v.value())?,
                    None => 0,
                };
                for entry in &entries {
                    let log_id = *entry.get_log_id();
                    let resp = match &entry.payload {
                        EntryPayload::Blank => CommandResponse {
                            revision: log_id.index,
                            ..Default::default()
                        },
                        EntryPayload::Normal(p) => apply::apply_command(
                            &mut kv,
                            &p.cmd,
                            log_id.index,
                            &mut last_revision,
                            &mut events,
                        )?,
                        EntryPayload::Membership(m) => {
                            let stored = StoredMembership::new(Some(log_id), m.clone());
                            sm.insert(db::MEMBERSHIP, to_json(&stored)?.as_slice())
                                .map_err(write_err)?;
                            CommandResponse {
                                revision: log_id.index,
                                ..Default::default()
                            }
                        }
                    };
                    responses.push(resp);
                }
                let last = entries.last().map(|e| *e.get_log_id());
                sm.insert(db::LAST_APPLIED, to_json(&last)?.as_slice())
                    .map_err(write_err)?;
                sm.insert(db::REVISION, to_json(&last_revision)?.as_slice())
                    .map_err(write_err)?;
            }
            txn.commit().map_err(write_err)?;
            Ok::<_, StorageError>((responses, events))
        };
        // A non-durable commit is CPU work of tens of microseconds: a hop to the blocking
        // pool and back would cost more. A durable one waits for the disk, and so does one
        // that finds redb's write lock held (a snapshot being saved): off the workers.
        let inline = if durable {
            None
        } else {
            self.db.try_begin_write().ok()
        };
        let (responses, events) = match inline {
            Some(txn) => commit(txn)?,
            None => {
                let db = self.db.clone();
                blocking(move || commit(db.begin_write().map_err(write_err)?)).await?
            }
        };
        self.hub.publish(events);
        // Answer the writers waiting here (see `answers`), after the watchers: the task woken
        // last on a worker is the one it runs next. Then yield, so that it runs now rather
        // than after openraft's core has handled this apply's results.
        for &(token, at) in &waiters {
            self.answers.answer(token, responses[at].clone());
        }
        if !waiters.is_empty() {
            tokio::task::yield_now().await;
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let content: SnapshotData = from_json(&data)?;
        let revision = meta
            .last_log_id
            .map_or(0, |l| l.index)
            .max(content.revision);
        let db = self.db.clone();
        let meta_owned = meta.clone();
        blocking(move || save_snapshot(&db, &meta_owned, &data, Some(&content))).await?;
        self.hub.reset(revision);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(meta) = self.meta::<SnapshotMeta>(db::SNAPSHOT_META)? else {
            return Ok(None);
        };
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(db::SNAPSHOT).map_err(read_err)?;
        let mut data = table.get(db::SNAPSHOT_DATA).map_err(read_err)?;
        if data.is_none() {
            // Written before the snapshot table existed.
            let legacy = txn.open_table(db::SM_META).map_err(read_err)?;
            data = legacy.get(db::SNAPSHOT_DATA).map_err(read_err)?;
        }
        let data = data.map(|v| v.value().to_vec()).unwrap_or_default();
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
