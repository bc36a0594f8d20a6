//! The consumer: manual assignment or group subscription (Kafka's classic group protocol with the
//! range or round-robin assignor run by the group leader), `poll` returning batches of records,
//! `auto.offset.reset`, automatic and explicit commits, seek, position and committed offsets.
//!
//! Like Kafka's Java consumer, the group protocol runs inside `poll`; heartbeats run in a
//! background task so a slow poll loop does not lose the membership before `session.timeout.ms`.
//! A [`RebalanceListener`] hears of partitions revoked (before a rejoin, with the membership
//! still valid so that it can commit), assigned (after SyncGroup) and lost (fenced).
//!
//! With `group.protocol=consumer` ([`GroupProtocol::Consumer`]) membership is KIP-848's instead
//! ([`kip848`]): ConsumerGroupHeartbeat only, the coordinator assigning, the consumer
//! acknowledging what it owns; the listener is then told of partitions incrementally.
//!
//! Fetching uses incremental fetch sessions (KIP-227, [`session`]) and slices records out of the
//! fetched bytes without copying ([`records`]). Offsets by timestamp, beginning and end offsets
//! and committed offsets for many partitions answer in one round trip per broker.

mod kip848;
mod records;
mod session;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_protocol::kafka::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use brook_protocol::kafka::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use brook_protocol::kafka::messages::join_group_request::JoinGroupRequestProtocol;
use brook_protocol::kafka::messages::leave_group_request::MemberIdentity;
use brook_protocol::kafka::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use brook_protocol::kafka::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use brook_protocol::kafka::messages::offset_fetch_request::OffsetFetchRequestTopic;
use brook_protocol::kafka::messages::sync_group_request::SyncGroupRequestAssignment;
use brook_protocol::kafka::messages::*;
use brook_protocol::kafka::protocol::{Decodable, Encodable, StrBytes};
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::admin::{Admin, OffsetSpec};
use crate::cluster::{ClientConfig, Cluster};
use crate::connection::Connection;
use crate::error::{check, unexpected, ClientError};

/// What to do when there is no committed offset, or it is out of range (auto.offset.reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The partition's first offset.
    Earliest,
    /// The partition's end (only records written from now on).
    Latest,
    /// Fail with OFFSET_OUT_OF_RANGE.
    None,
}

/// Client-side partition assignors (partition.assignment.strategy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Kafka's RangeAssignor: consecutive partitions of each topic per member.
    Range,
    /// Kafka's RoundRobinAssignor: all partitions dealt round-robin.
    RoundRobin,
}

impl Assignor {
    fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }
}

/// Which group membership protocol a subscribing consumer speaks (group.protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup/Heartbeat, assignment by the group leader (Kafka's default).
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat, assignment by the coordinator.
    Consumer,
}

/// Consumer settings (Kafka's names and defaults).
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Bootstrap servers, client id and request timeout.
    pub client: ClientConfig,
    /// group.id (needed for subscribe and commits)
    pub group_id: Option<String>,
    /// group.instance.id (static membership)
    pub group_instance_id: Option<String>,
    /// auto.offset.reset (default latest)
    pub auto_offset_reset: OffsetReset,
    /// enable.auto.commit (default true)
    pub enable_auto_commit: bool,
    /// auto.commit.interval.ms (default 5000)
    pub auto_commit_interval: Duration,
    /// session.timeout.ms (default 45000)
    pub session_timeout: Duration,
    /// heartbeat.interval.ms (default 3000)
    pub heartbeat_interval: Duration,
    /// max.poll.interval.ms (default 300000), the rebalance timeout
    pub max_poll_interval: Duration,
    /// max.poll.records (default 500)
    pub max_poll_records: usize,
    /// fetch.min.bytes (default 1)
    pub fetch_min_bytes: i32,
    /// fetch.max.wait.ms (default 500)
    pub fetch_max_wait: Duration,
    /// fetch.max.bytes (default 52428800)
    pub fetch_max_bytes: i32,
    /// max.partition.fetch.bytes (default 1048576)
    pub max_partition_fetch_bytes: i32,
    /// isolation.level: true = read_committed (Kafka's default is read_uncommitted)
    pub read_committed: bool,
    /// partition.assignment.strategy
    pub assignor: Assignor,
    /// metadata.max.age.ms (default 300000): how often a pattern subscription re-reads the topic
    /// list.
    pub metadata_max_age: Duration,
    /// group.protocol (default classic)
    pub group_protocol: GroupProtocol,
    /// group.remote.assignor: the coordinator's assignor with group.protocol=consumer (`None` =
    /// the coordinator's default, uniform in Kafka).
    pub group_remote_assignor: Option<String>,
}

impl ConsumerConfig {
    /// Kafka's defaults for a cluster reached through `bootstrap`, in group `group_id` (None: manual assignment only).
    pub fn new(bootstrap: &str, group_id: Option<&str>) -> ConsumerConfig {
        ConsumerConfig {
            client: ClientConfig::new(bootstrap),
            group_id: group_id.map(String::from),
            group_instance_id: None,
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            max_poll_records: 500,
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            read_committed: false,
            assignor: Assignor::Range,
            metadata_max_age: Duration::from_secs(300),
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
        }
    }
}

/// The future a [`RebalanceListener`] callback returns.
pub type ListenerFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Kafka's `ConsumerRebalanceListener`: told of assignment changes from inside `poll` (and
/// `close`), with the consumer at hand, so a callback can commit, seek or read committed offsets.
///
/// With the classic protocol's eager assignors every rejoin revokes the whole assignment first:
/// `on_partitions_revoked` runs before the JoinGroup (the generation is still valid, so commits
/// succeed), `on_partitions_assigned` after the SyncGroup with the new assignment (possibly
/// empty), before any record of it is fetched. `on_partitions_lost` replaces the revoke when the
/// coordinator has already fenced the member (a commit would fail); by default it calls
/// `on_partitions_revoked`, as Kafka's does.
///
/// With `group.protocol=consumer` (KIP-848) the callbacks are incremental: revoked names only the
/// partitions taken away (committing there still works: the member epoch is valid until the
/// acknowledgement), assigned only the ones added (called once, possibly empty, after the first
/// assignment).
pub trait RebalanceListener: Send {
    /// The partitions are about to be taken away; the membership is still valid.
    fn on_partitions_revoked<'a>(
        &'a mut self,
        consumer: &'a mut Consumer,
        partitions: &'a [Tp],
    ) -> ListenerFuture<'a>;

    /// The partitions are now this consumer's (positions not yet set: a seek here wins).
    fn on_partitions_assigned<'a>(
        &'a mut self,
        consumer: &'a mut Consumer,
        partitions: &'a [Tp],
    ) -> ListenerFuture<'a>;

    /// The partitions were already given to others (the member was fenced).
    fn on_partitions_lost<'a>(
        &'a mut self,
        consumer: &'a mut Consumer,
        partitions: &'a [Tp],
    ) -> ListenerFuture<'a> {
        self.on_partitions_revoked(consumer, partitions)
    }
}

