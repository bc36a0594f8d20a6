//! Partition reassignment (Kafka's AlterPartitionReassignments, KIP-455): moving a partition's
//! replicas to other brokers while it keeps serving, which is how a cluster scales out onto
//! brokers added after its topics were created.
//!
//! As in Kafka's `ReplicationControlManager`, a reassignment first widens the partition's
//! replicas to the target followed by the replicas being removed. The new replicas start
//! following the leader, and its usual ISR expansion takes them in once they have caught up.
//! When every target replica is in the ISR, the controller completes the reassignment in the
//! same step that records the ISR change ([`complete`], called from
//! [`crate::cluster::alter_partition`]): replicas become the target, the removed brokers leave
//! the ISR, and a leader that is being removed hands over to the first target replica in the
//! ISR (a new leader epoch). A cancellation restores the original replicas. Pure functions:
//! image in, records out.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cluster::{best_leader, NO_LEADER};
use crate::image::{MetadataImage, PartitionImage, Reassignment};
use crate::record::MetadataRecord;

/// Why a partition's reassignment was refused; each is one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ReassignmentError {
    /// UNKNOWN_TOPIC_OR_PARTITION (3).
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    /// INVALID_REPLICA_ASSIGNMENT (39).
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// NO_REASSIGNMENT_IN_PROGRESS (85): a cancellation of a partition that is not moving.
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
}

impl ReassignmentError {
    /// The Kafka error code.
    pub fn code(&self) -> i16 {
        match self {
            ReassignmentError::UnknownTopicOrPartition => 3,
            ReassignmentError::InvalidReplicaAssignment(_) => 39,
            ReassignmentError::NoReassignmentInProgress => 85,
        }
    }
}

/// One partition's outcome of an AlterPartitionReassignments request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentResult {
    pub topic: String,
    pub partition: i32,
    pub result: Result<(), ReassignmentError>,
}

/// One partition of an AlterPartitionReassignments request: `target: None` cancels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentRequest {
    pub topic: String,
    pub partition: i32,
    pub target: Option<Vec<i32>>,
}

/// Kafka's AlterPartitionReassignments: starts, replaces or cancels each partition's
/// reassignment, in request order (a partition named twice: the later one wins).
pub fn alter_partition_reassignments(
    image: &MetadataImage,
    wanted: &[ReassignmentRequest],
) -> (Vec<MetadataRecord>, Vec<ReassignmentResult>) {
    let mut work = image.clone();
    let mut records = Vec::new();
    let mut results = Vec::new();
    for w in wanted {
        let result = reassign(&work, &w.topic, w.partition, w.target.as_deref()).map(|recs| {
            for r in &recs {
                work.apply(r);
            }
            records.extend(recs);
        });
        results.push(ReassignmentResult {
            topic: w.topic.clone(),
            partition: w.partition,
            result,
        });
    }
    (records, results)
}

fn reassign(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
) -> Result<Vec<MetadataRecord>, ReassignmentError> {
    let t = image
        .topic(topic)
        .ok_or(ReassignmentError::UnknownTopicOrPartition)?;
    let p = t
        .partitions
        .get(&partition)
        .ok_or(ReassignmentError::UnknownTopicOrPartition)?;
    let ongoing = image.reassignment(&t.topic_id, partition);
    let Some(target) = target else {
        let ongoing = ongoing.ok_or(ReassignmentError::NoReassignmentInProgress)?;
        return Ok(revert(image, t.topic_id, p, &ongoing.original));
    };
    validate(image, target)?;
    // A new target for a moving partition starts from where that one started, as Kafka does.
    let original = ongoing.map_or_else(|| p.replicas.clone(), |r| r.original.clone());
    if target == original.as_slice() {
        return Ok(match ongoing {
            Some(_) => revert(image, t.topic_id, p, &original),
            None => Vec::new(),
        });
    }
    let r = Reassignment {
        original,
        target: target.to_vec(),
    };
    let mut replicas = r.target.clone();
    replicas.extend(r.removing());
    // Replicas of an earlier target that this one drops leave at once (they may not have
    // caught up): the ISR keeps only brokers that stay replicas.
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|b| replicas.contains(b))
        .collect();
    let widened = PartitionImage {
        replicas,
        isr: if isr.is_empty() { p.isr.clone() } else { isr },
        partition_epoch: p.partition_epoch.saturating_add(1),
        ..p.clone()
    };
    if let Some((_, done)) = complete(image, t.topic_id, &widened, &r) {
        return Ok(done);
    }
    let mut out = vec![widened.record(t.topic_id)];
    out.push(MetadataRecord::Reassignment {
        topic_id: t.topic_id,
        partition,
        reassignment: Some(r),
    });
    Ok(out)
}

