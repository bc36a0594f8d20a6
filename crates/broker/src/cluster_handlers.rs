//! Handlers of the APIs that exist for clusters: ElectLeaders (Kafka's
//! `kafka-leader-election.sh`) and AlterPartitionReassignments (`kafka-reassign-partitions.sh`),
//! answered by the active controller through the broker's usual forwarding of metadata changes,
//! and ListPartitionReassignments, answered from this broker's metadata image. DescribeQuorum
//! asks the active controller about the metadata log (`__cluster_metadata`).

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_metadata::cluster::{ElectionType, TopicRef};
use brook_metadata::reassignment::ReassignmentRequest;
use brook_metadata::{ControllerOp, ControllerReply};
use brook_protocol::kafka::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use brook_protocol::kafka::messages::elect_leaders_response::{
    PartitionResult, ReplicaElectionResult,
};
use brook_protocol::kafka::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use brook_protocol::kafka::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use brook_protocol::kafka::protocol::StrBytes;
use brook_protocol::ResponseError;

use crate::state::Broker;

/// ElectLeaders: election type 0 is PREFERRED, 1 UNCLEAN (v0 has no type: preferred).
pub fn elect_leaders(broker: &Arc<Broker>, r: ElectLeadersRequest) -> ElectLeadersResponse {
    let election_type = match r.election_type {
        0 => ElectionType::Preferred,
        1 => ElectionType::Unclean,
        other => {
            tracing::debug!(
                election_type = other,
                "ElectLeaders with an unknown election type"
            );
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code());
        }
    };
    let partitions: Option<Vec<(TopicRef, i32)>> = r.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (TopicRef::Name(t.topic.to_string()), *p))
            })
            .collect()
    });
    let image = broker.image();
    let name_of = |t: &TopicRef| match t {
        TopicRef::Name(n) => n.clone(),
        TopicRef::Id(id) => image
            .topic_by_id(id)
            .map(|t| t.name.clone())
            .unwrap_or_default(),
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    match broker.submit(ControllerOp::ElectLeaders {
        election_type,
        partitions: partitions.clone(),
    }) {
        Ok(ControllerReply::Elected(results)) => {
            for res in results {
                let (code, message) = match res.result {
                    Ok(()) => (0, None),
                    Err(e) => (e.code(), Some(StrBytes::from_string(e.to_string()))),
                };
                by_topic.entry(name_of(&res.topic)).or_default().push(
                    PartitionResult::default()
                        .with_partition_id(res.partition)
                        .with_error_code(code)
                        .with_error_message(message),
                );
            }
        }
        other => {
            let (code, message) = match other {
                Err(e) => crate::handlers::commit_error(&e),
                Ok(reply) => {
                    tracing::error!(?reply, "unexpected controller reply to ElectLeaders");
                    (
                        ResponseError::UnknownServerError.code(),
                        "unexpected controller reply".to_string(),
                    )
                }
            };
            // Every partition asked for gets the error (Kafka answers per partition).
            for (t, p) in partitions.into_iter().flatten() {
                by_topic.entry(name_of(&t)).or_default().push(
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_string(message.clone()))),
                );
            }
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(topic, partition_result)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partition_result(partition_result)
            })
            .collect(),
    )
}

