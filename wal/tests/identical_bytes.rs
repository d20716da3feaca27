//! The two real backends (and both io_uring modes) write byte-identical files for the same
//! workload: same records, same frames, same segment headers (epochs and timestamps made
//! deterministic through `WalConfig::deterministic_epoch_seed`).

use std::collections::BTreeMap;
use std::path::Path;

use kommander_wal::backend::{BackendChoice, UringWriteMode};
use kommander_wal::{Wal, WalConfig};

use crate::common::{Rng, small_config, workload};

/// Every file of `dir` by name (the lock file is empty and the marker identical anyway).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list the log directory")
        .map(|entry| {
            let entry = entry.expect("directory entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).expect("read a log file"))
        })
        .collect()
}

/// Runs the seeded workload with a sync after every few appends, so frame boundaries depend
/// only on the workload (never on how fast a backend completes), then reopens once.
fn write_workload(dir: &Path, backend: BackendChoice, seed: u64) -> BTreeMap<String, Vec<u8>> {
    let config = WalConfig {
        deterministic_epoch_seed: Some(seed),
        ..small_config(backend)
    };
    let ops = workload(seed, 600, 6, 700);
    let mut rng = Rng(seed ^ 0x5eed);
    {
        let mut wal = Wal::open(dir, config.clone()).expect("open");
        for op in &ops {
            wal.append(&[op.as_write()]).expect("append");
            if rng.below(5) == 0 {
                wal.sync().expect("sync");
            }
        }
        wal.sync().expect("sync");
    }
    // Recovery runs too (it must not change a cleanly written log differently per backend).
    drop(Wal::open(dir, config).expect("reopen"));
    files(dir)
}

#[test]
fn real_backends_write_identical_bytes() {
    for seed in [1, 2, 3] {
        let choices = [
            ("blocking", BackendChoice::Blocking),
            (
                "io_uring O_DIRECT+RWF_DSYNC",
                BackendChoice::IoUring(UringWriteMode::DirectDsync),
            ),
            (
                "io_uring WRITE→FSYNC",
                BackendChoice::IoUring(UringWriteMode::LinkedDatasync),
            ),
        ];
        let mut reference: Option<(&str, BTreeMap<String, Vec<u8>>)> = None;
        for (name, choice) in choices {
            let dir = tempfile::tempdir().expect("tempdir");
            let written = write_workload(dir.path(), choice, seed);
            assert!(
                written.keys().filter(|name| name.ends_with(".wal")).count() > 1,
                "seed {seed}: the workload should span several segments"
            );
            match &reference {
                None => reference = Some((name, written)),
                Some((reference_name, expected)) => {
                    assert_eq!(
                        expected.keys().collect::<Vec<_>>(),
                        written.keys().collect::<Vec<_>>(),
                        "seed {seed}: {name} and {reference_name} left different files"
                    );
                    for (file, bytes) in expected {
                        let other = &written[file];
                        let first_difference = bytes.iter().zip(other).position(|(a, b)| a != b);
                        assert!(
                            bytes.len() == other.len() && first_difference.is_none(),
                            "seed {seed}: {file} differs between {reference_name} and {name} \
                             (lengths {} / {}, first difference at byte {first_difference:?})",
                            bytes.len(),
                            other.len()
                        );
                    }
                }
            }
        }
    }
}
