//! Applying commands and their ops to the key-value table inside a write transaction, and
//! giving each command its revision.

#![expect(
    clippy::result_large_err,
    reason = "openraft's StorageError is the error type of its storage traits"
)]

use redb::{ReadableTable, Table};
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResponse, KeyValue, Op, OpError, OpOutcome};
use crate::db::{from_json, to_json, write_err};
use crate::state_machine::watch::{Event, EventKind};
use crate::types::StorageError;

/// What the `kv` table holds for one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredValue {
    pub value: String,
    pub create_revision: u64,
    pub mod_revision: u64,
}

impl StoredValue {
    pub(crate) fn into_kv(self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        }
    }

    pub(crate) fn from_kv(kv: &KeyValue) -> Self {
        Self {
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
        }
    }
}

pub(crate) type KvTable<'t> = Table<'t, &'static str, &'static [u8]>;

fn load(table: &KvTable<'_>, key: &str) -> Result<Option<KeyValue>, StorageError> {
    match table.get(key).map_err(write_err)? {
        Some(v) => Ok(Some(from_json::<StoredValue>(v.value())?.into_kv(key))),
        None => Ok(None),
    }
}

/// Apply `cmd` from the log entry at `index`. `last` is the last revision given out; each
/// command takes `max(index, last + 1)` (so a command alone in its entry has the entry's
/// index as revision, and commands packed into one entry get consecutive ones).
pub(crate) fn apply_command(
    table: &mut KvTable<'_>,
    cmd: &Command,
    index: u64,
    last: &mut u64,
    events: &mut Vec<Event>,
) -> Result<CommandResponse, StorageError> {
    if let Command::Many(cmds) = cmd {
        let mut batched = Vec::with_capacity(cmds.len());
        for c in cmds {
            batched.push(apply_command(table, c, index, last, events)?);
        }
        return Ok(CommandResponse {
            revision: *last,
            results: Vec::new(),
            batched,
        });
    }
    let revision = index.max(*last + 1);
    *last = revision;
    let mut results = Vec::new();
    match cmd {
        Command::Guarded { requires, op } => {
            if table.get(requires.as_str()).map_err(write_err)?.is_none() {
                results.push(Err(OpError::Missing {
                    key: requires.clone(),
                }));
            } else {
                results.push(apply_op(table, op, revision, events)?);
            }
        }
        Command::Atomic { requires, ops } => match check_all(table, requires.as_deref(), ops)? {
            Some(e) => results.extend(ops.iter().map(|_| Err(e.clone()))),
            None => {
                for op in ops {
                    results.push(apply_op(table, op, revision, events)?);
                }
            }
        },
        _ => {
            for op in cmd.ops() {
                results.push(apply_op(table, op, revision, events)?);
            }
        }
    }
    Ok(CommandResponse {
        revision,
        results,
        batched: Vec::new(),
    })
}

fn check_revision(key: &str, expected: Option<u64>, cur: &KeyValue) -> Result<(), OpError> {
    match expected {
        Some(expected) if expected != cur.mod_revision => Err(OpError::Conflict {
            key: key.to_string(),
            expected,
            actual: cur.mod_revision,
        }),
        _ => Ok(()),
    }
}

/// The first check of an atomic command that fails, if any: `requires` must exist, and each
/// op must apply to the key as the ops before it left it (so a key twice is checked against
/// its first write: two updates expecting the same revision refuse the whole command).
fn check_all(
    table: &KvTable<'_>,
    requires: Option<&str>,
    ops: &[Op],
) -> Result<Option<OpError>, StorageError> {
    if let Some(r) = requires {
        if table.get(r).map_err(write_err)?.is_none() {
            return Ok(Some(OpError::Missing { key: r.to_string() }));
        }
    }
    let mut written: Vec<(&str, Option<KeyValue>)> = Vec::new();
    for op in ops {
        let key = op.key();
        let cur = match written.iter().rev().find(|(k, _)| *k == key) {
            Some((_, v)) => v.clone(),
            None => load(table, key)?,
        };
        if let Err(e) = check(op, cur.as_ref()) {
            return Ok(Some(e));
        }
        // Only the existence and the revision matter to later checks.
        let after = match op {
            Op::Delete { .. } => None,
            Op::Create { .. } | Op::Update { .. } => Some(KeyValue {
                key: key.to_string(),
                value: String::new(),
                create_revision: 0,
                mod_revision: u64::MAX,
            }),
        };
        written.push((key, after));
    }
    Ok(None)
}

/// Whether `op` can apply to the key's current value `cur`.
fn check(op: &Op, cur: Option<&KeyValue>) -> Result<(), OpError> {
    let key = op.key();
    match (op, cur) {
        (Op::Create { .. }, Some(_)) => Err(OpError::AlreadyExists {
            key: key.to_string(),
        }),
        (Op::Update { .. } | Op::Delete { .. }, None) => Err(OpError::NotFound {
            key: key.to_string(),
        }),
        (Op::Create { .. }, None) => Ok(()),
        (
            Op::Update {
                expected_revision, ..
            }
            | Op::Delete {
                expected_revision, ..
            },
            Some(cur),
        ) => check_revision(key, *expected_revision, cur),
    }
}

/// Apply `op` at `revision`. The outer `Result` is a storage failure (fatal for Raft); the
/// inner one is the op's own outcome. Successful ops push their event onto `events`.
fn apply_op(
    table: &mut KvTable<'_>,
    op: &Op,
    revision: u64,
    events: &mut Vec<Event>,
) -> Result<Result<OpOutcome, OpError>, StorageError> {
    let key = op.key();
    let prev = load(table, key)?;
    if let Err(e) = check(op, prev.as_ref()) {
        return Ok(Err(e));
    }
    let (kind, current) = match (op, &prev) {
        (Op::Create { value, .. }, _) => (
            EventKind::Added,
            Some(KeyValue {
                key: key.to_string(),
                value: value.clone(),
                create_revision: revision,
                mod_revision: revision,
            }),
        ),
        (Op::Update { value, .. }, Some(cur)) => (
            EventKind::Modified,
            Some(KeyValue {
                key: key.to_string(),
                value: value.clone(),
                create_revision: cur.create_revision,
                mod_revision: revision,
            }),
        ),
        (Op::Delete { .. }, _) => (EventKind::Deleted, None),
        (Op::Update { .. }, None) => unreachable!("checked: an update has a current value"),
    };
    match &current {
        Some(kv) => {
            let bytes = to_json(&StoredValue::from_kv(kv))?;
            table.insert(key, bytes.as_slice()).map_err(write_err)?;
        }
        None => {
            table.remove(key).map_err(write_err)?;
        }
    }
    let event_kv = match (&current, &prev) {
        (Some(kv), _) => kv.clone(),
        (None, Some(p)) => KeyValue {
            mod_revision: revision,
            ..p.clone()
        },
        (None, None) => unreachable!("a delete always has a previous value"),
    };
    events.push(Event {
        revision,
        kind,
        kv: event_kv,
        prev: prev.clone(),
    });
    Ok(Ok(OpOutcome { prev, current }))
}
