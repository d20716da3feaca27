//! A panic on a shard thread fails that shard, loudly and only that shard.

use std::io;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use kommander_raft::core::{PartitionId, Status};
use kommander_raft::shard::{PartitionStatus, RaftEvent, Refusal, Request};

use super::harness::{Cluster, PATIENCE, wait};

const PANIC_MESSAGE: &str = "the state machine cannot apply entry";

/// The log of the whole test binary, as text (this test installs the process's subscriber).
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for CapturedLog {
    type Writer = Self;

    fn make_writer(&self) -> Self {
        self.clone()
    }
}

fn failed_with_the_panic(refusal: &Refusal) -> bool {
    matches!(
        refusal,
        Refusal::ShardFailed { shard: 1, reason } if reason.contains(PANIC_MESSAGE)
    )
}

#[test]
fn a_panicking_state_machine_fails_its_shard_and_only_it() {
    // The shard logs on its own thread, so only a process-wide subscriber sees it; no other
    // test of this binary installs one.
    let log = CapturedLog::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .finish(),
    )
    .expect("the only global subscriber of the test binary");
    // One node (so a write's outcome is known only once it is durable and applied here, and
    // the panic comes first), 2 shards: partitions 1 and 3 on shard 1, 0 and 2 on shard 0.
    let mut cluster = Cluster::start(1, 4, false);
    cluster.wait_leaders();
    let (failed, healthy) = (
        [PartitionId(1), PartitionId(3)],
        [PartitionId(0), PartitionId(2)],
    );
    for p in failed.into_iter().chain(healthy) {
        cluster.replicate(p, b"before");
    }
    let node = 0;
    let (_, sent) = cluster.propose_to(node, failed[0], &[b"panic, please"], true);
    // The waiter of the write learns why: the panic message.
    let refusal = wait(sent.expect("queued")).expect_err("the write fails");
    assert!(failed_with_the_panic(&refusal), "{refusal:?}");
    let events = &cluster.nodes[node].events;
    assert_eq!(
        events.count(|e| matches!(
            e,
            RaftEvent::ShardFailed { shard: 1, reason } if reason.contains(PANIC_MESSAGE)
        )),
        1
    );
    // The log says which shard failed and why, at error level.
    let text = log.text();
    assert!(
        text.lines().any(|line| line.contains("ERROR")
            && line.contains("shard failed")
            && line.contains("shard=1")
            && line.contains(PANIC_MESSAGE)),
        "no error line with the panic message in the log:\n{text}"
    );
    // From then on the partitions of shard 1 refuse every request with the same reason.
    for p in failed {
        let refused = cluster.status(node, p).expect_err("refused");
        assert!(failed_with_the_panic(&refused), "{refused:?}");
    }
    let (_, sent) = cluster.propose_to(node, failed[1], &[b"x"], true);
    let refused = wait(sent.expect("queued")).expect_err("refused");
    assert!(failed_with_the_panic(&refused), "{refused:?}");
    // The partitions of the other shard keep working.
    for p in healthy {
        assert_eq!(cluster.replicate(p, b"after").status, Status::Success);
    }
    // And the node shuts down cleanly: every shard thread exits.
    let host = cluster.runtime(node).clone();
    let (stopped_tx, stopped_rx) = mpsc::channel();
    std::thread::spawn(move || {
        cluster.shutdown();
        let _ = stopped_tx.send(());
    });
    stopped_rx
        .recv_timeout(PATIENCE)
        .expect("the node shuts down");
    let (reply, _answer) = tokio::sync::oneshot::channel::<Result<PartitionStatus, Refusal>>();
    assert_eq!(
        host.send(healthy[0], Request::Status { reply }),
        Err(Refusal::ShutDown)
    );
}
