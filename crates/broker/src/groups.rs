//! The broker's side of the group coordinator: it runs the coordinator state machine, keeps
//! waiting JoinGroup/SyncGroup requests until their answers come, persists offsets and group
//! generations in `__consumer_offsets`, replays that topic at start-up, and drives the
//! coordinator's timers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use brook_coordinator::consumer_group::{
    ConsumerGroupConfig, ConsumerGroupError, ConsumerGroups, Heartbeat, HeartbeatResponse,
    TopicInfo,
};
use brook_coordinator::offsets::{group_record, CommitError};
use brook_coordinator::{
    Committed, Event, GroupConfig, GroupError, Groups, JoinOutcome, JoinRequest, JoinResponse,
    Offsets, OffsetsRecord, SyncOutcome, SyncRequest, SyncResponse,
};
use brook_metadata::controller::NewTopic;
use brook_protocol::batch::{build_batch, SimpleRecord};
use brook_protocol::kafka::records::RecordBatchDecoder;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::state::{now_ms, Broker, CommitError as MetaCommitError};

/// Kafka's name for the offsets topic.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";

/// Settings under Kafka's broker property names.
#[derive(Debug, Clone, Copy)]
pub struct CoordinatorSettings {
    pub group: GroupConfig,
    /// group.consumer.* (KIP-848 groups)
    pub consumer_group: ConsumerGroupConfig,
    /// offsets.topic.num.partitions
    pub offsets_partitions: i32,
    /// offsets.topic.replication.factor
    pub offsets_replication_factor: i16,
    /// offsets.topic.segment.bytes
    pub offsets_segment_bytes: i64,
    /// offsets.retention.minutes, in ms
    pub offsets_retention_ms: i64,
    /// offsets.retention.check.interval.ms
    pub offsets_retention_check_interval_ms: i64,
    /// offset.metadata.max.bytes
    pub offset_metadata_max_bytes: usize,
}

struct Coordinator {
    groups: Groups,
    consumer_groups: ConsumerGroups,
    offsets: Offsets,
    /// `__consumer_offsets` exists (created or found).
    loaded: bool,
    /// The `__consumer_offsets` partitions this broker leads and has replayed: it coordinates
    /// exactly the groups that hash to them (all of them on a single node).
    owned: BTreeSet<i32>,
}

type JoinWaiter = oneshot::Sender<JoinResponse>;
type SyncWaiter = oneshot::Sender<SyncResponse>;

/// How long an OffsetCommit waits for the ISR (Kafka's `offsets.commit.timeout.ms` default).
pub const OFFSETS_COMMIT_TIMEOUT_MS: u64 = 5_000;

/// The group coordinator service of this broker.
pub struct GroupService {
    pub settings: CoordinatorSettings,
    inner: Mutex<Coordinator>,
    join_waiters: Mutex<HashMap<(String, String), JoinWaiter>>,
    sync_waiters: Mutex<HashMap<(String, String), SyncWaiter>>,
}

