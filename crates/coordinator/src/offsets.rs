//! Committed offsets: the cache that `__consumer_offsets` records build, and the checks an
//! OffsetCommit must pass.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::group::{GroupError, GroupState, Groups};
use crate::records::{GroupValue, OffsetValue, OffsetsKey};

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// Why a single partition's commit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitError {
    Group(GroupError),
    OffsetMetadataTooLarge,
}

/// A record to append to `__consumer_offsets` (value `None` = tombstone).
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetsRecord {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Committed offsets of every group.
#[derive(Debug, Default)]
pub struct Offsets {
    by_group: BTreeMap<String, BTreeMap<(String, i32), Committed>>,
}

impl Offsets {
    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&Committed> {
        self.by_group
            .get(group)
            .and_then(|g| g.get(&(topic.to_string(), partition)))
    }

    /// Every committed offset of a group, by (topic, partition).
    pub fn group(&self, group: &str) -> Option<&BTreeMap<(String, i32), Committed>> {
        self.by_group.get(group)
    }

    /// Drops the offsets of every group for which `moved` says yes (their partition moved away).
    pub fn unload(&mut self, moved: impl Fn(&str) -> bool) {
        self.by_group.retain(|id, _| !moved(id));
    }

    pub fn groups(&self) -> impl Iterator<Item = &String> {
        self.by_group.keys()
    }

    /// Applies one `__consumer_offsets` record (at load time or after an append).
    pub fn replay(
        &mut self,
        groups: &mut Groups,
        key: Bytes,
        value: Option<Bytes>,
        now: i64,
    ) -> Result<(), crate::records::RecordError> {
        match OffsetsKey::decode(key)? {
            OffsetsKey::Offset {
                group,
                topic,
                partition,
            } => match value {
                Some(v) => {
                    let v = OffsetValue::decode(v)?;
                    groups.get_or_create(&group, now);
                    self.by_group.entry(group).or_default().insert(
                        (topic, partition),
                        Committed {
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_timestamp: v.commit_timestamp,
                        },
                    );
                }
                None => {
                    if let Some(g) = self.by_group.get_mut(&group) {
                        g.remove(&(topic, partition));
                        if g.is_empty() {
                            self.by_group.remove(&group);
                        }
                    }
                }
            },
            OffsetsKey::Group { group } => match value {
                Some(v) => {
                    let v = GroupValue::decode(v)?;
                    groups.restore(&group, v.generation, v.protocol_type, now);
                }
                None => {
                    groups.remove_if_empty(&group);
                }
            },
        }
        Ok(())
    }

    /// Checks an OffsetCommit against the group, as Kafka's classic coordinator does, and returns
    /// the group-level error if the whole commit is refused.
    pub fn check_commit(
        groups: &Groups,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let Some(group) = groups.get(group_id) else {
            // A commit from outside any group (manual assignment) creates the group.
            return if generation_id < 0 {
                Ok(())
            } else {
                Err(GroupError::IllegalGeneration)
            };
        };
        if group.state() == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && group.state() == GroupState::Empty {
            return Ok(());
        }
        if group.state() == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if !group.has_member(member_id) {
            return Err(if group_instance_id.is_some() {
                GroupError::FencedInstanceId
            } else {
                GroupError::UnknownMemberId
            });
        }
        if generation_id != group.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// The records that commit these offsets.
    pub fn commit_records(
        group_id: &str,
        offsets: &[(String, i32, Committed)],
        max_metadata_bytes: usize,
    ) -> Vec<(usize, Result<OffsetsRecord, CommitError>)> {
        offsets
            .iter()
            .enumerate()
            .map(|(i, (topic, partition, c))| {
                if c.metadata.len() > max_metadata_bytes {
                    return (i, Err(CommitError::OffsetMetadataTooLarge));
                }
                let key = OffsetsKey::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                }
                .encode();
                let value = OffsetValue {
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: c.metadata.clone(),
                    commit_timestamp: c.commit_timestamp,
                }
                .encode();
                (
                    i,
                    Ok(OffsetsRecord {
                        key,
                        value: Some(value),
                    }),
                )
            })
            .collect()
    }

    /// Tombstones for every offset of a group, plus its group record (DeleteGroups).
    pub fn delete_group_records(&self, group_id: &str) -> Vec<OffsetsRecord> {
        let mut out: Vec<OffsetsRecord> = self
            .by_group
            .get(group_id)
            .map(|g| {
                g.keys()
                    .map(|(topic, partition)| OffsetsRecord {
                        key: OffsetsKey::Offset {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition: *partition,
                        }
                        .encode(),
                        value: None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(OffsetsRecord {
            key: OffsetsKey::Group {
                group: group_id.to_string(),
            }
            .encode(),
            value: None,
        });
        out
    }

    /// Tombstones for offsets of empty groups committed longer than `retention_ms` ago
    /// (offsets.retention.minutes; Kafka expires offsets only once the group is empty).
    pub fn expired_records(
        &self,
        groups: &Groups,
        now: i64,
        retention_ms: i64,
    ) -> Vec<OffsetsRecord> {
        let mut out = Vec::new();
        for (group_id, offsets) in &self.by_group {
            let group = groups.get(group_id);
            let empty = group.is_none_or(|g| g.state() == GroupState::Empty);
            if !empty {
                continue;
            }
            // Kafka measures from when the group became empty, or the commit if later.
            let since = group.map(|g| g.state_timestamp).unwrap_or(0);
            for ((topic, partition), c) in offsets {
                if now - c.commit_timestamp.max(since) >= retention_ms {
                    out.push(OffsetsRecord {
                        key: OffsetsKey::Offset {
                            group: group_id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        }
                        .encode(),
                        value: None,
                    });
                }
            }
        }
        out
    }
}

/// The record that persists a group's generation after a rebalance.
pub fn group_record(groups: &Groups, group_id: &str) -> Option<OffsetsRecord> {
    let g = groups.get(group_id)?;
    Some(OffsetsRecord {
        key: OffsetsKey::Group {
            group: group_id.to_string(),
        }
        .encode(),
        value: Some(
            GroupValue {
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                generation: g.generation_id,
                protocol: g.protocol_name.clone(),
                leader: g.leader().map(str::to_string),
                current_state_timestamp: g.state_timestamp,
            }
            .encode(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::GroupConfig;

    fn commit(offsets: &mut Offsets, groups: &mut Groups, group: &str, at: i64) {
        let c = Committed {
            offset: 10,
            leader_epoch: 0,
            metadata: String::new(),
            commit_timestamp: at,
        };
        for (_, r) in Offsets::commit_records(group, &[("t".into(), 0, c)], 4096) {
            let r = r.unwrap();
            offsets.replay(groups, r.key, r.value, at).unwrap();
        }
    }

    #[test]
    fn offsets_of_empty_groups_expire_after_the_retention() {
        let mut groups = Groups::new(GroupConfig::default());
        let mut offsets = Offsets::default();
        commit(&mut offsets, &mut groups, "old", 1_000);
        commit(&mut offsets, &mut groups, "new", 50_000);
        let expired = offsets.expired_records(&groups, 60_000, 30_000);
        assert_eq!(expired.len(), 1);
        for r in expired {
            assert!(r.value.is_none(), "expiry writes tombstones");
            offsets.replay(&mut groups, r.key, r.value, 60_000).unwrap();
        }
        assert!(offsets.group("old").is_none());
        assert_eq!(offsets.get("new", "t", 0).map(|c| c.offset), Some(10));
    }

    #[test]
    fn metadata_over_the_limit_is_refused() {
        let c = Committed {
            offset: 1,
            leader_epoch: -1,
            metadata: "x".repeat(10),
            commit_timestamp: 0,
        };
        let r = Offsets::commit_records("g", &[("t".into(), 0, c)], 4);
        assert_eq!(r[0].1, Err(CommitError::OffsetMetadataTooLarge));
    }

    #[test]
    fn commits_from_outside_the_group_follow_kafka() {
        let groups = Groups::new(GroupConfig::default());
        // No group yet: a simple consumer (generation -1) may commit; a generation says it is stale.
        assert_eq!(Offsets::check_commit(&groups, "g", -1, "", None), Ok(()));
        assert_eq!(
            Offsets::check_commit(&groups, "g", 3, "m", None),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            Offsets::check_commit(&groups, "", -1, "", None),
            Err(GroupError::InvalidGroupId)
        );
    }
}