/// The result of [`Consumer::offsets_for_times`] for one partition: the first offset whose
/// timestamp is at or after the one asked for, and that record's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The offset found.
    pub offset: i64,
    /// The timestamp of the record at that offset.
    pub timestamp: i64,
    /// The leader epoch of that record, if the broker reported one.
    pub leader_epoch: Option<i32>,
}

/// The state of the fetch session with one leader (see [`Consumer::fetch_sessions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchSessionInfo {
    /// The leader's node id.
    pub node_id: i32,
    /// The session id (0 = no session: every request is a full one).
    pub session_id: i32,
    /// The epoch the next incremental request carries.
    pub epoch: i32,
    /// How many partitions the last request to this leader listed.
    pub last_request_partitions: usize,
}

#[derive(Clone, Copy)]
enum Rebalance {
    Revoked,
    Assigned,
    Lost,
}

/// A record as the consumer returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The record's topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (create or log-append time, as the topic says).
    pub timestamp: i64,
    /// Its key (None: null).
    pub key: Option<Bytes>,
    /// Its value (None: null).
    pub value: Option<Bytes>,
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// A topic partition.
pub type Tp = (String, i32);

/// A Fetch sent ahead (see `Consumer::start_prefetch`).
struct Prefetch {
    leader: i32,
    /// The positions it was sent with.
    wanted: BTreeMap<Tp, i64>,
    handle: tokio::task::JoinHandle<Result<(i16, ResponseKind), ClientError>>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

struct Membership {
    coordinator: Arc<Connection>,
    member_id: String,
    generation: i32,
    rejoin: Arc<AtomicBool>,
    /// Set when the coordinator no longer knows this member (its partitions are lost).
    fenced: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for Membership {
    /// A consumer dropped without `close()` stops heartbeating at once, so the coordinator
    /// evicts it after the session timeout instead of keeping it alive.
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// An OffsetCommit ready to go, detached from the consumer so it can also run in the background.
struct PendingCommit {
    coordinator: Arc<Connection>,
    request: OffsetCommitRequest,
    rejoin: Option<Arc<AtomicBool>>,
    fenced: Option<Arc<AtomicBool>>,
}

impl PendingCommit {
    async fn send(self) -> Result<(), ClientError> {
        let (_, resp) = self
            .coordinator
            .send(
                RequestKind::OffsetCommit(self.request),
                ApiKey::OffsetCommit,
                8,
            )
            .await?;
        let ResponseKind::OffsetCommit(r) = resp else {
            return Err(unexpected("OffsetCommit"));
        };
        for t in r.topics {
            for p in t.partitions {
                if matches!(p.error_code, 22 | 25 | 27) {
                    if is_fenced(p.error_code) {
                        if let Some(f) = &self.fenced {
                            f.store(true, Ordering::Relaxed);
                        }
                    }
                    if let Some(r) = &self.rejoin {
                        r.store(true, Ordering::Relaxed);
                    }
                }
                check(
                    p.error_code,
                    Some(format!(
                        "commit of {}-{}",
                        t.name.as_str(),
                        p.partition_index
                    )),
                )?;
            }
        }
        Ok(())
    }
}

/// Kafka's consumer.
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Arc<Cluster>,
    admin: Admin,
    subscription: Vec<String>,
    assignment: BTreeSet<Tp>,
    positions: BTreeMap<Tp, i64>,
    paused: BTreeSet<Tp>,
    buffered: VecDeque<ConsumerRecord>,
    membership: Option<Membership>,
    member_id: String,
    last_auto_commit: Instant,
    /// In a mutex only so that the consumer stays `Sync` with a listener that is just `Send`.
    listener: Option<std::sync::Mutex<Box<dyn RebalanceListener>>>,
    sessions: BTreeMap<i32, session::FetchSession>,
    /// A pattern subscription, and when the topic list was last matched against it.
    pattern: Option<(regex::Regex, Option<Instant>)>,
    /// The KIP-848 membership (group.protocol=consumer).
    cg: Option<kip848::Membership>,
    /// Whether the KIP-848 listener has been told of an assignment yet.
    cg_assigned_once: bool,
    /// The next Fetch, sent while records flow.
    prefetch: Option<Prefetch>,
}

impl Consumer {
    /// A consumer (no connection is made until the first poll); fails on an invalid configuration.
    pub fn new(config: ConsumerConfig) -> Result<Consumer, ClientError> {
        let cluster = Arc::new(Cluster::new(config.client.clone())?);
        let admin = Admin::new(config.client.clone())?;
        Ok(Consumer {
            config,
            cluster,
            admin,
            subscription: Vec::new(),
            assignment: BTreeSet::new(),
            positions: BTreeMap::new(),
            paused: BTreeSet::new(),
            buffered: VecDeque::new(),
            membership: None,
            member_id: String::new(),
            last_auto_commit: Instant::now(),
            listener: None,
            sessions: BTreeMap::new(),
            pattern: None,
            cg: None,
            cg_assigned_once: false,
            prefetch: None,
        })
    }

