//! The key-value linearizability checker (`sim::linearizability`): hand-made histories with a
//! known answer (negative controls included), random histories from a sequential reference
//! execution (must pass) and the same with one read corrupted (must fail), a cross-check
//! against a brute-force search on thousands of small random histories, and a large history's
//! cost.

use std::collections::BTreeMap;
use std::time::Instant;

use kommander_raft::sim::linearizability::{
    Command, Completion, History, Operation, OperationId, Response, Verdict, Violation, check,
};
use kommander_raft::sim::rng::SimRng;

/// Generous: every history here is decided far below it (except where a test lowers it).
const EXPLORED_MAX: usize = 1_000_000;

fn write(key: u64, value: u64) -> Command {
    Command::Write { key, value }
}

fn read(key: u64) -> Command {
    Command::Read { key }
}

fn returned(response: Response, at: u64) -> Completion {
    Completion::Returned { response, at }
}

fn op(client: u64, command: Command, invoked_at: u64, completion: Completion) -> Operation {
    Operation {
        client,
        command,
        invoked_at,
        completion,
    }
}

fn history_of(operations: &[Operation]) -> History {
    let mut history = History::new();
    for operation in operations {
        history.push(*operation).expect("a well-formed operation");
    }
    history
}

fn violation(operations: &[Operation]) -> Box<Violation> {
    match check(&history_of(operations), EXPLORED_MAX) {
        Verdict::Violation(violation) => violation,
        other => panic!("expected a violation, got {other}"),
    }
}

fn assert_linearizable(operations: &[Operation]) {
    let verdict = check(&history_of(operations), EXPLORED_MAX);
    assert!(
        matches!(verdict, Verdict::Linearizable { .. }),
        "expected linearizable, got {verdict}"
    );
}

#[test]
fn an_empty_history_is_linearizable() {
    assert_eq!(
        check(&History::new(), EXPLORED_MAX),
        Verdict::Linearizable { explored: 0 }
    );
}

#[test]
fn a_stale_read_after_a_completed_write_is_a_violation() {
    let operations = [
        op(1, write(7, 1), 0, returned(Response::Write, 10)),
        op(1, write(7, 2), 20, returned(Response::Write, 30)),
        op(2, read(7), 40, returned(Response::Read(Some(1)), 50)),
    ];
    let violation = violation(&operations);
    assert_eq!(violation.key, 7);
    assert_eq!(violation.blocked, (OperationId(2), operations[2]));
    let prefix: Vec<OperationId> = violation.prefix.iter().map(|(id, _)| *id).collect();
    assert_eq!(prefix, vec![OperationId(0), OperationId(1)]);
    assert_eq!(violation.value, Some(2));
    assert!(violation.pending.is_empty());
    let text = violation.to_string();
    assert!(
        text.contains("cannot place #2 client 2 [40, 50] read -> 1: impossible from that value"),
        "{text}"
    );
    assert!(
        text.contains("#1 client 1 [20, 30] write 2 -> ok"),
        "{text}"
    );

    // Positive control: the same read concurrent with the second write may see either value.
    let mut concurrent = operations;
    concurrent[2].invoked_at = 25;
    assert_linearizable(&concurrent);
    concurrent[2].completion = returned(Response::Read(Some(2)), 50);
    assert_linearizable(&concurrent);
}

#[test]
fn a_read_of_a_value_never_written_is_a_violation() {
    let operations = [
        op(1, write(3, 1), 0, returned(Response::Write, 10)),
        op(2, read(3), 5, returned(Response::Read(Some(2)), 15)),
    ];
    let violation = violation(&operations);
    assert_eq!(violation.blocked.0, OperationId(1));
    // An absent key reads as absent, before or concurrently with the first write.
    assert_linearizable(&[
        op(2, read(3), 0, returned(Response::Read(None), 4)),
        op(1, write(3, 1), 0, returned(Response::Write, 10)),
        op(2, read(3), 5, returned(Response::Read(None), 15)),
    ]);
}