/// AlterPartitionReassignments: each partition's new replicas, or `null` to cancel.
pub fn alter_partition_reassignments(
    broker: &Arc<Broker>,
    r: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let wanted: Vec<ReassignmentRequest> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| ReassignmentRequest {
                topic: t.name.to_string(),
                partition: p.partition_index,
                target: p
                    .replicas
                    .as_ref()
                    .map(|rs| rs.iter().map(|b| b.0).collect()),
            })
        })
        .collect();
    let outcome: Vec<(String, i32, i16, Option<String>)> =
        match broker.submit(ControllerOp::AlterPartitionReassignments(wanted.clone())) {
            Ok(ControllerReply::Reassignments(results)) => results
                .into_iter()
                .map(|res| match res.result {
                    Ok(()) => (res.topic, res.partition, 0, None),
                    Err(e) => (res.topic, res.partition, e.code(), Some(e.to_string())),
                })
                .collect(),
            other => {
                let (code, message) = match other {
                    Err(e) => crate::handlers::commit_error(&e),
                    Ok(reply) => {
                        tracing::error!(
                            ?reply,
                            "unexpected controller reply to AlterPartitionReassignments"
                        );
                        (
                            ResponseError::UnknownServerError.code(),
                            "unexpected controller reply".to_string(),
                        )
                    }
                };
                wanted
                    .into_iter()
                    .map(|w| (w.topic, w.partition, code, Some(message.clone())))
                    .collect()
            }
        };
    // Topics in request order, as Kafka answers.
    let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
    for (topic, partition, code, message) in outcome {
        let name = TopicName(StrBytes::from_string(topic));
        let entry = match topics.iter().position(|t| t.name == name) {
            Some(i) => &mut topics[i],
            None => {
                topics.push(ReassignableTopicResponse::default().with_name(name));
                topics.last_mut().expect("just pushed")
            }
        };
        entry.partitions.push(
            ReassignablePartitionResponse::default()
                .with_partition_index(partition)
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string)),
        );
    }
    AlterPartitionReassignmentsResponse::default().with_responses(topics)
}

/// ListPartitionReassignments: the reassignments in progress (all, or the partitions named).
pub fn list_partition_reassignments(
    broker: &Arc<Broker>,
    r: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let wanted: Option<Vec<(String, i32)>> = r.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(move |p| (t.name.to_string(), *p))
            })
            .collect()
    });
    let image = broker.image();
    let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut topics: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for o in brook_metadata::reassignment::list(&image, wanted.as_deref()) {
        topics.entry(o.topic).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(o.partition)
                .with_replicas(ids(o.replicas))
                .with_adding_replicas(ids(o.adding))
                .with_removing_replicas(ids(o.removing)),
        );
    }
    ListPartitionReassignmentsResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

/// The metadata log's name in DescribeQuorum, as in Kafka.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// DescribeQuorum (v0-2): the metadata log's leader, high watermark, voters and observers, from
/// the active controller. Only `__cluster_metadata` partition 0 exists.
pub fn describe_quorum(broker: &Arc<Broker>, r: DescribeQuorumRequest) -> DescribeQuorumResponse {
    use brook_protocol::kafka::messages::describe_quorum_response::{
        Listener, Node, PartitionData, ReplicaState, TopicData,
    };
    let state = |q: &crate::cluster::QuorumReplica| {
        ReplicaState::default()
            .with_replica_id(BrokerId(q.id))
            .with_log_end_offset(q.log_end_offset)
            .with_last_fetch_timestamp(q.last_fetch_ms)
            .with_last_caught_up_timestamp(q.last_caught_up_ms)
    };
    let mut described = None;
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = PartitionData::default().with_partition_index(p.partition_index);
                    if t.topic_name.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                        return out.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    }
                    match described.get_or_insert_with(|| broker.describe_quorum()) {
                        None => out
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(StrBytes::from_static_str(
                                "This broker runs without a controller quorum (single-node mode).",
                            ))),
                        Some(Err(e)) => out
                            .with_error_code(ResponseError::NotLeaderOrFollower.code())
                            .with_error_message(Some(StrBytes::from_string(e.clone()))),
                        Some(Ok(q)) => out
                            .with_leader_id(BrokerId(q.leader_id))
                            .with_leader_epoch(q.leader_epoch)
                            .with_high_watermark(q.high_watermark)
                            .with_current_voters(q.voters.iter().map(state).collect())
                            .with_observers(q.observers.iter().map(state).collect()),
                    }
                })
                .collect();
            TopicData::default()
                .with_topic_name(t.topic_name.clone())
                .with_partitions(partitions)
        })
        .collect();
    // v2 (KIP-853): the voters' endpoints. Directory ids stay the zero UUID: Brook's voters
    // have none.
    let cluster = &broker.config.cluster;
    let nodes = cluster
        .voters
        .iter()
        .map(|v| {
            Node::default()
                .with_node_id(BrokerId(v.id))
                .with_listeners(vec![Listener::default()
                    .with_name(StrBytes::from_string(
                        cluster.controller_listener_name.clone(),
                    ))
                    .with_host(StrBytes::from_string(v.host.clone()))
                    .with_port(v.port)])
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(topics)
        .with_nodes(nodes)
}
