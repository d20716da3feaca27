//! A randomized network (reorder, drop, duplicate) plus crashes, stalls and partitions over
//! scripted clusters: the harness checks election safety, state machine safety and in-order
//! exactly-once delivery on every Ready; the end checks convergence and acknowledged entries.
//! `KOMMANDER_CORE_CHAOS_SEEDS=N` runs more seeds (default 24).

use super::harness::{Cluster, Lcg, payload};

fn seeds() -> u64 {
    std::env::var("KOMMANDER_CORE_CHAOS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24)
}

fn run(seed: u64, voters: u64) {
    let mut c = Cluster::with_config(voters, 1, |cfg| {
        cfg.seed = seed;
        cfg.append_entries_max = 8;
        cfg.inflight_messages_max = 4;
        cfg.compaction_retain_entries_max = 2;
    });
    let mut rng = Lcg(seed ^ 0x5EED);
    let members = voters + 1;
    let mut two_phase_tickets = Vec::new();
    let mut served = vec![0usize; members as usize + 1];
    for step in 0..250 {
        // Faults hit at most a minority of the voters at a time (plus the learner), so the
        // cluster can always make progress and the run is never vacuous.
        let faulty = (1..=voters)
            .filter(|&id| !c.node(id).up || c.node(id).disk_stalled)
            .count() as u64;
        let may_fail = |id: u64| id > voters || faulty < (voters - 1) / 2;
        match rng.next(30) {
            0 => {
                c.heal();
                c.isolate(rng.next(members) + 1);
            }
            1 | 2 => c.heal(),
            3 => {
                let id = rng.next(members) + 1;
                if c.node(id).up && may_fail(id) {
                    c.crash(id);
                }
            }
            4 => {
                let id = rng.next(members) + 1;
                if may_fail(id) {
                    c.stall_disk(id, true);
                }
            }
            5..=8 => {
                let id = rng.next(members) + 1;
                if !c.node(id).up {
                    c.restart(id);
                }
                c.stall_disk(id, false);
            }
            9 => {
                if let Some(l) = c.leader() {
                    let ticket = c.ticket();
                    let two_phase = c.replica_mut(l).propose(ticket, false, payload("2pc"));
                    if two_phase.is_ok() {
                        two_phase_tickets.push(ticket);
                        c.settle_chaos(&mut rng, 10, 10);
                        let resolve = if rng.next(2) == 0 {
                            c.replica_mut(l).commit_proposal(ticket)
                        } else {
                            c.replica_mut(l).rollback_proposal(ticket)
                        };
                        let _ = resolve;
                    }
                }
            }
            10 => {
                if let Some(l) = c.leader() {
                    let ticket = c.ticket();
                    let _ = c.replica_mut(l).propose_checkpoint(ticket);
                }
            }
            _ => {
                if let Some(l) = c.leader() {
                    let ticket = c.ticket();
                    let _ = c
                        .replica_mut(l)
                        .propose(ticket, true, payload(&format!("{step}")));
                }
            }
        }
        serve_snapshots(&mut c, &mut served, members);
        for id in 1..=members {
            if c.node(id).up {
                c.replica_mut(id).tick();
            }
        }
        c.settle_chaos(&mut rng, 15, 10);
    }
    c.heal();
    for id in 1..=members {
        if !c.node(id).up {
            c.restart(id);
        }
        c.stall_disk(id, false);
    }
    // Resolve two-phase proposals left open (their resolution failed or was lost): a held
    // proposal holds everything behind it until someone commits or rolls it back.
    for _ in 0..80 {
        c.tick();
        serve_snapshots(&mut c, &mut served, members);
        if let Some(l) = c.leader() {
            for ticket in &two_phase_tickets {
                let _ = c.replica_mut(l).rollback_proposal(*ticket);
            }
        }
    }
    let leader = c.leader().expect("a leader after healing");
    let reference = c.applied_payloads(leader);
    for id in 1..=members {
        assert_eq!(
            c.applied_payloads(id),
            reference,
            "seed {seed}: node {id} converged"
        );
    }
    c.check_log_matching();
    assert!(
        reference.len() >= 10,
        "seed {seed}: non-vacuous ({} delivered)",
        reference.len()
    );
}

/// Plays the runtime's part of a snapshot transfer for every new `snapshot_required` report;
/// a transfer that fails (follower down, newer term) is reported back to the leader.
fn serve_snapshots(c: &mut Cluster, served: &mut [usize], members: u64) {
    for leader in 1..=members {
        while served[leader as usize] < c.node(leader).snapshot_required.len() {
            let follower = c.node(leader).snapshot_required[served[leader as usize]];
            served[leader as usize] += 1;
            let still_leader = c.node(leader).up && c.replica(leader).is_leader();
            if still_leader && c.try_transfer_snapshot(leader, follower.0).is_err() {
                c.replica_mut(leader).report_snapshot_failure(follower);
            }
        }
    }
}

#[test]
fn chaos_three_voters_and_a_learner() {
    for seed in 0..seeds() {
        run(seed, 3);
    }
}

#[test]
fn chaos_five_voters_and_a_learner() {
    for seed in 0..seeds() / 2 {
        run(seed + 1000, 5);
    }
}
