//! The printed table: each figure with its raw reference, the ratio, and the target.

use std::path::Path;

use hdrhistogram::Histogram;

use crate::latency::Latencies;
use crate::throughput::Throughput;

struct Row {
    figure: String,
    measured: String,
    ratio: String,
    target: String,
    verdict: &'static str,
}

/// The table of one run.
struct Table {
    header: String,
    rows: Vec<Row>,
    footer: String,
}

/// `p50 / p99` of a histogram of nanoseconds, in µs.
pub fn p50_p99(histogram: &Histogram<u64>) -> String {
    format!(
        "{} / {}",
        micros(histogram.value_at_quantile(0.50)),
        micros(histogram.value_at_quantile(0.99))
    )
}

/// Nanoseconds as µs.
pub fn micros(nanos: u64) -> String {
    format!("{:.1} µs", nanos as f64 / 1000.0)
}

/// Bytes per second as GiB/s (or MiB/s below 1 GiB/s).
pub fn bandwidth(bytes_per_second: f64) -> String {
    let gib = bytes_per_second / f64::from(1u32 << 30);
    if gib >= 1.0 {
        format!("{gib:.2} GiB/s")
    } else {
        format!("{:.0} MiB/s", bytes_per_second / f64::from(1u32 << 20))
    }
}

/// A count per second, with M or k.
pub fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M/s", per_second / 1e6)
    } else {
        format!("{:.1} k/s", per_second / 1e3)
    }
}

fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("Linux {kernel}, {cpus} CPUs ({cpu_model})")
}

