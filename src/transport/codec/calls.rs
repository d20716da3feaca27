//! The bodies of `CallRequest` and `CallAnswer` frames: a membership call and its answer (the
//! format is documented in [`crate::transport::codec`]).
//!
//! The calling node is not in the request: the connection says who sent it (the handshake
//! authenticated it), so [`decode_call`] is told `from`, as [`decode_messages`] is. Encoding
//! checks the format's bounds (an endpoint longer than [`ENDPOINT_BYTES_MAX`], more than
//! [`CONFIGURATION_MEMBERS_MAX`] endpoints, a roster that is not a valid configuration) and
//! refuses what the other side would refuse; decoding is total (any bytes give a value or a
//! [`WireError`], never a panic), and whatever decodes re-encodes to the same bytes.
//!
//! [`decode_messages`]: super::decode_messages

use bytes::{BufMut, Bytes, BytesMut};

use super::messages::{Cursor, WireError};
use crate::core::{
    CONFIGURATION_BYTES_MAX, CONFIGURATION_MEMBERS_MAX, Configuration, NodeId, Status,
};
use crate::shard::membership::{
    CallAnswer, ENDPOINT_BYTES_MAX, MembershipCall, Roster, RosterChange, RosterError,
};

/// The largest `CallRequest` body: an `Endpoints` change naming
/// [`CONFIGURATION_MEMBERS_MAX`] members with endpoints of [`ENDPOINT_BYTES_MAX`] bytes (the
/// acceptor reads requests with this frame limit).
pub const CALL_REQUEST_BYTES_MAX: usize =
    1 + 8 + 1 + 2 + CONFIGURATION_MEMBERS_MAX * (8 + 1 + ENDPOINT_BYTES_MAX);

/// The largest `CallAnswer` body: a `Done` carrying the largest configuration (the caller reads
/// answers with this frame limit).
pub const CALL_ANSWER_BYTES_MAX: usize = 1 + 4 + CONFIGURATION_BYTES_MAX;

const ADD: u8 = 1;
const PROMOTE: u8 = 2;
const DEMOTE: u8 = 3;
const LEAVE: u8 = 4;
const REMOVE: u8 = 5;
const ENDPOINTS: u8 = 6;

const DONE: u8 = 1;
const NOT_LEADER: u8 = 2;
const REFUSED: u8 = 3;
const UNKNOWN: u8 = 4;

/// Encodes `call` as a `CallRequest` body (without `call.from`: the connection carries it).
///
/// # Errors
///
/// [`WireError::OverLimit`]: an endpoint longer than [`ENDPOINT_BYTES_MAX`] bytes, or more than
/// [`CONFIGURATION_MEMBERS_MAX`] endpoints in an `Endpoints` change.
pub fn encode_call(call: &MembershipCall) -> Result<Bytes, WireError> {
    let mut out = BytesMut::with_capacity(32);
    match call.expected_version {
        Some(version) => {
            out.put_u8(1);
            out.put_u64_le(version);
        }
        None => out.put_u8(0),
    }
    match &call.change {
        RosterChange::Add {
            node,
            endpoint,
            incarnation,
        } => {
            out.put_u8(ADD);
            out.put_u64_le(node.get());
            out.put_u64_le(*incarnation);
            put_endpoint(&mut out, endpoint)?;
        }
        RosterChange::Promote { node } => put_node(&mut out, PROMOTE, *node),
        RosterChange::Demote { node } => put_node(&mut out, DEMOTE, *node),
        RosterChange::Leave { node } => put_node(&mut out, LEAVE, *node),
        RosterChange::Remove { node } => put_node(&mut out, REMOVE, *node),
        RosterChange::Endpoints { endpoints } => {
            out.put_u8(ENDPOINTS);
            let count = within(
                "endpoint count",
                endpoints.len(),
                CONFIGURATION_MEMBERS_MAX,
                out.len(),
            )?;
            // At most CONFIGURATION_MEMBERS_MAX: far below u16::MAX.
            out.put_u16_le(count as u16);
            for (node, endpoint) in endpoints {
                out.put_u64_le(node.get());
                put_endpoint(&mut out, endpoint)?;
            }
        }
    }
    Ok(out.freeze())
}

