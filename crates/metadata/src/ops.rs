//! Controller operations as values: every metadata change a broker can ask for, serializable so a
//! broker that is not the active controller can forward it (Kafka's forwarding to the controller),
//! and executed by one function over the image so the single-node store and the Raft quorum run
//! exactly the same validation. Executing an operation does no I/O: it returns the records to
//! append and the answer to give once they are committed.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cluster::{self, AlterPartitionRequest, ElectionResult, ElectionType, TopicRef};
use crate::controller::{self, ConfigOp, ControllerDefaults, ControllerError, NewTopic};
use crate::image::{MetadataImage, PartitionImage};
use crate::reassignment::{ReassignmentRequest, ReassignmentResult};
use crate::record::MetadataRecord;

/// A metadata change requested of the controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerOp {
    /// CreateTopics (one topic). With `if_missing`, an existing topic is not an error (topic
    /// auto-creation, where another request may have created it meanwhile).
    CreateTopic {
        topic: NewTopic,
        defaults: ControllerDefaults,
        validate_only: bool,
        if_missing: bool,
    },
    DeleteTopic {
        topic_id: Uuid,
    },
    CreatePartitions {
        topic: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    },
    /// Legacy AlterConfigs on a topic: the given set replaces every dynamic config.
    ReplaceTopicConfigs {
        topic: String,
        configs: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    /// Legacy AlterConfigs on a broker (`None`: the cluster-wide default).
    ReplaceBrokerConfigs {
        broker: Option<i32>,
        configs: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    IncrementalTopicConfigs {
        topic: String,
        ops: Vec<(String, ConfigOp)>,
        validate_only: bool,
    },
    IncrementalBrokerConfigs {
        broker: Option<i32>,
        ops: Vec<(String, ConfigOp)>,
        validate_only: bool,
    },
    /// Reserve the next block of producer ids.
    AllocateProducerIds,
    /// A broker (re-)registers (Kafka's BrokerRegistration); it starts fenced.
    RegisterBroker {
        node_id: i32,
        host: String,
        port: i32,
        rack: Option<String>,
    },
    /// A registered broker heartbeats and may serve again.
    UnfenceBroker {
        node_id: i32,
    },
    /// A broker's session expired: fence it and move its leaderships. `unclean_default` is the
    /// controller's `unclean.leader.election.enable`, used for topics without their own value.
    FenceBroker {
        node_id: i32,
        unclean_default: bool,
    },
    /// A broker is shutting down cleanly: move its leaderships first (never unclean).
    ControlledShutdown {
        node_id: i32,
    },
    /// A partition leader's ISR change (Kafka's AlterPartition).
    AlterPartition(AlterPartitionRequest),
    /// Kafka's ElectLeaders; `partitions: None` means all.
    ElectLeaders {
        election_type: ElectionType,
        partitions: Option<Vec<(TopicRef, i32)>>,
    },
    /// `auto.leader.rebalance.enable`: preferred elections where a broker's leadership share is
    /// off by more than `imbalance_percentage`.
    AutoRebalance {
        imbalance_percentage: i32,
    },
    /// Kafka's AlterPartitionReassignments.
    AlterPartitionReassignments(Vec<ReassignmentRequest>),
}

/// What a committed operation answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControllerReply {
    Done,
    TopicCreated {
        topic_id: Uuid,
        num_partitions: i32,
        replication_factor: i16,
    },
    /// The first id of the reserved block of [`controller::PRODUCER_ID_BLOCK`] ids.
    ProducerIds {
        first: i64,
    },
    Registered {
        broker_epoch: i64,
    },
    /// The partition's state after an AlterPartition.
    PartitionAltered(PartitionImage),
    Elected(Vec<ElectionResult>),
    Reassignments(Vec<ReassignmentResult>),
}

