//! Handlers of the group coordinator's APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups, OffsetDelete.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use brook_coordinator::offsets::CommitError;
use brook_coordinator::{Committed, GroupError, GroupState, JoinRequest, SyncRequest};
use brook_protocol::kafka::messages::delete_groups_response::DeletableGroupResult;
use brook_protocol::kafka::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use brook_protocol::kafka::messages::find_coordinator_response::Coordinator;
use brook_protocol::kafka::messages::join_group_response::JoinGroupResponseMember;
use brook_protocol::kafka::messages::leave_group_response::MemberResponse;
use brook_protocol::kafka::messages::list_groups_response::ListedGroup;
use brook_protocol::kafka::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use brook_protocol::kafka::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use brook_protocol::kafka::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use brook_protocol::kafka::messages::*;
use brook_protocol::kafka::protocol::StrBytes;
use brook_protocol::ResponseError;

use crate::errors::group_code;
use crate::state::{now_ms, Broker};

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}
fn gcode(e: GroupError) -> i16 {
    group_code(e).code()
}
fn err_code(r: Option<GroupError>) -> i16 {
    r.map(gcode).unwrap_or(0)
}

/// Who sent a request, for JoinGroup's member bookkeeping.
pub struct Caller<'a> {
    pub client_id: &'a str,
    pub client_host: String,
}

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn find_coordinator(
    broker: &Arc<Broker>,
    r: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 {
        r.coordinator_keys.clone()
    } else {
        vec![r.key.clone()]
    };
    let results: Vec<Coordinator> = keys
        .into_iter()
        .map(|key| {
            let mut c = Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            let check = match r.key_type {
                KEY_TYPE_GROUP => broker
                    .groups
                    .ensure_loaded(broker)
                    .map_err(|e| {
                        tracing::warn!(error = %e, "group coordinator unavailable");
                        ResponseError::CoordinatorNotAvailable
                    })
                    .and_then(|()| group_coordinator(broker, c.key.as_str())),
                // Transactions are not built yet: no coordinator for them.
                KEY_TYPE_TRANSACTION => Err(ResponseError::CoordinatorNotAvailable),
                _ => Err(ResponseError::InvalidRequest),
            };
            match check {
                Ok((node, host, port)) => {
                    c.node_id = BrokerId(node);
                    c.host = s(host);
                    c.port = port;
                }
                Err(e) => {
                    c.error_code = e.code();
                    c.error_message = Some(s(e.to_string()));
                    c.host = s("");
                }
            }
            c
        })
        .collect();
    if version >= 4 {
        FindCoordinatorResponse::default().with_coordinators(results)
    } else {
        let c = results.into_iter().next().unwrap_or_default();
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(c.error_message)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    }
}

/// The broker coordinating `group`: the leader of its `__consumer_offsets` partition.
fn group_coordinator(broker: &Broker, group: &str) -> Result<(i32, String, i32), ResponseError> {
    let image = broker.image();
    let partition =
        brook_coordinator::records::partition_for(group, broker.groups.settings.offsets_partitions);
    let leader = image
        .topic(crate::groups::CONSUMER_OFFSETS)
        .and_then(|t| t.partitions.get(&partition))
        .map(|p| p.leader)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    if leader == broker.config.node_id {
        let me = &broker.advertised;
        return Ok((leader, me.host.clone(), me.port as i32));
    }
    image
        .brokers
        .get(&leader)
        .map(|b| (leader, b.host.clone(), b.port))
        .ok_or(ResponseError::CoordinatorNotAvailable)
}

