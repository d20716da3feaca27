//! Membership changes with real processes, under write load: one node grows to three, then
//! five (`kommander node --join`), two are removed (`kommander cluster remove`, partition 0's
//! leader first), and a SIGKILLed member is replaced by a fresh node with an empty disk that
//! takes its id and endpoint (the dead member comes back with another incarnation and is
//! re-added as a learner, then promoted). Every acknowledged write is in every surviving
//! node's WAL at its index, and writes were acknowledged during every change; the throughput
//! of each phase is printed (the dip), never asserted on.

use std::time::{Duration, Instant};

use kommander_raft::PartitionId;

use super::harness::{
    Acked, Load, Member, PARTITIONS, ProcessCluster, cluster_command, members, wait_voters,
};

/// Acknowledged writes in a phase without a change (the throughput the dips compare to).
const STEADY_WRITES: u64 = 4_000;

/// The window of the table's slowest-throughput column.
const WINDOW: Duration = Duration::from_millis(200);

/// The phases of the run, each from the end of the previous one to its own end.
struct Phases {
    started: Instant,
    ends: Vec<(&'static str, Instant)>,
}

impl Phases {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            ends: Vec::new(),
        }
    }

    fn end(&mut self, name: &'static str) {
        self.ends.push((name, Instant::now()));
    }

    /// Per phase: its name, duration, acknowledged writes in it, and the fewest acknowledged
    /// in any whole [`WINDOW`] of it (`None` for a phase shorter than that).
    fn tally(&self, acked: &[Acked]) -> Vec<(&'static str, Duration, u64, Option<u64>)> {
        let mut from = self.started;
        self.ends
            .iter()
            .map(|&(name, to)| {
                let length = to - from;
                let window = |at: Duration| (at.as_millis() / WINDOW.as_millis()) as usize;
                let mut windows = vec![0u64; window(length)];
                let mut count = 0;
                for a in acked.iter().filter(|a| a.at >= from && a.at < to) {
                    count += 1;
                    if let Some(w) = windows.get_mut(window(a.at - from)) {
                        *w += 1;
                    }
                }
                from = to;
                (name, length, count, windows.iter().copied().min())
            })
            .collect()
    }
}

/// Starts the nodes `ids` at once, each joining through `seed`, and waits for their `ready`
/// lines (each is a voter everywhere then); the load writes through them from then on.
fn join(cluster: &mut ProcessCluster, load: &Load, ids: &[u64], seed: &str) {
    for &id in ids {
        cluster.add_joining(id, None, seed);
    }
    std::thread::scope(|scope| {
        for node in cluster.nodes.iter_mut().filter(|n| ids.contains(&n.id)) {
            scope.spawn(|| node.start());
        }
    });
    for &id in ids {
        let node = cluster.node(id);
        assert!(
            node.log_text().contains("promoted to voter"),
            "node {id} joined without a promotion:\n{}",
            node.log_text()
        );
        load.add_client(id, &node.client_address);
    }
}