#[test]
fn two_reads_seeing_two_writes_in_opposite_orders_is_a_violation() {
    let writes = [
        op(1, write(0, 1), 0, returned(Response::Write, 100)),
        op(2, write(0, 2), 0, returned(Response::Write, 100)),
    ];
    let reads = |first: u64, second: u64, other_first: u64, other_second: u64| {
        let mut operations = writes.to_vec();
        operations.extend([
            op(3, read(0), 10, returned(Response::Read(Some(first)), 20)),
            op(3, read(0), 30, returned(Response::Read(Some(second)), 40)),
            op(
                4,
                read(0),
                10,
                returned(Response::Read(Some(other_first)), 20),
            ),
            op(
                4,
                read(0),
                30,
                returned(Response::Read(Some(other_second)), 40),
            ),
        ]);
        operations
    };
    violation(&reads(1, 2, 2, 1));
    // Positive control: both clients see the same order.
    assert_linearizable(&reads(1, 2, 1, 2));
    assert_linearizable(&reads(2, 1, 2, 1));
}

#[test]
fn an_unknown_write_seen_later_is_linearizable() {
    assert_linearizable(&[
        op(1, read(5), 0, returned(Response::Read(None), 10)),
        op(1, write(5, 9), 20, Completion::Unknown),
        op(2, read(5), 500, returned(Response::Read(Some(9)), 510)),
        op(2, read(5), 600, returned(Response::Read(Some(9)), 610)),
    ]);
    // Never seen: it may never have taken effect.
    assert_linearizable(&[
        op(1, write(5, 9), 20, Completion::Unknown),
        op(2, read(5), 500, returned(Response::Read(None), 510)),
    ]);
}

#[test]
fn an_unknown_write_seen_then_unseen_is_a_violation() {
    let operations = [
        op(1, write(5, 1), 0, returned(Response::Write, 10)),
        op(1, write(5, 9), 20, Completion::Unknown),
        op(2, read(5), 30, returned(Response::Read(Some(9)), 40)),
        op(2, read(5), 50, returned(Response::Read(Some(1)), 60)),
    ];
    let violation = violation(&operations);
    assert_eq!(violation.blocked.0, OperationId(3));
    // Seen before it was invoked: also a violation.
    violation_of_read_before_invocation();
}

fn violation_of_read_before_invocation() {
    let violation = violation(&[
        op(2, read(5), 0, returned(Response::Read(Some(9)), 10)),
        op(1, write(5, 9), 20, Completion::Unknown),
    ]);
    assert_eq!(violation.blocked.0, OperationId(0));
    assert!(violation.prefix.is_empty());
}

#[test]
fn compare_and_set_answers_are_checked() {
    let create = |new| Command::CompareAndSet {
        key: 1,
        expected: None,
        new,
    };
    // Two concurrent creates cannot both succeed.
    violation(&[
        op(1, create(1), 0, returned(Response::CompareAndSet(true), 10)),
        op(2, create(2), 0, returned(Response::CompareAndSet(true), 10)),
    ]);
    assert_linearizable(&[
        op(1, create(1), 0, returned(Response::CompareAndSet(true), 10)),
        op(
            2,
            create(2),
            0,
            returned(Response::CompareAndSet(false), 10),
        ),
        op(3, read(1), 20, returned(Response::Read(Some(1)), 30)),
    ]);
    // An unknown compare-and-set took effect (or not) from the value it met.
    assert_linearizable(&[
        op(1, write(1, 4), 0, returned(Response::Write, 10)),
        op(
            2,
            Command::CompareAndSet {
                key: 1,
                expected: Some(4),
                new: 5,
            },
            20,
            Completion::Unknown,
        ),
        op(3, read(1), 30, returned(Response::Read(Some(5)), 40)),
    ]);
    violation(&[
        op(1, write(1, 3), 0, returned(Response::Write, 10)),
        op(
            2,
            Command::CompareAndSet {
                key: 1,
                expected: Some(4),
                new: 5,
            },
            20,
            Completion::Unknown,
        ),
        op(3, read(1), 30, returned(Response::Read(Some(5)), 40)),
    ]);
}