pub async fn join_group(
    broker: &Arc<Broker>,
    r: JoinGroupRequest,
    version: i16,
    caller: Caller<'_>,
) -> JoinGroupResponse {
    if let Err(e) = broker.groups.ensure_loaded(broker) {
        tracing::warn!(error = %e, "group coordinator unavailable");
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code())
            .with_generation_id(-1)
            .with_member_id(r.member_id);
    }
    let req = JoinRequest {
        group_id: r.group_id.to_string(),
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: caller.client_id.to_string(),
        client_host: caller.client_host,
        session_timeout_ms: r.session_timeout_ms,
        // v0 has no rebalance timeout: it is the session timeout.
        rebalance_timeout_ms: if version == 0 {
            r.session_timeout_ms
        } else {
            r.rebalance_timeout_ms
        },
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let resp = broker.groups.join(broker, req).await;
    JoinGroupResponse::default()
        .with_error_code(err_code(resp.error))
        .with_generation_id(resp.generation_id)
        .with_protocol_type(resp.protocol_type.map(s))
        .with_protocol_name(
            resp.protocol_name
                .map(s)
                .or_else(|| (version < 7).then(|| s(""))),
        )
        .with_leader(s(resp.leader))
        .with_member_id(s(resp.member_id))
        .with_members(
            resp.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(s))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub async fn sync_group(broker: &Arc<Broker>, r: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = r
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let req = SyncRequest {
        group_id: r.group_id.to_string(),
        generation_id: r.generation_id,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: r.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: r.protocol_name.as_ref().map(|s| s.to_string()),
        assignments,
    };
    let resp = broker.groups.sync(broker, req).await;
    SyncGroupResponse::default()
        .with_error_code(err_code(resp.error))
        .with_protocol_type(resp.protocol_type.map(s))
        .with_protocol_name(resp.protocol_name.map(s))
        .with_assignment(resp.assignment)
}

pub fn heartbeat(broker: &Arc<Broker>, r: HeartbeatRequest) -> HeartbeatResponse {
    let result = broker.groups.heartbeat(
        r.group_id.as_str(),
        r.generation_id,
        r.member_id.as_str(),
        r.group_instance_id.as_deref(),
    );
    HeartbeatResponse::default().with_error_code(err_code(result.err()))
}

pub fn leave_group(broker: &Arc<Broker>, r: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        r.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    match broker.groups.leave(broker, r.group_id.as_str(), &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(gcode(e)),
        Ok(results) => {
            if version < 3 {
                return LeaveGroupResponse::default().with_error_code(
                    results
                        .first()
                        .and_then(|r| r.err())
                        .map(gcode)
                        .unwrap_or(0),
                );
            }
            LeaveGroupResponse::default().with_members(
                members
                    .into_iter()
                    .zip(results)
                    .map(|((id, instance), res)| {
                        MemberResponse::default()
                            .with_member_id(s(id))
                            .with_group_instance_id(instance.map(s))
                            .with_error_code(err_code(res.err()))
                    })
                    .collect(),
            )
        }
    }
}

pub async fn offset_commit(broker: &Arc<Broker>, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let image = broker.image();
    let now = now_ms();
    // Partitions of unknown topics are answered individually; the rest are committed together.
    let mut wanted = Vec::new();
    let mut unknown = Vec::new();
    for t in &r.topics {
        let topic = image.topic(t.name.as_str());
        for p in &t.partitions {
            let exists =
                topic.is_some_and(|topic| topic.partitions.contains_key(&p.partition_index));
            if exists {
                wanted.push((
                    t.name.to_string(),
                    p.partition_index,
                    Committed {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        commit_timestamp: now,
                    },
                ));
            } else {
                unknown.push((t.name.to_string(), p.partition_index));
            }
        }
    }
    let result = broker
        .groups
        .ensure_loaded(broker)
        .map_err(|_| GroupError::CoordinatorNotAvailable)
        .and_then(|_| {
            broker.groups.commit(
                broker,
                r.group_id.as_str(),
                r.generation_id_or_member_epoch,
                r.member_id.as_str(),
                r.group_instance_id.as_deref(),
                wanted.clone(),
            )
        });
    // Answer once the ISR has the commit (acks=all, as Kafka's coordinator writes), so that a
    // failover of the coordinator keeps it.
    let result = match result {
        Ok((results, Some(written))) => {
            let deadline = tokio::time::Instant::now()
                + Duration::from_millis(crate::groups::OFFSETS_COMMIT_TIMEOUT_MS);
            if written
                .partition
                .wait_high_watermark(written.end, deadline)
                .await
            {
                Ok(results)
            } else {
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
        Ok((results, None)) => Ok(results),
        Err(e) => Err(e),
    };
    let mut by_topic: BTreeMap<String, Vec<OffsetCommitResponsePartition>> = BTreeMap::new();
    match result {
        Ok(results) => {
            for ((topic, p, _), res) in wanted.iter().zip(results) {
                let code = match res {
                    Ok(()) => 0,
                    Err(CommitError::OffsetMetadataTooLarge) => {
                        ResponseError::OffsetMetadataTooLarge.code()
                    }
                    Err(CommitError::Group(e)) => gcode(e),
                };
                by_topic.entry(topic.clone()).or_default().push(
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(*p)
                        .with_error_code(code),
                );
            }
        }
        Err(e) => {
            for (topic, p, _) in &wanted {
                by_topic.entry(topic.clone()).or_default().push(
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(*p)
                        .with_error_code(gcode(e)),
                );
            }
        }
    }
    for (topic, p) in unknown {
        by_topic.entry(topic).or_default().push(
            OffsetCommitResponsePartition::default()
                .with_partition_index(p)
                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
        );
    }
    OffsetCommitResponse::default().with_topics(
        by_topic
            .into_iter()
            .map(|(name, partitions)| {
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(s(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

/// A topic's partitions with their committed offsets, if any.
type TopicOffsets = (String, Vec<(i32, Option<Committed>)>);

/// Committed offsets for one group: every partition asked for (or all committed ones), with -1
/// for partitions without a commit, as Kafka answers.
fn group_offsets(
    broker: &Broker,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<TopicOffsets> {
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(t, parts)| {
                let parts = parts
                    .into_iter()
                    .map(|p| (p, broker.groups.committed(group, &t, p)))
                    .collect();
                (t, parts)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<(i32, Option<Committed>)>> = BTreeMap::new();
            for ((t, p), c) in broker.groups.fetch_offsets(group) {
                by_topic.entry(t).or_default().push((p, Some(c)));
            }
            by_topic.into_iter().collect()
        }
    }
}

/// OffsetFetch's view of a commit: offset, leader epoch and metadata; -1s for "no commit".
fn committed_fields(c: Option<Committed>) -> (i64, i32, String) {
    c.map(|c| (c.offset, c.leader_epoch, c.metadata))
        .unwrap_or((-1, -1, String::new()))
}

pub fn offset_fetch(
    broker: &Arc<Broker>,
    r: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let loaded = broker.groups.ensure_loaded(broker).is_ok();
    if version >= 8 {
        let groups = r
            .groups
            .iter()
            .map(|g| {
                let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                if !loaded {
                    return out.with_error_code(ResponseError::CoordinatorNotAvailable.code());
                }
                if !broker.groups.owns(g.group_id.as_str()) {
                    return out.with_error_code(ResponseError::NotCoordinator.code());
                }
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                out.topics = group_offsets(broker, g.group_id.as_str(), topics)
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, c)| {
                                        let (offset, epoch, meta) = committed_fields(c);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(s(meta)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                out
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if !loaded {
        return OffsetFetchResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code());
    }
    if !broker.groups.owns(r.group_id.as_str()) {
        return OffsetFetchResponse::default()
            .with_error_code(ResponseError::NotCoordinator.code());
    }
    let topics = r.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let topics = group_offsets(broker, r.group_id.as_str(), topics)
        .into_iter()
        .map(|(t, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(s(t)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, c)| {
                            let (offset, epoch, meta) = committed_fields(c);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(s(meta)))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub fn describe_groups(
    broker: &Arc<Broker>,
    r: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let _ = broker.groups.ensure_loaded(broker);
    // Asked before `with_groups` takes the coordinator's lock.
    let elsewhere: std::collections::HashSet<&str> = r
        .groups
        .iter()
        .map(|g| g.as_str())
        .filter(|g| !broker.groups.owns(g))
        .collect();
    let groups = broker.groups.with_groups(|groups, _| {
        r.groups
            .iter()
            .map(|id| {
                let mut out = DescribedGroup::default().with_group_id(id.clone());
                if elsewhere.contains(id.as_str()) {
                    out.error_code = ResponseError::NotCoordinator.code();
                    return out;
                }
                match groups.get(id.as_str()) {
                    None => {
                        out.group_state = s(GroupState::Dead.name());
                        if version >= 6 {
                            out.error_code = ResponseError::GroupIdNotFound.code();
                            out.error_message =
                                Some(s(format!("Group {} not found.", id.as_str())));
                        }
                    }
                    Some(g) => {
                        out.group_state = s(g.state().name());
                        out.protocol_type = s(g.protocol_type.clone().unwrap_or_default());
                        out.protocol_data = s(if g.state() == GroupState::Stable {
                            g.protocol_name.clone().unwrap_or_default()
                        } else {
                            String::new()
                        });
                        out.members = g
                            .describe_members()
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(s))
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect();
                    }
                }
                out
            })
            .collect()
    });
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn list_groups(broker: &Arc<Broker>, r: ListGroupsRequest) -> ListGroupsResponse {
    let _ = broker.groups.ensure_loaded(broker);
    let states: Vec<String> = r.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = r.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut groups: Vec<ListedGroup> = broker.groups.with_groups(|groups, _| {
        groups
            .iter()
            .filter(|g| states.is_empty() || states.contains(&g.state().name().to_lowercase()))
            .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(s(g.group_id.clone())))
                    .with_protocol_type(s(g.protocol_type.clone().unwrap_or_default()))
                    .with_group_state(s(g.state().name()))
                    .with_group_type(s("classic"))
            })
            .collect()
    });
    broker.groups.with_consumer_groups(|cgs| {
        groups.extend(
            cgs.iter()
                .filter(|g| states.is_empty() || states.contains(&g.state().to_lowercase()))
                .filter(|_| types.is_empty() || types.iter().any(|t| t == "consumer"))
                .map(|g| {
                    ListedGroup::default()
                        .with_group_id(GroupId(s(g.group_id.clone())))
                        .with_protocol_type(s("consumer"))
                        .with_group_state(s(g.state()))
                        .with_group_type(s("consumer"))
                }),
        )
    });
    ListGroupsResponse::default().with_groups(groups)
}

pub fn delete_groups(broker: &Arc<Broker>, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let _ = broker.groups.ensure_loaded(broker);
    let results = r
        .groups_names
        .iter()
        .map(|g| {
            let res = if broker.groups.owns(g.as_str()) {
                broker.groups.delete_group(broker, g.as_str())
            } else {
                Err(GroupError::NotCoordinator)
            };
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(err_code(res.err()))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

/// Topics a classic consumer group's members subscribe to, from their subscription metadata.
fn subscribed_topics(metadata: &[bytes::Bytes]) -> Vec<String> {
    use brook_protocol::kafka::messages::ConsumerProtocolSubscription;
    use brook_protocol::kafka::protocol::Decodable;
    let mut out = Vec::new();
    for m in metadata {
        let mut b = m.clone();
        let Ok(version) = bytes::Buf::try_get_i16(&mut b) else {
            continue;
        };
        if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut b, version.clamp(0, 3)) {
            out.extend(sub.topics.iter().map(|t| t.to_string()));
        }
    }
    out
}

pub fn offset_delete(broker: &Arc<Broker>, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let _ = broker.groups.ensure_loaded(broker);
    let group = r.group_id.to_string();
    if !broker.groups.owns(&group) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::NotCoordinator.code());
    }
    let state = broker.groups.with_groups(|groups, offsets| {
        let g = groups.get(&group);
        if g.is_none() && offsets.group(&group).is_none() {
            return Err(GroupError::GroupIdNotFound);
        }
        let subscribed = match g {
            Some(g)
                if g.state() != GroupState::Empty
                    && g.protocol_type.as_deref() == Some("consumer") =>
            {
                subscribed_topics(&g.member_metadata())
            }
            _ => vec![],
        };
        Ok(subscribed)
    });
    let subscribed = match state {
        Ok(s) => s,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(gcode(e)),
    };
    let mut to_delete = Vec::new();
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let busy = subscribed.iter().any(|x| x == t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if busy {
                        ResponseError::GroupSubscribedToTopic.code()
                    } else {
                        to_delete.push((t.name.to_string(), p.partition_index));
                        0
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    if let Err(e) = broker.groups.delete_offsets(broker, &group, &to_delete) {
        return OffsetDeleteResponse::default().with_error_code(gcode(e));
    }
    OffsetDeleteResponse::default().with_topics(topics)
}

fn assignment_to_wire(
    a: &brook_coordinator::consumer_group::Assignment,
) -> Vec<brook_protocol::kafka::messages::consumer_group_heartbeat_response::TopicPartitions> {
    a.iter()
        .map(|(t, ps)| {
            brook_protocol::kafka::messages::consumer_group_heartbeat_response::TopicPartitions::default()
                .with_topic_id(*t)
                .with_partitions(ps.iter().copied().collect())
        })
        .collect()
}

pub fn consumer_group_heartbeat(
    broker: &Arc<Broker>,
    r: ConsumerGroupHeartbeatRequest,
    caller: Caller<'_>,
) -> ConsumerGroupHeartbeatResponse {
    use brook_coordinator::consumer_group::Heartbeat;
    use brook_protocol::kafka::messages::consumer_group_heartbeat_response::Assignment;
    if broker.groups.ensure_loaded(broker).is_err() {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code());
    }
    if !broker.groups.owns(r.group_id.as_str()) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::NotCoordinator.code());
    }
    // An empty regex means "no regex subscription" (it is how a client clears one).
    if r.subscribed_topic_regex
        .as_ref()
        .is_some_and(|x| !x.is_empty())
    {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(s(
                "regular expression subscriptions are not supported yet",
            )));
    }
    let req = Heartbeat {
        group_id: r.group_id.to_string(),
        member_id: r.member_id.to_string(),
        member_epoch: r.member_epoch,
        instance_id: r.instance_id.as_ref().map(|x| x.to_string()),
        rack_id: r.rack_id.as_ref().map(|x| x.to_string()),
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        subscribed_topic_names: r
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        server_assignor: r.server_assignor.as_ref().map(|x| x.to_string()),
        owned: r.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (tp.topic_id, tp.partitions.iter().copied().collect()))
                .collect()
        }),
        client_id: caller.client_id.to_string(),
        client_host: caller.client_host,
    };
    match broker.groups.consumer_heartbeat(broker, req) {
        Ok(resp) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(resp.member_id)))
            .with_member_epoch(resp.member_epoch)
            .with_heartbeat_interval_ms(resp.heartbeat_interval_ms)
            .with_assignment(
                resp.assignment
                    .map(|a| Assignment::default().with_topic_partitions(assignment_to_wire(&a))),
            ),
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(crate::errors::consumer_group_code(e).code())
            .with_member_epoch(-1),
    }
}

pub fn consumer_group_describe(
    broker: &Arc<Broker>,
    r: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    use brook_protocol::kafka::messages::consumer_group_describe_response::{
        Assignment, DescribedGroup, Member, TopicPartitions,
    };
    let image = broker.image();
    let wire = |a: &brook_coordinator::consumer_group::Assignment| {
        Assignment::default().with_topic_partitions(
            a.iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(*t)
                        .with_topic_name(TopicName(s(image
                            .topic_by_id(t)
                            .map(|x| x.name.clone())
                            .unwrap_or_default())))
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect(),
        )
    };
    let elsewhere: std::collections::HashSet<&str> = r
        .group_ids
        .iter()
        .map(|g| g.as_str())
        .filter(|g| !broker.groups.owns(g))
        .collect();
    let groups = broker.groups.with_consumer_groups(|groups| {
        r.group_ids
            .iter()
            .map(|id| match groups.get(id.as_str()) {
                _ if elsewhere.contains(id.as_str()) => DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(ResponseError::NotCoordinator.code()),
                None => DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_group_state(s("Dead"))
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(s(format!("Group {} not found.", id.as_str())))),
                Some(g) => DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_group_state(s(g.state()))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(s(g.assignor.clone()))
                    .with_members(
                        g.members
                            .values()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(s(m.member_id.clone()))
                                    .with_instance_id(m.instance_id.clone().map(s))
                                    .with_rack_id(m.rack_id.clone().map(s))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(s(m.client_id.clone()))
                                    .with_client_host(s(m.client_host.clone()))
                                    .with_subscribed_topic_names(
                                        m.subscribed
                                            .iter()
                                            .map(|t| TopicName(s(t.clone())))
                                            .collect(),
                                    )
                                    .with_assignment(wire(&m.assigned))
                                    .with_target_assignment(wire(
                                        &g.target.get(&m.member_id).cloned().unwrap_or_default(),
                                    ))
                                    .with_member_type(1)
                            })
                            .collect(),
                    ),
            })
            .collect()
    });
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
