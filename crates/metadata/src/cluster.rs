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
pub(crate) fn best_leader(
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
            // The ISR change that takes in the last target replica also completes a
            // reassignment (Kafka's `tryCompleteReassignment`): one record, one new epoch.
            if let Some(r) = image.reassignment(&req.topic_id, req.partition) {
                if let Some((state, records)) =
                    crate::reassignment::complete(image, req.topic_id, &next, r)
                {
                    return Ok((records, state));
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{apply, cluster, topic};

    fn fence(image: &mut MetadataImage, node_id: i32) {
        let recs = fence_broker(image, node_id, |_| false);
        apply(image, &recs);
    }

    fn unfence(image: &mut MetadataImage, node_id: i32) {
        let recs = unfence_broker(image, node_id);
        apply(image, &recs);
    }

    fn part<'a>(image: &'a MetadataImage, name: &str, p: i32) -> &'a PartitionImage {
        &image.topic(name).unwrap().partitions[&p]
    }

    fn alter_req(
        image: &MetadataImage,
        name: &str,
        p: i32,
        new_isr: &[i32],
    ) -> AlterPartitionRequest {
        let t = image.topic(name).unwrap();
        let pi = &t.partitions[&p];
        AlterPartitionRequest {
            broker_id: pi.leader,
            broker_epoch: image.brokers.get(&pi.leader).map_or(-1, |b| b.epoch),
            topic_id: t.topic_id,
            partition: p,
            leader_epoch: pi.leader_epoch,
            partition_epoch: pi.partition_epoch,
            new_isr: new_isr.to_vec(),
        }
    }

    fn alter(image: &mut MetadataImage, name: &str, p: i32, new_isr: &[i32]) {
        let req = alter_req(image, name, p, new_isr);
        let (recs, _) = alter_partition(image, &req).unwrap();
        apply(image, &recs);
    }

    #[test]
    fn registration_hands_out_new_epochs_and_starts_fenced() {
        let mut image = MetadataImage::default();
        for id in [1, 2, 3] {
            let recs = register_broker(&image, id, "h", 9092, Some("r"));
            assert_eq!(recs.len(), 1);
            apply(&mut image, &recs);
        }
        let epochs: Vec<i64> = image.brokers.values().map(|b| b.epoch).collect();
        assert_eq!(epochs, vec![0, 1, 2]);
        assert!(image.live_brokers().is_empty());
        let recs = unfence_broker(&image, 2);
        assert_eq!(recs, vec![MetadataRecord::UnfenceBroker { node_id: 2 }]);
        apply(&mut image, &recs);
        assert_eq!(image.live_brokers(), vec![2]);
        assert!(unfence_broker(&image, 2).is_empty());
        assert!(unfence_broker(&image, 9).is_empty());
        // A re-registration is a new incarnation: new epoch, fenced again.
        let recs = register_broker(&image, 2, "h2", 9093, None);
        apply(&mut image, &recs);
        let b = &image.brokers[&2];
        assert_eq!((b.epoch, b.fenced, b.host.as_str()), (3, true, "h2"));
    }

    #[test]
    fn fencing_the_leader_moves_leadership_along_the_isr_and_keeps_the_last_member() {
        let mut image = cluster(3);
        topic(&mut image, "t", &[vec![1, 2, 3]]);
        let recs = fence_broker(&image, 1, |_| false);
        assert_eq!(
            recs.last(),
            Some(&MetadataRecord::FenceBroker { node_id: 1 })
        );
        assert_eq!(recs.len(), 2);
        apply(&mut image, &recs);
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch),
            (2, vec![2, 3], 1, 1)
        );

        fence(&mut image, 2);
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch),
            (3, vec![3], 2, 2)
        );

        // The last ISR member dies: no leader, but it stays in the ISR.
        fence(&mut image, 3);
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch),
            (NO_LEADER, vec![3], 3, 3)
        );

        // Broker 1 coming back does not make it leader: it may lack data 3 had.
        let recs = unfence_broker(&image, 1);
        assert_eq!(recs, vec![MetadataRecord::UnfenceBroker { node_id: 1 }]);
        apply(&mut image, &recs);
        assert_eq!(part(&image, "t", 0).leader, NO_LEADER);
        // Broker 3 coming back leads again.
        let recs = unfence_broker(&image, 3);
        assert_eq!(recs.len(), 2);
        apply(&mut image, &recs);
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch),
            (3, vec![3], 4, 4)
        );
    }

    #[test]
    fn fencing_a_follower_only_shrinks_the_isr() {
        let mut image = cluster(3);
        topic(&mut image, "t", &[vec![1, 2, 3], vec![1, 2]]);
        fence(&mut image, 3);
        let p0 = part(&image, "t", 0);
        assert_eq!(
            (
                p0.leader,
                p0.isr.clone(),
                p0.leader_epoch,
                p0.partition_epoch
            ),
            (1, vec![1, 2], 0, 1)
        );
        // A partition the broker is not in is untouched.
        assert_eq!(part(&image, "t", 1).partition_epoch, 0);
        // Fencing again changes nothing.
        assert!(fence_broker(&image, 3, |_| false).is_empty());
        assert!(fence_broker(&image, 42, |_| true).is_empty());
    }

    #[test]
    fn unclean_election_on_fencing_only_where_the_topic_allows_it() {
        let mut image = cluster(2);
        topic(&mut image, "clean", &[vec![1, 2]]);
        topic(&mut image, "dirty", &[vec![1, 2]]);
        alter(&mut image, "clean", 0, &[1]);
        alter(&mut image, "dirty", 0, &[1]);
        let recs = fence_broker(&image, 1, |t| t == "dirty");
        apply(&mut image, &recs);
        let clean = part(&image, "clean", 0);
        assert_eq!((clean.leader, clean.isr.clone()), (NO_LEADER, vec![1]));
        let dirty = part(&image, "dirty", 0);
        assert_eq!(
            (dirty.leader, dirty.isr.clone(), dirty.leader_epoch),
            (2, vec![2], 1)
        );
    }

    #[test]
    fn controlled_shutdown_moves_leaders_cleanly_and_fences() {
        let mut image = cluster(3);
        topic(&mut image, "t", &[vec![1, 2], vec![2, 1], vec![1]]);
        let recs = begin_controlled_shutdown(&image, 1);
        assert_eq!(recs, fence_broker(&image, 1, |_| false));
        apply(&mut image, &recs);
        assert_eq!(part(&image, "t", 0).leader, 2);
        assert_eq!(part(&image, "t", 1).isr, vec![2]);
        assert_eq!(part(&image, "t", 2).leader, NO_LEADER);
        assert!(image.brokers[&1].fenced);
    }

    #[test]
    fn re_registration_takes_the_old_incarnation_out_of_service() {
        let mut image = cluster(2);
        topic(&mut image, "t", &[vec![1, 2]]);
        let recs = register_broker(&image, 1, "localhost", 9091, None);
        assert!(matches!(
            recs[0],
            MetadataRecord::RegisterBroker { fenced: true, .. }
        ));
        apply(&mut image, &recs);
        let p = part(&image, "t", 0);
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn alter_partition_shrinks_and_expands_the_isr() {
        let mut image = cluster(3);
        topic(&mut image, "t", &[vec![1, 2, 3]]);
        let req = alter_req(&image, "t", 0, &[1, 2]);
        let (recs, state) = alter_partition(&image, &req).unwrap();
        assert_eq!(recs.len(), 1);
        apply(&mut image, &recs);
        assert_eq!(part(&image, "t", 0), &state);
        assert_eq!(
            (state.isr.clone(), state.leader_epoch, state.partition_epoch),
            (vec![1, 2], 0, 1)
        );
        // The same request again is built on an old partition epoch.
        assert_eq!(
            alter_partition(&image, &req),
            Err(AlterPartitionError::InvalidUpdateVersion)
        );
        // Asking for the ISR it already has changes nothing.
        let (recs, same) = alter_partition(&image, &alter_req(&image, "t", 0, &[1, 2])).unwrap();
        assert!(recs.is_empty());
        assert_eq!(&same, part(&image, "t", 0));
        alter(&mut image, "t", 0, &[1, 2, 3]);
        assert_eq!(part(&image, "t", 0).isr, vec![1, 2, 3]);
        assert_eq!(part(&image, "t", 0).partition_epoch, 2);
    }

    #[test]
    fn alter_partition_refusals() {
        use AlterPartitionError as E;
        let mut image = cluster(4);
        let id = topic(&mut image, "t", &[vec![1, 2, 3]]);
        alter(&mut image, "t", 0, &[1, 2]);
        let ok = alter_req(&image, "t", 0, &[1, 2, 3]);
        let with = |f: &dyn Fn(&mut AlterPartitionRequest)| {
            let mut r = ok.clone();
            f(&mut r);
            alter_partition(&image, &r)
        };
        assert_eq!(with(&|r| r.broker_epoch += 1), Err(E::StaleBrokerEpoch));
        assert_eq!(with(&|r| r.broker_id = 9), Err(E::StaleBrokerEpoch));
        assert_eq!(
            with(&|r| r.topic_id = Uuid::nil()),
            Err(E::UnknownTopicOrPartition)
        );
        assert_eq!(with(&|r| r.partition = 1), Err(E::UnknownTopicOrPartition));
        let epoch2 = image.brokers[&2].epoch;
        assert_eq!(
            with(&|r| {
                r.broker_id = 2;
                r.broker_epoch = epoch2;
            }),
            Err(E::NotLeaderOrFollower)
        );
        assert_eq!(with(&|r| r.leader_epoch += 1), Err(E::NotController));
        assert_eq!(with(&|r| r.partition_epoch += 1), Err(E::NotController));
        assert_eq!(
            with(&|r| r.partition_epoch -= 1),
            Err(E::InvalidUpdateVersion)
        );
        assert!(matches!(
            with(&|r| r.new_isr.clear()),
            Err(E::InvalidRequest(_))
        ));
        assert!(matches!(
            with(&|r| r.new_isr = vec![2, 3]),
            Err(E::InvalidRequest(_))
        ));
        assert!(matches!(
            with(&|r| r.new_isr = vec![1, 2, 2]),
            Err(E::InvalidRequest(_))
        ));
        // Broker 4 is live but no replica; a fenced replica may not join either.
        assert_eq!(
            with(&|r| r.new_isr = vec![1, 2, 4]),
            Err(E::IneligibleReplica)
        );
        assert!(alter_partition(&image, &ok).is_ok());
        fence(&mut image, 3);
        assert_eq!(alter_partition(&image, &ok), Err(E::IneligibleReplica));

        // A leader that lost and regained leadership quotes an old leader epoch.
        fence(&mut image, 1);
        unfence(&mut image, 1);
        alter(&mut image, "t", 0, &[2, 1]);
        let (recs, _) = elect_leaders(&image, ElectionType::Preferred, None);
        apply(&mut image, &recs);
        let p = part(&image, "t", 0);
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
        let stale = AlterPartitionRequest {
            broker_epoch: image.brokers[&1].epoch,
            topic_id: id,
            leader_epoch: 1,
            partition_epoch: p.partition_epoch,
            ..ok.clone()
        };
        assert_eq!(alter_partition(&image, &stale), Err(E::FencedLeaderEpoch));

        let codes: Vec<i16> = [
            E::UnknownTopicOrPartition,
            E::NotLeaderOrFollower,
            E::NotController,
            E::InvalidRequest(String::new()),
            E::FencedLeaderEpoch,
            E::StaleBrokerEpoch,
            E::InvalidUpdateVersion,
            E::IneligibleReplica,
        ]
        .iter()
        .map(E::code)
        .collect();
        assert_eq!(codes, vec![3, 6, 41, 42, 74, 77, 95, 107]);
    }

    #[test]
    fn preferred_election_results() {
        let mut image = cluster(3);
        topic(&mut image, "t", &[vec![1, 2, 3], vec![2, 3, 1]]);
        fence(&mut image, 1);
        unfence(&mut image, 1);
        let t0 = (TopicRef::Name("t".into()), 0);
        let t1 = (TopicRef::Name("t".into()), 1);
        let unknown = (TopicRef::Name("nope".into()), 0);
        let bad_partition = (TopicRef::Name("t".into()), 7);
        // Broker 1 is back but not in the ISR yet.
        let (recs, results) = elect_leaders(
            &image,
            ElectionType::Preferred,
            Some(&[t0.clone(), t1.clone(), unknown, bad_partition]),
        );
        assert!(recs.is_empty());
        let got: Vec<Result<(), ElectionError>> = results.iter().map(|r| r.result).collect();
        assert_eq!(
            got,
            vec![
                Err(ElectionError::PreferredLeaderNotAvailable),
                Err(ElectionError::ElectionNotNeeded),
                Err(ElectionError::UnknownTopicOrPartition),
                Err(ElectionError::UnknownTopicOrPartition),
            ]
        );
        alter(&mut image, "t", 0, &[2, 3, 1]);
        let id = image.topic("t").unwrap().topic_id;
        let (recs, results) = elect_leaders(
            &image,
            ElectionType::Preferred,
            Some(&[(TopicRef::Id(id), 0), t0.clone()]),
        );
        assert_eq!(recs.len(), 1, "a partition named twice is elected once");
        assert!(results.iter().all(|r| r.result.is_ok()));
        assert_eq!(results[0].topic, TopicRef::Id(id));
        apply(&mut image, &recs);
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (1, vec![2, 3, 1], 2)
        );
        // For all partitions, those already led by their preferred replica are left out.
        let (recs, results) = elect_leaders(&image, ElectionType::Preferred, None);
        assert!(recs.is_empty() && results.is_empty());
        let codes: Vec<i16> = [
            ElectionError::UnknownTopicOrPartition,
            ElectionError::PreferredLeaderNotAvailable,
            ElectionError::EligibleLeadersNotAvailable,
            ElectionError::ElectionNotNeeded,
        ]
        .iter()
        .map(ElectionError::code)
        .collect();
        assert_eq!(codes, vec![3, 80, 83, 84]);
    }

    #[test]
    fn unclean_election_results() {
        let mut image = cluster(3);
        topic(&mut image, "t", &[vec![1, 2], vec![3]]);
        alter(&mut image, "t", 0, &[1]);
        fence(&mut image, 1);
        fence(&mut image, 3);
        let all = [
            (TopicRef::Name("t".into()), 0),
            (TopicRef::Name("t".into()), 1),
        ];
        let (recs, results) = elect_leaders(&image, ElectionType::Unclean, Some(&all));
        assert_eq!(results[0].result, Ok(()));
        assert_eq!(
            results[1].result,
            Err(ElectionError::EligibleLeadersNotAvailable)
        );
        apply(&mut image, &recs);
        let p = part(&image, "t", 0);
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (2, vec![2], 2));
        let (_, results) = elect_leaders(&image, ElectionType::Unclean, Some(&all[..1]));
        assert_eq!(results[0].result, Err(ElectionError::ElectionNotNeeded));
        // With `None`, only the partition that could not be helped is reported.
        let (recs, results) = elect_leaders(&image, ElectionType::Unclean, None);
        assert!(recs.is_empty());
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].partition, 1);
    }

    #[test]
    fn auto_rebalance_waits_for_more_than_ten_percent_imbalance() {
        let mut image = cluster(2);
        let assignments = vec![vec![1, 2]; 10];
        topic(&mut image, "t", &assignments);
        let id = image.topic("t").unwrap().topic_id;
        // Broker 1 prefers all ten partitions; hand `k` of them to broker 2.
        let set_leader_2 = |image: &mut MetadataImage, k: i32| {
            for p in 0..k {
                let cur = part(image, "t", p).clone();
                if let Some(rec) = change(id, &cur, 2, cur.isr.clone()) {
                    image.apply(&rec);
                }
            }
        };
        set_leader_2(&mut image, 1);
        assert!(
            auto_rebalance(&image).is_empty(),
            "10% is not more than 10%"
        );
        set_leader_2(&mut image, 2);
        let recs = auto_rebalance(&image);
        assert_eq!(recs.len(), 2);
        apply(&mut image, &recs);
        assert!(image
            .topic("t")
            .unwrap()
            .partitions
            .values()
            .all(|p| p.leader == 1));
        // A preferred replica that is fenced or out of the ISR is skipped.
        set_leader_2(&mut image, 5);
        alter(&mut image, "t", 0, &[2]);
        let recs = auto_rebalance(&image);
        assert_eq!(recs.len(), 4);
        assert!(auto_rebalance_with(&image, 50).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Fence(i32, bool),
        Unfence(i32),
        Register(i32),
        Alter(i32, u8),
        Preferred,
        Unclean,
        Rebalance,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (1..=4i32, any::<bool>()).prop_map(|(b, u)| Op::Fence(b, u)),
            (1..=4i32).prop_map(Op::Unfence),
            (1..=4i32).prop_map(Op::Register),
            (0..6i32, any::<u8>()).prop_map(|(p, m)| Op::Alter(p, m)),
            Just(Op::Preferred),
            Just(Op::Unclean),
            Just(Op::Rebalance),
        ]
    }

    /// What must hold between every pair of images a batch of records links.
    fn check_step(before: &MetadataImage, after: &MetadataImage, records: &[MetadataRecord]) {
        let mut seen = std::collections::BTreeSet::new();
        for r in records {
            if let MetadataRecord::Partition {
                topic_id,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                ..
            } = r
            {
                assert!(
                    seen.insert((*topic_id, *partition)),
                    "one record per partition: {records:?}"
                );
                let old = &before.topic_by_id(topic_id).unwrap().partitions[partition];
                assert_eq!(*partition_epoch, old.partition_epoch + 1);
                let bump = i32::from(*leader != old.leader);
                assert_eq!(*leader_epoch, old.leader_epoch + bump);
            }
        }
        for (t, p) in partitions(after) {
            let name = &t.name;
            assert!(!p.isr.is_empty(), "{name}-{} has an empty ISR", p.partition);
            assert!(p.isr.iter().all(|b| p.replicas.contains(b)));
            let mut unique = p.isr.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), p.isr.len());
            let live_isr: Vec<i32> = p
                .isr
                .iter()
                .copied()
                .filter(|b| after.is_live(*b))
                .collect();
            if p.leader == NO_LEADER {
                assert!(
                    live_isr.is_empty(),
                    "{p:?} leaderless with a live ISR member"
                );
                assert_eq!(
                    p.isr.len(),
                    1,
                    "{p:?}: only the last member outlives its broker"
                );
            } else {
                assert!(after.is_live(p.leader), "{p:?}: fenced leader");
                assert_eq!(live_isr, p.isr, "{p:?}: dead ISR member beside a leader");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn leadership_invariants_hold_under_any_sequence(ops in proptest::collection::vec(op(), 1..40)) {
            let mut image = cluster(4);
            topic(&mut image, "t", &[vec![1, 2, 3], vec![2, 3, 4], vec![3, 4, 1], vec![4, 1, 2], vec![1, 2], vec![3]]);
            for op in ops {
                let records = match op {
                    Op::Fence(b, unclean) => fence_broker(&image, b, |_| unclean),
                    Op::Unfence(b) => unfence_broker(&image, b),
                    Op::Register(b) => register_broker(&image, b, "h", 1, None),
                    Op::Alter(p, mask) => {
                        let pi = part(&image, "t", p).clone();
                        let mut isr: Vec<i32> = pi.replicas.iter().copied().enumerate()
                            .filter(|(i, _)| mask & (1 << i) != 0).map(|(_, b)| b).collect();
                        if mask & 0x80 != 0 && !isr.contains(&pi.leader) {
                            isr.push(pi.leader);
                        }
                        let req = alter_req(&image, "t", p, &isr);
                        match alter_partition(&image, &req) {
                            Ok((recs, state)) => {
                                let mut next = image.clone();
                                apply(&mut next, &recs);
                                proptest::prop_assert_eq!(part(&next, "t", p), &state);
                                recs
                            }
                            Err(_) => Vec::new(),
                        }
                    }
                    Op::Preferred => elect_leaders(&image, ElectionType::Preferred, None).0,
                    Op::Unclean => elect_leaders(&image, ElectionType::Unclean, None).0,
                    Op::Rebalance => auto_rebalance(&image),
                };
                let mut next = image.clone();
                apply(&mut next, &records);
                check_step(&image, &next, &records);
                image = next;
            }
        }
    }
}
