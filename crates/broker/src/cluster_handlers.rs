//! Handlers of the APIs that exist for clusters: ElectLeaders (Kafka's
//! `kafka-leader-election.sh`), answered by the active controller through the broker's usual
//! forwarding of metadata changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_metadata::cluster::{ElectionType, TopicRef};
use brook_metadata::{ControllerOp, ControllerReply};
use brook_protocol::kafka::messages::elect_leaders_response::{
    PartitionResult, ReplicaElectionResult,
};
use brook_protocol::kafka::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
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
