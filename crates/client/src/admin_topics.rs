//! Admin calls that the topic and config tools need beyond [`crate::admin`]: topic descriptions
//! with eligible leader replicas (DescribeTopicPartitions, falling back to Metadata), configs with
//! their synonyms, and topic creation or growth with an explicit replica assignment.

use brook_protocol::kafka::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use brook_protocol::kafka::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use brook_protocol::kafka::messages::describe_configs_request::DescribeConfigsResource;
use brook_protocol::kafka::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use brook_protocol::kafka::messages::*;
use uuid::Uuid;

use crate::admin::{s, tn, Admin, ConfigEntry, ConfigResource, ConfigSource};
use crate::error::{check, unexpected, ClientError};

/// One synonym of a described config: where else its value may come from, highest precedence
/// first (DescribeConfigs with `include_synonyms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The synonym's name (the topic config itself, or the broker property it falls back to).
    pub name: String,
    /// Its value at that level (`None` for sensitive or unset values).
    pub value: Option<String>,
    /// The level that sets it.
    pub source: ConfigSource,
}

/// A described config with its synonyms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWithSynonyms {
    /// The config and its effective value.
    pub entry: ConfigEntry,
    /// Every level that sets it, highest precedence first.
    pub synonyms: Vec<ConfigSynonym>,
}

/// A partition as DescribeTopicPartitions reports it; `elr`/`last_known_elr` are `None` when the
/// broker did not say (an older broker, answered through Metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// The partition index.
    pub partition: i32,
    /// -1: no leader.
    pub leader: i32,
    /// The replicas' broker ids, preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// Eligible leader replicas (KIP-966).
    pub elr: Option<Vec<i32>>,
    /// The last known eligible leader replicas (KIP-966).
    pub last_known_elr: Option<Vec<i32>>,
}

/// A topic as DescribeTopicPartitions reports it, partitions sorted by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// The topic's id.
    pub topic_id: Uuid,
    /// Whether it is one of Kafka's internal topics (`__consumer_offsets`).
    pub is_internal: bool,
    /// Its partitions.
    pub partitions: Vec<PartitionDescription>,
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