fn put_node(out: &mut BytesMut, tag: u8, node: NodeId) {
    out.put_u8(tag);
    out.put_u64_le(node.get());
}

fn put_endpoint(out: &mut BytesMut, endpoint: &str) -> Result<(), WireError> {
    let length = within(
        "endpoint length",
        endpoint.len(),
        ENDPOINT_BYTES_MAX,
        out.len(),
    )?;
    // At most ENDPOINT_BYTES_MAX: below u8::MAX.
    out.put_u8(length as u8);
    out.put_slice(endpoint.as_bytes());
    Ok(())
}

/// `value` when it is at most `max` (the format's limit of `field`, at byte `at`).
fn within(field: &'static str, value: usize, max: usize, at: usize) -> Result<usize, WireError> {
    if value <= max {
        Ok(value)
    } else {
        Err(WireError::OverLimit {
            field,
            value: value as u64,
            max,
            at,
        })
    }
}

const _: () = assert!(ENDPOINT_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(CONFIGURATION_MEMBERS_MAX <= u16::MAX as usize);

/// Decodes a `CallRequest` body sent by `from` (the node the connection authenticated).
///
/// # Errors
///
/// [`WireError`] describing the first malformed field; nothing is returned then.
pub fn decode_call(body: &Bytes, from: NodeId) -> Result<MembershipCall, WireError> {
    let mut cur = Cursor::new(body);
    let expected_version = if cur.bool()? { Some(cur.u64()?) } else { None };
    let at = cur.position();
    let change = match cur.u8()? {
        ADD => RosterChange::Add {
            node: NodeId(cur.u64()?),
            incarnation: cur.u64()?,
            endpoint: endpoint(&mut cur)?,
        },
        PROMOTE => RosterChange::Promote {
            node: NodeId(cur.u64()?),
        },
        DEMOTE => RosterChange::Demote {
            node: NodeId(cur.u64()?),
        },
        LEAVE => RosterChange::Leave {
            node: NodeId(cur.u64()?),
        },
        REMOVE => RosterChange::Remove {
            node: NodeId(cur.u64()?),
        },
        ENDPOINTS => {
            let at = cur.position();
            let count = within(
                "endpoint count",
                usize::from(cur.u16()?),
                CONFIGURATION_MEMBERS_MAX,
                at,
            )?;
            let mut endpoints = Vec::with_capacity(count);
            for _ in 0..count {
                endpoints.push((NodeId(cur.u64()?), endpoint(&mut cur)?));
            }
            RosterChange::Endpoints { endpoints }
        }
        tag => return Err(WireError::UnknownTag { tag, at }),
    };
    cur.finish()?;
    Ok(MembershipCall {
        from,
        change,
        expected_version,
    })
}

fn endpoint(cur: &mut Cursor<'_>) -> Result<String, WireError> {
    let at = cur.position();
    let length = within(
        "endpoint length",
        usize::from(cur.u8()?),
        ENDPOINT_BYTES_MAX,
        at,
    )?;
    cur.text(length)
}

/// Encodes `answer` as a `CallAnswer` body (a `Done` roster as partition 0's configuration
/// holding it, [`Roster::configuration`]).
///
/// # Errors
///
/// [`WireError::InvalidRoster`] for a `Done` roster that is no valid configuration (one
/// without a voter: [`Roster::change`] never builds it); [`WireError::OverLimit`] for a
/// leader's endpoint longer than [`ENDPOINT_BYTES_MAX`] bytes.
pub fn encode_call_answer(answer: &CallAnswer) -> Result<Bytes, WireError> {
    let mut out = BytesMut::with_capacity(32);
    match answer {
        CallAnswer::Done(roster) => {
            let configuration = roster
                .configuration()
                .map_err(|error| WireError::InvalidRoster { error, at: 1 })?
                .encode();
            out.put_u8(DONE);
            // At most CONFIGURATION_BYTES_MAX bytes: far below u32::MAX.
            out.put_u32_le(configuration.len() as u32);
            out.put_slice(&configuration);
        }
        CallAnswer::NotLeader { leader } => {
            out.put_u8(NOT_LEADER);
            match leader {
                Some((node, endpoint)) => {
                    out.put_u8(1);
                    out.put_u64_le(node.get());
                    put_endpoint(&mut out, endpoint)?;
                }
                None => out.put_u8(0),
            }
        }
        CallAnswer::Refused(status) => {
            out.put_u8(REFUSED);
            out.put_u8(status.code());
        }
        CallAnswer::Unknown => out.put_u8(UNKNOWN),
    }
    Ok(out.freeze())
}

/// Decodes a `CallAnswer` body.
///
/// # Errors
///
/// [`WireError`] describing the first malformed field: a `Done` configuration that does not
/// decode ([`WireError::InvalidConfiguration`]) or does not hold a roster, or is not exactly
/// the encoding of its roster ([`WireError::InvalidRoster`]); an unknown status
/// ([`WireError::UnknownStatus`]); nothing is returned then.
pub fn decode_call_answer(body: &Bytes) -> Result<CallAnswer, WireError> {
    let mut cur = Cursor::new(body);
    let at = cur.position();
    let answer = match cur.u8()? {
        DONE => {
            let length = cur.u32()? as usize;
            let at = cur.position();
            let bytes = cur.slice(length)?;
            let configuration = Configuration::decode(&bytes)
                .map_err(|error| WireError::InvalidConfiguration { error, at })?;
            let roster = Roster::of(&configuration)
                .map_err(|error| WireError::InvalidRoster { error, at })?;
            // One encoding per roster: a configuration without a context (the genesis roster
            // it stands for is sent with one) or with its members out of order is refused.
            let canonical = roster
                .configuration()
                .is_ok_and(|again| again.encode() == bytes);
            if !canonical {
                return Err(WireError::InvalidRoster {
                    error: RosterError::Malformed,
                    at,
                });
            }
            CallAnswer::Done(roster.into())
        }
        NOT_LEADER => CallAnswer::NotLeader {
            leader: if cur.bool()? {
                Some((NodeId(cur.u64()?), endpoint(&mut cur)?))
            } else {
                None
            },
        },
        REFUSED => {
            let at = cur.position();
            let code = cur.u8()?;
            CallAnswer::Refused(
                Status::from_code(code).ok_or(WireError::UnknownStatus { code, at })?,
            )
        }
        UNKNOWN => CallAnswer::Unknown,
        tag => return Err(WireError::UnknownTag { tag, at }),
    };
    cur.finish()?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn roster() -> Roster {
        let genesis =
            Roster::of(&Configuration::new(vec![NodeId(1), NodeId(2)], Vec::new()).expect("valid"))
                .expect("genesis");
        let change = RosterChange::Add {
            node: NodeId(7),
            endpoint: "10.0.0.7:7100".to_owned(),
            incarnation: 3,
        };
        genesis
            .change(&change, None)
            .expect("accepted")
            .expect("a change")
    }

    fn calls() -> Vec<MembershipCall> {
        let call = |change, expected_version| MembershipCall {
            from: NodeId(7),
            change,
            expected_version,
        };
        vec![
            call(
                RosterChange::Add {
                    node: NodeId(7),
                    endpoint: "e".repeat(ENDPOINT_BYTES_MAX),
                    incarnation: u64::MAX,
                },
                None,
            ),
            call(RosterChange::Promote { node: NodeId(7) }, Some(4)),
            call(RosterChange::Demote { node: NodeId(2) }, Some(0)),
            call(RosterChange::Leave { node: NodeId(7) }, None),
            call(RosterChange::Remove { node: NodeId(3) }, Some(u64::MAX)),
            call(
                RosterChange::Endpoints {
                    endpoints: vec![(NodeId(1), "a:1".to_owned()), (NodeId(2), String::new())],
                },
                None,
            ),
            call(
                RosterChange::Endpoints {
                    endpoints: Vec::new(),
                },
                Some(1),
            ),
        ]
    }

    fn answers() -> Vec<CallAnswer> {
        let genesis = Roster::of(&Configuration::new(vec![NodeId(1)], Vec::new()).expect("valid"))
            .expect("genesis");
        vec![
            CallAnswer::Done(Arc::new(roster())),
            CallAnswer::Done(Arc::new(genesis)),
            CallAnswer::NotLeader {
                leader: Some((NodeId(2), "10.0.0.2:7100".to_owned())),
            },
            CallAnswer::NotLeader {
                leader: Some((NodeId(2), String::new())),
            },
            CallAnswer::NotLeader { leader: None },
            CallAnswer::Refused(Status::StaleMembership),
            CallAnswer::Refused(Status::ConcurrentMembershipChange),
            CallAnswer::Unknown,
        ]
    }

    #[test]
    fn every_call_roundtrips_with_the_sender_the_connection_names() {
        for call in calls() {
            let body = encode_call(&call).expect("encodes");
            let decoded = decode_call(&body, NodeId(7)).expect("decodes");
            assert_eq!(decoded, call);
            let other = decode_call(&body, NodeId(9)).expect("decodes");
            assert_eq!(other.from, NodeId(9), "the sender is the connection's");
        }
    }

    #[test]
    fn every_answer_roundtrips() {
        for answer in answers() {
            let body = encode_call_answer(&answer).expect("encodes");
            assert_eq!(decode_call_answer(&body), Ok(answer.clone()), "{answer:?}");
        }
    }

    #[test]
    fn every_truncation_and_every_trailing_byte_is_an_error() {
        let bodies = calls()
            .into_iter()
            .map(|c| (encode_call(&c).expect("encodes"), true))
            .chain(
                answers()
                    .into_iter()
                    .map(|a| (encode_call_answer(&a).expect("encodes"), false)),
            );
        for (body, is_call) in bodies {
            let decode = |bytes: &Bytes| {
                if is_call {
                    decode_call(bytes, NodeId(7)).map(|_| ())
                } else {
                    decode_call_answer(bytes).map(|_| ())
                }
            };
            for cut in 0..body.len() {
                let error = decode(&body.slice(..cut)).expect_err("a cut body decodes");
                assert!(
                    matches!(error, WireError::Truncated(_)),
                    "cut at {cut} of {body:?}: {error}"
                );
            }
            let mut longer = body.to_vec();
            longer.push(0);
            assert_eq!(
                decode(&Bytes::from(longer)),
                Err(WireError::Trailing(1)),
                "{body:?}"
            );
        }
    }

    #[test]
    fn limits_are_refused_on_both_sides() {
        let long = MembershipCall {
            from: NodeId(7),
            change: RosterChange::Add {
                node: NodeId(7),
                endpoint: "e".repeat(ENDPOINT_BYTES_MAX + 1),
                incarnation: 1,
            },
            expected_version: None,
        };
        assert!(matches!(
            encode_call(&long),
            Err(WireError::OverLimit { field: "endpoint length", value, .. })
                if value == ENDPOINT_BYTES_MAX as u64 + 1
        ));
        let many = MembershipCall {
            change: RosterChange::Endpoints {
                endpoints: vec![(NodeId(1), "a:1".to_owned()); CONFIGURATION_MEMBERS_MAX + 1],
            },
            ..long.clone()
        };
        assert!(matches!(
            encode_call(&many),
            Err(WireError::OverLimit {
                field: "endpoint count",
                ..
            })
        ));
        let full = MembershipCall {
            change: RosterChange::Endpoints {
                endpoints: vec![
                    (NodeId(1), "e".repeat(ENDPOINT_BYTES_MAX));
                    CONFIGURATION_MEMBERS_MAX
                ],
            },
            expected_version: Some(1),
            ..long
        };
        assert_eq!(
            encode_call(&full).expect("at the limits").len(),
            CALL_REQUEST_BYTES_MAX
        );

        // On the wire: an Add whose endpoint length byte says 101.
        let mut body = vec![0, ADD];
        body.extend_from_slice(&7u64.to_le_bytes());
        body.extend_from_slice(&1u64.to_le_bytes());
        body.push(ENDPOINT_BYTES_MAX as u8 + 1);
        body.extend(std::iter::repeat_n(b'e', ENDPOINT_BYTES_MAX + 1));
        assert_eq!(
            decode_call(&Bytes::from(body), NodeId(7)),
            Err(WireError::OverLimit {
                field: "endpoint length",
                value: ENDPOINT_BYTES_MAX as u64 + 1,
                max: ENDPOINT_BYTES_MAX,
                at: 18,
            })
        );
        let mut body = vec![0, ENDPOINTS];
        body.extend_from_slice(&(CONFIGURATION_MEMBERS_MAX as u16 + 1).to_le_bytes());
        assert!(matches!(
            decode_call(&Bytes::from(body), NodeId(7)),
            Err(WireError::OverLimit {
                field: "endpoint count",
                at: 2,
                ..
            })
        ));
        let leader = CallAnswer::NotLeader {
            leader: Some((NodeId(2), "e".repeat(ENDPOINT_BYTES_MAX + 1))),
        };
        assert!(matches!(
            encode_call_answer(&leader),
            Err(WireError::OverLimit { .. })
        ));
    }

    #[test]
    fn bad_fields_are_named() {
        let decode = |bytes: &[u8]| decode_call(&Bytes::copy_from_slice(bytes), NodeId(7));
        assert_eq!(
            decode(&[2]),
            Err(WireError::InvalidBool { value: 2, at: 0 })
        );
        assert_eq!(
            decode(&[0, 9]),
            Err(WireError::UnknownTag { tag: 9, at: 1 })
        );
        let mut body = vec![0, ADD];
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&[2, 0xff, 0xfe]);
        assert_eq!(decode(&body), Err(WireError::InvalidText(19)));

        let answer = |bytes: &[u8]| decode_call_answer(&Bytes::copy_from_slice(bytes));
        assert_eq!(
            answer(&[REFUSED, 250]),
            Err(WireError::UnknownStatus { code: 250, at: 1 })
        );
        assert_eq!(answer(&[0]), Err(WireError::UnknownTag { tag: 0, at: 0 }));
        assert_eq!(
            answer(&[NOT_LEADER, 3]),
            Err(WireError::InvalidBool { value: 3, at: 1 })
        );
    }

    #[test]
    fn a_done_holds_exactly_the_encoding_of_a_roster() {
        let done = |configuration: &Configuration| {
            let bytes = configuration.encode();
            let mut body = vec![DONE];
            body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            body.extend_from_slice(&bytes);
            decode_call_answer(&Bytes::from(body))
        };
        let roster = roster();
        let configuration = roster.configuration().expect("valid");
        assert_eq!(done(&configuration), Ok(CallAnswer::Done(Arc::new(roster))));
        // The genesis roster without its context: it stands for a roster, but it is sent with
        // one.
        let bare = Configuration::new(vec![NodeId(1)], Vec::new()).expect("valid");
        assert_eq!(
            done(&bare),
            Err(WireError::InvalidRoster {
                error: RosterError::Malformed,
                at: 5
            })
        );
        // A context that is no roster.
        let garbage = Configuration::new(vec![NodeId(1)], Vec::new())
            .and_then(|c| c.with_context(Bytes::from_static(b"not a roster")))
            .expect("valid");
        assert_eq!(
            done(&garbage),
            Err(WireError::InvalidRoster {
                error: RosterError::Malformed,
                at: 5
            })
        );
        // Not a configuration.
        assert!(matches!(
            decode_call_answer(&Bytes::from_static(&[DONE, 1, 0, 0, 0, 9])),
            Err(WireError::InvalidConfiguration { at: 5, .. })
        ));
    }
}