/// Why a coordinator operation failed outside the group protocol.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("group error {0}")]
    Group(GroupError),
    #[error("cannot create {CONSUMER_OFFSETS}: {0}")]
    Topic(String),
    #[error("cannot write {CONSUMER_OFFSETS}: {0}")]
    Storage(String),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GroupService {
    pub fn new(settings: CoordinatorSettings) -> GroupService {
        GroupService {
            settings,
            inner: Mutex::new(Coordinator {
                groups: Groups::new(settings.group),
                consumer_groups: ConsumerGroups::new(settings.consumer_group),
                offsets: Offsets::default(),
                loaded: false,
                owned: BTreeSet::new(),
            }),
            join_waiters: Mutex::new(HashMap::new()),
            sync_waiters: Mutex::new(HashMap::new()),
        }
    }

    /// Creates `__consumer_offsets` if needed, then takes over the groups of the partitions this
    /// broker now leads and hands back those of partitions it no longer leads (the coordinator
    /// moves with the partition's leadership, as in Kafka).
    pub fn ensure_loaded(&self, broker: &Broker) -> Result<(), ServiceError> {
        let mut c = lock(&self.inner);
        if !c.loaded {
            if broker.image().topic(CONSUMER_OFFSETS).is_none() {
                let rf = self
                    .settings
                    .offsets_replication_factor
                    .min(broker.image().live_brokers().len().max(1) as i16);
                let req = NewTopic {
                    name: CONSUMER_OFFSETS.into(),
                    num_partitions: self.settings.offsets_partitions,
                    replication_factor: rf,
                    assignments: Default::default(),
                    configs: vec![
                        ("cleanup.policy".into(), Some("compact".into())),
                        ("compression.type".into(), Some("producer".into())),
                        (
                            "segment.bytes".into(),
                            Some(self.settings.offsets_segment_bytes.to_string()),
                        ),
                    ],
                };
                drop(c);
                broker
                    .submit(brook_metadata::ControllerOp::CreateTopic {
                        topic: req,
                        defaults: broker.controller_defaults(),
                        validate_only: false,
                        if_missing: true,
                    })
                    .map_err(|e: MetaCommitError| ServiceError::Topic(e.to_string()))?;
                c = lock(&self.inner);
            }
            c.loaded = true;
        }
        self.sync_ownership(broker, &mut c)
    }

    fn sync_ownership(&self, broker: &Broker, c: &mut Coordinator) -> Result<(), ServiceError> {
        let image = broker.image();
        let node = broker.config.node_id;
        let led: BTreeSet<i32> = image
            .topic(CONSUMER_OFFSETS)
            .map(|t| {
                t.partitions
                    .values()
                    .filter(|p| p.leader == node)
                    .map(|p| p.partition)
                    .collect()
            })
            .unwrap_or_default();
        if led == c.owned {
            return Ok(());
        }
        let partitions = self.settings.offsets_partitions;
        let lost: BTreeSet<i32> = c.owned.difference(&led).copied().collect();
        if !lost.is_empty() {
            let moved =
                |g: &str| lost.contains(&brook_coordinator::records::partition_for(g, partitions));
            c.groups.unload(moved);
            c.offsets.unload(moved);
            c.consumer_groups.unload(moved);
            tracing::info!(partitions = ?lost, "no longer coordinating the groups of these __consumer_offsets partitions");
        }
        let gained: Vec<i32> = led.difference(&c.owned).copied().collect();
        c.owned = led;
        for p in gained {
            self.load_partition(broker, c, p)?;
        }
        Ok(())
    }

    /// Whether this broker coordinates `group` (leads its `__consumer_offsets` partition).
    pub fn owns(&self, group: &str) -> bool {
        let p = brook_coordinator::records::partition_for(group, self.settings.offsets_partitions);
        lock(&self.inner).owned.contains(&p)
    }

    /// Replays one `__consumer_offsets` partition into the coordinator.
    fn load_partition(
        &self,
        broker: &Broker,
        c: &mut Coordinator,
        p: i32,
    ) -> Result<(), ServiceError> {
        let now = now_ms();
        let Coordinator {
            groups, offsets, ..
        } = c;
        let Some(partition) = broker.partition(CONSUMER_OFFSETS, p) else {
            return Ok(());
        };
        let log = partition.log();
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        while offset < end {
            let mut data = log
                .read(offset, 1 << 20, end, true)
                .map_err(|e| ServiceError::Storage(e.to_string()))?;
            if data.is_empty() {
                break;
            }
            let sets = RecordBatchDecoder::decode_all(&mut data)
                .map_err(|e| ServiceError::Storage(format!("partition {p}: {e}")))?;
            for set in sets {
                for r in set.records {
                    offset = offset.max(r.offset + 1);
                    if r.control || r.offset < log.log_start_offset() {
                        continue;
                    }
                    let Some(key) = r.key else { continue };
                    if let Err(e) = offsets.replay(groups, key, r.value, now) {
                        tracing::warn!(partition = p, offset = r.offset, error = %e, "skipping unreadable offsets record");
                    }
                }
            }
        }
        tracing::debug!(
            partition = p,
            "loaded the groups of a __consumer_offsets partition"
        );
        Ok(())
    }

    /// Appends records for one group to its `__consumer_offsets` partition, then applies them.
    fn persist(
        &self,
        broker: &Broker,
        c: &mut Coordinator,
        group: &str,
        records: &[OffsetsRecord],
    ) -> Result<Option<Written>, ServiceError> {
        if records.is_empty() {
            return Ok(None);
        }
        let p = brook_coordinator::records::partition_for(group, self.settings.offsets_partitions);
        let partition = broker
            .partition(CONSUMER_OFFSETS, p)
            .ok_or_else(|| ServiceError::Storage(format!("partition {p} is not hosted here")))?;
        let now = now_ms();
        let simple: Vec<SimpleRecord<'_>> = records
            .iter()
            .map(|r| SimpleRecord {
                key: Some(&r.key),
                value: r.value.as_deref(),
                headers: &[],
            })
            .collect();
        let mut batch = build_batch(0, now, &simple);
        // A follower's log takes only what its leader sends: writing here would diverge it.
        if !partition.is_leader() {
            return Err(ServiceError::Storage(format!(
                "this broker no longer leads partition {p}"
            )));
        }
        let end = {
            let mut log = partition.log();
            log.append_as_leader(&mut batch, partition.leader_epoch(), now)
                .map_err(|e| ServiceError::Storage(e.to_string()))?;
            // Committed per the partition's ISR (at once on a single node).
            partition.on_leader_append(log.log_end_offset());
            log.log_end_offset()
        };
        let Coordinator {
            groups, offsets, ..
        } = c;
        for r in records {
            if let Err(e) = offsets.replay(groups, r.key.clone(), r.value.clone(), now) {
                tracing::error!(error = %e, "a record Brook wrote does not replay");
            }
        }
        Ok(Some(Written { partition, end }))
    }

    /// Answers waiting requests and persists new generations.
    fn dispatch(&self, broker: &Broker, c: &mut Coordinator, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Joined {
                    group,
                    member_id,
                    response,
                } => {
                    if let Some(tx) = lock(&self.join_waiters).remove(&(group, member_id)) {
                        let _ = tx.send(response);
                    }
                }
                Event::Synced {
                    group,
                    member_id,
                    response,
                } => {
                    if let Some(tx) = lock(&self.sync_waiters).remove(&(group, member_id)) {
                        let _ = tx.send(response);
                    }
                }
                Event::GenerationChanged { group } => {
                    if let Some(record) = group_record(&c.groups, &group) {
                        if let Err(e) = self.persist(broker, c, &group, &[record]) {
                            tracing::warn!(group, error = %e, "could not persist group metadata");
                        }
                    }
                }
            }
        }
    }

    pub async fn join(&self, broker: &Broker, req: JoinRequest) -> JoinResponse {
        if !self.owns(&req.group_id) {
            return JoinResponse::error(GroupError::NotCoordinator, &req.member_id);
        }
        let group = req.group_id.clone();
        let rx = {
            let mut c = lock(&self.inner);
            let (outcome, events) = c.groups.join(now_ms(), req);
            let rx = match outcome {
                JoinOutcome::Now(r) => {
                    self.dispatch(broker, &mut c, events);
                    return r;
                }
                JoinOutcome::Wait { member_id } => {
                    let (tx, rx) = oneshot::channel();
                    // A newer JoinGroup from the same member replaces an older waiting one.
                    lock(&self.join_waiters).insert((group, member_id.clone()), tx);
                    (rx, member_id)
                }
            };
            self.dispatch(broker, &mut c, events);
            rx
        };
        let (rx, member_id) = rx;
        match rx.await {
            Ok(r) => r,
            Err(_) => JoinResponse {
                error: Some(GroupError::RebalanceInProgress),
                generation_id: -1,
                protocol_type: None,
                protocol_name: None,
                leader: String::new(),
                member_id,
                members: vec![],
            },
        }
    }

    pub async fn sync(&self, broker: &Broker, req: SyncRequest) -> SyncResponse {
        if !self.owns(&req.group_id) {
            return SyncResponse::error(GroupError::NotCoordinator);
        }
        let key = (req.group_id.clone(), req.member_id.clone());
        let rx = {
            let mut c = lock(&self.inner);
            let (outcome, events) = c.groups.sync(now_ms(), req);
            let rx = match outcome {
                SyncOutcome::Now(r) => {
                    self.dispatch(broker, &mut c, events);
                    return r;
                }
                SyncOutcome::Wait => {
                    let (tx, rx) = oneshot::channel();
                    lock(&self.sync_waiters).insert(key, tx);
                    rx
                }
            };
            self.dispatch(broker, &mut c, events);
            rx
        };
        rx.await.unwrap_or(SyncResponse {
            error: Some(GroupError::RebalanceInProgress),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        })
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance: Option<&str>,
    ) -> Result<(), GroupError> {
        if !self.owns(group_id) {
            return Err(GroupError::NotCoordinator);
        }
        lock(&self.inner)
            .groups
            .heartbeat(now_ms(), group_id, generation_id, member_id, instance)
    }

    pub fn leave(
        &self,
        broker: &Broker,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if !self.owns(group_id) {
            return Err(GroupError::NotCoordinator);
        }
        let mut c = lock(&self.inner);
        let (result, events) = c.groups.leave(now_ms(), group_id, members);
        self.dispatch(broker, &mut c, events);
        result
    }

    /// A KIP-848 ConsumerGroupHeartbeat.
    pub fn consumer_heartbeat(
        &self,
        broker: &Broker,
        req: Heartbeat,
    ) -> Result<HeartbeatResponse, ConsumerGroupError> {
        let image = broker.image();
        let topics: std::collections::BTreeMap<String, TopicInfo> = image
            .topics
            .values()
            .map(|t| {
                (
                    t.name.clone(),
                    TopicInfo {
                        id: t.topic_id,
                        partitions: t.partitions.len() as i32,
                    },
                )
            })
            .collect();
        let mut c = lock(&self.inner);
        if c.groups
            .get(&req.group_id)
            .is_some_and(|g| g.member_count() > 0)
        {
            // A classic group with members owns this id.
            return Err(ConsumerGroupError::GroupIdNotFound);
        }
        c.consumer_groups.heartbeat(now_ms(), req, &topics)
    }

    /// Runs the coordinator's timers (session expiry, join deadlines, initial delays).
    pub fn tick(&self, broker: &Broker) {
        let mut c = lock(&self.inner);
        let now = now_ms();
        c.consumer_groups.tick(now);
        let events = c.groups.tick(now);
        self.dispatch(broker, &mut c, events);
    }

    /// Expires old offsets of empty groups (offsets.retention.minutes).
    pub fn expire_offsets(&self, broker: &Broker) {
        let mut c = lock(&self.inner);
        if !c.loaded {
            return;
        }
        let expired =
            c.offsets
                .expired_records(&c.groups, now_ms(), self.settings.offsets_retention_ms);
        let mut by_group: HashMap<String, Vec<OffsetsRecord>> = HashMap::new();
        for r in expired {
            if let Ok(key) = brook_coordinator::records::OffsetsKey::decode(r.key.clone()) {
                by_group.entry(key.group().to_string()).or_default().push(r);
            }
        }
        for (group, records) in by_group {
            if let Err(e) = self.persist(broker, &mut c, &group, &records) {
                tracing::warn!(group, error = %e, "could not expire offsets");
            }
            if c.offsets.group(&group).is_none() {
                c.groups.remove_if_empty(&group);
            }
        }
    }

    /// OffsetCommit: returns the group-level error, or one result per partition in input order.
    pub fn commit(
        &self,
        broker: &Broker,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance: Option<&str>,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<CommitOutcome, GroupError> {
        if !self.owns(group_id) {
            return Err(GroupError::NotCoordinator);
        }
        let mut c = lock(&self.inner);
        if c.consumer_groups.get(group_id).is_some() {
            c.consumer_groups
                .check_commit(group_id, member_id, generation_id)
                .map_err(|e| match e {
                    ConsumerGroupError::StaleMemberEpoch => GroupError::StaleMemberEpoch,
                    _ => GroupError::UnknownMemberId,
                })?;
        } else {
            Offsets::check_commit(&c.groups, group_id, generation_id, member_id, instance)?;
        }
        c.groups.get_or_create(group_id, now_ms());
        let mut results: Vec<Result<(), CommitError>> = vec![Ok(()); offsets.len()];
        let mut records = Vec::new();
        for (i, r) in
            Offsets::commit_records(group_id, &offsets, self.settings.offset_metadata_max_bytes)
        {
            match r {
                Ok(rec) => records.push(rec),
                Err(e) => results[i] = Err(e),
            }
        }
        match self.persist(broker, &mut c, group_id, &records) {
            Ok(written) => Ok((results, written)),
            Err(e) => {
                tracing::warn!(group = group_id, error = %e, "offset commit failed");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }

    /// Committed offsets of a group: all of them, or those asked for.
    pub fn fetch_offsets(&self, group_id: &str) -> Vec<((String, i32), Committed)> {
        let c = lock(&self.inner);
        c.offsets
            .group(group_id)
            .map(|g| g.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    pub fn committed(&self, group_id: &str, topic: &str, partition: i32) -> Option<Committed> {
        lock(&self.inner)
            .offsets
            .get(group_id, topic, partition)
            .cloned()
    }

    /// Reads group state for DescribeGroups / ListGroups.
    pub fn with_groups<T>(&self, f: impl FnOnce(&Groups, &Offsets) -> T) -> T {
        let c = lock(&self.inner);
        f(&c.groups, &c.offsets)
    }

    /// Reads KIP-848 group state for ConsumerGroupDescribe / ListGroups.
    pub fn with_consumer_groups<T>(&self, f: impl FnOnce(&ConsumerGroups) -> T) -> T {
        let c = lock(&self.inner);
        f(&c.consumer_groups)
    }

    /// DeleteGroups for one group.
    pub fn delete_group(&self, broker: &Broker, group_id: &str) -> Result<(), GroupError> {
        let mut c = lock(&self.inner);
        if c.consumer_groups.get(group_id).is_some() && !c.consumer_groups.delete(group_id) {
            return Err(GroupError::NonEmptyGroup);
        }
        let known = c.groups.get(group_id).is_some() || c.offsets.group(group_id).is_some();
        if !known {
            return Err(GroupError::GroupIdNotFound);
        }
        if c.groups.get(group_id).is_some() {
            c.groups.delete(group_id)?;
        }
        let records = c.offsets.delete_group_records(group_id);
        self.persist(broker, &mut c, group_id, &records)
            .map_err(|_| GroupError::CoordinatorNotAvailable)?;
        c.groups.remove_if_empty(group_id);
        Ok(())
    }

    /// OffsetDelete: tombstones for the given partitions of a group.
    pub fn delete_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), GroupError> {
        let mut c = lock(&self.inner);
        let records: Vec<OffsetsRecord> = partitions
            .iter()
            .filter(|(t, p)| c.offsets.get(group_id, t, *p).is_some())
            .map(|(t, p)| OffsetsRecord {
                key: brook_coordinator::records::OffsetsKey::Offset {
                    group: group_id.to_string(),
                    topic: t.clone(),
                    partition: *p,
                }
                .encode(),
                value: None,
            })
            .collect();
        self.persist(broker, &mut c, group_id, &records)
            .map(|_| ())
            .map_err(|_| GroupError::CoordinatorNotAvailable)
    }
}

/// One result per committed partition (in request order), and where the commit was written.
pub type CommitOutcome = (Vec<Result<(), CommitError>>, Option<Written>);

/// Where a coordinator write landed: its `__consumer_offsets` partition and the log end offset
/// after it. An OffsetCommit is answered once the partition's high watermark reaches `end`
/// (Kafka appends offsets with acks=all), so a coordinator failover keeps every acknowledged
/// commit.
pub struct Written {
    pub partition: Arc<crate::state::Partition>,
    pub end: i64,
}

/// Starts the coordinator's timer task.
pub fn spawn_timers(
    broker: Arc<Broker>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = broker
            .groups
            .settings
            .offsets_retention_check_interval_ms
            .max(1);
        let mut last_expiry = now_ms();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    broker.groups.tick(&broker);
                    let now = now_ms();
                    if now - last_expiry >= every {
                        last_expiry = now;
                        broker.groups.expire_offsets(&broker);
                    }
                }
                _ = stop.changed() => break,
            }
        }
    })
}
