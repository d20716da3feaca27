//! openraft's storage conformance suite (`openraft::testing::Suite`) run on the bench's log
//! store and state machine: the openraft side must be a correct store, or the comparison
//! measures a shortcut (`cargo test --release --bin openraft_cluster` in `benches/peers`).

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

use crate::log_file::LogFile;
use crate::log_store::GroupLog;
use crate::openraft_side::{NodeId, TypeConfig};
use crate::state_machine::CountingStateMachine;

/// The test files' zero-fill step.
const PREALLOCATION_STEP_BYTES: u64 = 512;

/// A fresh store per test: a log file in a temporary directory (kept alive by the suite).
struct FreshStore;

impl StoreBuilder<TypeConfig, GroupLog, CountingStateMachine, TempDir> for FreshStore {
    async fn build(
        &self,
    ) -> Result<(TempDir, GroupLog, CountingStateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Small steps, so that the suite's appends cross a few of them.
        let file = LogFile::create(&dir.path().join("node.log"), PREALLOCATION_STEP_BYTES)
            .expect("a new log file");
        let log = GroupLog::new(7, Arc::new(file));
        Ok((dir, log, CountingStateMachine::default()))
    }
}

#[test]
fn the_store_passes_openrafts_storage_suite() {
    Suite::test_all(FreshStore).expect("the suite passes");
}
