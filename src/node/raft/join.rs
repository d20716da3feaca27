//! Joining the cluster (Kommander's `JoinCluster`, with and without seeds).
//!
//! * [`Raft::join_cluster`]: the cluster of the static configuration. Partition 0 opens with
//!   this node and its peers as voters (the genesis roster), or, on a data directory that
//!   joined before, with the first configuration decided then (`identity.rs`); the call
//!   returns once a partition map is applied.
//! * [`Raft::join_cluster_with_seeds`]: a running cluster this node is not (yet) a member of
//!   (decision 0004 points 5 and 6): it asks partition 0's leader, through a seed and the
//!   leader hints, to add it as a learner (`Add` with its endpoint and incarnation); opens
//!   partition 0 with the roster of that answer as its first configuration (itself a learner,
//!   never a voter: a node that opened with its own static cluster would elect itself) and
//!   hands the roster's members to the transport; waits for the partition map (its user
//!   partitions open from the roster too, `system.rs`); waits until every replica it hosts
//!   has caught up with its leader for the promotion window (judged by the learner, each
//!   shard's standing in the membership table) and asks for its own `Promote`; and returns
//!   once partition 0 and every partition it hosts have committed a configuration listing
//!   it as a voter.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::core::{Configuration, NodeId};
use crate::node::error::JoinError;
use crate::node::identity::{FirstConfiguration, Origin};
use crate::shard::SYSTEM_PARTITION;
use crate::shard::membership::roster::check_endpoint;
use crate::shard::membership::{MemberRole, Roster, RosterChange, Standing};

use super::Raft;
use super::leader_call::{CallFailed, Target};
use super::refusal;
use super::timer::{Elapsed, TimerError, race};