#[test]
fn keys_are_judged_apart_and_the_violating_key_is_named() {
    let violation = violation(&[
        op(1, write(1, 1), 0, returned(Response::Write, 10)),
        op(1, write(2, 1), 0, returned(Response::Write, 10)),
        op(2, read(1), 20, returned(Response::Read(Some(1)), 30)),
        op(2, read(2), 20, returned(Response::Read(None), 30)),
    ]);
    assert_eq!(violation.key, 2);
    assert_eq!(violation.operations, 2);
}

#[test]
fn equal_stamps_are_concurrent() {
    // The read was invoked at the instant the write completed: either order is allowed.
    assert_linearizable(&[
        op(1, write(0, 1), 0, returned(Response::Write, 10)),
        op(2, read(0), 10, returned(Response::Read(None), 20)),
    ]);
    violation(&[
        op(1, write(0, 1), 0, returned(Response::Write, 10)),
        op(2, read(0), 11, returned(Response::Read(None), 20)),
    ]);
}

#[test]
fn a_failed_write_is_left_out() {
    let mut history = History::new();
    let failed = history.invoke(1, write(0, 9), 0);
    history.fail(failed).expect("pending");
    let seen = history.invoke(2, read(0), 20);
    history
        .complete(seen, Response::Read(Some(9)), 30)
        .expect("pending");
    assert!(matches!(
        check(&history, EXPLORED_MAX),
        Verdict::Violation(_)
    ));
    let mut history = History::new();
    let failed = history.invoke(1, write(0, 9), 0);
    history.fail(failed).expect("pending");
    let unseen = history.invoke(2, read(0), 20);
    history
        .complete(unseen, Response::Read(None), 30)
        .expect("pending");
    assert!(matches!(
        check(&history, EXPLORED_MAX),
        Verdict::Linearizable { .. }
    ));
}

#[test]
fn a_search_over_its_budget_is_inconclusive_not_a_pass() {
    // Twelve concurrent writes, then a read of a value none wrote: to prove the violation the
    // search must try every subset of writes placed before the read.
    let mut operations: Vec<Operation> = (0..12)
        .map(|value| op(value, write(4, value), 0, returned(Response::Write, 100)))
        .collect();
    operations.push(op(
        99,
        read(4),
        200,
        returned(Response::Read(Some(999)), 210),
    ));
    let history = history_of(&operations);
    assert_eq!(
        check(&history, 100),
        Verdict::Inconclusive {
            key: 4,
            explored: 101
        }
    );
    assert!(matches!(
        check(&history, EXPLORED_MAX),
        Verdict::Violation(_)
    ));
    // A violation on another key still wins over an inconclusive one.
    operations.push(op(1, write(5, 1), 0, returned(Response::Write, 10)));
    operations.push(op(2, read(5), 20, returned(Response::Read(None), 30)));
    match check(&history_of(&operations), 100) {
        Verdict::Violation(violation) => assert_eq!(violation.key, 5),
        other => panic!("expected key 5's violation, got {other}"),
    }
}

/// The shape of a generated workload.
#[derive(Clone, Copy)]
struct Workload {
    clients: u64,
    operations_per_client: u64,
    keys: u64,
    /// Values are drawn from `1..=values` (few values: more ambiguity for the search).
    values: u64,
    /// Chance that an operation ends unknown (it then took effect or not, at random).
    unknown_per_million: u32,
    /// Chance that an operation fails definitely (it did not take effect; left out).
    failed_per_million: u32,
    /// Longest time between an invocation and its linearization point, and from there to
    /// the answer.
    spread: u64,
}

/// How a generated operation ends.
#[derive(Clone, Copy)]
enum Fate {
    /// Took effect at `effect_at`, answered at `completed_at`.
    Answered { effect_at: u64, completed_at: u64 },
    /// Never answered; took effect at `effect_at`, maybe long after the client gave up, or
    /// never.
    Unknown { effect_at: Option<u64> },
    /// Answered with a definite failure: did not take effect (left out with `History::fail`).
    Failed,
}

