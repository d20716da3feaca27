//! Elections: §5.2 election safety, pre-vote (thesis §9.6), check-quorum, durable votes.

use kommander_raft::core::{LogIndex, Message, MessageBody, NodeId, Role, SoftState, Term};

use super::harness::{Cluster, Lcg, msg};

#[test]
fn first_election_elects_exactly_one_leader() {
    let mut c = Cluster::new(3, 0);
    c.ticks(30);
    let leaders: Vec<u64> = (1..=3).filter(|&i| c.replica(i).is_leader()).collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {leaders:?}");
    let leader = leaders[0];
    for i in 1..=3 {
        assert_eq!(
            c.replica(i).leader(),
            Some(NodeId(leader)),
            "node {i} knows the leader"
        );
        assert_eq!(c.replica(i).term(), Term(1), "pre-vote: one term used");
    }
}

/// §5.2 Election Safety: at most one leader per term, under random partitions and crashes.
/// The harness asserts it on every Ready.
#[test]
fn election_safety_under_random_partitions_and_crashes() {
    for seed in 0..40 {
        let mut c = Cluster::with_config(5, 0, |cfg| cfg.seed = seed);
        let mut rng = Lcg(seed);
        for step in 0..400 {
            match rng.next(20) {
                0 => {
                    let a = rng.next(5) + 1;
                    c.isolate(a);
                }
                1 => c.heal(),
                2 => {
                    let a = rng.next(5) + 1;
                    if c.node(a).up {
                        c.crash(a);
                    } else {
                        c.restart(a);
                    }
                }
                3 => {
                    if let Some(l) = c.leader() {
                        c.propose(l, &format!("s{seed}-{step}"));
                    }
                }
                _ => {}
            }
            c.tick();
        }
        c.heal();
        for id in 1..=5 {
            if !c.node(id).up {
                c.restart(id);
            }
        }
        c.ticks(100);
        assert!(c.leader().is_some(), "seed {seed}: a leader after healing");
        c.check_log_matching();
    }
}

#[test]
fn pre_vote_keeps_an_isolated_node_from_inflating_its_term() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    let term = c.replica(1).term();
    c.isolate(3);
    c.ticks(200);
    assert_eq!(c.replica(3).term(), term, "pre-vote never bumps the term");
    assert_ne!(c.replica(3).role(), Role::Leader);
    c.heal();
    c.ticks(50);
    assert_eq!(c.leader(), Some(1), "the healthy leader is not disrupted");
    assert_eq!(c.replica(1).term(), term);
}

#[test]
fn check_quorum_steps_down_an_isolated_leader() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.isolate(1);
    c.ticks(60);
    assert_ne!(
        c.replica(1).role(),
        Role::Leader,
        "isolated leader stepped down"
    );
    let new_leader = c.leader().expect("majority elected a leader");
    assert_ne!(new_leader, 1);
}

#[test]
fn healthy_leader_never_steps_down() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    let term = c.replica(1).term();
    c.ticks(300);
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.replica(1).term(), term);
}

#[test]
fn follower_with_a_live_leader_ignores_vote_requests() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    let term = c.replica(2).term().0;
    let last = c.replica(2).last_index();
    let vote = MessageBody::VoteRequest {
        last_log_index: last,
        last_log_term: c.replica(2).last_term(),
        configuration_version: 0,
        transfer: false,
    };
    c.replica_mut(2)
        .step(msg(3, 2, term + 1, vote))
        .expect("valid message");
    assert_eq!(
        c.replica(2).term().0,
        term,
        "leader lease: the request is ignored"
    );
}

#[test]
fn votes_leave_only_after_they_are_durable() {
    let mut c = Cluster::new(3, 0);
    c.stall_disk(2, true);
    c.stall_disk(3, true);
    c.campaign(1);
    assert!(
        c.sent("VoteResponse").is_empty(),
        "no vote before its fsync"
    );
    assert_eq!(c.replica(1).role(), Role::Candidate);
    c.stall_disk(2, false);
    c.settle();
    assert_eq!(c.sent("VoteResponse"), vec![(2, 1)]);
    assert!(c.replica(1).is_leader());
    assert_eq!(
        c.node(2).disk.hard_state.vote,
        Some(NodeId(1)),
        "vote on disk"
    );
}