impl Raft {
    /// Joins the cluster of the configuration's peers (static discovery): opens (or restores)
    /// the system partition and waits until the first partition map is applied
    /// ([`Raft::is_initialized`]). Calling it again only waits. On a data directory that
    /// joined before, partition 0 opens with the configuration that first join decided (so a
    /// node that joined through a seed may restart with this call).
    ///
    /// A node without peers that calls it is a one-node cluster: the start of a cluster that
    /// grows by [`Raft::join_cluster_with_seeds`].
    ///
    /// Waits at most `timeout` and never longer than `join_timeout_ms` (60 s by default).
    /// Dropping the future cancels the wait, not the join.
    ///
    /// # Errors
    ///
    /// [`JoinError::Timeout`] (the node keeps joining in the background);
    /// [`JoinError::QueueFull`] when the system partition's shard queue (or the timer) is
    /// full; [`JoinError::Storage`] when the data directory's `identity` file could not be
    /// written; [`JoinError::Fatal`] when the shard failed or the node was shut down.
    pub fn join_cluster(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), JoinError>> + Send + 'static + use<> {
        let this = self.clone();
        let started = Instant::now();
        let deadline = self.join_deadline(timeout);
        async move {
            let deadline = deadline?;
            let join = async {
                if !this.joined() {
                    let first = match this.inner.identity.first() {
                        Some(first) => first,
                        None => this.decide_first(FirstConfiguration {
                            configuration: Configuration::new(
                                this.inner.config.cluster_nodes(),
                                Vec::new(),
                            )
                            .map_err(|error| JoinError::Invalid {
                                reason: format!("the static configuration: {error}"),
                            })?,
                            origin: Origin::Static,
                            admitted_version: 0,
                        })?,
                    };
                    this.open_system_partition(&first).await?;
                }
                this.wait_initialized().await
            };
            race(deadline, join)
                .await
                .unwrap_or_else(|Elapsed| Err(this.join_timeout(started)))
        }
    }

    /// Joins a running cluster through `seeds` (the endpoints of some of its members;
    /// Kommander's `JoinCluster(seeds)`): asks partition 0's leader to add this node as a
    /// learner, following leader hints and asking again every
    /// `membership.call_retry_interval_ms` (500 ms) across the seeds while no leader admits
    /// it; opens partition 0 and then every partition of the map from the roster it was
    /// admitted with (a learner); once every replica it hosts has stayed within
    /// `membership.promotion_lag_entries_max` of the commit index its leader told it for
    /// `membership.promotion_window_ms`, asks to be made a voter; and returns once every
    /// partition it hosts (partition 0 included) has committed a configuration listing it as
    /// a voter, and [`Raft::local_role`] is `Voter`.
    ///
    /// The node needs its `endpoint` (the leader's nodes reach it there) and a transport that
    /// carries membership calls; it need not have static peers. Calling it again (also after
    /// a restart, with the same data directory) is idempotent: a node the roster lists with
    /// this data directory's incarnation is not added again, and one that is a voter
    /// everywhere returns at once. Its own endpoint among `seeds` is skipped. A seed may be a
    /// DNS name (`seeds.example:7100`): the TCP transport resolves it at each attempt and
    /// tries every address it names, which is discovery by DNS (decision 0005 §11).
    ///
    /// Waits at most `timeout` and never longer than `join_timeout_ms` (60 s by default).
    /// Dropping the future cancels the wait; what was done stays done (an admitted node
    /// stays a learner, and a later call continues).
    ///
    /// # Errors
    ///
    /// [`JoinError::Invalid`] at once when the join cannot be done as asked (no seed but this
    /// node's endpoint, an `endpoint` the roster cannot record, a transport without
    /// membership calls, a node that opened partition 0 from its static configuration with
    /// [`Raft::join_cluster`] and is not in the roster); [`JoinError::Refused`] when partition
    /// 0's leader refused it for good; [`JoinError::Removed`] when the roster took it out while
    /// it joined; [`JoinError::Timeout`] (no seed or leader answered, or it did not become a
    /// voter everywhere, within the limit); [`JoinError::QueueFull`] (a full shard queue or
    /// timer table); [`JoinError::Storage`] (the data directory's `identity` file could not be
    /// written); [`JoinError::Fatal`] when the node stopped.
    pub fn join_cluster_with_seeds(
        &self,
        seeds: Vec<String>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), JoinError>> + Send + 'static + use<> {
        let this = self.clone();
        let started = Instant::now();
        let own = self.local_endpoint().to_owned();
        let mut targets: Vec<Target> = Vec::new();
        for seed in seeds {
            let target = Target::Endpoint(seed);
            if target != Target::Endpoint(own.clone()) && !targets.contains(&target) {
                targets.push(target);
            }
        }
        let checked = if targets.is_empty() {
            Err(JoinError::Invalid {
                reason: "no seed to ask but this node's own endpoint".to_owned(),
            })
        } else {
            check_endpoint(&own).map_err(|_| JoinError::Invalid {
                reason: format!("this node's endpoint {own:?} cannot be recorded in the roster"),
            })
        };
        let deadline = checked.and_then(|()| self.join_deadline(timeout));
        async move {
            let deadline = deadline?;
            race(deadline, this.join_through(&targets))
                .await
                .unwrap_or_else(|Elapsed| Err(this.join_timeout(started)))
        }
    }

    /// The steps of [`Raft::join_cluster_with_seeds`], without its deadline.
    async fn join_through(&self, seeds: &[Target]) -> Result<(), JoinError> {
        let me = self.local_node_id();
        let incarnation = self.inner.identity.incarnation();
        let endpoint = self.local_endpoint().to_owned();
        let admitted = move |roster: &Roster| {
            roster
                .member(me)
                .is_some_and(|m| m.incarnation == incarnation && m.endpoint == endpoint)
        };
        // 1. Admitted: a member with this incarnation (or, for a node of the static
        // configuration, a member at all: its genesis entry has no incarnation).
        let first = self.inner.identity.first();
        let from_static = first.as_ref().is_some_and(|f| f.origin == Origin::Static);
        if let Some(first) = &first {
            if !self.joined() {
                self.open_system_partition(first).await?;
            }
            // Its committed roster, once partition 0 is restored.
            let roster = self.membership_when(|r| Some(Arc::clone(r))).await?;
            if from_static && roster.member(me).is_none() {
                return Err(JoinError::Invalid {
                    reason: "this node opened partition 0 from its static configuration \
                             (join_cluster) and is not in the roster"
                        .to_owned(),
                });
            }
        }
        let member = |r: &Roster| (from_static && r.member(me).is_some()) || admitted(r);
        let version = match self.membership().filter(|r| member(r)) {
            Some(roster) => roster.version(),
            None => {
                let add = RosterChange::Add {
                    node: me,
                    endpoint: self.local_endpoint().to_owned(),
                    incarnation,
                };
                let roster = self
                    .ask_leader(add, seeds, &admitted)
                    .await
                    .map_err(join_error)?;
                if let Err(error) = self.inner.transport.set_peers(&roster.peers_of(me)) {
                    return Err(JoinError::Invalid {
                        reason: format!("the transport refused the roster's members: {error}"),
                    });
                }
                if !self.joined() {
                    let first = self.decide_first(first_from(&roster, me)?)?;
                    self.open_system_partition(&first).await?;
                }
                roster.version()
            }
        };
        // 2. Initialized: the partition map applied, every partition of it open here.
        self.wait_initialized().await?;
        // 3. A voter in the roster: promoted once every replica here caught up.
        let mut asked = vec![Target::Local];
        asked.extend(seeds.iter().cloned());
        loop {
            let promoted = self
                .membership_when(|roster| match roster.member(me).map(|m| m.role) {
                    Some(MemberRole::Voter) => Some(Ok(true)),
                    Some(MemberRole::Learner) if self.everywhere(|s| s.caught_up) => {
                        Some(Ok(false))
                    }
                    Some(MemberRole::Learner) => None,
                    // A roster older than the one that admitted it may not list it yet.
                    None if roster.version() < version => None,
                    Some(MemberRole::Leaving) | None => Some(Err(JoinError::Removed {
                        version: roster.version(),
                    })),
                })
                .await??;
            if promoted {
                break;
            }
            let promote = RosterChange::Promote { node: me };
            let is_voter =
                move |r: &Roster| r.member(me).is_some_and(|m| m.role == MemberRole::Voter);
            self.ask_leader(promote, &asked, is_voter)
                .await
                .map_err(join_error)?;
        }
        // 4. A voter everywhere: every partition here committed a configuration with it.
        self.membership_when(|roster| {
            let voter = roster
                .member(me)
                .is_some_and(|m| m.role == MemberRole::Voter);
            (voter && self.everywhere(|s| s.voter)).then_some(())
        })
        .await
    }

    /// Whether every partition this node hosts (partition 0 and those of its map) stands as
    /// `holds` says, as its shard recorded it at its last tick.
    fn everywhere(&self, holds: impl Fn(Standing) -> bool) -> bool {
        let table = self.inner.shards.membership();
        self.hosted().all(|p| table.standing(p).is_some_and(&holds))
    }

    /// Partition 0 and the partitions of the map in force.
    fn hosted(&self) -> impl Iterator<Item = crate::core::PartitionId> {
        let map = self.inner.system.map();
        let partitions: Vec<_> = map.hosted().collect();
        std::iter::once(SYSTEM_PARTITION).chain(partitions)
    }

    /// Waits until `verdict` answers for this node's committed roster, asked at every change
    /// of the roster or of a partition's standing (never polled).
    async fn membership_when<T>(
        &self,
        mut verdict: impl FnMut(&Arc<Roster>) -> Option<T>,
    ) -> Result<T, JoinError> {
        let table = self.inner.shards.membership();
        let mut changes = table.changes();
        loop {
            changes.borrow_and_update();
            if let Some(answer) = table.roster().as_ref().and_then(&mut verdict) {
                return Ok(answer);
            }
            if changes.changed().await.is_err() {
                return Err(JoinError::Fatal(self.inner.stopped_error()));
            }
        }
    }

    /// Keeps `first` as partition 0's first configuration (unless one was decided).
    fn decide_first(&self, first: FirstConfiguration) -> Result<FirstConfiguration, JoinError> {
        self.inner
            .identity
            .decide_first(first)
            .map_err(|error| JoinError::Storage {
                reason: error.to_string(),
            })
    }

    /// Opens (or restores) partition 0 with `first` as its first configuration (the
    /// admission's roster version recorded first: every partition opened from then on withholds
    /// its votes until it committed a configuration of that version).
    async fn open_system_partition(&self, first: &FirstConfiguration) -> Result<(), JoinError> {
        self.inner
            .shards
            .membership()
            .set_admitted_version(first.admitted_version);
        let opened = self
            .inner
            .shards
            .open_partition(
                SYSTEM_PARTITION,
                first.configuration.voters().to_vec(),
                first.configuration.learners().to_vec(),
            )
            .map_err(|refusal| self.join_error(refusal))?
            .await
            .unwrap_or(Err(refusal::SHARD_GONE));
        opened.map_err(|refusal| self.join_error(refusal))?;
        self.inner.joined.store(true, Ordering::Release);
        Ok(())
    }

    /// Waits until a partition map is applied (every partition of it open here).
    async fn wait_initialized(&self) -> Result<(), JoinError> {
        let mut initialized = self.inner.system.initialized();
        match initialized.wait_for(|ready| *ready).await {
            Ok(_) => Ok(()),
            Err(_) => Err(JoinError::Fatal(self.inner.stopped_error())),
        }
    }

    /// The deadline of a join: `timeout`, at most `join_timeout_ms`.
    fn join_deadline(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Option<super::timer::Deadline>, JoinError> {
        if self.inner.stopping() {
            return Err(JoinError::Fatal(self.inner.stopped_error()));
        }
        let ceiling = Duration::from_millis(self.inner.config.join_timeout_ms);
        let limit = timeout.map_or(ceiling, |t| t.min(ceiling));
        self.inner
            .timer
            .deadline(Some(limit))
            .map_err(|error| match error {
                TimerError::Full => JoinError::QueueFull,
                TimerError::Stopped => JoinError::Fatal(self.inner.stopped_error()),
            })
    }

    /// The error of a join whose deadline passed; or of one the node's stop ended (the timer
    /// stops with the node, and its deadlines with it).
    fn join_timeout(&self, started: Instant) -> JoinError {
        if self.inner.stopping() {
            return JoinError::Fatal(self.inner.stopped_error());
        }
        JoinError::Timeout {
            waited: started.elapsed(),
            leader: self
                .inner
                .leaders
                .get(SYSTEM_PARTITION)
                .and_then(|l| l.leader),
        }
    }
}