impl Fate {
    fn effect_at(self) -> Option<u64> {
        match self {
            Self::Answered { effect_at, .. } => Some(effect_at),
            Self::Unknown { effect_at } => effect_at,
            Self::Failed => None,
        }
    }
}

/// A history produced by a sequential reference execution: each client invokes one operation
/// at a time; each operation takes effect at a point inside its interval (an unknown one at
/// any point after its invocation, or never) on a reference map, in the order of those points,
/// and is answered with what the map did.
fn generate(rng: &mut SimRng, workload: Workload) -> History {
    let mut planned: Vec<(u64, Command, u64, Fate)> = Vec::new();
    for client in 0..workload.clients {
        let mut now = rng.below(workload.spread);
        for _ in 0..workload.operations_per_client {
            let key = rng.below(workload.keys);
            let value = rng.between(1, workload.values);
            let command = match rng.below(5) {
                0 | 1 => write(key, value),
                2 | 3 => read(key),
                _ => Command::CompareAndSet {
                    key,
                    expected: if rng.chance(200_000) {
                        None
                    } else {
                        Some(rng.between(1, workload.values))
                    },
                    new: value,
                },
            };
            let invoked_at = now;
            let effect_at = invoked_at + rng.below(workload.spread + 1);
            // When the answer (or the client's time-out) comes.
            let completed_at = effect_at + rng.below(workload.spread + 1);
            let fate = if rng.chance(workload.unknown_per_million) {
                let late = invoked_at + rng.below(workload.spread * 10 + 1);
                Fate::Unknown {
                    effect_at: rng.chance(500_000).then_some(late),
                }
            } else if rng.chance(workload.failed_per_million) {
                Fate::Failed
            } else {
                Fate::Answered {
                    effect_at,
                    completed_at,
                }
            };
            planned.push((client, command, invoked_at, fate));
            now = completed_at + rng.below(workload.spread + 1);
        }
    }
    let mut order: Vec<(u64, usize)> = planned
        .iter()
        .enumerate()
        .filter_map(|(index, (_, _, _, fate))| fate.effect_at().map(|at| (at, index)))
        .collect();
    order.sort_unstable();
    let mut store: BTreeMap<u64, u64> = BTreeMap::new();
    let mut responses: Vec<Option<Response>> = vec![None; planned.len()];
    for (_, index) in order {
        responses[index] = Some(apply(&mut store, &planned[index].1));
    }
    let mut history = History::new();
    for ((client, command, invoked_at, fate), response) in planned.into_iter().zip(responses) {
        let id = history.invoke(client, command, invoked_at);
        match (fate, response) {
            (Fate::Answered { completed_at, .. }, Some(response)) => history
                .complete(id, response, completed_at)
                .expect("a well-formed answer"),
            (Fate::Failed, _) => history.fail(id).expect("pending"),
            _ => {}
        }
    }
    history
}

/// The sequential store, written apart from the checker's model on purpose.
fn apply(store: &mut BTreeMap<u64, u64>, command: &Command) -> Response {
    match *command {
        Command::Write { key, value } => {
            store.insert(key, value);
            Response::Write
        }
        Command::Read { key } => Response::Read(store.get(&key).copied()),
        Command::CompareAndSet { key, expected, new } => {
            if store.get(&key).copied() == expected {
                store.insert(key, new);
                Response::CompareAndSet(true)
            } else {
                Response::CompareAndSet(false)
            }
        }
    }
}

