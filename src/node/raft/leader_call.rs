//! A roster change asked of partition 0's leader wherever it is (decision 0004 point 6, as
//! amended): of this node's own partition 0 when it hosts one (it answers as a call would, and
//! names the leader it knows when it does not lead), else by a membership call over the
//! transport to an endpoint (a seed, a member). An answer naming the leader is followed at
//! once (not twice in a row, so two nodes naming each other during an election do not make
//! the caller spin); any other answer it can act on later (no leader known, unreachable,
//! another change in flight, an unknown outcome) is asked again after
//! `membership.call_retry_interval_ms`, of the node that should know (the last one that was
//! not wrong about leading) or of the next target. Nothing is forwarded between nodes.
//!
//! The caller bounds the whole exchange with its own deadline (dropping the future ends it);
//! a change whose outcome was unknown is asked again, and a retry of a committed change
//! answers `Done` (roster changes are idempotent).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::core::{Status, Ticket};
use crate::node::error::Fatal;
use crate::shard::membership::call::answer_of;
use crate::shard::membership::{CallAnswer, CallError, MembershipCall, Roster, RosterChange};
use crate::shard::{Refusal, Request, SYSTEM_PARTITION};

use super::Raft;
use super::refusal::SHARD_GONE;
use super::timer::TimerError;

/// Where a roster change is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// This node's own partition 0.
    Local,
    /// The node at this endpoint, by a membership call.
    Endpoint(String),
}

/// Why no leader carried the change out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum CallFailed {
    /// Partition 0's leader refused it for good (`InsufficientVoters`, `Errored`).
    Refused(Status),
    /// The call cannot be sent: the transport does not carry membership calls, or refused
    /// the call as it is (its reason, in words).
    Unsendable(String),
    /// The node's timers are full (the wait before asking again could not be set).
    QueueFull,
    /// This node stopped, or its partition 0's shard failed.
    Fatal(Fatal),
}

/// What one attempt got.
enum Attempt {
    Answer(CallAnswer),
    /// No answer from that target (unreachable, busy, its reply dropped): try another.
    Silent,
}

impl Raft {
    /// Asks partition 0's leader for `change` until it is carried out, starting with
    /// `targets` (in turn, never empty), and returns the roster of the leader's `Done`
    /// answer. Before each attempt, `settled` is asked of this node's committed roster: when
    /// it says the change is already in force there, that roster is the answer (a node
    /// restarting as a member, or whose leader cannot be reached, need not ask). Runs until
    /// it succeeds or fails for good: the caller races it with its deadline.
    pub(super) async fn ask_leader(
        &self,
        change: RosterChange,
        targets: &[Target],
        settled: impl Fn(&Roster) -> bool,
    ) -> Result<Arc<Roster>, CallFailed> {
        let me = self.local_node_id();
        let retry = self.inner.config.membership.call_retry_interval();
        let mut rotation = targets.iter().cycle();
        // The node to ask next instead of the rotation's: a leader named by a hint, or the
        // node that answered as the leader (busy, unknown outcome).
        let mut next: Option<Target> = None;
        let mut followed_hint = false;
        loop {
            if let Some(roster) = self.membership().filter(|r| settled(r)) {
                return Ok(roster);
            }
            let Some(target) = next.take().or_else(|| rotation.next().cloned()) else {
                return Err(CallFailed::Unsendable("nowhere to ask".to_owned()));
            };
            let attempt = match &target {
                Target::Local => self.ask_here(&change).await?,
                Target::Endpoint(endpoint) => self.ask_at(endpoint, &change).await?,
            };
            match attempt {
                Attempt::Answer(CallAnswer::Done(roster)) => return Ok(roster),
                Attempt::Answer(CallAnswer::NotLeader {
                    leader: Some((leader, endpoint)),
                }) => {
                    next = if leader == me {
                        Some(Target::Local)
                    } else if endpoint.is_empty() {
                        None
                    } else {
                        Some(Target::Endpoint(endpoint))
                    };
                    if next.is_some() && !followed_hint {
                        followed_hint = true;
                        continue;
                    }
                }
                Attempt::Answer(CallAnswer::Refused(
                    status @ (Status::InsufficientVoters | Status::Errored),
                )) => return Err(CallFailed::Refused(status)),
                Attempt::Answer(CallAnswer::Refused(_) | CallAnswer::Unknown) => {
                    tracing::debug!(?change, ?target, "membership: asked again after a pause");
                    next = Some(target);
                }
                Attempt::Answer(_) | Attempt::Silent => {
                    tracing::debug!(
                        ?change,
                        ?target,
                        "membership: asked elsewhere after a pause"
                    );
                }
            }
            followed_hint = false;
            let pause =
                self.inner
                    .timer
                    .at(Instant::now() + retry)
                    .map_err(|error| match error {
                        TimerError::Full => CallFailed::QueueFull,
                        TimerError::Stopped => CallFailed::Fatal(self.inner.stopped_error()),
                    })?;
            pause.await;
        }
    }

    /// Asks this node's own partition 0 (as the answering side of a call does).
    async fn ask_here(&self, change: &RosterChange) -> Result<Attempt, CallFailed> {
        let (reply, answer) = oneshot::channel();
        let request = Request::ChangeMembership {
            change: change.clone(),
            expected_version: None,
            ticket: Ticket(self.inner.hlc.now().packed()),
            reply,
        };
        let result = match self.inner.shards.send(SYSTEM_PARTITION, request) {
            Ok(()) => answer.await.unwrap_or(Err(SHARD_GONE)),
            Err(refusal) => Err(refusal),
        };
        match result {
            Err(Refusal::ShutDown) => Err(CallFailed::Fatal(self.inner.stopped_error())),
            Err(Refusal::ShardFailed { shard, reason }) => {
                Err(CallFailed::Fatal(Fatal::ShardFailed { shard, reason }))
            }
            result => Ok(Attempt::Answer(answer_of(
                result,
                self.inner.shards.membership(),
            ))),
        }
    }

    /// Asks the node at `endpoint` by a membership call.
    async fn ask_at(&self, endpoint: &str, change: &RosterChange) -> Result<Attempt, CallFailed> {
        let (reply, answer) = oneshot::channel();
        let call = MembershipCall {
            from: self.local_node_id(),
            change: change.clone(),
            expected_version: None,
        };
        self.inner.transport.call(endpoint, call, reply);
        match answer.await {
            Ok(Ok(answer)) => Ok(Attempt::Answer(answer)),
            Ok(Err(error @ (CallError::Unsupported | CallError::Invalid { .. }))) => {
                Err(CallFailed::Unsendable(error.to_string()))
            }
            Ok(Err(
                error @ (CallError::Unreachable { .. }
                | CallError::Rejected { .. }
                | CallError::Timeout { .. }
                | CallError::Busy { .. }),
            )) => {
                tracing::debug!(%error, "membership: a call got no answer");
                Ok(Attempt::Silent)
            }
            // The transport dropped the reply (it could not wait for the answer).
            Err(_) => Ok(Attempt::Silent),
        }
    }
}
