//! The admin client's consumer-group operations: listing groups on every broker, describing them
//! through their coordinator (members with their decoded consumer-protocol assignments), reading,
//! altering and deleting their committed offsets, and deleting groups — what Kafka's
//! `Admin.listGroups`, `describeConsumerGroups`, `listConsumerGroupOffsets`,
//! `alterConsumerGroupOffsets`, `deleteConsumerGroups` and `deleteConsumerGroupOffsets` do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use brook_protocol::kafka::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use brook_protocol::kafka::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use brook_protocol::kafka::messages::offset_fetch_request::OffsetFetchRequestTopic;
use brook_protocol::kafka::messages::*;
use brook_protocol::kafka::protocol::Decodable;
use brook_protocol::ResponseError;
use bytes::{Buf, Bytes};

use crate::admin::{s, tn, Admin};
use crate::cluster::BrokerInfo;
use crate::connection::Connection;
use crate::error::{check, unexpected, ClientError};

/// A topic partition: (topic, partition).
pub type TopicPartition = (String, i32);

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// The protocol type ("consumer" for consumer groups; empty for a group with only offsets).
    pub protocol_type: String,
    /// The state as the broker names it ("Stable", "Empty", ...); empty before ListGroups v4.
    pub state: String,
    /// "classic" or "consumer" (KIP-848); empty before ListGroups v5.
    pub group_type: String,
}

/// A group member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// The static membership id (group.instance.id), if any.
    pub group_instance_id: Option<String>,
    /// The member's client.id.
    pub client_id: String,
    /// The member's host as the coordinator saw it (Kafka prints it with a leading '/').
    pub host: String,
    /// The partitions assigned to it, decoded from its consumer-protocol assignment; empty when
    /// the group is not a consumer group or the member has no assignment yet.
    pub assignment: Vec<TopicPartition>,
    /// The member epoch (KIP-848 consumer groups only).
    pub member_epoch: Option<i32>,
    /// The partitions the group's assignor wants it to own (KIP-848 consumer groups only).
    pub target_assignment: Option<Vec<TopicPartition>>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// The state ("Stable", "Empty", "PreparingRebalance", "CompletingRebalance", "Dead").
    /// A group the coordinator does not know is "Dead", as Kafka reports it.
    pub state: String,
    /// The protocol type ("consumer" for consumer groups).
    pub protocol_type: String,
    /// The chosen assignor ("range", "roundrobin", ...) once the group is stable; else empty.
    pub assignor: String,
    /// The members.
    pub members: Vec<MemberDescription>,
    /// The group's coordinator.
    pub coordinator: BrokerInfo,
    /// "classic" for groups of the classic protocol, "consumer" for KIP-848 consumer groups.
    pub group_type: String,
    /// The group epoch (KIP-848 consumer groups only).
    pub group_epoch: Option<i32>,
    /// The target assignment epoch (KIP-848 consumer groups only).
    pub target_assignment_epoch: Option<i32>,
}

impl GroupDescription {
    /// Whether the coordinator knows nothing of the group (Kafka's "does not exist").
    pub fn is_dead(&self) -> bool {
        self.state == "Dead"
    }
}

