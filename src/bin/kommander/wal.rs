//! `kommander wal inspect DIR`: prints `kommander_wal::inspect`'s read-only report of a WAL
//! directory (segments, partitions and index ranges, every damage with segment and offset,
//! what recovery would do), as text or JSON. DIR may also be a node's `data_dir`: each of its
//! `shard-<n>` WAL directories is reported.
#![allow(clippy::print_stdout)] // the report is the command's output

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kommander_wal::inspect::{InspectOptions, InspectReport, RecoveryVerdict, inspect};
use kommander_wal::{Error, MARKER_NAME};

use crate::{EXIT_FAILURE, EXIT_USAGE};

/// Exit code when recovery would refuse a directory (damage it cannot repair).
const EXIT_DAMAGED: u8 = 3;

/// Options of `kommander wal`.
#[derive(Debug, clap::Args)]
pub(crate) struct WalArgs {
    #[command(subcommand)]
    command: WalCommand,
}

#[derive(Debug, clap::Subcommand)]
enum WalCommand {
    /// Report what a WAL directory holds, read-only (safe on a running node's directory):
    /// segments, partitions with their index ranges, term and vote and compaction floor, every
    /// damage with its segment and offset, and what recovery would do with it.
    ///
    /// Exit code 0 when recovery would open it (possibly after dropping a torn tail), 3 when
    /// it would refuse it, 1 when it cannot be read, 2 when it is not a WAL directory.
    Inspect(InspectArgs),
}

/// Options of `kommander wal inspect`.
#[derive(Debug, clap::Args)]
struct InspectArgs {
    /// A WAL directory (a node's `<data_dir>/shard-<n>`), or a node's `data_dir` (every
    /// `shard-<n>` directory in it is reported).
    dir: PathBuf,
    /// Print the report as JSON (for a `data_dir`: `{"shards": {"shard-0": report, ...}}`).
    #[arg(long)]
    json: bool,
    /// Also list the live entries (partition, index, term, payload length, location).
    #[arg(long)]
    entries: bool,
    /// List at most this many entries; the rest are counted.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    entries_max: usize,
}

/// Runs `kommander wal ...`.
pub(crate) fn run(args: &WalArgs) -> ExitCode {
    match &args.command {
        WalCommand::Inspect(inspect_args) => run_inspect(inspect_args),
    }
}

fn run_inspect(args: &InspectArgs) -> ExitCode {
    let options = InspectOptions {
        entries: args.entries,
        entries_max: args.entries_max,
    };
    let targets = match wal_directories(&args.dir) {
        Ok(targets) => targets,
        Err(message) => {
            eprintln!("kommander wal inspect: {message}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let mut reports = Vec::new();
    for (name, dir) in targets {
        match inspect(&dir, &options) {
            Ok(report) => reports.push((name, report)),
            Err(error) => {
                eprintln!("kommander wal inspect: {}: {error}", dir.display());
                return ExitCode::from(if matches!(error, Error::NotAWal { .. }) {
                    EXIT_USAGE
                } else {
                    EXIT_FAILURE
                });
            }
        }
    }
    if let Err(error) = print(&reports, args.json) {
        eprintln!("kommander wal inspect: {error}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let refused = reports
        .iter()
        .any(|(_, r)| matches!(r.recovery, RecoveryVerdict::Refuses { .. }));
    if refused {
        ExitCode::from(EXIT_DAMAGED)
    } else {
        ExitCode::SUCCESS
    }
}

/// `dir` itself (name `None`), or, for a node's data directory (no marker, `shard-<n>`
/// subdirectories), each shard directory by shard number.
fn wal_directories(dir: &Path) -> Result<Vec<(Option<String>, PathBuf)>, String> {
    if dir.join(MARKER_NAME).exists() {
        return Ok(vec![(None, dir.to_path_buf())]);
    }
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        // `inspect` reports a missing or unreadable directory with its own words.
        Err(_) => return Ok(vec![(None, dir.to_path_buf())]),
    };
    let mut shards = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let number = name
            .strip_prefix("shard-")
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number
            && entry.path().is_dir()
        {
            shards.push((number, name, entry.path()));
        }
    }
    if shards.is_empty() {
        return Ok(vec![(None, dir.to_path_buf())]);
    }
    shards.sort_unstable_by_key(|(number, _, _)| *number);
    Ok(shards
        .into_iter()
        .map(|(_, name, path)| (Some(name), path))
        .collect())
}

fn print(reports: &[(Option<String>, InspectReport)], json: bool) -> Result<(), String> {
    match (json, reports) {
        (true, [(None, report)]) => {
            let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
            println!("{text}");
        }
        (true, _) => {
            let shards: serde_json::Map<String, serde_json::Value> = reports
                .iter()
                .map(|(name, report)| {
                    serde_json::to_value(report)
                        .map(|value| (name.clone().unwrap_or_default(), value))
                })
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let text = serde_json::to_string_pretty(&serde_json::json!({ "shards": shards }))
                .map_err(|e| e.to_string())?;
            println!("{text}");
        }
        (false, _) => {
            for (i, (name, report)) in reports.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                if let Some(name) = name {
                    println!("== {name} ==");
                }
                print!("{report}");
            }
        }
    }
    Ok(())
}