    /// KIP-848 membership inside `poll`: starts heartbeating, then reconciles what the heartbeat
    /// task received (lost partitions, then revoked, then assigned) and has it acknowledged.
    async fn ensure_cg_membership(&mut self) -> Result<(), ClientError> {
        if self.cg.is_none() {
            let coordinator = self.coordinator().await?;
            let settings = kip848::Settings {
                group_id: self.group()?.to_string(),
                instance_id: self.config.group_instance_id.clone(),
                rebalance_timeout: self.config.max_poll_interval,
                server_assignor: self.config.group_remote_assignor.clone(),
                initial_interval: self.config.heartbeat_interval,
            };
            self.cg = Some(kip848::Membership::start(
                coordinator,
                settings,
                self.subscription.clone(),
            ));
        }
        let Some(cg) = &self.cg else {
            return Ok(());
        };
        let (fenced, received, error) = {
            let mut st = kip848::lock(&cg.state);
            if st.subscription != self.subscription {
                st.subscription = self.subscription.clone();
                cg.wake.notify_one();
            }
            (
                std::mem::take(&mut st.fenced),
                st.received.take(),
                st.error.take(),
            )
        };
        if let Some((code, message)) = error {
            self.cg = None;
            return Err(kip848::error(code, message));
        }
        if fenced {
            let held = self.assignment();
            self.assignment.clear();
            self.positions.clear();
            self.buffered.clear();
            if !held.is_empty() {
                self.call_listener(Rebalance::Lost, held).await;
            }
        }
        let Some(target) = received else {
            return Ok(());
        };
        let mut md = self.cluster.metadata().await;
        let named = |md: &crate::cluster::Metadata| -> BTreeMap<uuid::Uuid, String> {
            md.topics
                .values()
                .map(|t| (t.topic_id, t.name.clone()))
                .collect()
        };
        let mut names = named(&md);
        if target.iter().any(|(id, _)| !names.contains_key(id)) {
            md = self.cluster.refresh(Some(&self.subscription)).await?;
            names = named(&md);
        }
        // Partitions of topics not yet in the metadata wait for a later heartbeat's assignment.
        let owned: BTreeSet<kip848::IdPartition> = target
            .into_iter()
            .filter(|(id, _)| names.contains_key(id))
            .collect();
        let new: BTreeSet<Tp> = owned
            .iter()
            .filter_map(|(id, p)| names.get(id).map(|n| (n.clone(), *p)))
            .collect();
        let revoked: Vec<Tp> = self.assignment.difference(&new).cloned().collect();
        let added: Vec<Tp> = new.difference(&self.assignment).cloned().collect();
        if !revoked.is_empty() {
            if self.config.enable_auto_commit {
                let offsets = self.consumed_positions(|tp| revoked.contains(tp));
                let _ = self.commit_offsets(&offsets).await;
            }
            self.call_listener(Rebalance::Revoked, revoked.clone())
                .await;
        }
        let changed = !revoked.is_empty() || !added.is_empty();
        self.assignment = new;
        self.positions.retain(|tp, _| self.assignment.contains(tp));
        let assignment = &self.assignment;
        self.buffered
            .retain(|r| assignment.contains(&(r.topic.clone(), r.partition)));
        if changed || !self.cg_assigned_once {
            self.cg_assigned_once = true;
            self.call_listener(Rebalance::Assigned, added).await;
        }
        if let Some(cg) = &self.cg {
            let mut st = kip848::lock(&cg.state);
            if st.owned != owned {
                st.owned = owned;
                cg.wake.notify_one();
            }
        }
        Ok(())
    }

    /// The member id and epoch of a KIP-848 membership (for tests and diagnostics).
    pub fn group_member(&self) -> Option<(String, i32)> {
        self.cg.as_ref().map(|cg| {
            let st = kip848::lock(&cg.state);
            (st.member_id.clone(), st.epoch)
        })
    }

    /// Joins the group (group.id) and reads the topics whose whole name matches `pattern` (Kafka's
    /// `subscribe(Pattern)`; internal topics never match). The topic list is matched again every
    /// `metadata.max.age.ms`; when the matched set changes, the consumer rejoins.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<(), ClientError> {
        if self.config.group_id.is_none() {
            return Err(ClientError::Config("subscribe needs a group.id".into()));
        }
        let re = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| ClientError::Config(format!("invalid topic pattern {pattern:?}: {e}")))?;
        self.pattern = Some((re, None));
        Ok(())
    }

    /// The topics subscribed to (for a pattern, those it matched at the last metadata refresh).
    pub fn subscription(&self) -> Vec<String> {
        self.subscription.clone()
    }

    /// Matches the pattern against the topic list when it is due; a changed set rejoins.
    async fn refresh_pattern(&mut self) -> Result<(), ClientError> {
        let Some((re, checked)) = &self.pattern else {
            return Ok(());
        };
        if checked.is_some_and(|at| at.elapsed() < self.config.metadata_max_age) {
            return Ok(());
        }
        let re = re.clone();
        let md = self.cluster.refresh(None).await?;
        let matched: Vec<String> = md
            .topics
            .values()
            .filter(|t| !t.is_internal && t.error_code == 0 && re.is_match(&t.name))
            .map(|t| t.name.clone())
            .collect();
        if let Some((_, checked)) = &mut self.pattern {
            *checked = Some(Instant::now());
        }
        if matched != self.subscription {
            self.subscription = matched;
            self.request_rejoin();
        }
        Ok(())
    }

