//! Local reads of the state machine: point gets, prefix ranges with paging, watches.
//!
//! These read this replica's applied state. For a linearizable read go through
//! [`crate::ControlPlane`], which confirms leadership first.

use std::ops::Bound;
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase};
use serde::{Deserialize, Serialize};

use super::apply::StoredValue;
use super::watch::{WatchHub, Watcher};
use crate::command::KeyValue;
use crate::db;
use crate::error::Error;
use crate::types::LogId;

/// One page of a prefix range read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    pub items: Vec<KeyValue>,
    /// The store revision the page was read at (the list's `resourceVersion`).
    pub revision: u64,
    /// Pass back to get the next page; `None` on the last page.
    pub continue_token: Option<String>,
}

/// Read handle on one replica's state machine. Cheap to clone.
#[derive(Clone)]
pub struct StoreReader {
    db: Arc<Database>,
    hub: Arc<WatchHub>,
}

/// The revision of this replica's applied state (see [`revision_in`]).
pub(crate) fn applied_revision(db: &Database) -> Result<u64, redb::Error> {
    let txn = db.begin_read()?;
    revision_in(&txn)
}

/// The revision `txn` reads at: the larger of the last applied log index and the last
/// revision given to a command. Everything up to it is applied, and the next command gets a
/// larger one (its log index is larger than every applied one).
fn revision_in(txn: &ReadTransaction) -> Result<u64, redb::Error> {
    let table = txn.open_table(db::SM_META)?;
    let applied: Option<LogId> = match table.get(db::LAST_APPLIED)? {
        Some(v) => parse(v.value())?,
        None => None,
    };
    let last: u64 = match table.get(db::REVISION)? {
        Some(v) => parse(v.value())?,
        None => 0,
    };
    Ok(applied.map_or(0, |l| l.index).max(last))
}

fn parse<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, redb::Error> {
    serde_json::from_slice(b).map_err(|e| redb::Error::Corrupted(e.to_string()))
}

fn decode(key: &str, bytes: &[u8]) -> Result<KeyValue, Error> {
    let v: StoredValue = serde_json::from_slice(bytes).map_err(Error::Decode)?;
    Ok(v.into_kv(key))
}

impl StoreReader {
    pub(crate) fn new(db: Arc<Database>, hub: Arc<WatchHub>) -> Self {
        Self { db, hub }
    }

    /// The revision of the last applied write on this replica.
    pub fn revision(&self) -> Result<u64, Error> {
        applied_revision(&self.db).map_err(Error::Read)
    }

    /// Oldest revision a watch can start from on this replica.
    pub fn compacted_revision(&self) -> u64 {
        self.hub.compacted_revision()
    }

    /// The value of `key`, and the revision it was read at.
    pub fn get(&self, key: &str) -> Result<(Option<KeyValue>, u64), Error> {
        let read = || -> Result<_, redb::Error> {
            let txn = self.db.begin_read()?;
            let rev = revision_in(&txn)?;
            let table = txn.open_table(db::KV)?;
            Ok((table.get(key)?.map(|v| v.value().to_vec()), rev))
        };
        let (bytes, rev) = read().map_err(Error::Read)?;
        Ok((bytes.map(|b| decode(key, &b)).transpose()?, rev))
    }

    /// Keys starting with `prefix`, in key order, at most `limit` (0 = no limit), starting
    /// after `continue_token` (from a previous page). One page is a consistent snapshot; pages
    /// are not consistent with each other (each is read at its own revision).
    pub fn list(
        &self,
        prefix: &str,
        limit: usize,
        continue_token: Option<&str>,
    ) -> Result<ListPage, Error> {
        let start = match continue_token {
            Some(t) if t.starts_with(prefix) => Bound::Excluded(t),
            _ => Bound::Included(prefix),
        };
        let read = || -> Result<_, Error> {
            let txn = self.db.begin_read().map_err(|e| Error::Read(e.into()))?;
            let revision = revision_in(&txn).map_err(Error::Read)?;
            let table = txn.open_table(db::KV).map_err(|e| Error::Read(e.into()))?;
            let mut items = Vec::new();
            let mut more = false;
            let range = table
                .range::<&str>((start, Bound::Unbounded))
                .map_err(|e| Error::Read(e.into()))?;
            for item in range {
                let (k, v) = item.map_err(|e| Error::Read(e.into()))?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                if limit > 0 && items.len() == limit {
                    more = true;
                    break;
                }
                items.push(decode(k.value(), v.value())?);
            }
            Ok((items, revision, more))
        };
        let (items, revision, more) = read()?;
        let continue_token = if more {
            items.last().map(|kv| kv.key.clone())
        } else {
            None
        };
        Ok(ListPage {
            items,
            revision,
            continue_token,
        })
    }

    /// Events under `prefix` with a revision greater than `from_revision`: first the retained
    /// history, then live ones. [`Error::Gone`] if `from_revision` is older than the history.
    pub fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher, Error> {
        self.hub.watch(prefix, from_revision)
    }

    pub(crate) fn close_watches(&self) {
        self.hub.close();
    }
}