/// The filesystem type and device under `dir`, from `/proc/self/mounts` (longest prefix).
fn filesystem(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = fields.next()?;
            let kind = fields.next()?;
            dir.starts_with(mount_point).then(|| {
                (
                    mount_point.len(),
                    format!("{kind} on {device} at {mount_point}"),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown filesystem".into(), |(_, text)| text)
}

impl Table {
    /// An empty table for a run in `dir`.
    fn new(dir: &Path, mode: &str) -> Self {
        Self {
            header: format!(
                "kommander-wal benchmark ({mode} mode; contenders interleaved)\nmachine: {}\n\
                 directory: {} ({})\nload average at the start: {}",
                machine(),
                dir.display(),
                filesystem(dir),
                load_average()
            ),
            rows: Vec::new(),
            footer: String::new(),
        }
    }

    /// A raw limit: no ratio, no target.
    fn raw(&mut self, figure: &str, measured: String) {
        self.rows.push(Row {
            figure: figure.into(),
            measured,
            ratio: "-".into(),
            target: "-".into(),
            verdict: "",
        });
    }

    /// A figure compared with a raw limit: `ratio` of the measured value to the reference,
    /// `met` whether the target holds (None: informational).
    fn compare(
        &mut self,
        figure: &str,
        measured: String,
        ratio: String,
        target: &str,
        met: Option<bool>,
    ) {
        self.rows.push(Row {
            figure: figure.into(),
            measured,
            ratio,
            target: target.into(),
            verdict: match met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "",
            },
        });
    }

    /// Prints the table to stdout.
    fn print(&self) {
        let headings = [
            "figure",
            "measured",
            "ratio to raw",
            "target (measured / target)",
            "",
        ];
        let mut widths = headings.map(|heading| heading.chars().count());
        for row in &self.rows {
            let cells = [
                &row.figure,
                &row.measured,
                &row.ratio,
                &row.target,
                &row.verdict.to_string(),
            ];
            for (width, cell) in widths.iter_mut().zip(cells) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 5]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(widths)
                .map(|(cell, width)| {
                    let pad = width.saturating_sub(cell.chars().count());
                    format!("{cell}{}", " ".repeat(pad))
                })
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        println!("\n{}\n", self.header);
        println!("{}", line(headings));
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        println!("|-{}-|", rule.join("-|-"));
        for row in &self.rows {
            println!(
                "{}",
                line([
                    &row.figure,
                    &row.measured,
                    &row.ratio,
                    &row.target,
                    row.verdict
                ])
            );
        }
        println!();
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// Builds and prints the table of one run.
pub fn print(dir: &Path, mode: &str, latencies: &Latencies, throughput: &Throughput) {
    let mut table = Table::new(dir, mode);
    let raw_p50 = latencies.raw_fdatasync.value_at_quantile(0.5) as f64;
    let raw_p99 = latencies.raw_fdatasync.value_at_quantile(0.99) as f64;
    let ratios = |histogram: &Histogram<u64>| {
        (
            histogram.value_at_quantile(0.5) as f64 / raw_p50,
            histogram.value_at_quantile(0.99) as f64 / raw_p99,
        )
    };

    table.raw(
        "raw 4 KiB pwrite+fdatasync QD1, zero-filled file (p50 / p99)",
        p50_p99(&latencies.raw_fdatasync),
    );
    table.raw(
        "raw 4 KiB pwrite O_DIRECT|O_DSYNC QD1, zero-filled file (p50 / p99)",
        p50_p99(&latencies.raw_direct_dsync),
    );
    table.raw(
        "raw durable sequential write, 1 MiB O_DIRECT|O_DSYNC pwrites",
        bandwidth(throughput.raw_write),
    );
    table.raw(
        "raw sequential read, 1 MiB O_DIRECT preads",
        bandwidth(throughput.raw_read),
    );
    for (name, histogram) in &latencies.backends {
        let (p50, p99) = ratios(histogram);
        table.compare(
            &format!("backend {name}: 4 KiB durable write QD1 (p50 / p99)"),
            p50_p99(histogram),
            format!("{p50:.2} / {p99:.2}"),
            "(informational)",
            None,
        );
    }
    for (name, rate) in &throughput.backends {
        table.compare(
            &format!("backend {name}: 256 KiB durable writes, 2 in flight"),
            bandwidth(*rate),
            format!("{:.2}", rate / throughput.raw_write),
            "(informational)",
            None,
        );
    }

    let (p50, p99) = ratios(&latencies.log);
    table.compare(
        &format!(
            "log ({}): QD1 256 B append + submit + wait durable (p50 / p99)",
            latencies.log_backend
        ),
        p50_p99(&latencies.log),
        format!("{p50:.2} / {p99:.2}"),
        &format!("≤ 1.25 / ≤ 2.0 ({:.2} / {:.2})", p50 / 1.25, p99 / 2.0),
        Some(p50 <= 1.25 && p99 <= 2.0),
    );
    for (partitions, figures) in [(64, &throughput.log_64), (1024, &throughput.log_1024)] {
        let rate = figures.records_per_second();
        table.compare(
            &format!(
                "log: saturated durable 256 B records, {partitions} partitions (commit p50 / p99)"
            ),
            format!(
                "{} ({})",
                self::rate(rate),
                p50_p99(&figures.commit_latency)
            ),
            format!(
                "{:.2} of raw write bw",
                figures.payload_bytes_per_second() / throughput.raw_write
            ),
            &format!("≥ 2 M/s ({:.2})", rate / 2e6),
            Some(rate >= 2e6),
        );
    }
    let ratio = throughput.log_1k.payload_bytes_per_second() / throughput.raw_write;
    table.compare(
        "log: 1 KiB payload bandwidth, 64 partitions (commit p50 / p99)",
        format!(
            "{} ({})",
            bandwidth(throughput.log_1k.payload_bytes_per_second()),
            p50_p99(&throughput.log_1k.commit_latency)
        ),
        format!("{ratio:.2}"),
        &format!("≥ 0.7 ({:.2})", ratio / 0.7),
        Some(ratio >= 0.7),
    );
    let ratio = throughput.recovery / throughput.raw_read;
    table.compare(
        &format!(
            "log: recovery scan, reopen of {} segments, cold cache",
            throughput.recovery_segments
        ),
        bandwidth(throughput.recovery),
        format!("{ratio:.2}"),
        &format!("≥ 0.6 ({:.2})", ratio / 0.6),
        Some(ratio >= 0.6),
    );
    table.footer = format!("load average at the end: {}", load_average());
    table.print();
}
