//! Cluster controller logic: broker registration and fencing, ISR changes and leader elections.
//!
//! In a cluster, who may lead a partition is decided in one place, the active controller, and
//! every decision is a record in the replicated metadata log, so that all brokers (and the next
//! controller after a failover) agree on leaders and ISRs by replaying the same records instead
//! of talking to each other. These functions are that decision logic, kept pure (image in,
//! records out, no clock, no I/O) as in Kafka's KRaft `ReplicationControlManager`, so the Raft
//! layer can run them on whichever node leads and tests can check every corner without a cluster.
//! The rules they keep: a fenced broker leads nothing; an ISR only names live brokers, except
//! that the last member of an ISR stays in it when it dies (no eligible-leader-replicas here), so
//! the partition comes back with its data when that broker does; every change of leader bumps the
//! leader epoch and every change at all bumps the partition epoch, so stale leaders and stale ISR
//! updates are recognised and refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::record::MetadataRecord;

/// "No leader" in a partition's `leader` field (Kafka's `LeaderConstants.NO_LEADER`).
pub const NO_LEADER: i32 = -1;

/// Kafka's default `leader.imbalance.per.broker.percentage`.
pub const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE: u32 = 10;

/// The record that sets partition `p` of `topic_id` to `leader`/`isr`, or `None` when that is
/// what it already is. A new leader bumps the leader epoch; any change bumps the partition epoch.
fn change(
    topic_id: Uuid,
    p: &PartitionImage,
    leader: i32,
    isr: Vec<i32>,
) -> Option<MetadataRecord> {
    if leader == p.leader && isr == p.isr {
        return None;
    }
    let leader_epoch = if leader == p.leader {
        p.leader_epoch
    } else {
        p.leader_epoch.saturating_add(1)
    };
    Some(MetadataRecord::Partition {
        topic_id,
        partition: p.partition,
        replicas: p.replicas.clone(),
        isr,
        leader,
        leader_epoch,
        partition_epoch: p.partition_epoch.saturating_add(1),
    })
}

/// Kafka's `bestLeader`: the first replica, in assignment order, that is acceptable and in the
/// ISR; failing that, when unclean election is allowed, the first acceptable replica at all.
/// Returns the leader and whether the election was clean.
fn best_leader(
    replicas: &[i32],
    isr: &[i32],
    unclean: bool,
    acceptable: impl Fn(i32) -> bool,
) -> Option<(i32, bool)> {
    if let Some(r) = replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && acceptable(*r))
    {
        return Some((r, true));
    }
    if unclean {
        return replicas
            .iter()
            .copied()
            .find(|r| acceptable(*r))
            .map(|r| (r, false));
    }
    None
}

fn partitions(image: &MetadataImage) -> impl Iterator<Item = (&TopicImage, &PartitionImage)> {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.values().map(move |p| (t, p)))
}

/// The partition changes that take `node_id` out of service: it leaves every ISR it is in
/// (unless it is the last member) and every partition it leads gets a new leader, or none.
fn leave(
    image: &MetadataImage,
    node_id: i32,
    unclean_leader_election: &dyn Fn(&str) -> bool,
) -> Vec<MetadataRecord> {
    let acceptable = |b: i32| b != node_id && image.is_live(b);
    let mut records = Vec::new();
    for (t, p) in partitions(image) {
        if p.leader != node_id && !p.isr.contains(&node_id) {
            continue;
        }
        let mut isr = p.isr.clone();
        if isr.len() > 1 {
            isr.retain(|b| *b != node_id);
        }
        let mut leader = p.leader;
        if leader == node_id {
            leader = match best_leader(
                &p.replicas,
                &isr,
                unclean_leader_election(&t.name),
                acceptable,
            ) {
                Some((l, true)) => l,
                Some((l, false)) => {
                    isr = vec![l];
                    l
                }
                None => NO_LEADER,
            };
        }
        records.extend(change(t.topic_id, p, leader, isr));
    }
    records
}

/// A broker (re-)registers: a new broker epoch, and it starts fenced until it heartbeats as
/// caught up. A re-registration means the old incarnation is gone (possibly uncleanly, with
/// unreplicated data lost), so it also leaves the ISRs and leaderships that incarnation held.
pub fn register_broker(
    image: &MetadataImage,
    node_id: i32,
    host: &str,
    port: i32,
    rack: Option<&str>,
) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::RegisterBroker {
        node_id,
        host: host.to_string(),
        port,
        rack: rack.map(str::to_string),
        epoch: image.next_broker_epoch,
        fenced: true,
    }];
    records.extend(leave(image, node_id, &|_| false));
    records
}