/// Decodes a consumer-protocol assignment (a version i16 then ConsumerProtocolAssignment) into
/// its partitions, sorted. Empty bytes are an empty assignment.
pub fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>, ClientError> {
    let mut data = bytes.clone();
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let version = data
        .try_get_i16()
        .map_err(|_| ClientError::Protocol("truncated consumer assignment".into()))?;
    if version < 0 {
        return Err(ClientError::Protocol(format!(
            "bad consumer assignment version {version}"
        )));
    }
    // Newer versions only append fields, so they decode as the newest version we know.
    let a = ConsumerProtocolAssignment::decode(&mut data, version.min(3))
        .map_err(|e| ClientError::Protocol(format!("bad consumer assignment: {e}")))?;
    let mut out: Vec<TopicPartition> = a
        .assigned_partitions
        .into_iter()
        .flat_map(|t| {
            let topic = t.topic.to_string();
            t.partitions.into_iter().map(move |p| (topic.clone(), p))
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// A committed offset as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will read.
    pub offset: i64,
    /// The leader epoch committed with it, if any.
    pub leader_epoch: Option<i32>,
    /// The metadata string committed with it.
    pub metadata: String,
}

/// The result of deleting one group.
pub type GroupResult = (String, Result<(), ClientError>);

impl Admin {
    /// ListGroups on every broker of the cluster (each lists the groups it coordinates), with an
    /// optional state filter (Kafka's state names, matched case-insensitively by the broker).
    pub async fn list_groups(&self, states: &[String]) -> Result<Vec<GroupListing>, ClientError> {
        let md = self.cluster.refresh(Some(&[])).await?;
        let ids: Vec<i32> = md.brokers.keys().copied().collect();
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for id in ids {
            let conn = self.cluster.broker(id).await?;
            let v = conn.version(ApiKey::ListGroups, 5)?;
            if !states.is_empty() && v < 4 {
                return Err(ClientError::Protocol(
                    "the broker cannot filter groups by state (ListGroups v4)".into(),
                ));
            }
            let req = ListGroupsRequest::default()
                .with_states_filter(states.iter().map(|x| s(x.clone())).collect());
            let (_, resp) = conn
                .send(RequestKind::ListGroups(req), ApiKey::ListGroups, 5)
                .await?;
            let ResponseKind::ListGroups(r) = resp else {
                return Err(unexpected("ListGroups"));
            };
            check(r.error_code, None)?;
            for g in r.groups {
                let group_id = g.group_id.to_string();
                if seen.insert(group_id.clone()) {
                    out.push(GroupListing {
                        group_id,
                        protocol_type: g.protocol_type.to_string(),
                        state: g.group_state.to_string(),
                        group_type: g.group_type.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// FindCoordinator for a group: the coordinator's address and a connection to it. While the
    /// coordinator is loading or not yet available, asks again (every 100 ms) for up to the
    /// request timeout, as Kafka's admin retries retriable errors.
    pub async fn find_group_coordinator(
        &self,
        group: &str,
    ) -> Result<(BrokerInfo, Arc<Connection>), ClientError> {
        let deadline = tokio::time::Instant::now() + self.cluster.config.request_timeout;
        loop {
            match self.find_group_coordinator_once(group).await {
                Err(e)
                    if matches!(e.code(), Some(14..=16))
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn find_group_coordinator_once(
        &self,
        group: &str,
    ) -> Result<(BrokerInfo, Arc<Connection>), ClientError> {
        let conn = self.cluster.any().await?;
        let key = s(group);
        // v4+ batches keys; earlier versions carry one key. A request holds only its version's.
        let req = if conn.version(ApiKey::FindCoordinator, 4)? >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        }
        .with_key_type(0);
        let (v, resp) = conn
            .send(
                RequestKind::FindCoordinator(req),
                ApiKey::FindCoordinator,
                4,
            )
            .await?;
        let ResponseKind::FindCoordinator(r) = resp else {
            return Err(unexpected("FindCoordinator"));
        };
        let info = if v >= 4 {
            let c = r
                .coordinators
                .first()
                .ok_or_else(|| ClientError::Protocol("no coordinator in the answer".into()))?;
            check(
                c.error_code,
                c.error_message.as_ref().map(|m| m.to_string()),
            )?;
            BrokerInfo {
                node_id: c.node_id.0,
                host: c.host.to_string(),
                port: c.port,
                rack: None,
            }
        } else {
            check(
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )?;
            BrokerInfo {
                node_id: r.node_id.0,
                host: r.host.to_string(),
                port: r.port,
                rack: None,
            }
        };
        let conn = self.cluster.broker(info.node_id).await?;
        Ok((info, conn))
    }

    /// DescribeGroups through each group's coordinator, in the order asked. A group the
    /// coordinator does not know comes back in state "Dead" with no members, as Kafka's admin
    /// reports it before DescribeGroups v6 (and GROUP_ID_NOT_FOUND from v6 is mapped to the same).
    pub async fn describe_groups(
        &self,
        groups: &[String],
    ) -> Result<Vec<GroupDescription>, ClientError> {
        let mut out = Vec::new();
        for group in groups {
            let (coordinator, conn) = self.find_group_coordinator(group).await?;
            let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group.clone()))]);
            let (_, resp) = conn
                .send(RequestKind::DescribeGroups(req), ApiKey::DescribeGroups, 5)
                .await?;
            let ResponseKind::DescribeGroups(r) = resp else {
                return Err(unexpected("DescribeGroups"));
            };
            let g = r
                .groups
                .into_iter()
                .next()
                .ok_or_else(|| unexpected("DescribeGroups"))?;
            let not_found = ResponseError::GroupIdNotFound.code();
            if g.error_code == not_found {
                let dead = GroupDescription {
                    group_id: group.clone(),
                    state: "Dead".into(),
                    protocol_type: String::new(),
                    assignor: String::new(),
                    members: Vec::new(),
                    coordinator: coordinator.clone(),
                    group_type: "classic".into(),
                    group_epoch: None,
                    target_assignment_epoch: None,
                };
                out.push(self.describe_consumer_group(&conn, dead).await?);
                continue;
            }
            check(g.error_code, g.error_message.map(|m| m.to_string()))?;
            let consumer = g.protocol_type.is_empty() || g.protocol_type.as_str() == "consumer";
            let mut members = Vec::new();
            for m in g.members {
                let assignment = if consumer {
                    decode_assignment(&m.member_assignment)?
                } else {
                    Vec::new()
                };
                members.push(MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment,
                    member_epoch: None,
                    target_assignment: None,
                });
            }
            let described = GroupDescription {
                group_id: group.clone(),
                state: g.group_state.to_string(),
                protocol_type: g.protocol_type.to_string(),
                assignor: g.protocol_data.to_string(),
                members,
                coordinator,
                group_type: "classic".into(),
                group_epoch: None,
                target_assignment_epoch: None,
            };
            if described.is_dead() {
                out.push(self.describe_consumer_group(&conn, described).await?);
            } else {
                out.push(described);
            }
        }
        Ok(out)
    }

    /// ConsumerGroupDescribe (KIP-848) for a group the classic DescribeGroups does not know:
    /// the group as a consumer group, or `dead` unchanged when it is not one either (or the
    /// coordinator does not speak ConsumerGroupDescribe).
    async fn describe_consumer_group(
        &self,
        conn: &Connection,
        dead: GroupDescription,
    ) -> Result<GroupDescription, ClientError> {
        if conn.version(ApiKey::ConsumerGroupDescribe, 1).is_err() {
            return Ok(dead);
        }
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(s(dead.group_id.clone()))]);
        let (_, resp) = conn
            .send(
                RequestKind::ConsumerGroupDescribe(req),
                ApiKey::ConsumerGroupDescribe,
                1,
            )
            .await?;
        let ResponseKind::ConsumerGroupDescribe(r) = resp else {
            return Err(unexpected("ConsumerGroupDescribe"));
        };
        let Some(g) = r.groups.into_iter().next() else {
            return Err(unexpected("ConsumerGroupDescribe"));
        };
        if g.error_code == ResponseError::GroupIdNotFound.code() {
            return Ok(dead);
        }
        check(g.error_code, g.error_message.map(|m| m.to_string()))?;
        type Wire = brook_protocol::kafka::messages::consumer_group_describe_response::Assignment;
        let partitions = |a: &Wire| -> Vec<TopicPartition> {
            let mut v: Vec<TopicPartition> = a
                .topic_partitions
                .iter()
                .flat_map(|t| {
                    let name = t.topic_name.to_string();
                    t.partitions.iter().map(move |p| (name.clone(), *p))
                })
                .collect();
            v.sort();
            v
        };
        Ok(GroupDescription {
            state: g.group_state.to_string(),
            protocol_type: "consumer".into(),
            assignor: g.assignor_name.to_string(),
            members: g
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.instance_id.as_ref().map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: partitions(&m.assignment),
                    member_epoch: Some(m.member_epoch),
                    target_assignment: Some(partitions(&m.target_assignment)),
                })
                .collect(),
            group_type: "consumer".into(),
            group_epoch: Some(g.group_epoch),
            target_assignment_epoch: Some(g.assignment_epoch),
            ..dead
        })
    }

    /// OffsetFetch from the group's coordinator: the committed offset of every partition the
    /// group has committed (`partitions` = None), or of the given ones. Partitions without a
    /// commit are left out, as Kafka's admin leaves them out.
    pub async fn list_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        Ok(self
            .list_group_offsets_detailed(group, partitions)
            .await?
            .into_iter()
            .map(|(tp, c)| (tp, c.offset))
            .collect())
    }

    /// [`Admin::list_group_offsets`] with each commit's leader epoch and metadata.
    pub async fn list_group_offsets_detailed(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, CommittedOffset>, ClientError> {
        let (_, conn) = self.find_group_coordinator(group).await?;
        let topics = partitions.map(|ps| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in ps {
                by_topic.entry(t).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(tn(t))
                        .with_partition_indexes(ps)
                })
                .collect()
        });
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(topics);
        let (_, resp) = conn
            .send(RequestKind::OffsetFetch(req), ApiKey::OffsetFetch, 7)
            .await?;
        let ResponseKind::OffsetFetch(r) = resp else {
            return Err(unexpected("OffsetFetch"));
        };
        check(r.error_code, None)?;
        let mut out = BTreeMap::new();
        for t in r.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    Some(format!(
                        "offset of {}-{}",
                        t.name.as_str(),
                        p.partition_index
                    )),
                )?;
                if p.committed_offset >= 0 {
                    out.insert(
                        (t.name.to_string(), p.partition_index),
                        CommittedOffset {
                            offset: p.committed_offset,
                            leader_epoch: (p.committed_leader_epoch >= 0)
                                .then_some(p.committed_leader_epoch),
                            metadata: p.metadata.map(|m| m.to_string()).unwrap_or_default(),
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// OffsetCommit as an outsider (generation -1, empty member id), as Kafka's admin does:
    /// the coordinator accepts it only while the group has no members (Empty or unknown);
    /// otherwise each partition fails with the coordinator's error (UNKNOWN_MEMBER_ID).
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<Vec<(TopicPartition, Result<(), ClientError>)>, ClientError> {
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let (_, conn) = self.find_group_coordinator(group).await?;
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), o) in offsets {
            topics.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(s(""))),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(tn(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let (_, resp) = conn
            .send(RequestKind::OffsetCommit(req), ApiKey::OffsetCommit, 8)
            .await?;
        let ResponseKind::OffsetCommit(r) = resp else {
            return Err(unexpected("OffsetCommit"));
        };
        let mut out = Vec::new();
        for t in r.topics {
            for p in t.partitions {
                out.push((
                    (t.name.to_string(), p.partition_index),
                    check(p.error_code, None),
                ));
            }
        }
        Ok(out)
    }

    /// DeleteGroups through each group's coordinator; one result per group, in order
    /// (NON_EMPTY_GROUP for a group with members, GROUP_ID_NOT_FOUND for an unknown one).
    pub async fn delete_groups(&self, groups: &[String]) -> Result<Vec<GroupResult>, ClientError> {
        let mut out = Vec::new();
        for group in groups {
            let (_, conn) = self.find_group_coordinator(group).await?;
            let req =
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group.clone()))]);
            let (_, resp) = conn
                .send(RequestKind::DeleteGroups(req), ApiKey::DeleteGroups, 2)
                .await?;
            let ResponseKind::DeleteGroups(r) = resp else {
                return Err(unexpected("DeleteGroups"));
            };
            let res = r
                .results
                .into_iter()
                .find(|x| x.group_id.as_str() == group.as_str())
                .ok_or_else(|| unexpected("DeleteGroups"))?;
            out.push((group.clone(), check(res.error_code, None)));
        }
        Ok(out)
    }

    /// OffsetDelete: removes the group's committed offsets of the given partitions. The outer
    /// error is the group-level one (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP...); inside, one result
    /// per partition (GROUP_SUBSCRIBED_TO_TOPIC while a member subscribes to the topic).
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Result<(), ClientError>)>, ClientError> {
        let (_, conn) = self.find_group_coordinator(group).await?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t).or_default().push(*p);
        }
        let req = OffsetDeleteRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(tn(t))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let (_, resp) = conn
            .send(RequestKind::OffsetDelete(req), ApiKey::OffsetDelete, 0)
            .await?;
        let ResponseKind::OffsetDelete(r) = resp else {
            return Err(unexpected("OffsetDelete"));
        };
        check(r.error_code, None)?;
        let mut out = Vec::new();
        for t in r.topics {
            for p in t.partitions {
                out.push((
                    (t.name.to_string(), p.partition_index),
                    check(p.error_code, None),
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::kafka::messages::consumer_protocol_assignment::TopicPartition as Assigned;
    use brook_protocol::kafka::protocol::Encodable;
    use bytes::{BufMut, BytesMut};

    fn encode(version: i16, topics: &[(&str, &[i32])]) -> Bytes {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .iter()
                .map(|(t, ps)| {
                    Assigned::default()
                        .with_topic(tn(*t))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        a.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn assignments_decode_sorted_in_every_version() {
        for v in 0..=3 {
            let b = encode(v, &[("b", &[1, 0]), ("a", &[2])]);
            assert_eq!(
                decode_assignment(&b).unwrap(),
                vec![("a".into(), 2), ("b".into(), 0), ("b".into(), 1)],
                "version {v}"
            );
        }
    }

    #[test]
    fn librdkafkas_v0_bytes_decode() {
        // Version 0, one topic "t" with partitions 0 and 3, null user data: as librdkafka sends it.
        let raw: &[u8] = &[
            0, 0, // version
            0, 0, 0, 1, // one topic
            0, 1, b't', // "t"
            0, 0, 0, 2, // two partitions
            0, 0, 0, 0, 0, 0, 0, 3, // 0, 3
            0xff, 0xff, 0xff, 0xff, // null user data
        ];
        assert_eq!(
            decode_assignment(&Bytes::from_static(raw)).unwrap(),
            vec![("t".into(), 0), ("t".into(), 3)]
        );
    }

    #[test]
    fn empty_and_broken_assignments() {
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_err());
        // A future version decodes as the newest known one (fields are only appended).
        let mut b = BytesMut::from(&encode(3, &[("x", &[5])])[..]);
        b[1] = 7;
        assert_eq!(
            decode_assignment(&b.freeze()).unwrap(),
            vec![("x".into(), 5)]
        );
    }
}
