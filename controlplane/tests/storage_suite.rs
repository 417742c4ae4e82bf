//! openraft's own storage test suite against the WAL log store and the redb state machine.

#![expect(
    clippy::result_large_err,
    reason = "openraft's StorageError is the error type of its storage traits"
)]

use openraft::testing::{StoreBuilder, Suite};
use skiff_controlplane::log_store::LogStore;
use skiff_controlplane::state_machine::StateMachineStore;
use skiff_controlplane::types::{StorageError, TypeConfig};

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RedbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = skiff_controlplane::db::open(dir.path()).expect("open store");
        let log = LogStore::open(&dir.path().join("raft-log"), &db).expect("open log");
        // Not `with_log`: the suite applies entries it never appended, and a state machine
        // tied to a log applies only what that log has on disk.
        let sm = StateMachineStore::new(db.clone(), 100).expect("state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(RedbBuilder)
}
