//! The `kommander` binary, run as a child process: `node` (config errors, client port,
//! SIGTERM, restart, checkpoints, `wal inspect` of its data directory), the leader's client
//! endpoint from every node, `node --join` with `cluster members|remove`, `partitions`, and
//! `demo`/`bench`.

mod bench;
mod client_port;
mod cluster;
mod node;
mod partitions;
#[path = "../support/ports.rs"]
mod ports;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) use ports::free_port;

/// How long a child gets for anything (start, join, exit).
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The client address of a `ready` line (`client=...`).
pub(crate) fn client_of(ready: &str) -> String {
    ready
        .split_whitespace()
        .find_map(|field| field.strip_prefix("client="))
        .expect("client= in the ready line")
        .to_owned()
}

/// The binary under test.
pub(crate) fn kommander() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kommander"));
    command.env_remove("KOMMANDER_AUTH_SECRET");
    command.env_remove("KOMMANDER_LOG");
    command
}

/// A running `kommander` child: stdout lines arrive on a channel, stderr goes to a file.
pub(crate) struct Running {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl Running {
    /// Spawns `command` with stderr in `dir/<name>.stderr`.
    pub(crate) fn spawn(mut command: Command, dir: &Path, name: &str) -> Self {
        let stderr = dir.join(format!("{name}.stderr"));
        let file = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn kommander");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// The next stdout line starting with `prefix` (earlier lines are skipped).
    pub(crate) fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no stdout line `{prefix}...` within {PATIENCE:?}; stderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// What the child logged so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` (a name `kill` knows: `TERM`, `INT`, `KILL`) with the `kill` command.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.child.id());
    }

    /// Waits for the exit (kills the child after [`PATIENCE`]).
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("kommander did not exit; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