/// A fenced broker becomes live: the unfence record, plus a leader for each leaderless
/// partition whose ISR names it (the partitions it was the last ISR member of).
/// Nothing when the broker is unknown or already unfenced.
pub fn unfence_broker(image: &MetadataImage, node_id: i32) -> Vec<MetadataRecord> {
    if !image.brokers.get(&node_id).is_some_and(|b| b.fenced) {
        return Vec::new();
    }
    let mut records = vec![MetadataRecord::UnfenceBroker { node_id }];
    let acceptable = |b: i32| b == node_id || image.is_live(b);
    for (t, p) in partitions(image) {
        if p.leader != NO_LEADER || !p.isr.contains(&node_id) {
            continue;
        }
        if let Some((leader, _)) = best_leader(&p.replicas, &p.isr, false, acceptable) {
            records.extend(change(t.topic_id, p, leader, p.isr.clone()));
        }
    }
    records
}

/// A broker lost its session (or is shutting down): it leaves every ISR it is in unless it is
/// the last member, and each partition it led gets the first live ISR member in replica order as
/// leader; when there is none, no leader, or, if `unclean_leader_election(topic)` allows it, the
/// first live replica with the ISR reset to it (data loss). The fence record comes last, as in
/// Kafka. Nothing for an unknown broker; an already fenced one gets only leftover moves.
pub fn fence_broker(
    image: &MetadataImage,
    node_id: i32,
    unclean_leader_election: impl Fn(&str) -> bool,
) -> Vec<MetadataRecord> {
    let Some(broker) = image.brokers.get(&node_id) else {
        return Vec::new();
    };
    let mut records = leave(image, node_id, &unclean_leader_election);
    if !broker.fenced {
        records.push(MetadataRecord::FenceBroker { node_id });
    }
    records
}

/// A broker asked to shut down (a heartbeat with Kafka's `wantShutDown`): its leaderships move
/// and it leaves the ISRs before it stops, so producers and consumers move on without waiting for
/// its session to time out. Never unclean: a planned stop must not lose data. The broker ends up
/// fenced; its next shutdown heartbeat is answered with "shut down now".
pub fn begin_controlled_shutdown(image: &MetadataImage, node_id: i32) -> Vec<MetadataRecord> {
    fence_broker(image, node_id, |_| false)
}

/// An ISR change requested by a partition leader (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// Why an AlterPartition was refused; each is one Kafka error code ([`AlterPartitionError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AlterPartitionError {
    /// UNKNOWN_TOPIC_OR_PARTITION (3).
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    /// NOT_LEADER_OR_FOLLOWER (6): the requester does not lead the partition.
    #[error("The requesting broker is not the leader of this partition.")]
    NotLeaderOrFollower,
    /// NOT_CONTROLLER (41): the request carries epochs newer than this controller knows, so
    /// this controller is behind (no longer the active one).
    #[error("The request names epochs newer than this controller knows.")]
    NotController,
    /// FENCED_LEADER_EPOCH (74): the requester's leader epoch is stale.
    #[error("The leader epoch in the request is older than the epoch on the controller.")]
    FencedLeaderEpoch,
    /// INVALID_UPDATE_VERSION (95): the partition epoch the requester built on is stale.
    #[error("The given partition epoch was invalid.")]
    InvalidUpdateVersion,
    /// INELIGIBLE_REPLICA (107): the new ISR adds a fenced, unregistered or non-replica broker.
    #[error("The new ISR contains at least one ineligible replica.")]
    IneligibleReplica,
    /// STALE_BROKER_EPOCH (77): the requester is unregistered or quotes an old broker epoch.
    #[error("Broker epoch has changed.")]
    StaleBrokerEpoch,
    /// INVALID_REQUEST (42): the new ISR is empty, repeats a broker or leaves out the leader.
    #[error("{0}")]
    InvalidRequest(String),
}

impl AlterPartitionError {
    /// The Kafka error code.
    pub fn code(&self) -> i16 {
        match self {
            AlterPartitionError::UnknownTopicOrPartition => 3,
            AlterPartitionError::NotLeaderOrFollower => 6,
            AlterPartitionError::NotController => 41,
            AlterPartitionError::InvalidRequest(_) => 42,
            AlterPartitionError::FencedLeaderEpoch => 74,
            AlterPartitionError::StaleBrokerEpoch => 77,
            AlterPartitionError::InvalidUpdateVersion => 95,
            AlterPartitionError::IneligibleReplica => 107,
        }
    }
}