/// Partition 0's first configuration on a node admitted with `roster`: its voters and
/// learners (leaving members included), this node a learner.
fn first_from(roster: &Roster, me: NodeId) -> Result<FirstConfiguration, JoinError> {
    let configuration = roster.configuration().map_err(|error| JoinError::Invalid {
        reason: format!("the roster of the admission: {error}"),
    })?;
    let voters: Vec<NodeId> = configuration
        .voters()
        .iter()
        .copied()
        .filter(|&n| n != me)
        .collect();
    let mut learners: Vec<NodeId> = configuration.learners().to_vec();
    if !learners.contains(&me) {
        learners.push(me);
    }
    if voters.is_empty() {
        return Err(JoinError::Invalid {
            reason: "the roster of the admission has no voter but this node".to_owned(),
        });
    }
    let configuration =
        Configuration::new(voters, learners).map_err(|error| JoinError::Invalid {
            reason: format!("the roster of the admission: {error}"),
        })?;
    Ok(FirstConfiguration {
        configuration,
        origin: Origin::Seed,
        admitted_version: roster.member(me).map_or(0, |m| m.joined_version),
    })
}

fn join_error(failed: CallFailed) -> JoinError {
    match failed {
        CallFailed::Refused(status) => JoinError::Refused { status },
        CallFailed::Unsendable(reason) => JoinError::Invalid { reason },
        CallFailed::QueueFull => JoinError::QueueFull,
        CallFailed::Fatal(fatal) => JoinError::Fatal(fatal),
    }
}
