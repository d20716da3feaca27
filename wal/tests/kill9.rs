//! The real crash test: a child process appends to the log and reports every acknowledgement
//! (after durability) to the parent over a pipe; the parent kills it with SIGKILL at a random
//! (seeded) moment, reopens the log, and checks that every acknowledged record is there and
//! intact, and that every record it finds is one the child wrote (no phantoms, no stale
//! frames from recycled segments).
//!
//! The child is this test binary itself, re-executed with `--ignored --exact child_process`
//! and its parameters in environment variables. It is a test binary of its own (not a module
//! of `main.rs`): while a fork is between `fork` and `exec` it holds copies of every
//! descriptor of the process, so other tests' directory locks would seem held. Cycles rotate through
//! the io_uring (both modes) and blocking backends, and share one directory, so each child
//! starts by recovering what the previous one left.
//!
//! ```text
//! cargo test -p kommander-wal --profile ci --test kill9                 # 50 cycles
//! KOMMANDER_KILL9_CYCLES=500 cargo test -p kommander-wal --profile ci --test kill9
//! KOMMANDER_KILL9_SEED=7 ...                                             # another seed
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kommander_wal::backend::{BackendChoice, UringWriteMode};
use kommander_wal::{Lsn, PartitionId, TermVote, Wal, WalConfig, Write};

#[allow(dead_code, unreachable_pub)]
mod common;

use common::{Rng, floor_meta_for};

const PARTITIONS: u32 = 16;
/// Entries a partition keeps behind its last index before the child compacts it.
const RETAINED_ENTRIES: u64 = 64;
const ENV_DIR: &str = "KOMMANDER_KILL9_CHILD_DIR";
const ENV_SEED: &str = "KOMMANDER_KILL9_CHILD_SEED";
const ENV_TERM: &str = "KOMMANDER_KILL9_CHILD_TERM";
const ENV_BACKEND: &str = "KOMMANDER_KILL9_CHILD_BACKEND";

/// Small segments and frames: a cycle of a few hundred milliseconds rotates, reclaims and
/// recycles segments many times.
fn config(backend: u64) -> WalConfig {
    WalConfig {
        backend: match backend % 4 {
            0 => BackendChoice::IoUring(UringWriteMode::DirectDsync),
            1 => BackendChoice::IoUring(UringWriteMode::LinkedDatasync),
            2 => BackendChoice::IoUring(UringWriteMode::LinkedDirectDatasync),
            _ => BackendChoice::Blocking,
        },
        segment_bytes: 256 << 10,
        batch_bytes_max: 32 << 10,
        record_bytes_max: 4 << 10,
        inflight_batches_max: 2,
        partitions_max: 64,
        segments_prepared_ahead_max: 1,
        segments_recycled_max: 2,
        ..WalConfig::default()
    }
}

