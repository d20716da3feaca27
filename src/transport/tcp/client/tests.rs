//! The client protocol's codec tests: every request and answer round-trips, and garbage or a
//! cut body is refused with an error, never a panic.

use super::*;
use crate::shard::partitions::{RangeState, RoutingMode};

fn member(node: u64, role: MemberRole) -> Member {
    Member {
        node: NodeId(node),
        role,
        endpoint: format!("10.0.0.{node}:7100"),
        joined_version: node,
        incarnation: node * 1000,
    }
}

#[test]
fn membership_requests_and_answers_round_trip() {
    for request in [
        ClientRequest::Members,
        ClientRequest::RemoveMember { node: NodeId(7) },
    ] {
        let body: Vec<u8> = encode_request(3, &request).concat();
        let decoded = decode_request(&Bytes::from(body)).expect("decodes");
        assert_eq!(decoded, (3, request));
    }
    for response in [
        ClientResponse::Members {
            status: Status::Success,
            version: 9,
            members: vec![
                member(1, MemberRole::Voter),
                member(2, MemberRole::Learner),
                member(3, MemberRole::Leaving),
            ],
        },
        ClientResponse::Removed {
            status: Status::InsufficientVoters,
            version: 0,
            reason: "the last voter".to_owned(),
        },
    ] {
        let decoded = decode_response(&encode_response(4, &response)).expect("decodes");
        assert_eq!(decoded, (4, response));
    }
}

fn info(partition: u32, state: RangeState) -> PartitionInfo {
    PartitionInfo {
        partition: PartitionId(partition),
        state,
        routing: RoutingMode::HashRange,
        start: 0,
        end: i32::MAX,
        generation: u64::from(partition) + 7,
        importing_from: None,
        exporting_to: None,
    }
}

fn partition_requests() -> Vec<ClientRequest> {
    vec![
        ClientRequest::Partitions,
        ClientRequest::CreatePartition {
            partition: None,
            spec: CreatePartition::unrouted(),
        },
        ClientRequest::CreatePartition {
            partition: Some(PartitionId(9)),
            spec: CreatePartition::hash_range(-5, i32::MAX),
        },
        ClientRequest::RemovePartition {
            partition: PartitionId(4),
        },
        ClientRequest::SplitPartition {
            source: PartitionId(2),
            plan: SplitPlan::default(),
        },
        ClientRequest::SplitPartition {
            source: PartitionId(2),
            plan: SplitPlan {
                target: Some(PartitionId(u32::MAX)),
                boundary: Some(i32::MIN),
            },
        },
        ClientRequest::MergePartitions {
            survivor: PartitionId(1),
            source: PartitionId(3),
        },
        ClientRequest::FencedReplicate {
            partition: PartitionId(3),
            generation: u64::MAX,
            log_type: "kv".to_owned(),
            payload: Bytes::from_static(b"payload"),
        },
        ClientRequest::Route {
            key: "orders/17/line/3".to_owned(),
        },
    ]
}

fn partition_responses() -> Vec<ClientResponse> {
    let mut splitting = info(2, RangeState::Splitting);
    splitting.exporting_to = Some(PartitionId(5));
    let mut importing = info(5, RangeState::Splitting);
    importing.importing_from = Some(PartitionId(2));
    importing.routing = RoutingMode::Unrouted;
    vec![
        ClientResponse::Partitions {
            status: Status::Success,
            version: 12,
            partitions: vec![
                info(1, RangeState::Active),
                splitting,
                info(3, RangeState::Draining),
                info(4, RangeState::Removed),
                importing,
            ],
        },
        ClientResponse::Partitions {
            status: Status::Success,
            version: 0,
            partitions: Vec::new(),
        },
        ClientResponse::PartitionChanged {
            status: Status::Success,
            partition: Some(PartitionId(5)),
            generation: 1,
            version: 13,
            reason: String::new(),
        },
        ClientResponse::PartitionChanged {
            status: Status::Errored,
            partition: None,
            generation: 0,
            version: 0,
            reason: "partition 4 was removed; its id is never reused".to_owned(),
        },
        ClientResponse::Routed {
            status: Status::Success,
            partition: Some(PartitionId(2)),
            generation: 3,
            version: 12,
        },
    ]
}