/// One vote per term, and it survives a crash.
#[test]
fn a_vote_survives_restart_and_is_not_given_twice() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    let term = c.replica(3).term().0;
    assert_eq!(c.replica(3).vote().map(|n| n.0).unwrap_or(1), 1);
    c.crash(3);
    c.restart(3);
    assert_eq!(c.replica(3).term().0, term);
    let request = MessageBody::VoteRequest {
        last_log_index: LogIndex(100),
        last_log_term: Term(term),
        configuration_version: 0,
        transfer: true,
    };
    c.replica_mut(3)
        .step(msg(2, 3, term, request))
        .expect("valid message");
    let ready = c.replica_mut(3).ready();
    let gated = ready.persisted_messages.peek();
    assert!(
        gated
            .iter()
            .any(|m| m.body == MessageBody::VoteResponse { granted: false }),
        "vote for 2 in the same term refused: {gated:?}"
    );
}

#[test]
fn higher_term_is_adopted_and_a_stale_leader_steps_down() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.check_quorum = false);
    c.elect(1);
    c.isolate(1);
    c.ticks(60);
    assert!(
        c.replica(1).is_leader(),
        "without check-quorum the old leader lingers"
    );
    let new_leader = (2..=3)
        .find(|&i| c.replica(i).is_leader())
        .expect("2 or 3 leads");
    c.heal();
    c.ticks(3);
    assert_eq!(c.replica(1).role(), Role::Follower);
    assert_eq!(c.replica(1).term(), c.replica(new_leader).term());
    assert_eq!(c.leader(), Some(new_leader));
}

/// §5.4.1: a candidate whose last term is older loses even with a longer log.
#[test]
fn vote_requires_an_up_to_date_log() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.check_quorum = false);
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    let term = c.replica(2).term().0;
    let stale = MessageBody::VoteRequest {
        last_log_index: LogIndex(50),
        last_log_term: Term(term - 1),
        configuration_version: 0,
        transfer: true,
    };
    c.replica_mut(2)
        .step(msg(3, 2, term + 1, stale))
        .expect("valid message");
    assert_eq!(
        c.replica(2).term().0,
        term + 1,
        "higher term adopted anyway"
    );
    assert_eq!(c.replica(2).vote(), None, "but no vote for a stale log");
}

#[test]
fn the_same_seed_gives_the_same_elections() {
    let run = |seed| {
        let mut c = Cluster::with_config(5, 0, |cfg| cfg.seed = seed);
        c.ticks(100);
        c.isolate(c.leader().expect("leader"));
        c.ticks(100);
        c.trace.clone()
    };
    assert_eq!(run(7), run(7));
}

/// Reference checklist #13: the election timeout is drawn per node from the seed, differs
/// between nodes and is re-drawn after a failed candidacy, so split votes resolve.
#[test]
fn split_votes_resolve_thanks_to_randomized_timeouts() {
    for seed in 0..20 {
        let mut c = Cluster::with_config(4, 0, |cfg| cfg.seed = seed);
        c.ticks(200);
        let leaders = (1..=4).filter(|&i| c.replica(i).is_leader()).count();
        assert_eq!(
            leaders, 1,
            "seed {seed}: an even cluster still elects one leader"
        );
    }
    let campaign_tick = |id: u64| {
        let mut c = Cluster::new(3, 0);
        (1..100)
            .find(|_| {
                c.replica_mut(id).tick();
                c.replica(id).role() != Role::Follower
            })
            .expect("campaigns")
    };
    let ticks: Vec<usize> = (1..=3).map(campaign_tick).collect();
    assert!(
        ticks.windows(2).any(|w| w[0] != w[1]),
        "nodes draw different timeouts: {ticks:?}"
    );
}

#[test]
fn pre_candidate_refused_by_a_quorum_returns_to_follower() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.isolate(3);
    c.tick_until_campaign(3);
    assert_eq!(c.replica(3).role(), Role::PreCandidate);
    let term = c.replica(3).term().0;
    let refusal = MessageBody::PreVoteResponse { granted: false };
    c.replica_mut(3)
        .step(msg(2, 3, term, refusal.clone()))
        .expect("valid");
    assert_eq!(
        c.replica(3).role(),
        Role::PreCandidate,
        "one refusal is not a quorum"
    );
    c.replica_mut(3)
        .step(msg(1, 3, term, refusal))
        .expect("valid");
    assert_eq!(
        c.replica(3).role(),
        Role::Follower,
        "a quorum of refusals: back to follower"
    );
    assert_eq!(c.replica(3).term().0, term, "and the term is untouched");
}

