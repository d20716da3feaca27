//! `kommander demo` and `kommander bench`: they run a real cluster over loopback TCP, print
//! the numbers, write the JSON report and remove their temporary directory.

use super::kommander;

fn is_empty_dir(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).expect("read dir").next().is_none()
}

#[test]
fn demo_runs_prints_throughput_and_percentiles_and_cleans_up() {
    let dir = tempfile::tempdir().expect("dir");
    let output = kommander()
        .args(["demo", "--duration-secs", "1", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run kommander demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("3 nodes on loopback TCP"),
        "{stdout}\n{stderr}"
    );
    let committed = stdout
        .lines()
        .find(|l| l.starts_with("committed "))
        .unwrap_or_else(|| panic!("no `committed` line: {stdout}"));
    let writes: u64 = committed
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{committed}"));
    assert!(writes > 0, "{stdout}");
    assert!(committed.ends_with("writes/s"), "{committed}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("latency us: p50 ") && l.contains(" p99.9 ")),
        "{stdout}"
    );
    assert!(
        is_empty_dir(dir.path()),
        "the WAL directory was not removed"
    );
}

#[test]
fn bench_with_batches_writes_the_json_report() {
    let dir = tempfile::tempdir().expect("dir");
    let wal_dir = dir.path().join("wal");
    std::fs::create_dir(&wal_dir).expect("wal dir");
    let json = dir.path().join("report.json");
    let output = kommander()
        .args([
            "bench",
            "--nodes",
            "3",
            "--partitions",
            "2",
            "--writers",
            "8",
            "--payload-bytes",
            "100",
            "--batch-entries",
            "4",
            "--duration-secs",
            "0.5",
            "--warmup-secs",
            "0.2",
            "--json",
        ])
        .arg(&json)
        .arg("--dir")
        .arg(&wal_dir)
        .output()
        .expect("run kommander bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json");
    assert_eq!(report["nodes"], 3, "{report}");
    assert_eq!(report["partitions"], 2, "{report}");
    assert_eq!(report["writers"], 8, "{report}");
    assert_eq!(report["payload_bytes"], 100, "{report}");
    let duration = report["duration_secs"].as_f64().expect("duration_secs");
    assert!((0.4..=0.6).contains(&duration), "{report}");
    assert_eq!(report["batch_entries"], 4, "{report}");
    let writes = report["writes"].as_u64().expect("writes");
    assert!(
        writes > 0 && writes.is_multiple_of(4),
        "whole batches: {report}"
    );
    assert!(report["writes_per_sec"].as_f64().expect("writes_per_sec") > 0.0);
    // Refused writes (retried) and writes of unknown outcome are counted apart.
    assert!(
        report["refused"].is_u64() && report["unknown"].is_u64(),
        "{report}"
    );
    let latency = &report["latency_us"];
    let quantiles: Vec<f64> = ["p50", "p99", "p999", "max"]
        .iter()
        .map(|q| {
            latency[q]
                .as_f64()
                .unwrap_or_else(|| panic!("{q}: {report}"))
        })
        .collect();
    assert!(quantiles[0] > 0.0, "{report}");
    assert!(quantiles.windows(2).all(|w| w[0] <= w[1]), "{report}");
    assert!(is_empty_dir(&wal_dir), "the WAL directory was not removed");
}

#[test]
fn bench_refuses_invalid_options_with_exit_code_2() {
    for args in [
        &["bench", "--writers", "0"][..],
        &["bench", "--duration-secs", "-1"],
        &["bench", "--nodes", "0"],
        &["bench", "--no-such-option"],
    ] {
        let output = kommander().args(args).output().expect("run kommander");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}: no message");
    }
}
