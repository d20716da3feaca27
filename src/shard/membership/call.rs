//! Membership calls: a roster change one node asks of another over the network (decision
//! 0004, amended: joining through a seed, leaving, removing a member, a learner's promotion).
//!
//! A node that is not partition 0's leader (a joiner is not even a member) cannot propose on
//! partition 0, so it asks a node it can reach, by endpoint: a seed, or the leader a previous
//! answer named. The node asked carries the change out when it leads partition 0 (exactly as
//! `Request::ChangeMembership`: the same refusals, the same idempotent retry) and otherwise
//! names the leader it knows with its endpoint from its roster (Kommander's leader hint): the
//! caller follows the hint. Nothing is forwarded between nodes.
//!
//! * The calling side: [`Transport::call`](crate::shard::Transport::call) sends a
//!   [`MembershipCall`] to an endpoint and answers a oneshot with the [`CallAnswer`] or a
//!   [`CallError`].
//! * The answering side: the transport hands the call to
//!   [`Inbound::call`](crate::shard::Inbound::call), which queues it for partition 0's shard
//!   and returns a [`CallWait`]; the transport takes the answer from it (without blocking with
//!   [`CallWait::try_answer`], or blocking its own thread with [`CallWait::wait`]) and sends it
//!   back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot::{self, error::TryRecvError};

use super::{MembershipTable, Roster, RosterChange};
use crate::core::{NodeId, Status};
use crate::shard::{Refusal, ReplicationResult};

/// A roster change asked of another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipCall {
    /// The node asking (a joiner is not a member yet).
    pub from: NodeId,
    /// The change.
    pub change: RosterChange,
    /// The roster version the change was computed against (`None`: any).
    pub expected_version: Option<u64>,
}

/// The answer of the node a [`MembershipCall`] reached.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallAnswer {
    /// Partition 0 committed the change, or it was already true (a retry): the roster as the
    /// answering node (partition 0's leader) knows it afterwards.
    Done(Arc<Roster>),
    /// The node asked does not lead partition 0: the leader it knows (its id and its endpoint
    /// from the node's roster; the endpoint is empty while the roster records none), or
    /// `None`. Ask it instead.
    NotLeader {
        /// The leader the node knows.
        leader: Option<(NodeId, String)>,
    },
    /// Refused, nothing changed: `StaleMembership`, `ConcurrentMembershipChange` (retry after
    /// the change in flight), `InsufficientVoters`, `ProposalQueueFull` and
    /// `RestoreInProgress` (retry later; also a node whose partition 0 is not open yet),
    /// `Errored` (an invalid change, or a node that cannot serve any more: stopped, failed).
    Refused(Status),
    /// The node does not know what became of the change (leadership lost after proposing it,
    /// or its wait ran out): it may still commit. Ask again: a retry of a committed change
    /// answers `Done`.
    Unknown,
}

/// Why a call got no answer.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The transport does not carry calls.
    #[error("this transport does not carry membership calls")]
    Unsupported,
    /// The endpoint could not be reached, or the connection failed before the answer.
    #[error("{endpoint}: {reason}")]
    Unreachable {
        /// The endpoint called.
        endpoint: String,
        /// What failed, in words.
        reason: String,
    },
    /// The connection's handshake failed: the node at the endpoint refused this node (another
    /// cluster, authentication, too many calls in progress, a malformed call), or this node
    /// refused it (it did not prove the shared secret, it is this node itself). Nothing was
    /// changed.
    #[error("{endpoint} refused the call: {reason}")]
    Rejected {
        /// The endpoint called.
        endpoint: String,
        /// Its reason, in words.
        reason: String,
    },
    /// No answer came within the transport's deadline (the change may still commit).
    #[error("{endpoint} did not answer within {waited:?}")]
    Timeout {
        /// The endpoint called.
        endpoint: String,
        /// How long the transport waited.
        waited: Duration,
    },
    /// The transport's limit of calls in progress is reached: try again later.
    #[error("too many membership calls in progress (at most {max})")]
    Busy {
        /// The limit.
        max: usize,
    },
    /// The call cannot be sent as it is (an endpoint or a list over the wire format's
    /// limits, a caller other than the transport's own node): nothing was sent.
    #[error("the call cannot be sent: {reason}")]
    Invalid {
        /// What is wrong with it, in words.
        reason: String,
    },
}