/// The payload of entry `index` of `partition` written in `term`: recognisable bytes of a
/// length that varies, so a record from another place or time cannot pass for it.
fn payload(partition: u32, index: u64, term: u64) -> Vec<u8> {
    let mut rng = Rng(u64::from(partition) << 48 ^ index << 8 ^ term);
    let len = 1 + rng.below(600) as usize;
    (0..len).map(|_| rng.next() as u8).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

/// The child: appends until killed, printing `kill9 e partition index term`,
/// `kill9 h partition term vote` and `kill9 c partition floor` lines once the records are
/// durable. `kill9 C partition floor` is printed *before* a compaction is appended (an intent:
/// entries below it may vanish from then on).
#[test]
#[ignore = "the child process of acknowledged_records_survive_sigkill, run by it"]
fn child_process() {
    let (Some(dir), Some(seed), Some(term), Some(backend)) = (
        std::env::var_os(ENV_DIR),
        env_u64(ENV_SEED),
        env_u64(ENV_TERM),
        env_u64(ENV_BACKEND),
    ) else {
        // Not a test: the entry point of the child process. Run without the parent's
        // environment (e.g. by `--include-ignored`), it has nothing to do.
        return;
    };
    let mut wal = Wal::open(&dir, config(backend)).expect("child: open");
    let mut next_index = BTreeMap::new();
    let mut floor = BTreeMap::new();
    let mut next_vote = 0;
    for (partition, info) in wal.partitions().expect("child: partitions") {
        next_index.insert(partition.0, info.last_index + 1);
        floor.insert(partition.0, info.first_index);
        if let Some(state) = info.term_vote {
            next_vote = next_vote.max(state.vote.unwrap_or(0) + 1);
        }
    }
    let mut rng = Rng(seed);
    // Protocol lines start with `kill9 ` (the test harness prints its own lines too).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // The harness has printed `test child_process ... ` without a newline: end it.
    writeln!(out, "\nkill9 ready").expect("child: report");
    out.flush().expect("child: flush");
    let mut pending: std::collections::VecDeque<(Lsn, Vec<String>)> = Default::default();
    loop {
        let mut payloads = Vec::new();
        let mut acks = Vec::new();
        for _ in 0..1 + rng.below(24) {
            let partition = 1 + rng.below(u64::from(PARTITIONS)) as u32;
            let index = next_index.entry(partition).or_insert(1);
            payloads.push((partition, *index, payload(partition, *index, term)));
            acks.push(format!("kill9 e {partition} {index} {term}"));
            *index += 1;
        }
        let compaction_meta;
        let mut writes: Vec<Write<'_>> = payloads
            .iter()
            .map(|(partition, index, payload)| Write::Entry {
                partition: PartitionId(*partition),
                index: *index,
                term,
                payload,
            })
            .collect();
        if rng.below(8) == 0 {
            let partition = 1 + rng.below(u64::from(PARTITIONS)) as u32;
            let next = next_index.get(&partition).copied().unwrap_or(1);
            let target = next.saturating_sub(RETAINED_ENTRIES);
            let current = floor.entry(partition).or_insert(1);
            if next > 1 && target > *current {
                *current = target;
                writeln!(out, "kill9 C {partition} {target}").expect("child: report");
                out.flush().expect("child: flush");
                compaction_meta = floor_meta_for(partition, target);
                writes.push(Write::CompactTo {
                    partition: PartitionId(partition),
                    index: target,
                    floor_meta: &compaction_meta,
                });
                acks.push(format!("kill9 c {partition} {target}"));
            }
        }
        if rng.below(16) == 0 {
            let partition = 1 + rng.below(u64::from(PARTITIONS)) as u32;
            if next_index.contains_key(&partition) {
                writes.push(Write::TermVote {
                    partition: PartitionId(partition),
                    state: TermVote {
                        term,
                        vote: Some(next_vote),
                    },
                });
                acks.push(format!("kill9 h {partition} {term} {next_vote}"));
                next_vote += 1;
            }
        }
        let lsn = wal.append(&writes).expect("child: append");
        pending.push_back((lsn, acks));
        wal.submit().expect("child: submit");
        let durable = wal.poll_durable().expect("child: poll");
        let mut reported = false;
        while pending.front().is_some_and(|(lsn, _)| *lsn <= durable) {
            if let Some((_, acks)) = pending.pop_front() {
                for ack in acks {
                    writeln!(out, "{ack}").expect("child: report");
                }
                reported = true;
            }
        }
        if reported {
            out.flush().expect("child: flush");
        }
    }
}

/// What the parent knows from acknowledgements, per partition.
#[derive(Default)]
struct Acked {
    /// index → term of every acknowledged entry at or above the intended floor.
    entries: BTreeMap<u64, u64>,
    /// The highest compaction the child announced (acknowledged or not).
    floor_intended: u64,
    /// The highest acknowledged compaction.
    floor_acked: u64,
    /// The last acknowledged (term, vote).
    term_vote: Option<(u64, u64)>,
}

fn parse(line: &str) -> Option<(char, [u64; 3])> {
    let mut fields = line.split_whitespace();
    let kind = fields.next()?.chars().next()?;
    let mut numbers = [0; 3];
    for (slot, field) in numbers.iter_mut().zip(fields) {
        *slot = field.parse().ok()?;
    }
    Some((kind, numbers))
}

/// Reopens the log and checks it against what was acknowledged; returns a description of the
/// first violation.
fn verify(dir: &Path, backend: u64, acked: &BTreeMap<u32, Acked>) -> Result<usize, String> {
    let wal = Wal::open(dir, config(backend)).map_err(|e| format!("reopen failed: {e}"))?;
    let mut checked = 0;
    for (partition, want) in acked {
        let p = PartitionId(*partition);
        let last_acked = want.entries.keys().next_back().copied();
        let Ok(info) = wal.partition(p) else {
            if last_acked.is_some() || want.term_vote.is_some() {
                return Err(format!("partition {partition} is gone"));
            }
            continue;
        };
        if info.first_index < want.floor_acked {
            return Err(format!(
                "partition {partition}: first index {} below the acknowledged compaction {}",
                info.first_index, want.floor_acked
            ));
        }
        if info.first_index > want.floor_intended.max(1) {
            return Err(format!(
                "partition {partition}: first index {} above every compaction asked for ({})",
                info.first_index, want.floor_intended
            ));
        }
        // The floor is one a compaction set (to its index, with its meta), or none was.
        let meta = wal.floor_meta(p).map_err(|e| e.to_string())?;
        let want_meta = match info.first_index {
            1 => Vec::new(),
            floor => floor_meta_for(*partition, floor),
        };
        if meta[..] != want_meta[..] {
            return Err(format!(
                "partition {partition}: the floor at {} has a meta of {} bytes, not the {} its \
                 compaction wrote",
                info.first_index,
                meta.len(),
                want_meta.len()
            ));
        }
        if let Some(last) = last_acked
            && info.last_index < last
        {
            return Err(format!(
                "partition {partition}: last index {} but {last} was acknowledged",
                info.last_index
            ));
        }
        for (index, term) in want.entries.range(info.first_index..) {
            let got = wal
                .entry(p, *index)
                .map_err(|e| format!("partition {partition} index {index}: {e}"))?;
            let got_term = wal
                .term_at(p, *index)
                .map_err(|e| format!("partition {partition} index {index}: {e}"))?;
            if got_term != *term || got[..] != payload(*partition, *index, *term)[..] {
                return Err(format!(
                    "partition {partition} index {index}: acknowledged (term {term}) but \
                     found different bytes (term {got_term})"
                ));
            }
            checked += 1;
        }
        // Every entry present is one a child wrote: its payload matches its term.
        for index in info.first_index..=info.last_index {
            let term = wal.term_at(p, index).map_err(|e| e.to_string())?;
            let got = wal.entry(p, index).map_err(|e| e.to_string())?;
            if got[..] != payload(*partition, index, term)[..] {
                return Err(format!(
                    "partition {partition} index {index} (term {term}): bytes no child wrote"
                ));
            }
        }
        if let Some((term, vote)) = want.term_vote {
            let state = info
                .term_vote
                .ok_or_else(|| format!("partition {partition}: acknowledged term and vote lost"))?;
            if state.term < term || state.vote.unwrap_or(0) < vote {
                return Err(format!(
                    "partition {partition}: term and vote {state:?} older than the acknowledged \
                     term {term} vote {vote}"
                ));
            }
        }
    }
    Ok(checked)
}

/// The directory's files and sizes, for failure messages.
fn listing(dir: &Path) -> String {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| {
                    let len = entry.metadata().map_or(0, |m| m.len());
                    format!("{} ({len} B)", entry.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.join(", ")
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let cycles = env_u64("KOMMANDER_KILL9_CYCLES").unwrap_or(50);
    let seed = env_u64("KOMMANDER_KILL9_SEED").unwrap_or(0x006b_696c_6c39);
    let rerun = format!(
        "rerun: KOMMANDER_KILL9_SEED={seed} KOMMANDER_KILL9_CYCLES={cycles} \
         cargo test -p kommander-wal --profile ci --test kill9"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("the test binary");
    // 0: io_uring O_DIRECT+RWF_DSYNC, 1: io_uring linked, 2: io_uring linked O_DIRECT,
    // 3: blocking; default: rotate.
    let forced_backend = env_u64("KOMMANDER_KILL9_BACKEND");
    let mut rng = Rng(seed);
    let mut acked: BTreeMap<u32, Acked> = BTreeMap::new();
    let mut total_acks = 0usize;
    let started = Instant::now();
    for cycle in 0..cycles {
        let backend = forced_backend.unwrap_or(cycle % 4);
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "child_process", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(ENV_DIR, dir.path())
            .env(ENV_SEED, rng.next().to_string())
            .env(ENV_TERM, (cycle + 1).to_string())
            .env(ENV_BACKEND, backend.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("child stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        // Read on a thread so the child never blocks on a full pipe.
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut stdout = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match stdout.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // A line cut by the kill has no newline: the child never finished saying it.
                let Some(complete) = line.strip_suffix(b"\n") else {
                    break;
                };
                let Some(message) = complete.strip_prefix(b"kill9 ") else {
                    continue;
                };
                let message = String::from_utf8_lossy(message).into_owned();
                if message == "ready" {
                    let _ = ready_tx.send(());
                } else {
                    lines.push(message);
                }
            }
            lines
        });
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cycle {cycle}: the child never became ready (it failed to open the log?); {rerun}"
            );
        }
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(150_000)));
        child.kill().expect("SIGKILL the child");
        let status = child.wait().expect("reap the child");
        let lines = reader.join().expect("reader thread");
        assert!(
            status.code().is_none(),
            "cycle {cycle}: the child exited by itself ({status}) instead of being killed; {rerun}"
        );
        for line in &lines {
            let (kind, [partition, a, b]) =
                parse(line).unwrap_or_else(|| panic!("cycle {cycle}: bad line {line:?}"));
            let partition = u32::try_from(partition)
                .unwrap_or_else(|_| panic!("cycle {cycle}: bad partition in {line:?}"));
            let state = acked.entry(partition).or_default();
            match kind {
                'e' => {
                    state.entries.insert(a, b);
                    total_acks += 1;
                }
                'C' => {
                    state.floor_intended = state.floor_intended.max(a);
                    // Entries below an intended floor may vanish; stop expecting them.
                    state.entries = state.entries.split_off(&state.floor_intended);
                }
                'c' => state.floor_acked = state.floor_acked.max(a),
                'h' => state.term_vote = Some((a, b)),
                _ => panic!("cycle {cycle}: bad line {line:?}"),
            }
        }
        if let Err(violation) = verify(dir.path(), backend, &acked) {
            panic!(
                "cycle {cycle} (backend {backend}): {violation}\nfiles: {}\n{rerun}",
                listing(dir.path())
            );
        }
    }
    assert!(total_acks > 0, "no record was ever acknowledged; {rerun}");
    println!(
        "kill9: {cycles} cycles, {total_acks} acknowledged entries checked in {:.1?}",
        started.elapsed()
    );
}