/// Linearizable by exhaustive search, without the checker's partitioning, entry list or
/// memoisation: tries every order of the operations that real time allows (an unknown
/// operation may also be left out), applying each to one whole map.
fn brute_force(history: &History) -> bool {
    fn place_rest(
        operations: &[Operation],
        placed: &mut [bool],
        store: &BTreeMap<u64, u64>,
    ) -> bool {
        let all_answered_placed = operations
            .iter()
            .zip(placed.iter())
            .all(|(operation, placed)| *placed || operation.completion == Completion::Unknown);
        if all_answered_placed {
            return true;
        }
        for candidate in 0..operations.len() {
            if placed[candidate] {
                continue;
            }
            let next = &operations[candidate];
            let overtakes = operations.iter().enumerate().any(|(other, earlier)| {
                !placed[other]
                    && matches!(earlier.completion, Completion::Returned { at, .. } if at < next.invoked_at)
            });
            if overtakes {
                continue;
            }
            let mut after = store.clone();
            let response = apply(&mut after, &next.command);
            if let Completion::Returned {
                response: answered, ..
            } = next.completion
                && answered != response
            {
                continue;
            }
            placed[candidate] = true;
            if place_rest(operations, placed, &after) {
                return true;
            }
            placed[candidate] = false;
        }
        false
    }
    let operations: Vec<Operation> = history
        .operations()
        .map(|(_, operation)| *operation)
        .collect();
    place_rest(
        &operations,
        &mut vec![false; operations.len()],
        &BTreeMap::new(),
    )
}

/// `history` with operation `index` (in `operations()` order) replaced by `change(it)`.
fn with_changed(history: &History, index: usize, change: impl Fn(&mut Operation)) -> History {
    let mut changed = History::new();
    for (position, (_, operation)) in history.operations().enumerate() {
        let mut operation = *operation;
        if position == index {
            change(&mut operation);
        }
        changed.push(operation).expect("a well-formed operation");
    }
    changed
}

/// Replaces operation `index`'s answer with another of the same kind drawn from small values
/// (maybe the same answer): a subtle change the checker and the brute force must agree on.
fn perturb(rng: &mut SimRng, history: &History, index: usize, values: u64) -> History {
    let read_value = if rng.chance(250_000) {
        None
    } else {
        Some(rng.between(1, values))
    };
    let flip = rng.chance(500_000);
    with_changed(history, index, |operation| {
        if let Completion::Returned { response, .. } = &mut operation.completion {
            match response {
                Response::Read(value) => *value = read_value,
                Response::CompareAndSet(done) => *done ^= flip,
                Response::Write => {}
            }
        }
    })
}

fn small_workload(rng: &mut SimRng) -> Workload {
    Workload {
        clients: rng.between(1, 3),
        operations_per_client: rng.between(1, 3),
        keys: rng.between(1, 2),
        values: rng.between(2, 3),
        unknown_per_million: 150_000,
        failed_per_million: 100_000,
        spread: rng.between(1, 20),
    }
}

#[test]
fn the_checker_agrees_with_a_brute_force_search_on_small_histories() {
    let mut rng = SimRng::new(0x11ea_ab1e);
    let (mut linearizable, mut not) = (0, 0);
    for round in 0..10_000 {
        let generated = {
            let workload = small_workload(&mut rng);
            generate(&mut rng, workload)
        };
        let history = if generated.is_empty() || rng.chance(200_000) {
            generated
        } else {
            let index = rng.index(generated.len());
            perturb(&mut rng, &generated, index, 3)
        };
        if history.len() > 7 {
            continue;
        }
        let expected = brute_force(&history);
        let verdict = check(&history, EXPLORED_MAX);
        let agreed = match &verdict {
            Verdict::Linearizable { .. } => expected,
            Verdict::Violation(_) => !expected,
            Verdict::Inconclusive { .. } => false,
        };
        assert!(
            agreed,
            "round {round}: brute force says linearizable={expected}, the checker says \
             {verdict}\nhistory: {history:#?}"
        );
        if expected {
            linearizable += 1;
        } else {
            not += 1;
        }
    }
    // Both answers must be common, or the cross-check proves little.
    assert!(
        linearizable > 2_000 && not > 2_000,
        "{linearizable} linearizable, {not} not"
    );
}

fn medium_workload(rng: &mut SimRng) -> Workload {
    Workload {
        clients: rng.between(2, 5),
        operations_per_client: rng.between(4, 15),
        keys: rng.between(1, 4),
        values: rng.between(2, 10),
        unknown_per_million: 50_000,
        failed_per_million: 50_000,
        spread: rng.between(5, 100),
    }
}