/// Validates a leader's ISR change (Kafka's `ReplicationControlManager.alterPartition`) and
/// returns the record plus the partition state to answer the leader with. An ISR equal to the
/// current one changes nothing: no record, the current state. The leader epoch never changes
/// here; the partition epoch goes up by one.
pub fn alter_partition(
    image: &MetadataImage,
    req: &AlterPartitionRequest,
) -> Result<(Vec<MetadataRecord>, PartitionImage), AlterPartitionError> {
    if image.brokers.get(&req.broker_id).map(|b| b.epoch) != Some(req.broker_epoch) {
        return Err(AlterPartitionError::StaleBrokerEpoch);
    }
    let p = image
        .topic_by_id(&req.topic_id)
        .and_then(|t| t.partitions.get(&req.partition))
        .ok_or(AlterPartitionError::UnknownTopicOrPartition)?;
    if req.leader_epoch > p.leader_epoch || req.partition_epoch > p.partition_epoch {
        return Err(AlterPartitionError::NotController);
    }
    if req.broker_id != p.leader {
        return Err(AlterPartitionError::NotLeaderOrFollower);
    }
    if req.leader_epoch < p.leader_epoch {
        return Err(AlterPartitionError::FencedLeaderEpoch);
    }
    if req.partition_epoch != p.partition_epoch {
        return Err(AlterPartitionError::InvalidUpdateVersion);
    }
    if req.new_isr.is_empty() {
        return Err(AlterPartitionError::InvalidRequest(
            "The new ISR is empty.".into(),
        ));
    }
    let mut unique = req.new_isr.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != req.new_isr.len() {
        return Err(AlterPartitionError::InvalidRequest(format!(
            "The new ISR {:?} names a broker twice.",
            req.new_isr
        )));
    }
    if !req.new_isr.contains(&p.leader) {
        return Err(AlterPartitionError::InvalidRequest(format!(
            "The new ISR {:?} does not include the leader {}.",
            req.new_isr, p.leader
        )));
    }
    // Members already in the ISR may stay (removing is always allowed); a broker joining it must
    // be a live replica.
    let eligible = |b: &i32| p.isr.contains(b) || (p.replicas.contains(b) && image.is_live(*b));
    let ineligible = !req.new_isr.iter().all(eligible);
    if ineligible {
        return Err(AlterPartitionError::IneligibleReplica);
    }
    match change(req.topic_id, p, p.leader, req.new_isr.clone()) {
        None => Ok((Vec::new(), p.clone())),
        Some(record) => {
            let next = PartitionImage {
                isr: req.new_isr.clone(),
                partition_epoch: p.partition_epoch.saturating_add(1),
                ..p.clone()
            };
            Ok((vec![record], next))
        }
    }
}

/// Kafka's ElectLeaders election types (wire values 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// Move leadership back to the first replica of the assignment.
    Preferred,
    /// Give a leaderless partition whose ISR is all dead any live replica (may lose data).
    Unclean,
}

/// A topic as an ElectLeaders caller names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TopicRef {
    Id(Uuid),
    Name(String),
}

/// Why no election happened for a partition; each is one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ElectionError {
    /// UNKNOWN_TOPIC_OR_PARTITION (3).
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    /// PREFERRED_LEADER_NOT_AVAILABLE (80): the preferred replica is fenced or not in the ISR.
    #[error("The preferred leader was not available.")]
    PreferredLeaderNotAvailable,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE (83): no live replica to elect.
    #[error("Eligible topic partition leaders are not available.")]
    EligibleLeadersNotAvailable,
    /// ELECTION_NOT_NEEDED (84): the wanted leader already leads.
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
}

impl ElectionError {
    /// The Kafka error code.
    pub fn code(&self) -> i16 {
        match self {
            ElectionError::UnknownTopicOrPartition => 3,
            ElectionError::PreferredLeaderNotAvailable => 80,
            ElectionError::EligibleLeadersNotAvailable => 83,
            ElectionError::ElectionNotNeeded => 84,
        }
    }
}

/// One partition's outcome of an ElectLeaders request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionResult {
    /// The topic as the request named it (by name when the request named no partitions).
    pub topic: TopicRef,
    pub partition: i32,
    pub result: Result<(), ElectionError>,
}