/// Kafka's `validateManualPartitionAssignment`.
fn validate(image: &MetadataImage, target: &[i32]) -> Result<(), ReassignmentError> {
    let invalid = |m: String| Err(ReassignmentError::InvalidReplicaAssignment(m));
    if target.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    for (i, b) in target.iter().enumerate() {
        if target[..i].contains(b) {
            return invalid(format!(
                "The manual partition assignment includes the broker {b} more than once."
            ));
        }
        if !image.brokers.contains_key(b) {
            return invalid(format!(
                "The manual partition assignment includes broker {b}, but no such broker is registered."
            ));
        }
    }
    Ok(())
}

/// The records that finish reassignment `r` of `p` (whose replicas and ISR are already the
/// widened ones) when every target replica is in the ISR: replicas become the target, the ISR
/// keeps only target replicas, a leader being removed hands over, and the reassignment ends.
/// `None` while a target replica has not caught up, or when no target replica in the ISR is
/// live to take over the leadership. Also returns the partition's state afterwards.
pub(crate) fn complete(
    image: &MetadataImage,
    topic_id: Uuid,
    p: &PartitionImage,
    r: &Reassignment,
) -> Option<(PartitionImage, Vec<MetadataRecord>)> {
    if !r.target.iter().all(|b| p.isr.contains(b)) {
        return None;
    }
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|b| r.target.contains(b))
        .collect();
    let leader = if r.target.contains(&p.leader) {
        p.leader
    } else {
        best_leader(&r.target, &isr, false, |b| image.is_live(b))?.0
    };
    Some(settle(topic_id, p, &r.target, isr, leader))
}

/// Cancels: the original replicas again, the ISR without the brokers being added (or, if only
/// those had caught up, the original replicas that are live: an unclean choice, as in Kafka's
/// revert), a leader being added hands over.
fn revert(
    image: &MetadataImage,
    topic_id: Uuid,
    p: &PartitionImage,
    original: &[i32],
) -> Vec<MetadataRecord> {
    let mut isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|b| original.contains(b))
        .collect();
    if isr.is_empty() {
        // An ISR is never empty: the original replicas that are live, else all of them.
        isr = original
            .iter()
            .copied()
            .filter(|b| image.is_live(*b))
            .collect();
        if isr.is_empty() {
            isr = original.to_vec();
        }
    }
    let leader = if original.contains(&p.leader) {
        p.leader
    } else {
        best_leader(original, &isr, false, |b| image.is_live(b)).map_or(NO_LEADER, |(l, _)| l)
    };
    settle(topic_id, p, original, isr, leader).1
}

/// The end of a reassignment, completed or cancelled: `p` with these replicas, ISR and leader (a
/// new leader epoch if the leader changes, a new partition epoch in any case), and the records
/// that set it and clear the reassignment.
fn settle(
    topic_id: Uuid,
    p: &PartitionImage,
    replicas: &[i32],
    isr: Vec<i32>,
    leader: i32,
) -> (PartitionImage, Vec<MetadataRecord>) {
    let state = PartitionImage {
        partition: p.partition,
        replicas: replicas.to_vec(),
        isr,
        leader,
        leader_epoch: if leader == p.leader {
            p.leader_epoch
        } else {
            p.leader_epoch.saturating_add(1)
        },
        partition_epoch: p.partition_epoch.saturating_add(1),
    };
    let records = vec![
        state.record(topic_id),
        MetadataRecord::Reassignment {
            topic_id,
            partition: p.partition,
            reassignment: None,
        },
    ];
    (state, records)
}

/// A reassignment in progress as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ongoing {
    pub topic: String,
    pub partition: i32,
    /// The current (widened) replicas: the target, then the replicas being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// The reassignments in progress, sorted; `partitions: None` lists all.