/// `SoftState::noop_committed` (Kommander's `AmILeaderQuick`): false right after the election,
/// true once the leader's no-op has committed, false again after a step-down; each change
/// reaches the runtime in a Ready.
#[test]
fn soft_state_says_when_the_leaders_no_op_has_committed() {
    let mut c = Cluster::new(3, 0);
    let no_appends =
        |m: Message| (!matches!(m.body, MessageBody::AppendRequest { .. })).then_some(m);
    c.campaign_with(1, no_appends);
    let elected = SoftState {
        role: Role::Leader,
        leader: Some(NodeId(1)),
        term: c.replica(1).term(),
        noop_committed: false,
    };
    assert_eq!(
        c.replica(1).soft_state(),
        elected,
        "no-op not yet committed"
    );
    assert_eq!(
        c.node(1).soft_states.last(),
        Some(&elected),
        "the election is reported"
    );

    c.ticks(2);
    let established = SoftState {
        noop_committed: true,
        ..elected
    };
    assert_eq!(c.replica(1).soft_state(), established, "no-op committed");
    assert_eq!(
        c.node(1).soft_states.last(),
        Some(&established),
        "the commit of the no-op is reported"
    );

    c.replica_mut(1).step_down().expect("leads");
    c.settle();
    let reports = &c.node(1).soft_states;
    let established_at = reports
        .iter()
        .position(|s| *s == established)
        .expect("reported");
    let after = &reports[established_at + 1..];
    assert!(
        after.first().is_some_and(|s| s.role == Role::Follower),
        "the step-down is reported: {after:?}"
    );
    assert!(after.iter().all(|s| !s.noop_committed), "{after:?}");
    assert!(!c.replica(1).soft_state().noop_committed);
    for node in 1..=3 {
        let reports = &c.node(node).soft_states;
        assert!(
            reports
                .iter()
                .all(|s| !s.noop_committed || s.role == Role::Leader),
            "only a leader reports its no-op committed: {reports:?}"
        );
    }
}

/// A replica whose data directory may have forgotten votes it cast (decision 0004, "A
/// replaced disk's vote") grants neither pre-votes nor votes, and does not campaign, until the
/// committed configuration it knows or the candidate's carries the version it was admitted
/// at.
#[test]
fn a_withheld_replica_votes_only_for_a_candidate_with_its_admission_committed() {
    use kommander_raft::core::{DurableState, PartitionId, Replica, ReplicaConfig};
    let withheld_replica = || {
        let config = ReplicaConfig {
            votes_withheld_below_version: 5,
            ..ReplicaConfig::new(
                NodeId(1),
                PartitionId(1),
                vec![NodeId(1), NodeId(2), NodeId(3)],
            )
        };
        Replica::new(config, DurableState::default()).expect("valid")
    };
    let mut replica = withheld_replica();
    assert!(replica.votes_withheld());
    let ask = |version: u64, pre_vote: bool| {
        let (last_log_index, last_log_term) = (LogIndex(0), Term(0));
        if pre_vote {
            MessageBody::PreVoteRequest {
                last_log_index,
                last_log_term,
                configuration_version: version,
            }
        } else {
            MessageBody::VoteRequest {
                last_log_index,
                last_log_term,
                configuration_version: version,
                transfer: false,
            }
        }
    };
    let answers = |replica: &mut Replica| -> Vec<(u64, bool)> {
        let ready = replica.ready();
        ready
            .messages
            .iter()
            .chain(ready.persisted_messages.peek())
            .filter_map(|m| match m.body {
                MessageBody::PreVoteResponse { granted }
                | MessageBody::VoteResponse { granted } => Some((m.to.0, granted)),
                _ => None,
            })
            .collect()
    };
    // A candidate whose committed configuration predates the admission: refused.
    replica.step(msg(2, 1, 1, ask(4, true))).expect("valid");
    replica.step(msg(2, 1, 1, ask(4, false))).expect("valid");
    assert_eq!(answers(&mut replica), vec![(2, false), (2, false)]);
    // One whose committed configuration has the admission's version: granted.
    replica.step(msg(3, 1, 2, ask(5, true))).expect("valid");
    replica.step(msg(3, 1, 2, ask(5, false))).expect("valid");
    assert_eq!(answers(&mut replica), vec![(3, true), (3, true)]);
    // It does not campaign while withheld.
    let mut withheld = withheld_replica();
    for _ in 0..100 {
        withheld.tick();
    }
    assert_eq!(
        withheld.role(),
        Role::Follower,
        "no candidacy while withheld"
    );
    // Its own committed configuration reaching the version lifts it: any candidate with an
    // up-to-date log, and its own candidacy.
    withheld.set_configuration_version(5);
    assert!(!withheld.votes_withheld());
    withheld.set_configuration_version(3);
    assert!(
        !withheld.votes_withheld(),
        "the version known is never lowered"
    );
    for _ in 0..100 {
        withheld.tick();
    }
    assert_eq!(withheld.role(), Role::PreCandidate, "it campaigns");
}
