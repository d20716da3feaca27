//! The printed table: each figure with its raw reference, the ratio, and the target.

use std::path::Path;

use hdrhistogram::Histogram;

struct Row {
    figure: String,
    measured: String,
    ratio: String,
    target: String,
    verdict: &'static str,
}

/// The table of one run.
pub struct Table {
    header: String,
    rows: Vec<Row>,
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
    pub fn new(dir: &Path, quick: bool) -> Self {
        Self {
            header: format!(
                "kommander-wal benchmark ({} mode)\nmachine: {}\ndirectory: {} ({})",
                if quick { "quick" } else { "full" },
                machine(),
                dir.display(),
                filesystem(dir)
            ),
            rows: Vec::new(),
        }
    }

    /// A raw limit: no ratio, no target.
    pub fn raw(&mut self, figure: &str, measured: String) {
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
    pub fn compare(
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
    pub fn print(&self) {
        let headings = ["figure", "measured", "ratio to raw", "target", ""];
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