/// Where the calling side of a transport sends the answer to a call.
pub type CallReply = oneshot::Sender<Result<CallAnswer, CallError>>;

/// A call's answer as the answering node's partition 0 shard will give it
/// ([`Inbound::call`](crate::shard::Inbound::call)).
#[derive(Debug)]
pub struct CallWait {
    state: State,
}

#[derive(Debug)]
enum State {
    Answered(CallAnswer),
    Waiting {
        answer: oneshot::Receiver<Result<ReplicationResult, Refusal>>,
        membership: Arc<MembershipTable>,
    },
    Taken,
}

impl CallWait {
    /// A call answered at once: refused before it reached the shard, or (for a test double
    /// of [`Inbound`](crate::shard::Inbound)) a scripted answer.
    #[must_use]
    pub fn answered(answer: CallAnswer) -> Self {
        Self {
            state: State::Answered(answer),
        }
    }

    /// A call queued for partition 0's shard, answered on `answer`; `membership` gives the
    /// roster (the leader's endpoint, the roster after the change).
    pub(crate) fn waiting(
        answer: oneshot::Receiver<Result<ReplicationResult, Refusal>>,
        membership: Arc<MembershipTable>,
    ) -> Self {
        Self {
            state: State::Waiting { answer, membership },
        }
    }

    /// The answer when it is known now (never blocks); `None` while the shard has not
    /// answered, and after the answer was taken.
    pub fn try_answer(&mut self) -> Option<CallAnswer> {
        let answer = match &mut self.state {
            State::Answered(answer) => answer.clone(),
            State::Waiting { answer, membership } => match answer.try_recv() {
                Ok(result) => answer_of(result, membership),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Closed) => CallAnswer::Refused(Status::Errored),
            },
            State::Taken => return None,
        };
        self.state = State::Taken;
        Some(answer)
    }

    /// Blocks the calling thread until the answer is known or `deadline` passes
    /// ([`CallAnswer::Unknown`] then: the change may still commit). Not for an async task.
    #[must_use]
    pub fn wait(mut self, deadline: Instant) -> CallAnswer {
        let mut pause = Duration::from_micros(100);
        loop {
            if let Some(answer) = self.try_answer() {
                return answer;
            }
            let now = Instant::now();
            if now >= deadline || matches!(self.state, State::Taken) {
                return CallAnswer::Unknown;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

/// The answer to a call from the shard's answer to its `Request::ChangeMembership` (also the
/// node's own, when it asks its own partition 0 first).
pub(crate) fn answer_of(
    result: Result<ReplicationResult, Refusal>,
    membership: &MembershipTable,
) -> CallAnswer {
    match result {
        Ok(outcome) if outcome.status == Status::Success => match membership.roster() {
            // Partition 0's shard publishes the roster before it answers.
            Some(roster) => CallAnswer::Done(roster),
            None => CallAnswer::Unknown,
        },
        Ok(_) => CallAnswer::Unknown,
        Err(refusal) => refused(&refusal, membership.roster().as_deref()),
    }
}

/// The answer to a call the shard (or the router) refused; `roster` gives the leader's
/// endpoint.
pub(crate) fn refused(refusal: &Refusal, roster: Option<&Roster>) -> CallAnswer {
    match refusal {
        Refusal::NotLeader { leader } => CallAnswer::NotLeader {
            leader: leader.map(|node| {
                let endpoint = roster
                    .and_then(|r| r.member(node))
                    .map(|m| m.endpoint.clone())
                    .unwrap_or_default();
                (node, endpoint)
            }),
        },
        Refusal::Replica(status) => CallAnswer::Refused(*status),
        Refusal::QueueFull => CallAnswer::Refused(Status::ProposalQueueFull),
        // Partition 0 not open there yet (a node that has not joined): it may serve later.
        Refusal::RestoreInProgress | Refusal::NotHosted => {
            CallAnswer::Refused(Status::RestoreInProgress)
        }
        Refusal::ShardFailed { .. } | Refusal::ShutDown => CallAnswer::Refused(Status::Errored),
    }
}