pub fn list(image: &MetadataImage, partitions: Option<&[(String, i32)]>) -> Vec<Ongoing> {
    let mut out = Vec::new();
    for ((topic_id, partition), r) in &image.reassignments {
        let Some(t) = image.topic_by_id(topic_id) else {
            continue;
        };
        if let Some(wanted) = partitions {
            if !wanted.iter().any(|(n, i)| *n == t.name && i == partition) {
                continue;
            }
        }
        let replicas = t
            .partitions
            .get(partition)
            .map(|p| p.replicas.clone())
            .unwrap_or_default();
        out.push(Ongoing {
            topic: t.name.clone(),
            partition: *partition,
            replicas,
            adding: r.adding(),
            removing: r.removing(),
        });
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{alter_partition, AlterPartitionRequest};
    use crate::test_support::{apply, cluster, topic};

    /// Brokers 1..=n, live; topic "t" with the given replica lists.
    fn setup(n: i32, assignments: &[Vec<i32>]) -> (MetadataImage, Uuid) {
        let mut image = cluster(n);
        let id = topic(&mut image, "t", assignments);
        (image, id)
    }

    fn reassign_to(
        image: &mut MetadataImage,
        partition: i32,
        target: Option<Vec<i32>>,
    ) -> Result<(), ReassignmentError> {
        let (records, results) = alter_partition_reassignments(
            image,
            &[ReassignmentRequest {
                topic: "t".into(),
                partition,
                target,
            }],
        );
        apply(image, &records);
        results.into_iter().next().unwrap().result
    }

    fn part(image: &MetadataImage) -> PartitionImage {
        image.topic("t").unwrap().partitions[&0].clone()
    }

    fn isr_change(image: &mut MetadataImage, id: Uuid, new_isr: Vec<i32>) -> PartitionImage {
        let p = part(image);
        let (records, state) = alter_partition(
            image,
            &AlterPartitionRequest {
                broker_id: p.leader,
                broker_epoch: image.brokers[&p.leader].epoch,
                topic_id: id,
                partition: 0,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr,
            },
        )
        .unwrap();
        apply(image, &records);
        state
    }

    #[test]
    fn a_partition_moves_once_its_new_replicas_are_in_the_isr() {
        let (mut image, id) = setup(3, &[vec![1]]);
        reassign_to(&mut image, 0, Some(vec![2, 3])).unwrap();
        let p = part(&image);
        // Widened: target first, then the replica being removed; the ISR and leader stay.
        assert_eq!((p.replicas, p.isr, p.leader), (vec![2, 3, 1], vec![1], 1));
        assert_eq!(
            list(&image, None),
            vec![Ongoing {
                topic: "t".into(),
                partition: 0,
                replicas: vec![2, 3, 1],
                adding: vec![2, 3],
                removing: vec![1],
            }]
        );
        // One new replica caught up: still moving.
        isr_change(&mut image, id, vec![1, 2]);
        assert!(image.reassignment(&id, 0).is_some());
        // The last one: done in the same step, and the removed leader hands over.
        let state = isr_change(&mut image, id, vec![1, 2, 3]);
        let p = part(&image);
        assert_eq!(state, p);
        assert_eq!((p.replicas, p.isr, p.leader), (vec![2, 3], vec![2, 3], 2));
        assert_eq!(p.leader_epoch, 1);
        assert!(image.reassignment(&id, 0).is_none());
        assert!(list(&image, None).is_empty());
    }

    #[test]
    fn a_cancellation_restores_the_original_replicas() {
        let (mut image, id) = setup(3, &[vec![1, 2]]);
        reassign_to(&mut image, 0, Some(vec![3])).unwrap();
        isr_change(&mut image, id, vec![1, 2]);
        reassign_to(&mut image, 0, None).unwrap();
        let p = part(&image);
        assert_eq!((p.replicas, p.isr, p.leader), (vec![1, 2], vec![1, 2], 1));
        assert!(image.reassignment(&id, 0).is_none());
        assert_eq!(
            reassign_to(&mut image, 0, None),
            Err(ReassignmentError::NoReassignmentInProgress)
        );
    }

    #[test]
    fn a_new_target_replaces_one_in_progress_from_the_same_start() {
        let (mut image, id) = setup(4, &[vec![1]]);
        reassign_to(&mut image, 0, Some(vec![2])).unwrap();
        reassign_to(&mut image, 0, Some(vec![3])).unwrap();
        let r = image.reassignment(&id, 0).unwrap();
        assert_eq!((r.original.clone(), r.target.clone()), (vec![1], vec![3]));
        assert_eq!(part(&image).replicas, vec![3, 1]);
        // Back to the original assignment: the same as a cancellation.
        reassign_to(&mut image, 0, Some(vec![1])).unwrap();
        assert_eq!(part(&image).replicas, vec![1]);
        assert!(image.reassignment(&id, 0).is_none());
    }

    #[test]
    fn a_target_already_in_the_isr_completes_at_once() {
        let (mut image, id) = setup(3, &[vec![1, 2]]);
        isr_change(&mut image, id, vec![1, 2]);
        reassign_to(&mut image, 0, Some(vec![2])).unwrap();
        let p = part(&image);
        assert_eq!((p.replicas, p.isr, p.leader), (vec![2], vec![2], 2));
        assert!(image.reassignment(&id, 0).is_none());
    }

    #[test]
    fn bad_targets_are_refused_with_kafkas_codes() {
        let (mut image, _) = setup(2, &[vec![1]]);
        let before = image.clone();
        for (partition, target, code) in [
            (1, Some(vec![2]), 3),
            (0, Some(vec![]), 39),
            (0, Some(vec![2, 2]), 39),
            (0, Some(vec![9]), 39),
            (0, None, 85),
        ] {
            let e = reassign_to(&mut image, partition, target.clone()).unwrap_err();
            assert_eq!(e.code(), code, "{target:?}: {e}");
        }
        assert_eq!(image, before);
        let (_, results) = alter_partition_reassignments(
            &image,
            &[ReassignmentRequest {
                topic: "nope".into(),
                partition: 0,
                target: Some(vec![1]),
            }],
        );
        assert_eq!(
            results[0].result,
            Err(ReassignmentError::UnknownTopicOrPartition)
        );
    }
}