#[test]
fn partition_requests_and_answers_round_trip() {
    for request in partition_requests() {
        let body: Vec<u8> = encode_request(3, &request).concat();
        let decoded = decode_request(&Bytes::from(body)).expect("decodes");
        assert_eq!(decoded, (3, request));
    }
    for response in partition_responses() {
        let decoded = decode_response(&encode_response(4, &response)).expect("decodes");
        assert_eq!(decoded, (4, response));
    }
}

#[test]
fn malformed_partition_requests_and_answers_are_errors() {
    // Every cut of a fixed-size request or answer is an error (the last fields of a
    // fenced write, its payload, and of a change, its reason, may be any length).
    for request in partition_requests() {
        let body = Bytes::from(encode_request(1, &request).concat());
        let fixed = match &request {
            ClientRequest::FencedReplicate { payload, .. } => body.len() - payload.len(),
            _ => body.len(),
        };
        for cut in 0..fixed {
            assert!(
                decode_request(&body.slice(..cut)).is_err(),
                "{request:?} cut at {cut}"
            );
        }
    }
    for response in partition_responses() {
        let body = encode_response(1, &response);
        let fixed = match &response {
            ClientResponse::PartitionChanged { reason, .. } => body.len() - reason.len(),
            _ => body.len(),
        };
        for cut in 0..fixed {
            assert!(
                decode_response(&body.slice(..cut)).is_err(),
                "{response:?} cut at {cut}"
            );
        }
    }
    // Unknown codes: a create's routing, a split's boundary flag, a range's state and
    // routing; a count the body cannot hold.
    let create = encode_request(
        1,
        &ClientRequest::CreatePartition {
            partition: None,
            spec: CreatePartition::unrouted(),
        },
    )
    .concat();
    for (at, byte) in [(8 + 1 + 4, 2), (8 + 1 + 4 + 1, 2)] {
        let mut bad = create.clone();
        bad[at] = byte;
        assert!(decode_request(&Bytes::from(bad)).is_err(), "byte {at}");
    }
    let split = encode_request(
        1,
        &ClientRequest::SplitPartition {
            source: PartitionId(1),
            plan: SplitPlan::default(),
        },
    )
    .concat();
    let mut bad = split.clone();
    bad[8 + 1 + 4 + 4] = 7;
    assert!(decode_request(&Bytes::from(bad)).is_err());
    let list = encode_response(
        1,
        &ClientResponse::Partitions {
            status: Status::Success,
            version: 1,
            partitions: vec![info(1, RangeState::Active)],
        },
    );
    // id, op, status, version, count, partition: then state and routing.
    let state_at = 8 + 1 + 1 + 8 + 4 + 4;
    for at in [state_at, state_at + 1] {
        let mut bad = list.to_vec();
        bad[at] = 9;
        assert!(decode_response(&Bytes::from(bad)).is_err(), "byte {at}");
    }
    let mut huge = list.to_vec();
    huge[8 + 1 + 1 + 8..8 + 1 + 1 + 8 + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_response(&Bytes::from(huge)),
        Err(WireError::Truncated(_))
    ));
    // A route whose key is not UTF-8.
    let mut route = encode_request(1, &ClientRequest::Route { key: "ab".into() }).concat();
    route[8 + 1 + 2] = 0xff;
    assert!(matches!(
        decode_request(&Bytes::from(route)),
        Err(WireError::InvalidText(_))
    ));
}

#[test]
fn a_malformed_members_answer_is_an_error() {
    let response = ClientResponse::Members {
        status: Status::Success,
        version: 1,
        members: vec![member(1, MemberRole::Voter)],
    };
    let body = encode_response(1, &response);
    // The role byte: id, op, status, version, count, node.
    let role_at = 8 + 1 + 1 + 8 + 2 + 8;
    let mut bad_role = body.to_vec();
    bad_role[role_at] = 9;
    assert!(decode_response(&Bytes::from(bad_role)).is_err());
    for cut in 0..body.len() {
        assert!(decode_response(&body.slice(..cut)).is_err(), "cut at {cut}");
    }
}
