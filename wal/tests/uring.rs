//! io_uring-specific integration tests: every io_uring mode writes exactly the bytes the
//! blocking backend writes, and `Auto` picks io_uring where it is permitted.
//! (The conformance suite runs on every mode too: see `conformance.rs`.)

use std::path::Path;

use kommander_wal::Wal;
use kommander_wal::backend::{BackendChoice, UringWriteMode};

use crate::checklist::assert_identical_bytes;
use crate::common::small_config;

fn blocking(_dir: &Path) -> BackendChoice {
    BackendChoice::Blocking
}

#[test]
fn io_uring_direct_writes_the_same_bytes_as_blocking() {
    assert_identical_bytes(blocking, |_dir| {
        BackendChoice::IoUring(UringWriteMode::DirectDsync)
    });
}

#[test]
fn io_uring_linked_writes_the_same_bytes_as_blocking() {
    assert_identical_bytes(blocking, |_dir| {
        BackendChoice::IoUring(UringWriteMode::LinkedDatasync)
    });
}

#[test]
fn io_uring_linked_direct_writes_the_same_bytes_as_blocking() {
    assert_identical_bytes(blocking, |_dir| {
        BackendChoice::IoUring(UringWriteMode::LinkedDirectDatasync)
    });
}

/// This machine permits io_uring (the CI machine too); where it does not, `Auto` must still
/// open the log, on the blocking backend.
#[test]
fn auto_opens_io_uring_where_permitted_and_blocking_elsewhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), small_config(BackendChoice::Auto)).expect("open with Auto");
    let permitted = io_uring_permitted();
    let expected = if permitted { "io_uring" } else { "blocking" };
    assert_eq!(
        wal.backend_name(),
        expected,
        "io_uring permitted: {permitted}"
    );
}

/// Whether this process may set up a ring (asked directly, not through the crate).
fn io_uring_permitted() -> bool {
    kommander_wal::backend::UringBackend::new(1, UringWriteMode::default()).is_ok()
}