impl ControllerOp {
    /// Validates the operation against `image`: the records to append (none for a validate-only
    /// request) and the answer.
    pub fn execute(
        &self,
        image: &MetadataImage,
    ) -> Result<(Vec<MetadataRecord>, ControllerReply), ControllerError> {
        let unless = |validate_only: bool, records: Vec<MetadataRecord>| {
            if validate_only {
                Vec::new()
            } else {
                records
            }
        };
        Ok(match self {
            ControllerOp::CreateTopic {
                topic,
                defaults,
                validate_only,
                if_missing,
            } => {
                if *if_missing && image.topic(&topic.name).is_some() {
                    return Ok((Vec::new(), ControllerReply::Done));
                }
                let created = controller::create_topic(image, *defaults, topic)?;
                (
                    unless(*validate_only, created.records),
                    ControllerReply::TopicCreated {
                        topic_id: created.topic_id,
                        num_partitions: created.num_partitions,
                        replication_factor: created.replication_factor,
                    },
                )
            }
            ControllerOp::DeleteTopic { topic_id } => (
                controller::delete_topic(image, *topic_id)?,
                ControllerReply::Done,
            ),
            ControllerOp::CreatePartitions {
                topic,
                count,
                assignments,
                validate_only,
            } => (
                unless(
                    *validate_only,
                    controller::create_partitions(image, topic, *count, assignments.as_deref())?,
                ),
                ControllerReply::Done,
            ),
            ControllerOp::ReplaceTopicConfigs {
                topic,
                configs,
                validate_only,
            } => (
                unless(
                    *validate_only,
                    controller::replace_topic_configs(image, topic, configs)?,
                ),
                ControllerReply::Done,
            ),
            ControllerOp::ReplaceBrokerConfigs {
                broker,
                configs,
                validate_only,
            } => (
                unless(
                    *validate_only,
                    controller::replace_broker_configs(image, *broker, configs)?,
                ),
                ControllerReply::Done,
            ),
            ControllerOp::IncrementalTopicConfigs {
                topic,
                ops,
                validate_only,
            } => (
                unless(
                    *validate_only,
                    controller::alter_topic_configs_incremental(image, topic, ops)?,
                ),
                ControllerReply::Done,
            ),
            ControllerOp::IncrementalBrokerConfigs {
                broker,
                ops,
                validate_only,
            } => (
                unless(
                    *validate_only,
                    controller::alter_broker_configs_incremental(image, *broker, ops)?,
                ),
                ControllerReply::Done,
            ),
            ControllerOp::AllocateProducerIds => {
                let (first, record) = controller::allocate_producer_ids(image);
                (vec![record], ControllerReply::ProducerIds { first })
            }
            ControllerOp::RegisterBroker {
                node_id,
                host,
                port,
                rack,
            } => (
                cluster::register_broker(image, *node_id, host, *port, rack.as_deref()),
                ControllerReply::Registered {
                    broker_epoch: image.next_broker_epoch,
                },
            ),
            ControllerOp::UnfenceBroker { node_id } => (
                cluster::unfence_broker(image, *node_id),
                ControllerReply::Done,
            ),
            ControllerOp::FenceBroker {
                node_id,
                unclean_default,
            } => {
                let unclean = |topic: &str| {
                    image
                        .topic_configs(topic)
                        .and_then(|c| c.get("unclean.leader.election.enable"))
                        .map(|v| v.eq_ignore_ascii_case("true"))
                        .unwrap_or(*unclean_default)
                };
                (
                    cluster::fence_broker(image, *node_id, unclean),
                    ControllerReply::Done,
                )
            }
            ControllerOp::ControlledShutdown { node_id } => (
                cluster::begin_controlled_shutdown(image, *node_id),
                ControllerReply::Done,
            ),
            ControllerOp::AlterPartition(req) => {
                let (records, state) = cluster::alter_partition(image, req)?;
                (records, ControllerReply::PartitionAltered(state))
            }
            ControllerOp::ElectLeaders {
                election_type,
                partitions,
            } => {
                let (records, results) =
                    cluster::elect_leaders(image, *election_type, partitions.as_deref());
                (records, ControllerReply::Elected(results))
            }
            ControllerOp::AutoRebalance {
                imbalance_percentage,
            } => (
                cluster::auto_rebalance_with(image, (*imbalance_percentage).max(0) as u32),
                ControllerReply::Done,
            ),
            ControllerOp::AlterPartitionReassignments(wanted) => {
                let (records, results) =
                    crate::reassignment::alter_partition_reassignments(image, wanted);
                (records, ControllerReply::Reassignments(results))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ConfigResource;

    fn image_with_broker() -> MetadataImage {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::RegisterBroker {
            node_id: 1,
            host: "localhost".into(),
            port: 9092,
            rack: None,
            epoch: 0,
            fenced: false,
        });
        image
    }

    fn create(name: &str, validate_only: bool, if_missing: bool) -> ControllerOp {
        ControllerOp::CreateTopic {
            topic: NewTopic {
                name: name.into(),
                num_partitions: 2,
                replication_factor: -1,
                ..Default::default()
            },
            defaults: ControllerDefaults {
                num_partitions: 1,
                default_replication_factor: 1,
            },
            validate_only,
            if_missing,
        }
    }

    #[test]
    fn an_operation_survives_serialization_and_validate_only_writes_nothing() {
        let mut image = image_with_broker();
        let op: ControllerOp =
            serde_json::from_str(&serde_json::to_string(&create("t", true, false)).unwrap())
                .unwrap();
        let (records, reply) = op.execute(&image).unwrap();
        assert!(records.is_empty());
        assert!(matches!(
            reply,
            ControllerReply::TopicCreated {
                num_partitions: 2,
                replication_factor: 1,
                ..
            }
        ));
        let (records, _) = create("t", false, false).execute(&image).unwrap();
        for r in &records {
            image.apply(r);
        }
        assert_eq!(image.topic("t").unwrap().partitions.len(), 2);
        // A second create is refused, unless it is an auto-create that finds the topic there.
        assert_eq!(
            create("t", false, false).execute(&image).unwrap_err(),
            ControllerError::TopicAlreadyExists("t".into())
        );
        assert_eq!(
            create("t", false, true).execute(&image).unwrap(),
            (vec![], ControllerReply::Done)
        );
    }

    #[test]
    fn errors_and_config_operations_round_trip() {
        let image = image_with_broker();
        let op = ControllerOp::IncrementalBrokerConfigs {
            broker: None,
            ops: vec![("log.retention.ms".into(), ConfigOp::Set("1000".into()))],
            validate_only: false,
        };
        let (records, _) = op.execute(&image).unwrap();
        assert_eq!(
            records,
            vec![MetadataRecord::Config {
                resource: ConfigResource::Broker(None),
                name: "log.retention.ms".into(),
                value: Some("1000".into()),
            }]
        );
        let e = ControllerOp::DeleteTopic {
            topic_id: Uuid::new_v4(),
        }
        .execute(&image)
        .unwrap_err();
        let back: ControllerError =
            serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, ControllerError::UnknownTopicId);
    }
}