    /// Installs the listener told of partitions revoked, assigned and lost (group subscriptions
    /// only), replacing any earlier one.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(std::sync::Mutex::new(Box::new(listener)));
    }

    /// Joins the group with a subscription and a rebalance listener (Kafka's
    /// `subscribe(topics, listener)`).
    pub fn subscribe_with_listener(
        &mut self,
        topics: Vec<String>,
        listener: impl RebalanceListener + 'static,
    ) -> Result<(), ClientError> {
        self.set_rebalance_listener(listener);
        self.subscribe(topics)
    }

    async fn call_listener(&mut self, what: Rebalance, partitions: Vec<Tp>) {
        let Some(l) = self.listener.take() else {
            return;
        };
        let mut l = l
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match what {
            Rebalance::Revoked => l.on_partitions_revoked(self, &partitions).await,
            Rebalance::Assigned => l.on_partitions_assigned(self, &partitions).await,
            Rebalance::Lost => l.on_partitions_lost(self, &partitions).await,
        }
        // A callback may have installed another listener; that one stays.
        if self.listener.is_none() {
            self.listener = Some(std::sync::Mutex::new(l));
        }
    }

    /// For each partition, the first offset whose timestamp is at or after the given one
    /// (ms since the epoch), with that record's timestamp; `None` when no record is that late.
    /// Kafka's `offsetsForTimes`: one ListOffsets request per leader.
    pub async fn offsets_for_times(
        &self,
        timestamps: &BTreeMap<Tp, i64>,
    ) -> Result<BTreeMap<Tp, Option<OffsetAndTimestamp>>, ClientError> {
        if let Some((tp, t)) = timestamps.iter().find(|(_, t)| **t < 0) {
            return Err(ClientError::Config(format!(
                "negative timestamp {t} for {}-{}",
                tp.0, tp.1
            )));
        }
        Ok(self
            .list_offsets_by(timestamps)
            .await?
            .into_iter()
            .map(|(tp, found)| {
                let found = (found.offset >= 0).then_some(found);
                (tp, found)
            })
            .collect())
    }

    /// The first offset of each partition (its log start offset).
    pub async fn beginning_offsets(
        &self,
        partitions: &[Tp],
    ) -> Result<BTreeMap<Tp, i64>, ClientError> {
        let spec = partitions.iter().map(|tp| (tp.clone(), -2)).collect();
        Ok(self
            .list_offsets_by(&spec)
            .await?
            .into_iter()
            .map(|(tp, o)| (tp, o.offset))
            .collect())
    }

    /// The offset after the last record of each partition: the high watermark, or with
    /// `isolation.level=read_committed` the last stable offset.
    pub async fn end_offsets(&self, partitions: &[Tp]) -> Result<BTreeMap<Tp, i64>, ClientError> {
        let spec = partitions.iter().map(|tp| (tp.clone(), -1)).collect();
        Ok(self
            .list_offsets_by(&spec)
            .await?
            .into_iter()
            .map(|(tp, o)| (tp, o.offset))
            .collect())
    }

    /// The group's committed offsets for many partitions in one OffsetFetch; a partition without
    /// a committed offset maps to `None`.
    pub async fn committed_offsets(
        &self,
        partitions: &[Tp],
    ) -> Result<BTreeMap<Tp, Option<i64>>, ClientError> {
        self.group()?;
        let found = self.fetch_committed(partitions).await?;
        Ok(partitions
            .iter()
            .map(|tp| (tp.clone(), found.get(tp).copied()))
            .collect())
    }

    /// The fetch session with each leader fetched from so far.
    pub fn fetch_sessions(&self) -> Vec<FetchSessionInfo> {
        self.sessions
            .iter()
            .map(|(node, s)| FetchSessionInfo {
                node_id: *node,
                session_id: s.id,
                epoch: s.epoch,
                last_request_partitions: s.last_listed,
            })
            .collect()
    }

    /// Test support: puts every open fetch session's epoch out of step with the broker's, so
    /// that the next fetch meets INVALID_FETCH_SESSION_EPOCH.
    #[doc(hidden)]
    pub fn desynchronize_fetch_sessions_for_testing(&mut self) {
        for s in self.sessions.values_mut() {
            if s.id != 0 {
                s.epoch += 1000;
            }
        }
    }

    /// ListOffsets with a target per partition (-1 latest, -2 earliest, else a timestamp), one
    /// request per leader, at the consumer's isolation level.
    async fn list_offsets_by(
        &self,
        targets: &BTreeMap<Tp, i64>,
    ) -> Result<BTreeMap<Tp, OffsetAndTimestamp>, ClientError> {
        let mut out = BTreeMap::new();
        if targets.is_empty() {
            return Ok(out);
        }
        let names: Vec<String> = targets
            .keys()
            .map(|t| t.0.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let md = self.cluster.refresh(Some(&names)).await?;
        // leader -> topic -> (partition, target)
        type Targets<'t> = BTreeMap<&'t str, Vec<(i32, i64)>>;
        let mut by_leader: BTreeMap<i32, Targets<'_>> = BTreeMap::new();
        for ((t, p), ts) in targets {
            let info = md.topics.get(t);
            if let Some(ti) = info.filter(|ti| ti.error_code != 0) {
                return Err(ClientError::kafka(
                    ti.error_code,
                    Some(format!("topic {t}")),
                ));
            }
            match info.and_then(|ti| ti.partitions.iter().find(|x| x.partition == *p)) {
                Some(pi) if pi.leader >= 0 => by_leader
                    .entry(pi.leader)
                    .or_default()
                    .entry(t)
                    .or_default()
                    .push((*p, *ts)),
                _ => {
                    return Err(ClientError::kafka(3, Some(format!("partition {t}-{p}"))));
                }
            }
        }
        for (leader, topics) in by_leader {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(i8::from(self.config.read_committed))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|(p, ts)| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_current_leader_epoch(-1)
                                                .with_timestamp(ts)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let conn = self.cluster.broker(leader).await?;
            let (_, resp) = conn
                .send(RequestKind::ListOffsets(req), ApiKey::ListOffsets, 8)
                .await?;
            let ResponseKind::ListOffsets(r) = resp else {
                return Err(unexpected("ListOffsets"));
            };
            for t in r.topics {
                for p in t.partitions {
                    check(
                        p.error_code,
                        Some(format!(
                            "offsets of {}-{}",
                            t.name.as_str(),
                            p.partition_index
                        )),
                    )?;
                    out.insert(
                        (t.name.to_string(), p.partition_index),
                        OffsetAndTimestamp {
                            offset: p.offset,
                            timestamp: p.timestamp,
                            leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Reads these partitions, outside any group (manual assignment).
    pub fn assign(&mut self, partitions: Vec<Tp>) {
        self.pattern = None;
        self.subscription.clear();
        self.assignment = partitions.into_iter().collect();
        self.positions.retain(|tp, _| self.assignment.contains(tp));
        self.buffered
            .retain(|r| self.assignment.contains(&(r.topic.clone(), r.partition)));
    }

    /// Joins the group (group.id) and reads the partitions it assigns from these topics.
    pub fn subscribe(&mut self, topics: Vec<String>) -> Result<(), ClientError> {
        if self.config.group_id.is_none() {
            return Err(ClientError::Config("subscribe needs a group.id".into()));
        }
        self.pattern = None;
        self.subscription = topics;
        if let Some(m) = &self.membership {
            m.rejoin.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The partitions currently assigned.
    pub fn assignment(&self) -> Vec<Tp> {
        self.assignment.iter().cloned().collect()
    }

    /// The offset of the next record to be returned for a partition.
    ///
    /// Records fetched but not yet returned by `poll` do not count: as in Kafka, this is the
    /// position a commit records.
    pub fn position(&self, tp: &Tp) -> Option<i64> {
        let fetched = self.positions.get(tp).copied()?;
        Some(
            self.buffered
                .iter()
                .find(|r| r.partition == tp.1 && r.topic == tp.0)
                .map_or(fetched, |r| r.offset),
        )
    }

    /// [`Consumer::position`] of every assigned partition that has one.
    fn consumed_positions(&self, only: impl Fn(&Tp) -> bool) -> BTreeMap<Tp, i64> {
        let mut out: BTreeMap<Tp, i64> = self
            .positions
            .iter()
            .filter(|(tp, _)| self.assignment.contains(*tp) && only(tp))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        // Walk the buffer backwards so that each partition ends at its first buffered record.
        for r in self.buffered.iter().rev() {
            if let Some(o) = out.get_mut(&(r.topic.clone(), r.partition)) {
                *o = r.offset;
            }
        }
        out
    }

    /// The next poll reads the partition from this offset.
    pub fn seek(&mut self, tp: Tp, offset: i64) {
        self.buffered
            .retain(|r| (r.topic.as_str(), r.partition) != (tp.0.as_str(), tp.1));
        self.positions.insert(tp, offset);
    }

    /// Moves to the first offset at or after `timestamp` (offsetsForTimes), or the end.
    pub async fn seek_to_timestamp(&mut self, tp: Tp, timestamp: i64) -> Result<(), ClientError> {
        let found = self
            .admin
            .list_offsets(std::slice::from_ref(&tp), OffsetSpec::Timestamp(timestamp))
            .await?;
        let offset = match found.get(&tp) {
            Some(Ok(o)) if o.offset >= 0 => o.offset,
            Some(Err(e)) => return Err(ClientError::kafka(e.code().unwrap_or(-1), None)),
            _ => self.list_offset(&tp, OffsetSpec::Latest).await?,
        };
        self.seek(tp, offset);
        Ok(())
    }

    /// Stops returning and fetching records of these partitions until [`Consumer::resume`].
    /// Records already fetched for them are dropped and fetched again after the resume.
    pub fn pause(&mut self, tps: &[Tp]) {
        for tp in tps {
            if let Some(at) = self.position(tp) {
                self.seek(tp.clone(), at);
            }
        }
        self.paused.extend(tps.iter().cloned());
    }

    /// Fetches paused partitions again.
    pub fn resume(&mut self, tps: &[Tp]) {
        for tp in tps {
            self.paused.remove(tp);
        }
    }

    /// Fetches records: up to `max.poll.records`, waiting at most `timeout` for the first.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.refresh_pattern().await?;
            // A pattern that stops matching anything keeps the membership (to leave its topics).
            let member = !self.subscription.is_empty()
                || (self.pattern.is_some() && (self.membership.is_some() || self.cg.is_some()));
            if member && self.config.group_protocol == GroupProtocol::Consumer {
                self.ensure_cg_membership().await?;
            } else if member {
                self.ensure_membership().await?;
            }
            self.maybe_auto_commit().await?;
            if !self.buffered.is_empty() {
                let n = self.buffered.len().min(self.config.max_poll_records);
                return Ok(self.buffered.drain(..n).collect());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wait = (deadline - now).min(self.config.fetch_max_wait);
            self.fetch(wait).await?;
            if self.buffered.is_empty() && Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    /// Commits the current positions of all assigned partitions and waits for the answer.
    pub async fn commit_sync(&mut self) -> Result<(), ClientError> {
        let offsets = self.consumed_positions(|_| true);
        self.commit_offsets(&offsets).await
    }

    /// Commits the given offsets (the next offset to read, as Kafka commits them).
    pub async fn commit_offsets(&mut self, offsets: &BTreeMap<Tp, i64>) -> Result<(), ClientError> {
        match self.prepare_commit(offsets).await? {
            Some(commit) => commit.send().await,
            None => Ok(()),
        }
    }

    /// Commits the current positions of all assigned partitions without waiting for the answer
    /// (Kafka's `commitAsync`): the request is on its way when this returns, and the returned
    /// handle resolves to its outcome. Polling goes on meanwhile; a commit refused because the
    /// group moved on makes the next poll rejoin, as with a synchronous commit.
    pub async fn commit_async(
        &mut self,
    ) -> Result<tokio::task::JoinHandle<Result<(), ClientError>>, ClientError> {
        let offsets = self.consumed_positions(|_| true);
        let commit = self.prepare_commit(&offsets).await?;
        Ok(tokio::spawn(async move {
            match commit {
                Some(commit) => commit.send().await,
                None => Ok(()),
            }
        }))
    }

    /// The OffsetCommit request for these offsets, addressed to the coordinator, with what to
    /// tell this consumer if the group refuses it. `None` when there is nothing to commit.
    async fn prepare_commit(
        &mut self,
        offsets: &BTreeMap<Tp, i64>,
    ) -> Result<Option<PendingCommit>, ClientError> {
        if offsets.is_empty() {
            return Ok(None);
        }
        let group = self.group()?.to_string();
        let coordinator = self.coordinator().await?;
        let (generation, member) = match (&self.membership, &self.cg) {
            (Some(m), _) => (m.generation, m.member_id.clone()),
            (None, Some(cg)) => {
                let st = kip848::lock(&cg.state);
                (st.epoch, st.member_id.clone())
            }
            (None, None) => (-1, String::new()),
        };
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), o) in offsets {
            topics.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str(""))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member))
            .with_group_instance_id(
                self.config
                    .group_instance_id
                    .clone()
                    .map(StrBytes::from_string),
            )
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        Ok(Some(PendingCommit {
            coordinator,
            request,
            rejoin: self.membership.as_ref().map(|m| m.rejoin.clone()),
            fenced: self.membership.as_ref().map(|m| m.fenced.clone()),
        }))
    }

    /// The committed offset of a partition for this group, if any.
    pub async fn committed(&self, tp: &Tp) -> Result<Option<i64>, ClientError> {
        Ok(self
            .fetch_committed(std::slice::from_ref(tp))
            .await?
            .get(tp)
            .copied())
    }

    /// Leaves the group (LeaveGroup, unless static) after a final auto-commit.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if self.config.enable_auto_commit && (self.membership.is_some() || self.cg.is_some()) {
            let _ = self.commit_sync().await;
        }
        if self.cg.is_some() {
            let held = self.assignment();
            if !held.is_empty() {
                self.call_listener(Rebalance::Revoked, held).await;
            }
        }
        if let Some(cg) = self.cg.take() {
            cg.leave().await;
        }
        if let Some(fenced) = self
            .membership
            .as_ref()
            .map(|m| m.fenced.load(Ordering::Relaxed))
        {
            let held = self.assignment();
            let what = if fenced {
                Rebalance::Lost
            } else {
                Rebalance::Revoked
            };
            self.call_listener(what, held).await;
        }
        if let Some(m) = self.membership.take() {
            m.heartbeat.abort();
            if self.config.group_instance_id.is_none() {
                let req = LeaveGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(self.group()?.to_string())));
                // v3+ names the leaving members in a list, v0-2 in one field; a request that
                // sets a field its version lacks cannot be encoded (and would not be sent).
                let req = if m.coordinator.version(ApiKey::LeaveGroup, 5).unwrap_or(0) >= 3 {
                    req.with_members(vec![MemberIdentity::default()
                        .with_member_id(StrBytes::from_string(m.member_id.clone()))])
                } else {
                    req.with_member_id(StrBytes::from_string(m.member_id.clone()))
                };
                let _ = m
                    .coordinator
                    .send(RequestKind::LeaveGroup(req), ApiKey::LeaveGroup, 5)
                    .await;
            }
        }
        Ok(())
    }

    fn group(&self) -> Result<&str, ClientError> {
        self.config
            .group_id
            .as_deref()
            .ok_or_else(|| ClientError::Config("this needs a group.id".into()))
    }

    fn request_rejoin(&self) {
        if let Some(m) = &self.membership {
            m.rejoin.store(true, Ordering::Relaxed);
        }
    }

    async fn coordinator(&self) -> Result<Arc<Connection>, ClientError> {
        if let Some(m) = &self.membership {
            return Ok(m.coordinator.clone());
        }
        if let Some(cg) = &self.cg {
            return Ok(cg.coordinator.clone());
        }
        let group = self.group()?.to_string();
        Ok(self.admin.find_group_coordinator(&group).await?.1)
    }

    async fn ensure_membership(&mut self) -> Result<(), ClientError> {
        let needed = match &self.membership {
            None => true,
            Some(m) => m.rejoin.load(Ordering::Relaxed),
        };
        if !needed {
            return Ok(());
        }
        if let Some(fenced) = self
            .membership
            .as_ref()
            .map(|m| m.fenced.load(Ordering::Relaxed))
        {
            // Eager rebalance: everything assigned is given up before rejoining.
            let held = self.assignment();
            if fenced {
                // Others may have read on and committed: start again from the committed offsets.
                self.positions.clear();
                self.buffered.clear();
                self.call_listener(Rebalance::Lost, held).await;
            } else {
                if self.config.enable_auto_commit {
                    let _ = self.commit_sync().await;
                }
                self.call_listener(Rebalance::Revoked, held).await;
            }
        }
        if let Some(m) = self.membership.take() {
            m.heartbeat.abort();
            self.member_id = m.member_id.clone();
        }
        let deadline = Instant::now() + self.config.max_poll_interval;
        loop {
            match self.join_and_sync().await {
                Ok(()) => {
                    let assigned = self.assignment();
                    self.call_listener(Rebalance::Assigned, assigned).await;
                    return Ok(());
                }
                Err(e)
                    if matches!(e.code(), Some(27 | 25 | 22 | 79 | 14 | 15 | 16))
                        && Instant::now() < deadline =>
                {
                    if e.code() == Some(25) {
                        self.member_id.clear();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn join_and_sync(&mut self) -> Result<(), ClientError> {
        let group = self.group()?.to_string();
        let coordinator = self.coordinator().await?;
        let subscription = ConsumerProtocolSubscription::default().with_topics(
            self.subscription
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        );
        let mut metadata = BytesMut::new();
        metadata.put_i16(0);
        subscription
            .encode(&mut metadata, 0)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut join = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_session_timeout_ms(self.config.session_timeout.as_millis() as i32)
            .with_rebalance_timeout_ms(self.config.max_poll_interval.as_millis() as i32)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_group_instance_id(
                self.config
                    .group_instance_id
                    .clone()
                    .map(StrBytes::from_string),
            )
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str(self.config.assignor.name()))
                .with_metadata(metadata.freeze())]);
        let r = loop {
            // Kafka's consumer waits up to the rebalance timeout plus a margin for the answer.
            let wait = self.config.max_poll_interval + Duration::from_secs(5);
            let (_, resp) = coordinator
                .send_waiting(
                    RequestKind::JoinGroup(join.clone()),
                    ApiKey::JoinGroup,
                    7,
                    wait,
                )
                .await?;
            let ResponseKind::JoinGroup(r) = resp else {
                return Err(unexpected("JoinGroup"));
            };
            if r.error_code == 79 {
                // MEMBER_ID_REQUIRED: join again with the id the coordinator handed out.
                join.member_id = r.member_id.clone();
                self.member_id = r.member_id.to_string();
                continue;
            }
            check(r.error_code, None)?;
            break r;
        };
        self.member_id = r.member_id.to_string();
        let assignments = if r.leader == r.member_id {
            self.assign_as_leader(&r).await?
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_generation_id(r.generation_id)
            .with_member_id(r.member_id.clone())
            .with_group_instance_id(
                self.config
                    .group_instance_id
                    .clone()
                    .map(StrBytes::from_string),
            )
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(r.protocol_name.clone())
            .with_assignments(assignments);
        let wait = self.config.max_poll_interval + Duration::from_secs(5);
        let (_, resp) = coordinator
            .send_waiting(RequestKind::SyncGroup(sync), ApiKey::SyncGroup, 5, wait)
            .await?;
        let ResponseKind::SyncGroup(s) = resp else {
            return Err(unexpected("SyncGroup"));
        };
        check(s.error_code, None)?;
        let mut assignment = BTreeSet::new();
        let mut data = s.assignment.clone();
        if data.remaining() >= 2 {
            let version = data.get_i16();
            let a = ConsumerProtocolAssignment::decode(&mut data, version.clamp(0, 3))
                .map_err(|e| ClientError::Protocol(format!("bad assignment: {e}")))?;
            for t in a.assigned_partitions {
                for p in t.partitions {
                    assignment.insert((t.topic.to_string(), p));
                }
            }
        }
        self.assignment = assignment;
        self.positions.retain(|tp, _| self.assignment.contains(tp));
        // Records fetched for partitions kept stay, in step with their kept fetch positions.
        let kept = &self.assignment;
        self.buffered
            .retain(|r| kept.contains(&(r.topic.clone(), r.partition)));
        let rejoin = Arc::new(AtomicBool::new(false));
        let fenced = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat_loop(
            coordinator.clone(),
            group,
            r.generation_id,
            r.member_id.to_string(),
            self.config.group_instance_id.clone(),
            self.config.heartbeat_interval,
            (rejoin.clone(), fenced.clone()),
        ));
        self.membership = Some(Membership {
            coordinator,
            member_id: r.member_id.to_string(),
            generation: r.generation_id,
            rejoin,
            fenced,
            heartbeat,
        });
        Ok(())
    }

    /// The leader's job: decode every member's subscription and assign the partitions.
    async fn assign_as_leader(
        &self,
        r: &JoinGroupResponse,
    ) -> Result<Vec<SyncGroupRequestAssignment>, ClientError> {
        let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in &r.members {
            let mut data = m.metadata.clone();
            if data.remaining() < 2 {
                continue;
            }
            let version = data.get_i16();
            let sub = ConsumerProtocolSubscription::decode(&mut data, version.clamp(0, 3))
                .map_err(|e| ClientError::Protocol(format!("bad subscription: {e}")))?;
            subscriptions.insert(
                m.member_id.to_string(),
                sub.topics.iter().map(|t| t.to_string()).collect(),
            );
        }
        let topics: Vec<String> = subscriptions
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let md = self.cluster.refresh(Some(&topics)).await?;
        let counts: BTreeMap<String, i32> = md
            .topics
            .values()
            .filter(|t| t.error_code == 0)
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect();
        let plan = match self.config.assignor {
            Assignor::Range => range(&subscriptions, &counts),
            Assignor::RoundRobin => round_robin(&subscriptions, &counts),
        };
        plan.into_iter()
            .map(|(member, tps)| {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (t, p) in tps {
                    by_topic.entry(t).or_default().push(p);
                }
                let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| {
                            AssignedTopic::default()
                                .with_topic(TopicName(StrBytes::from_string(t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
                let mut buf = BytesMut::new();
                buf.put_i16(0);
                a.encode(&mut buf, 0)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(buf.freeze()))
            })
            .collect()
    }

    async fn fetch_committed(&self, tps: &[Tp]) -> Result<BTreeMap<Tp, i64>, ClientError> {
        let Some(group) = self.config.group_id.clone() else {
            return Ok(BTreeMap::new());
        };
        let coordinator = self.coordinator().await?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in tps {
            topics.entry(t).or_default().push(*p);
        }
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_topics(Some(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            ));
        let (_, resp) = coordinator
            .send(RequestKind::OffsetFetch(req), ApiKey::OffsetFetch, 7)
            .await?;
        let ResponseKind::OffsetFetch(r) = resp else {
            return Err(unexpected("OffsetFetch"));
        };
        check(r.error_code, None)?;
        let mut out = BTreeMap::new();
        for t in r.topics {
            for p in t.partitions {
                check(p.error_code, None)?;
                if p.committed_offset >= 0 {
                    out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    async fn list_offset(&self, tp: &Tp, spec: OffsetSpec) -> Result<i64, ClientError> {
        let r = self
            .admin
            .list_offsets(std::slice::from_ref(tp), spec)
            .await?;
        match r.get(tp) {
            Some(Ok(o)) => Ok(o.offset),
            Some(Err(e)) => Err(ClientError::kafka(e.code().unwrap_or(-1), None)),
            None => Err(ClientError::kafka(3, None)),
        }
    }

    /// Positions for partitions that have none: the committed offset, else auto.offset.reset.
    async fn init_positions(&mut self) -> Result<(), ClientError> {
        let missing: Vec<Tp> = self
            .assignment
            .iter()
            .filter(|tp| !self.positions.contains_key(*tp))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let committed = self.fetch_committed(&missing).await?;
        for tp in missing {
            let offset = match committed.get(&tp) {
                Some(o) => *o,
                None => self.reset_offset(&tp).await?,
            };
            self.positions.insert(tp, offset);
        }
        Ok(())
    }

    async fn reset_offset(&self, tp: &Tp) -> Result<i64, ClientError> {
        match self.config.auto_offset_reset {
            OffsetReset::Earliest => self.list_offset(tp, OffsetSpec::Earliest).await,
            OffsetReset::Latest => self.list_offset(tp, OffsetSpec::Latest).await,
            OffsetReset::None => Err(ClientError::kafka(
                1,
                Some(format!(
                    "no committed offset for {}-{} and auto.offset.reset=none",
                    tp.0, tp.1
                )),
            )),
        }
    }

    async fn maybe_auto_commit(&mut self) -> Result<(), ClientError> {
        if !self.config.enable_auto_commit || self.config.group_id.is_none() {
            return Ok(());
        }
        if self.last_auto_commit.elapsed() < self.config.auto_commit_interval {
            return Ok(());
        }
        self.last_auto_commit = Instant::now();
        match self.commit_sync().await {
            // A rebalance in progress: the next poll rejoins; the offsets are committed later.
            Err(e) if matches!(e.code(), Some(22 | 25 | 27)) => Ok(()),
            other => other,
        }
    }

    /// One round of Fetch requests, to each leader of the assigned, unpaused partitions.
    async fn fetch(&mut self, max_wait: Duration) -> Result<(), ClientError> {
        self.init_positions().await?;
        if let Some(done) = self.take_prefetch(max_wait).await {
            return done;
        }
        let wanted: Vec<Tp> = self
            .assignment
            .iter()
            .filter(|tp| !self.paused.contains(*tp))
            .cloned()
            .collect();
        if wanted.is_empty() {
            tokio::time::sleep(max_wait).await;
            return Ok(());
        }
        let topics: Vec<String> = wanted
            .iter()
            .map(|t| t.0.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut md = self.cluster.metadata().await;
        if topics.iter().any(|t| !md.topics.contains_key(t)) {
            md = self.cluster.refresh(Some(&topics)).await?;
        }
        let mut by_leader: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
        for tp in wanted {
            let leader = md
                .topics
                .get(&tp.0)
                .and_then(|t| t.partitions.iter().find(|p| p.partition == tp.1))
                .map(|p| p.leader)
                .unwrap_or(-1);
            if leader >= 0 {
                by_leader.entry(leader).or_default().push(tp);
            }
        }
        // Leaders no longer fetched from drop their sessions (the broker evicts them in time).
        self.sessions.retain(|node, _| by_leader.contains_key(node));
        let single = by_leader.len() == 1;
        // One leader at a time keeps this simple; a single-broker cluster has one anyway.
        for (leader, tps) in by_leader {
            let conn = self.cluster.broker(leader).await?;
            let wanted: BTreeMap<Tp, i64> = tps
                .into_iter()
                .map(|tp| {
                    let o = self.positions.get(&tp).copied().unwrap_or(0);
                    (tp, o)
                })
                .collect();
            let req = self.fetch_request(leader, &wanted, max_wait);
            // The broker may hold the request for max_wait, so the answer may take that long on
            // top of the request timeout.
            let wait = self.config.client.request_timeout + max_wait;
            let sent = conn
                .send_waiting(RequestKind::Fetch(req), ApiKey::Fetch, 12, wait)
                .await;
            let got = self.absorb(leader, &wanted, sent).await?;
            if got && single {
                self.start_prefetch(leader, conn, wanted.into_keys().collect());
            }
        }
        Ok(())
    }

    /// Sends the next fetch to a leader while the records just fetched are handed out, as
    /// librdkafka's fetcher does, so that the broker reads while the application works. Only
    /// while records flow, and only with a single leader.
    fn start_prefetch(&mut self, leader: i32, conn: Arc<Connection>, tps: Vec<Tp>) {
        let wanted: BTreeMap<Tp, i64> = tps
            .into_iter()
            .filter_map(|tp| self.positions.get(&tp).map(|o| (tp.clone(), *o)))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let max_wait = self.config.fetch_max_wait;
        let req = self.fetch_request(leader, &wanted, max_wait);
        let wait = self.config.client.request_timeout + max_wait;
        let handle = tokio::spawn(async move {
            conn.send_waiting(RequestKind::Fetch(req), ApiKey::Fetch, 12, wait)
                .await
        });
        self.prefetch = Some(Prefetch {
            leader,
            wanted,
            handle,
        });
    }

    /// Takes the answer of a prefetch if it comes within `max_wait`. `None`: there was none.
    async fn take_prefetch(&mut self, max_wait: Duration) -> Option<Result<(), ClientError>> {
        let mut pf = self.prefetch.take()?;
        let joined = match tokio::time::timeout(max_wait, &mut pf.handle).await {
            Err(_) => {
                // Not answered yet: the next poll waits on it again.
                self.prefetch = Some(pf);
                return Some(Ok(()));
            }
            Ok(joined) => joined,
        };
        let sent = joined
            .map_err(|e| ClientError::Protocol(format!("fetch task failed: {e}")))
            .and_then(|r| r);
        let got = match self.absorb(pf.leader, &pf.wanted, sent).await {
            Ok(got) => got,
            Err(e) => return Some(Err(e)),
        };
        if got {
            match self.cluster.broker(pf.leader).await {
                Ok(conn) => {
                    self.start_prefetch(pf.leader, conn, pf.wanted.keys().cloned().collect())
                }
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(()))
    }

    /// The Fetch request for a leader's wanted partitions, through its fetch session.
    fn fetch_request(
        &mut self,
        leader: i32,
        wanted: &BTreeMap<Tp, i64>,
        max_wait: Duration,
    ) -> FetchRequest {
        let session = self.sessions.entry(leader).or_default();
        let plan = session.request(wanted);
        let mut topics: Vec<FetchTopic> = Vec::new();
        for ((t, p), offset) in plan.partitions {
            let part = FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(self.config.max_partition_fetch_bytes);
            match topics.last_mut() {
                Some(last) if last.topic.as_str() == t => last.partitions.push(part),
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t)))
                        .with_partitions(vec![part]),
                ),
            }
        }
        let mut forgotten: Vec<ForgottenTopic> = Vec::new();
        for (t, p) in plan.forgotten {
            match forgotten.last_mut() {
                Some(last) if last.topic.as_str() == t => last.partitions.push(p),
                _ => forgotten.push(
                    ForgottenTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t)))
                        .with_partitions(vec![p]),
                ),
            }
        }
        // Fetch v12 names topics (v13+ would need topic ids).
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait.as_millis() as i32)
            .with_min_bytes(self.config.fetch_min_bytes)
            .with_max_bytes(self.config.fetch_max_bytes)
            .with_isolation_level(i8::from(self.config.read_committed))
            .with_session_id(plan.session_id)
            .with_session_epoch(plan.epoch)
            .with_topics(topics)
            .with_forgotten_topics_data(forgotten)
    }

    /// Takes in a Fetch answer for `wanted` (the positions it was sent with): updates the session,
    /// buffers the records of partitions still wanted at those positions, applies
    /// auto.offset.reset. True when it brought records.
    async fn absorb(
        &mut self,
        leader: i32,
        wanted: &BTreeMap<Tp, i64>,
        sent: Result<(i16, ResponseKind), ClientError>,
    ) -> Result<bool, ClientError> {
        let session = self.sessions.entry(leader).or_default();
        let r = match sent {
            Ok((_, ResponseKind::Fetch(r))) => r,
            Ok(_) => {
                session.reset();
                return Err(unexpected("Fetch"));
            }
            Err(e) => {
                session.reset();
                return Err(e);
            }
        };
        session.response(r.error_code, r.session_id);
        match r.error_code {
            0 => {}
            // FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH: the session was reset
            // above; the next round sends a full request.
            70 | 71 => return Ok(false),
            code => return Err(ClientError::kafka(code, None)),
        }
        let mut got = false;
        for t in r.responses {
            let topic = t.topic.to_string();
            for p in t.partitions {
                let tp = (topic.clone(), p.partition_index);
                // A partition sought, paused or revoked while the request was out.
                let Some(&position) = self.positions.get(&tp) else {
                    continue;
                };
                if wanted.get(&tp) != Some(&position)
                    || !self.assignment.contains(&tp)
                    || self.paused.contains(&tp)
                {
                    continue;
                }
                match p.error_code {
                    0 => {}
                    1 => {
                        // OFFSET_OUT_OF_RANGE: apply auto.offset.reset.
                        let offset = self.reset_offset(&tp).await?;
                        self.positions.insert(tp, offset);
                        continue;
                    }
                    code => {
                        if matches!(code, 3 | 6 | 74 | 75) {
                            let _ = self
                                .cluster
                                .refresh(Some(std::slice::from_ref(&tp.0)))
                                .await;
                            continue;
                        }
                        return Err(ClientError::kafka(code, None));
                    }
                }
                let Some(data) = p.records else { continue };
                if data.is_empty() {
                    continue;
                }
                let before = self.buffered.len();
                let next = records::decode_into(&data, &topic, tp.1, position, &mut self.buffered)?;
                got |= self.buffered.len() > before;
                self.positions.insert(tp, next);
            }
        }
        Ok(got)
    }
}

async fn heartbeat_loop(
    coordinator: Arc<Connection>,
    group: String,
    generation: i32,
    member_id: String,
    instance: Option<String>,
    every: Duration,
    (rejoin, fenced): (Arc<AtomicBool>, Arc<AtomicBool>),
) {
    loop {
        tokio::time::sleep(every).await;
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member_id.clone()))
            .with_group_instance_id(instance.clone().map(StrBytes::from_string));
        match coordinator
            .send(RequestKind::Heartbeat(req), ApiKey::Heartbeat, 4)
            .await
        {
            Ok((_, ResponseKind::Heartbeat(r))) if r.error_code == 0 => {}
            Ok((_, ResponseKind::Heartbeat(r))) if is_fenced(r.error_code) => {
                fenced.store(true, Ordering::Relaxed);
                rejoin.store(true, Ordering::Relaxed);
                return;
            }
            _ => {
                // REBALANCE_IN_PROGRESS, a fenced generation, or a lost coordinator: rejoin.
                rejoin.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID: the coordinator has moved on
/// without this member, so its partitions are lost rather than revoked.
fn is_fenced(code: i16) -> bool {
    matches!(code, 22 | 25 | 82)
}

/// Kafka's RangeAssignor: per topic, consecutive ranges to the subscribed members in member-id
/// order.
pub fn range(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<Tp>> {
    let mut out: BTreeMap<String, Vec<Tp>> = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    for (topic, count) in partitions {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, t)| t.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in members.iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            for p in next..next + take {
                out.entry((*m).clone())
                    .or_default()
                    .push((topic.clone(), p));
            }
            next += take;
        }
    }
    out
}

/// Kafka's RoundRobinAssignor: all subscribed partitions, dealt in turn to the members that
/// subscribe to their topic.
pub fn round_robin(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<Tp>> {
    let mut out: BTreeMap<String, Vec<Tp>> = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    let members: Vec<&String> = subscriptions.keys().collect();
    let mut turn = 0usize;
    for (topic, count) in partitions {
        for p in 0..*count {
            for _ in 0..members.len() {
                let m = members[turn % members.len()];
                turn += 1;
                if subscriptions[m].contains(topic) {
                    out.entry(m.clone()).or_default().push((topic.clone(), p));
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    #[test]
    fn range_gives_the_first_members_the_extra_partitions() {
        let s = subs(&[("a", &["t"]), ("b", &["t"])]);
        let p = [("t".to_string(), 5)].into_iter().collect();
        let out = range(&s, &p);
        assert_eq!(
            out["a"],
            vec![("t".into(), 0), ("t".into(), 1), ("t".into(), 2)]
        );
        assert_eq!(out["b"], vec![("t".into(), 3), ("t".into(), 4)]);
    }

    #[test]
    fn round_robin_respects_subscriptions() {
        let s = subs(&[("a", &["t", "u"]), ("b", &["t"])]);
        let p = [("t".to_string(), 2), ("u".to_string(), 2)]
            .into_iter()
            .collect();
        let out = round_robin(&s, &p);
        assert_eq!(out["b"], vec![("t".into(), 1)]);
        assert_eq!(out["a"].len(), 3);
    }
}