/// `kommander cluster remove ID` through `client`; fails the test when it is refused.
fn remove(client: &str, id: u64) {
    let output = cluster_command(client, &["remove", &id.to_string()]);
    assert!(
        output.status.success(),
        "cluster remove {id}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn grow_to_five_remove_two_and_replace_a_killed_node_under_load_loses_no_acknowledged_write() {
    // Node 1 alone (no peers) is a one-node cluster; the others join through it.
    let mut cluster = ProcessCluster::start(1, 1, "");
    let seed = cluster.nodes[0].peer_address.clone();
    let client1 = cluster.nodes[0].client_address.clone();
    let load = Load::start(cluster.clients(), 4);
    let mut phases = Phases::new();
    load.wait_progress(STEADY_WRITES);
    phases.end("1 node");

    join(&mut cluster, &load, &[2, 3], &seed);
    phases.end("join 2, 3");
    wait_voters(&client1, &[1, 2, 3]);
    load.wait_progress(STEADY_WRITES);
    phases.end("3 nodes");

    join(&mut cluster, &load, &[4, 5], &seed);
    phases.end("join 4, 5");
    let five = wait_voters(&client1, &[1, 2, 3, 4, 5]);
    load.wait_progress(STEADY_WRITES);
    phases.end("5 nodes");

    // Partition 0's leader (it carries every roster change, its own removal included) and a
    // node that joined are removed, through a node that stays.
    let system_leader = cluster.agreed_leader(PartitionId(0));
    let joined = if system_leader == 5 { 4 } else { 5 };
    let removed = [system_leader, joined];
    let staying: Vec<u64> = five
        .iter()
        .map(|m| m.id)
        .filter(|id| !removed.contains(id))
        .collect();
    let through = cluster.node(staying[0]).client_address.clone();
    for id in removed {
        remove(&through, id);
    }
    // A removed voter is leaving until every partition let it go, then out of the roster.
    wait_voters(&through, &staying);
    // Every partition let them go: each one that a removed node led was handed over, so the
    // nodes that stay agree on a leader among themselves (the removed ones still run).
    let mut gone: Vec<_> = removed.iter().map(|&id| cluster.take(id)).collect();
    for p in 0..=PARTITIONS {
        let leader = cluster.agreed_leader(PartitionId(p));
        assert!(
            staying.contains(&leader),
            "P{p} is still led by removed node {leader}"
        );
    }
    for node in &mut gone {
        let id = node.id;
        load.remove_client(id);
        let status = node.terminate();
        assert!(
            status.success(),
            "removed node {id} exited with {status}:\n{}",
            node.log_text()
        );
    }
    phases.end("remove two (P0's leader)");
    load.wait_progress(STEADY_WRITES);
    phases.end("3 nodes left");

    // The leader of partition 1 dies without warning; a fresh machine takes its id and
    // endpoint with an empty disk and joins through a survivor. The roster sees another
    // incarnation: the member is re-added as a learner and promoted.
    let victim = cluster.agreed_leader(PartitionId(1));
    let incarnation = |roster: &[Member]| {
        roster
            .iter()
            .find(|m| m.id == victim)
            .map(|m| m.incarnation)
    };
    let survivor = *staying.iter().find(|&&id| id != victim).expect("survivor");
    let survivor_client = cluster.node(survivor).client_address.clone();
    let old_incarnation = incarnation(&members(&survivor_client)).expect("a member");
    load.remove_client(victim);
    let mut dead = cluster.take(victim);
    dead.kill9();
    let survivor_seed = cluster.node(survivor).peer_address.clone();
    let fresh = cluster.add_joining(victim, Some(&dead.peer_address), &survivor_seed);
    fresh.start();
    assert!(
        fresh.log_text().contains("promoted to voter"),
        "the fresh node {victim} became a member without a promotion:\n{}",
        fresh.log_text()
    );
    load.add_client(victim, &fresh.client_address);
    let roster = wait_voters(&survivor_client, &staying);
    let new_incarnation = incarnation(&roster).expect("a member");
    assert_ne!(
        new_incarnation, old_incarnation,
        "the fresh node joined with the dead one's incarnation"
    );
    phases.end("kill one, replace it");
    eprintln!(
        "removed {removed:?} (node {system_leader} led partition 0); node {victim} (partition \
         1's leader) SIGKILLed and replaced, incarnation {old_incarnation} -> {new_incarnation}"
    );
    load.wait_progress(STEADY_WRITES);
    phases.end("3 nodes, one fresh");

    let acked = load.stop();

    // Writes were acknowledged in every phase, the changes included.
    let tally = phases.tally(&acked);
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "membership under load: {} acknowledged writes over {PARTITIONS} partitions; load \
         average {}",
        acked.len(),
        load_average
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!(
        "{:<26} {:>6} {:>7} {:>7} {:>22}",
        "phase",
        "secs",
        "acks",
        "ops/s",
        format!("slowest {} ms, ops/s", WINDOW.as_millis())
    );
    for &(name, length, count, slowest) in &tally {
        let rate = |count: u64, over: Duration| count as f64 / over.as_secs_f64();
        eprintln!(
            "{name:<26} {:>6.1} {count:>7} {:>7.0} {:>22}",
            length.as_secs_f64(),
            rate(count, length),
            slowest.map_or_else(|| "-".to_owned(), |s| format!("{:.0}", rate(s, WINDOW)))
        );
    }
    for &(name, _, count, _) in &tally {
        assert!(count > 0, "no write acknowledged during {name}: {tally:?}");
    }

    // Every survivor, the fresh node included, applies up to the highest acknowledged index
    // of every partition; after a clean stop, each one's WAL holds every acknowledged write
    // at the index it was acknowledged at.
    cluster.stop_holding_every_write(&acked);
}