/// The election of one partition: the record, or why there is none.
fn elect(
    image: &MetadataImage,
    topic_id: Uuid,
    p: &PartitionImage,
    election_type: ElectionType,
) -> Result<MetadataRecord, ElectionError> {
    match election_type {
        ElectionType::Preferred => {
            let preferred = *p
                .replicas
                .first()
                .ok_or(ElectionError::PreferredLeaderNotAvailable)?;
            if p.leader == preferred {
                return Err(ElectionError::ElectionNotNeeded);
            }
            if !(image.is_live(preferred) && p.isr.contains(&preferred)) {
                return Err(ElectionError::PreferredLeaderNotAvailable);
            }
            change(topic_id, p, preferred, p.isr.clone()).ok_or(ElectionError::ElectionNotNeeded)
        }
        ElectionType::Unclean => {
            if p.leader != NO_LEADER {
                return Err(ElectionError::ElectionNotNeeded);
            }
            match best_leader(&p.replicas, &p.isr, true, |b| image.is_live(b)) {
                Some((leader, clean)) => {
                    let isr = if clean { p.isr.clone() } else { vec![leader] };
                    change(topic_id, p, leader, isr).ok_or(ElectionError::ElectionNotNeeded)
                }
                None => Err(ElectionError::EligibleLeadersNotAvailable),
            }
        }
    }
}

/// Kafka's ElectLeaders. `partitions: None` means every partition, and then partitions that
/// already have the wanted leader are left out of the results (as Kafka does). Results come in
/// request order; the records carry out the successful elections.
pub fn elect_leaders(
    image: &MetadataImage,
    election_type: ElectionType,
    partitions: Option<&[(TopicRef, i32)]>,
) -> (Vec<MetadataRecord>, Vec<ElectionResult>) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    match partitions {
        None => {
            for (t, p) in self::partitions(image) {
                let result = elect(image, t.topic_id, p, election_type).map(|r| records.push(r));
                if result != Err(ElectionError::ElectionNotNeeded) {
                    results.push(ElectionResult {
                        topic: TopicRef::Name(t.name.clone()),
                        partition: p.partition,
                        result,
                    });
                }
            }
        }
        Some(wanted) => {
            // A partition named twice is elected once, so the records stay consistent.
            let mut done: BTreeMap<(Uuid, i32), Result<(), ElectionError>> = BTreeMap::new();
            for (topic, partition) in wanted {
                let t = match topic {
                    TopicRef::Id(id) => image.topic_by_id(id),
                    TopicRef::Name(name) => image.topic(name),
                };
                let result = match t.and_then(|t| Some((t, t.partitions.get(partition)?))) {
                    None => Err(ElectionError::UnknownTopicOrPartition),
                    Some((t, p)) => *done.entry((t.topic_id, *partition)).or_insert_with(|| {
                        elect(image, t.topic_id, p, election_type).map(|r| records.push(r))
                    }),
                };
                results.push(ElectionResult {
                    topic: topic.clone(),
                    partition: *partition,
                    result,
                });
            }
        }
    }
    (records, results)
}

/// Kafka's automatic leader rebalance (`auto.leader.rebalance.enable`) with the default
/// `leader.imbalance.per.broker.percentage` of 10.
pub fn auto_rebalance(image: &MetadataImage) -> Vec<MetadataRecord> {
    auto_rebalance_with(image, LEADER_IMBALANCE_PER_BROKER_PERCENTAGE)
}

/// Automatic leader rebalance: for each broker, the share of the partitions it is preferred
/// leader of (first replica) that it does not lead is its imbalance; when that exceeds
/// `imbalance_percentage`, every one of those partitions whose preferred replica is live and in
/// the ISR moves back to it (a preferred election).
pub fn auto_rebalance_with(
    image: &MetadataImage,
    imbalance_percentage: u32,
) -> Vec<MetadataRecord> {
    #[derive(Default)]
    struct Preferred<'a> {
        /// Partitions the broker is the preferred leader of.
        total: u64,
        /// Those of them it does not lead.
        not_leading: Vec<(Uuid, &'a PartitionImage)>,
    }
    let mut by_preferred: BTreeMap<i32, Preferred> = BTreeMap::new();
    for (t, p) in partitions(image) {
        let Some(preferred) = p.replicas.first() else {
            continue;
        };
        let entry = by_preferred.entry(*preferred).or_default();
        entry.total += 1;
        if p.leader != *preferred {
            entry.not_leading.push((t.topic_id, p));
        }
    }
    let mut records = Vec::new();
    for b in by_preferred.values() {
        if (b.not_leading.len() as u64) * 100 <= b.total * u64::from(imbalance_percentage) {
            continue;
        }
        for (topic_id, p) in &b.not_leading {
            if let Ok(record) = elect(image, *topic_id, p, ElectionType::Preferred) {
                records.push(record);
            }
        }
    }
    records
}