#[test]
fn histories_of_a_sequential_execution_are_linearizable() {
    let mut rng = SimRng::new(0x5e9_0e11);
    let mut operations = 0;
    for round in 0..3_000 {
        let history = {
            let workload = medium_workload(&mut rng);
            generate(&mut rng, workload)
        };
        operations += history.len();
        let verdict = check(&history, EXPLORED_MAX);
        assert!(
            matches!(verdict, Verdict::Linearizable { .. }),
            "round {round}: {verdict}\nhistory: {history:#?}"
        );
    }
    assert!(operations > 50_000, "only {operations} operations checked");
}

#[test]
fn a_read_of_a_value_no_one_wrote_is_caught_in_random_histories() {
    let mut rng = SimRng::new(0xbad_4ead);
    let mut caught = 0;
    for round in 0..3_000 {
        let history = {
            let workload = medium_workload(&mut rng);
            generate(&mut rng, workload)
        };
        let reads: Vec<usize> = history
            .operations()
            .enumerate()
            .filter(|(_, (_, operation))| {
                matches!(
                    operation.completion,
                    Completion::Returned {
                        response: Response::Read(_),
                        ..
                    }
                )
            })
            .map(|(position, _)| position)
            .collect();
        if reads.is_empty() {
            continue;
        }
        let mutated = reads[rng.index(reads.len())];
        let impossible = 1_000_000 + rng.below(1_000);
        let history = with_changed(&history, mutated, |operation| {
            if let Completion::Returned { response, .. } = &mut operation.completion {
                *response = Response::Read(Some(impossible));
            }
        });
        let (id, operation) = history.operations().nth(mutated).expect("in range");
        match check(&history, EXPLORED_MAX) {
            Verdict::Violation(violation) => {
                assert_eq!(violation.key, operation.command.key(), "round {round}");
                assert!(
                    violation.prefix.iter().all(|(placed, _)| *placed != id),
                    "round {round}: the corrupted read was placed\n{violation}"
                );
            }
            other => panic!(
                "round {round}: corrupted read #{} not caught: {other}",
                id.0
            ),
        }
        caught += 1;
    }
    assert!(
        caught > 2_500,
        "only {caught} histories had a read to corrupt"
    );
}

#[test]
fn a_large_history_is_checked_with_few_states() {
    let mut rng = SimRng::new(2_000);
    let workload = Workload {
        clients: 5,
        operations_per_client: 400,
        keys: 8,
        values: 20,
        unknown_per_million: 20_000,
        failed_per_million: 20_000,
        spread: 50,
    };
    let history = generate(&mut rng, workload);
    let started = Instant::now();
    let verdict = check(&history, EXPLORED_MAX);
    let elapsed = started.elapsed();
    eprintln!(
        "{} operations, 8 keys, 5 clients: {verdict} in {elapsed:?}",
        history.len()
    );
    let Verdict::Linearizable { explored } = verdict else {
        panic!("{verdict}");
    };
    assert!(explored < 3 * history.len(), "{explored} states explored");
    // The same history with one read corrupted near the end is caught.
    let last_read = history
        .operations()
        .enumerate()
        .filter(|(_, (_, operation))| {
            matches!(
                operation.completion,
                Completion::Returned {
                    response: Response::Read(_),
                    ..
                }
            )
        })
        .map(|(position, _)| position)
        .last()
        .expect("the workload reads");
    let corrupted = with_changed(&history, last_read, |operation| {
        operation.completion = returned(
            Response::Read(Some(999)),
            match operation.completion {
                Completion::Returned { at, .. } => at,
                Completion::Unknown => operation.invoked_at,
            },
        );
    });
    let started = Instant::now();
    let verdict = check(&corrupted, EXPLORED_MAX);
    eprintln!("corrupted: violation found in {:?}", started.elapsed());
    assert!(matches!(verdict, Verdict::Violation(_)), "{verdict}");
}
