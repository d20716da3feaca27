//! Bad input: random garbage messages never panic a replica, and messages it rejects change
//! nothing durable.

use bytes::Bytes;
use kommander_raft::core::{
    Configuration, Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, PartitionId,
    SnapshotChunk, SnapshotOutcome, Term, Ticket,
};
use proptest::prelude::*;

use super::harness::Cluster;

fn index() -> impl Strategy<Value = LogIndex> {
    prop_oneof![
        4 => (0u64..12).prop_map(LogIndex),
        1 => any::<u64>().prop_map(LogIndex),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    prop_oneof![
        4 => (0u64..6).prop_map(Term),
        1 => any::<u64>().prop_map(Term),
    ]
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec(
        (index(), term(), 0u8..6, any::<bool>()).prop_map(|(index, term, kind, auto_commit)| {
            Entry {
                index,
                term,
                kind: EntryKind::from_code(kind).unwrap_or(EntryKind::Normal),
                ticket: Ticket(u64::from(kind)),
                auto_commit,
                payload: Bytes::from_static(b"junk"),
            }
        }),
        0..4,
    )
}

fn body() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        (index(), term(), any::<u64>()).prop_map(
            |(last_log_index, last_log_term, configuration_version)| {
                MessageBody::PreVoteRequest {
                    last_log_index,
                    last_log_term,
                    configuration_version,
                }
            }
        ),
        any::<bool>().prop_map(|granted| MessageBody::PreVoteResponse { granted }),
        (index(), term(), any::<u64>(), any::<bool>()).prop_map(
            |(last_log_index, last_log_term, configuration_version, transfer)| {
                MessageBody::VoteRequest {
                    last_log_index,
                    last_log_term,
                    configuration_version,
                    transfer,
                }
            }
        ),
        any::<bool>().prop_map(|granted| MessageBody::VoteResponse { granted }),
        (index(), term(), entries(), index()).prop_map(
            |(prev_log_index, prev_log_term, entries, commit)| MessageBody::AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            }
        ),
        (any::<bool>(), index(), index(), term()).prop_map(
            |(success, index, hint_index, hint_term)| MessageBody::AppendResponse {
                success,
                index,
                hint_index,
                hint_term,
            }
        ),
        (index(), any::<u64>(), any::<bool>()).prop_map(|(commit, read_round, quiesce)| {
            MessageBody::Heartbeat {
                commit,
                read_round,
                quiesce,
            }
        }),
        any::<u64>().prop_map(|read_round| MessageBody::HeartbeatResponse { read_round }),
        Just(MessageBody::TimeoutNow),
        any::<u64>().prop_map(|context| MessageBody::ReadIndexRequest { context }),
        (any::<u64>(), index(), any::<bool>())
            .prop_map(|(context, index, ok)| MessageBody::ReadIndexResponse { context, index, ok }),
        (
            any::<u64>(),
            any::<u32>(),
            index(),
            term(),
            prop::option::of(any::<[u8; 32]>())
        )
            .prop_map(|(session, seq, last_index, last_term, digest)| {
                MessageBody::SnapshotChunk(Box::new(SnapshotChunk {
                    session,
                    seq,
                    last_index,
                    last_term,
                    configuration: Configuration::new(vec![NodeId(1)], Vec::new()).expect("valid"),
                    crc: 0,
                    digest,
                    marks: Bytes::new(),
                    data: Bytes::from_static(b"chunk"),
                }))
            }),
        (any::<u64>(), any::<u32>()).prop_map(|(session, seq)| MessageBody::SnapshotAck {
            session,
            seq,
            outcome: SnapshotOutcome::Refused,
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop_oneof![9 => Just(1u32), 1 => any::<u32>()],
        0u64..6,
        prop_oneof![9 => Just(0u64), 1 => 0u64..6],
        term(),
        body(),
    )
        .prop_map(|(partition, from, to, term, body)| Message {
            partition: PartitionId(partition),
            from: NodeId(from),
            to: NodeId(to),
            term,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// `to = 0` in a generated message is replaced by the target replica's id.
    #[test]
    fn garbage_never_panics_and_rejected_garbage_changes_nothing(
        messages in prop::collection::vec(message(), 1..40),
        target in 1u64..=3,
    ) {
        let mut c = Cluster::new(3, 1);
        c.elect(1);
        for i in 0..4 {
            c.propose(1, &format!("v{i}"));
        }
        c.settle();
        c.ticks(2);
        for mut m in messages {
            if m.to == NodeId(0) {
                m.to = NodeId(target);
            }
            let replica = c.replica_mut(target);
            let before = (replica.hard_state(), replica.last_index(), replica.last_term());
            let committed_before = replica.commit_index();
            let result = replica.step(m);
            let after = (replica.hard_state(), replica.last_index(), replica.last_term());
            if result.is_err() {
                prop_assert_eq!(before, after, "a rejected message changed durable state");
            }
            prop_assert!(replica.commit_index() >= committed_before, "commit never regresses");
            prop_assert!(replica.commit_index() <= replica.last_index());
            prop_assert!(after.0.term >= before.0.term, "terms never regress");
            // Whatever happened, the replica keeps producing well-formed output.
            while replica.has_ready() {
                let ready = replica.ready();
                replica.persisted(ready.number);
                replica.applied(ready.committed_through);
            }
        }
    }
}

#[test]
fn specific_bad_inputs_are_typed_errors() {
    use kommander_raft::core::Status;
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    let term = c.replica(2).term();
    let base = |body| Message {
        partition: PartitionId(1),
        from: NodeId(1),
        to: NodeId(2),
        term,
        body,
    };
    let heartbeat = MessageBody::Heartbeat {
        commit: LogIndex(1),
        read_round: 0,
        quiesce: false,
    };
    let other_partition = Message {
        partition: PartitionId(9),
        ..base(heartbeat.clone())
    };
    let from_itself = Message {
        from: NodeId(2),
        ..base(heartbeat.clone())
    };
    let absurd_term = Message {
        term: Term(u64::MAX),
        ..base(heartbeat.clone())
    };
    let undecodable_configuration = MessageBody::AppendRequest {
        prev_log_index: LogIndex(1),
        prev_log_term: Term(1),
        entries: vec![Entry {
            index: LogIndex(2),
            term: Term(1),
            kind: EntryKind::Configuration,
            ticket: Ticket(0),
            auto_commit: true,
            payload: Bytes::from_static(b"\x01\x01\x00"),
        }],
        commit: LogIndex(0),
    };
    let gap = MessageBody::AppendRequest {
        prev_log_index: LogIndex(1),
        prev_log_term: Term(1),
        entries: vec![Entry {
            index: LogIndex(5),
            term: Term(1),
            kind: EntryKind::Normal,
            ticket: Ticket(1),
            auto_commit: true,
            payload: Bytes::new(),
        }],
        commit: LogIndex(0),
    };
    let r = c.replica_mut(2);
    assert_eq!(r.step(other_partition), Err(Status::PartitionMoved));
    assert_eq!(r.step(from_itself), Err(Status::LogsFromAnotherLeader));
    assert_eq!(r.step(absurd_term), Err(Status::Errored));
    assert_eq!(r.step(base(gap)), Err(Status::Errored));
    let last = r.last_index();
    assert_eq!(
        r.step(base(undecodable_configuration)),
        Err(Status::Errored)
    );
    assert_eq!(r.last_index(), last, "nothing appended");
}