impl Admin {
    /// DescribeConfigs of one resource, each config with its synonyms when `include_synonyms`.
    pub async fn describe_configs_with_synonyms(
        &self,
        resource: &ConfigResource,
        include_synonyms: bool,
    ) -> Result<Vec<ConfigWithSynonyms>, ClientError> {
        let (kind, name) = resource.wire();
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(include_synonyms)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(name)
                .with_configuration_keys(None)]);
        let conn = match resource {
            ConfigResource::Broker(id) => match id.parse::<i32>() {
                Ok(id) => self.cluster.broker(id).await?,
                Err(_) => self.cluster.any().await?,
            },
            ConfigResource::Topic(_) => self.cluster.any().await?,
        };
        let (_, resp) = conn
            .send(
                RequestKind::DescribeConfigs(req),
                ApiKey::DescribeConfigs,
                4,
            )
            .await?;
        let ResponseKind::DescribeConfigs(r) = resp else {
            return Err(unexpected("DescribeConfigs"));
        };
        let res = r
            .results
            .into_iter()
            .next()
            .ok_or_else(|| unexpected("DescribeConfigs"))?;
        check(res.error_code, res.error_message.map(|m| m.to_string()))?;
        Ok(res
            .configs
            .into_iter()
            .map(|c| ConfigWithSynonyms {
                entry: ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.map(|v| v.to_string()),
                    source: c.config_source.into(),
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                },
                synonyms: c
                    .synonyms
                    .into_iter()
                    .map(|y| ConfigSynonym {
                        name: y.name.to_string(),
                        value: y.value.map(|v| v.to_string()),
                        source: y.source.into(),
                    })
                    .collect(),
            })
            .collect())
    }

    /// Describes topics by name with DescribeTopicPartitions (paging through its cursor, at most
    /// `page_limit` partitions per response; Kafka's default is 2000), or by Metadata when the
    /// broker lacks that API. A topic that does not exist is an error.
    pub async fn describe_topic_partitions(
        &self,
        names: &[String],
        page_limit: i32,
    ) -> Result<Vec<TopicDescription>, ClientError> {
        let conn = self.cluster.any().await?;
        if conn.version(ApiKey::DescribeTopicPartitions, 0).is_err() {
            return Ok(self
                .describe_topics(names)
                .await?
                .into_iter()
                .map(|t| {
                    let mut partitions: Vec<PartitionDescription> = t
                        .partitions
                        .into_iter()
                        .map(|p| PartitionDescription {
                            partition: p.partition,
                            leader: p.leader,
                            replicas: p.replicas,
                            isr: p.isr,
                            elr: None,
                            last_known_elr: None,
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.partition);
                    TopicDescription {
                        name: t.name,
                        topic_id: t.topic_id,
                        is_internal: t.is_internal,
                        partitions,
                    }
                })
                .collect());
        }
        let mut out: Vec<TopicDescription> = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let req = DescribeTopicPartitionsRequest::default()
                .with_topics(
                    names
                        .iter()
                        .map(|n| TopicRequest::default().with_name(tn(n.clone())))
                        .collect(),
                )
                .with_response_partition_limit(page_limit)
                .with_cursor(cursor.take());
            let (_, resp) = conn
                .send(
                    RequestKind::DescribeTopicPartitions(req),
                    ApiKey::DescribeTopicPartitions,
                    0,
                )
                .await?;
            let ResponseKind::DescribeTopicPartitions(r) = resp else {
                return Err(unexpected("DescribeTopicPartitions"));
            };
            for t in r.topics {
                let name = t.name.map(|n| n.to_string()).unwrap_or_default();
                if t.error_code != 0 {
                    let message =
                        (t.error_code == 3).then(|| format!("Topic '{name}' does not exist."));
                    return Err(ClientError::kafka(t.error_code, message));
                }
                let partitions = t.partitions.iter().map(|p| PartitionDescription {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    replicas: ids(&p.replica_nodes),
                    isr: ids(&p.isr_nodes),
                    elr: p.eligible_leader_replicas.as_deref().map(ids),
                    last_known_elr: p.last_known_elr.as_deref().map(ids),
                });
                // A topic split over two pages arrives twice; the second part extends the first.
                match out.iter_mut().find(|d| d.name == name) {
                    Some(d) => d.partitions.extend(partitions),
                    None => out.push(TopicDescription {
                        name,
                        topic_id: t.topic_id,
                        is_internal: t.is_internal,
                        partitions: partitions.collect(),
                    }),
                }
            }
            match r.next_cursor {
                Some(c) => {
                    cursor = Some(
                        Cursor::default()
                            .with_topic_name(c.topic_name)
                            .with_partition_index(c.partition_index),
                    )
                }
                None => break,
            }
        }
        for d in &mut out {
            d.partitions.sort_by_key(|p| p.partition);
        }
        Ok(out)
    }

    /// CreateTopics for one topic with an explicit replica assignment (one broker list per
    /// partition, partition 0 first).
    pub async fn create_topic_with_assignment(
        &self,
        name: &str,
        assignment: &[Vec<i32>],
        configs: &[(String, String)],
    ) -> Result<(), ClientError> {
        let topic = CreatableTopic::default()
            .with_name(tn(name))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                assignment
                    .iter()
                    .enumerate()
                    .map(|(i, brokers)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(i as i32)
                            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            )
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k.clone()))
                            .with_value(Some(s(v.clone())))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![topic]);
        let conn = self.cluster.controller().await?;
        let (_, resp) = conn
            .send(RequestKind::CreateTopics(req), ApiKey::CreateTopics, 7)
            .await?;
        let ResponseKind::CreateTopics(r) = resp else {
            return Err(unexpected("CreateTopics"));
        };
        let t = r
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| unexpected("CreateTopics"))?;
        check(t.error_code, t.error_message.map(|m| m.to_string()))
    }

    /// CreatePartitions with the new partitions' replicas given (one broker list per new
    /// partition).
    pub async fn create_partitions_with_assignment(
        &self,
        topic: &str,
        count: i32,
        assignment: &[Vec<i32>],
    ) -> Result<(), ClientError> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(tn(topic))
                .with_count(count)
                .with_assignments(Some(
                    assignment
                        .iter()
                        .map(|brokers| {
                            CreatePartitionsAssignment::default()
                                .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                        })
                        .collect(),
                ))]);
        let conn = self.cluster.controller().await?;
        let (_, resp) = conn
            .send(
                RequestKind::CreatePartitions(req),
                ApiKey::CreatePartitions,
                3,
            )
            .await?;
        let ResponseKind::CreatePartitions(r) = resp else {
            return Err(unexpected("CreatePartitions"));
        };
        let t = r
            .results
            .into_iter()
            .next()
            .ok_or_else(|| unexpected("CreatePartitions"))?;
        check(t.error_code, t.error_message.map(|m| m.to_string()))
    }
}
