//! The admin client: topics, partitions, configs, records and the cluster, by Kafka's admin APIs.

use std::collections::BTreeMap;

use brook_protocol::kafka::messages::create_partitions_request::CreatePartitionsTopic;
use brook_protocol::kafka::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use brook_protocol::kafka::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use brook_protocol::kafka::messages::delete_topics_request::DeleteTopicState;
use brook_protocol::kafka::messages::elect_leaders_request::TopicPartitions;
use brook_protocol::kafka::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use brook_protocol::kafka::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use brook_protocol::kafka::messages::*;
use brook_protocol::kafka::protocol::StrBytes;

use crate::cluster::{BrokerInfo, ClientConfig, Cluster, TopicInfo};
use crate::error::{check, unexpected, ClientError};

pub(crate) fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}
pub(crate) fn tn(v: impl Into<String>) -> TopicName {
    TopicName(s(v))
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// The topic's name.
    pub name: String,
    /// -1: the broker's num.partitions.
    pub partitions: i32,
    /// -1: the broker's default.replication.factor.
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...) set at creation.
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with `partitions` partitions of `replication_factor` replicas each (-1 for either: the broker's default).
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor,
            configs: BTreeMap::new(),
        }
    }
    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> NewTopic {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// What a config request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    /// A topic's configs, by topic name.
    Topic(String),
    /// A broker's configs, by node id (as a string; empty for the cluster-wide defaults).
    Broker(String),
}

impl ConfigResource {
    pub(crate) fn wire(&self) -> (i8, StrBytes) {
        match self {
            ConfigResource::Topic(t) => (2, s(t.clone())),
            ConfigResource::Broker(b) => (4, s(b.clone())),
        }
    }
}

/// Where a config value comes from (DescribeConfigs' config source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// The broker did not say.
    Unknown,
    /// Set on the topic.
    DynamicTopic,
    /// Set dynamically for this broker.
    DynamicBroker,
    /// Set dynamically as the default for all brokers.
    DynamicDefaultBroker,
    /// From the broker's properties file.
    StaticBroker,
    /// Kafka's default.
    Default,
    /// A source code this client does not know.
    Other(i8),
}

impl From<i8> for ConfigSource {
    fn from(v: i8) -> Self {
        match v {
            0 => ConfigSource::Unknown,
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            other => ConfigSource::Other(other),
        }
    }
}

/// One described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The config's name.
    pub name: String,
    /// Its value (None when it is sensitive or unset).
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be changed.
    pub read_only: bool,
    /// Whether its value is hidden (passwords).
    pub sensitive: bool,
}

/// An incremental config change (IncrementalAlterConfigs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Sets a config to a value.
    Set(String, String),
    /// Removes a config (back to its default).
    Delete(String),
    /// Appends to a list config.
    Append(String, String),
    /// Removes from a list config.
    Subtract(String, String),
}

/// Which offset ListOffsets asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The first offset (log start).
    Earliest,
    /// The next offset to be written (log end, or the last stable offset).
    Latest,
    /// The offset of the record with the highest timestamp.
    MaxTimestamp,
    /// The first offset whose timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// A ListOffsets answer: offset -1 when no record matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset found (-1 if none).
    pub offset: i64,
    /// The timestamp of the record at that offset (-1 if not known).
    pub timestamp: i64,
    /// The leader epoch of that record (-1 if not known).
    pub leader_epoch: i32,
}

/// The cluster as DescribeCluster reports it.
#[derive(Debug, Clone)]
pub struct ClusterDescription {
    /// The cluster's id.
    pub cluster_id: String,
    /// The node id of the active controller.
    pub controller_id: i32,
    /// The brokers.
    pub brokers: Vec<BrokerInfo>,
}

/// Which leader election ElectLeaders asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership back to each partition's preferred replica (the first of its replicas)
    /// when that replica is alive and in sync.
    Preferred,
    /// Give a partition without a leader any live replica, even one out of sync (may lose
    /// records).
    Unclean,
}

impl ElectionType {
    /// The request's `election_type` field.
    fn wire(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }
}

impl std::fmt::Display for ElectionType {
    /// Kafka's name: `PREFERRED` or `UNCLEAN`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        })
    }
}

impl std::str::FromStr for ElectionType {
    type Err = ClientError;

    /// `preferred` or `unclean`, in any case (as Kafka's tools accept them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("preferred") {
            Ok(ElectionType::Preferred)
        } else if s.eq_ignore_ascii_case("unclean") {
            Ok(ElectionType::Unclean)
        } else {
            Err(ClientError::Config(format!(
                "unknown election type {s:?}: expected PREFERRED or UNCLEAN"
            )))
        }
    }
}

/// One partition's outcome per election: topic, partition, and `Ok` or the broker's error
/// (ELECTION_NOT_NEEDED, code 84, when the wanted leader already leads).
pub type ElectionResults = Vec<(String, i32, Result<(), ClientError>)>;

/// The metadata log's quorum (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    /// The active controller.
    pub leader_id: i32,
    /// Its epoch (the Raft term).
    pub leader_epoch: i32,
    /// The offset after the last committed metadata record.
    pub high_watermark: i64,
    /// The controllers, in the broker's order.
    pub voters: Vec<QuorumReplica>,
    /// Brokers that follow the metadata log without voting.
    pub observers: Vec<QuorumReplica>,
    /// Each voter's endpoints, `LISTENER://host:port` (DescribeQuorum v2).
    pub nodes: BTreeMap<i32, Vec<String>>,
}

/// One replica of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    /// Its node id.
    pub id: i32,
    /// The offset after its last metadata record.
    pub log_end_offset: i64,
    /// When it last fetched (ms since the epoch), if known.
    pub last_fetch_ms: Option<i64>,
    /// When it last had every committed record, if known.
    pub last_caught_up_ms: Option<i64>,
}

/// Per-partition outcomes of AlterPartitionReassignments: topic, partition, result.
pub type ReassignmentResults = Vec<(String, i32, Result<(), ClientError>)>;

/// A partition reassignment in progress (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// The topic's name.
    pub topic: String,
    /// The partition's index.
    pub partition: i32,
    /// The current replicas: the target followed by the replicas being removed.
    pub replicas: Vec<i32>,
    /// Replicas being added (in the target, not in the original assignment).
    pub adding: Vec<i32>,
    /// Replicas being removed (in the original assignment, not in the target).
    pub removing: Vec<i32>,
}

/// The ElectLeaders request at `version`: `None` asks for every partition; each named partition
/// is asked for once, grouped by topic.
fn election_request(
    election_type: ElectionType,
    partitions: Option<&[(String, i32)]>,
    version: i16,
    timeout_ms: i32,
) -> Result<ElectLeadersRequest, ClientError> {
    if version == 0 && election_type != ElectionType::Preferred {
        return Err(ClientError::kafka(
            35,
            Some("the broker supports only preferred leader elections (ElectLeaders v0)".into()),
        ));
    }
    let topic_partitions = partitions.map(|ps| {
        let mut by_topic: BTreeMap<&str, std::collections::BTreeSet<i32>> = BTreeMap::new();
        for (t, p) in ps {
            by_topic.entry(t.as_str()).or_default().insert(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                TopicPartitions::default()
                    .with_topic(tn(t))
                    .with_partitions(ps.into_iter().collect())
            })
            .collect()
    });
    let mut req = ElectLeadersRequest::default()
        .with_topic_partitions(topic_partitions)
        .with_timeout_ms(timeout_ms);
    if version >= 1 {
        req.election_type = election_type.wire();
    }
    Ok(req)
}

/// The per-partition results of an ElectLeaders response; an error for the whole request (v1+)
/// is the call's error.
fn election_results(r: ElectLeadersResponse) -> Result<ElectionResults, ClientError> {
    check(r.error_code, None)?;
    Ok(r.replica_election_results
        .into_iter()
        .flat_map(|t| {
            let topic = t.topic.to_string();
            t.partition_result.into_iter().map(move |p| {
                (
                    topic.clone(),
                    p.partition_id,
                    check(p.error_code, p.error_message.map(|m| m.to_string())),
                )
            })
        })
        .collect())
}

/// Kafka's admin client.
pub struct Admin {
    pub(crate) cluster: Cluster,
}

type PerTopic<T> = Vec<(String, Result<T, ClientError>)>;

impl Admin {
    /// An admin client for the cluster (no connection is made until the first request).
    pub fn new(config: ClientConfig) -> Result<Admin, ClientError> {
        Ok(Admin {
            cluster: Cluster::new(config)?,
        })
    }

    /// The cluster metadata and connections it uses.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// CreateTopics; one result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<PerTopic<()>, ClientError> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(tn(t.name.clone()))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(s(k.clone()))
                                            .with_value(Some(s(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let conn = self.cluster.controller().await?;
        let (_, resp) = conn
            .send(RequestKind::CreateTopics(req), ApiKey::CreateTopics, 7)
            .await?;
        let ResponseKind::CreateTopics(r) = resp else {
            return Err(unexpected("CreateTopics"));
        };
        Ok(r.topics
            .into_iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    check(t.error_code, t.error_message.map(|m| m.to_string())),
                )
            })
            .collect())
    }

    /// DeleteTopics by name; one result per topic.
    pub async fn delete_topics(&self, names: &[String]) -> Result<PerTopic<()>, ClientError> {
        let conn = self.cluster.controller().await?;
        let v = conn.version(ApiKey::DeleteTopics, 6)?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        if v >= 6 {
            req.topics = names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(tn(n.clone()))))
                .collect();
        } else {
            req.topic_names = names.iter().map(|n| tn(n.clone())).collect();
        }
        let (_, resp) = conn
            .send(RequestKind::DeleteTopics(req), ApiKey::DeleteTopics, 6)
            .await?;
        let ResponseKind::DeleteTopics(r) = resp else {
            return Err(unexpected("DeleteTopics"));
        };
        Ok(r.responses
            .into_iter()
            .map(|t| {
                (
                    t.name.map(|n| n.to_string()).unwrap_or_default(),
                    check(t.error_code, t.error_message.map(|m| m.to_string())),
                )
            })
            .collect())
    }

    /// Every topic name (internal ones too when asked).
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>, ClientError> {
        let md = self.cluster.refresh(None).await?;
        Ok(md
            .topics
            .values()
            .filter(|t| include_internal || !t.is_internal)
            .map(|t| t.name.clone())
            .collect())
    }

    /// Metadata of the given topics; an unknown topic is an error.
    pub async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicInfo>, ClientError> {
        let md = self.cluster.refresh(Some(names)).await?;
        names
            .iter()
            .map(|n| {
                let t = md.topics.get(n).cloned().ok_or_else(|| {
                    ClientError::kafka(3, Some(format!("Topic '{n}' does not exist.")))
                })?;
                check(t.error_code, None)?;
                Ok(t)
            })
            .collect()
    }

    /// CreatePartitions: grows a topic to `count` partitions.
    pub async fn create_partitions(
        &self,
        topic: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), ClientError> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(tn(topic))
                .with_count(count)
                // null: let the controller place the new partitions (an empty list would mean
                // "these zero assignments").
                .with_assignments(None)]);
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

    /// DescribeConfigs of one resource (all its configs).
    pub async fn describe_configs(
        &self,
        resource: &ConfigResource,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        Ok(self
            .describe_configs_with_synonyms(resource, false)
            .await?
            .into_iter()
            .map(|c| c.entry)
            .collect())
    }

    /// IncrementalAlterConfigs on one resource.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<(), ClientError> {
        let (kind, name) = resource.wire();
        let configs = ops
            .iter()
            .map(|op| {
                let (n, v, code) = match op {
                    AlterConfigOp::Set(n, v) => (n, Some(v), 0),
                    AlterConfigOp::Delete(n) => (n, None, 1),
                    AlterConfigOp::Append(n, v) => (n, Some(v), 2),
                    AlterConfigOp::Subtract(n, v) => (n, Some(v), 3),
                };
                AlterableConfig::default()
                    .with_name(s(n.clone()))
                    .with_config_operation(code)
                    .with_value(v.map(|v| s(v.clone())))
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(name)
                .with_configs(configs)]);
        let conn = self.cluster.controller().await?;
        let (_, resp) = conn
            .send(
                RequestKind::IncrementalAlterConfigs(req),
                ApiKey::IncrementalAlterConfigs,
                1,
            )
            .await?;
        let ResponseKind::IncrementalAlterConfigs(r) = resp else {
            return Err(unexpected("IncrementalAlterConfigs"));
        };
        let res = r
            .responses
            .into_iter()
            .next()
            .ok_or_else(|| unexpected("IncrementalAlterConfigs"))?;
        check(res.error_code, res.error_message.map(|m| m.to_string()))
    }

    /// DeleteRecords: deletes everything before `offset` in each partition (-1 = the high
    /// watermark). Returns the new low watermark per partition.
    pub async fn delete_records(
        &self,
        targets: &[(String, i32, i64)],
    ) -> Result<Vec<((String, i32), Result<i64, ClientError>)>, ClientError> {
        let mut by_leader: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
        let names: Vec<String> = targets.iter().map(|t| t.0.clone()).collect();
        let md = self.cluster.refresh(Some(&names)).await?;
        let mut out = Vec::new();
        for (t, p, o) in targets {
            match md
                .topics
                .get(t)
                .and_then(|ti| ti.partitions.iter().find(|x| x.partition == *p))
            {
                Some(info) if info.leader >= 0 => {
                    by_leader
                        .entry(info.leader)
                        .or_default()
                        .push((t.clone(), *p, *o))
                }
                _ => out.push(((t.clone(), *p), Err(ClientError::kafka(3, None)))),
            }
        }
        for (leader, parts) in by_leader {
            let mut topics: BTreeMap<String, Vec<DeleteRecordsPartition>> = BTreeMap::new();
            for (t, p, o) in &parts {
                topics.entry(t.clone()).or_default().push(
                    DeleteRecordsPartition::default()
                        .with_partition_index(*p)
                        .with_offset(*o),
                );
            }
            let req = DeleteRecordsRequest::default()
                .with_timeout_ms(self.timeout_ms())
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            DeleteRecordsTopic::default()
                                .with_name(tn(t))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            let conn = self.cluster.broker(leader).await?;
            let (_, resp) = conn
                .send(RequestKind::DeleteRecords(req), ApiKey::DeleteRecords, 2)
                .await?;
            let ResponseKind::DeleteRecords(r) = resp else {
                return Err(unexpected("DeleteRecords"));
            };
            for t in r.topics {
                for p in t.partitions {
                    let res = check(p.error_code, None).map(|_| p.low_watermark);
                    out.push(((t.name.to_string(), p.partition_index), res));
                }
            }
        }
        Ok(out)
    }

    /// ListOffsets for partitions (read_uncommitted), routed to each partition's leader.
    pub async fn list_offsets(
        &self,
        targets: &[(String, i32)],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<(String, i32), Result<ListedOffset, ClientError>>, ClientError> {
        let names: Vec<String> = targets.iter().map(|t| t.0.clone()).collect();
        let md = self.cluster.refresh(Some(&names)).await?;
        let mut out = BTreeMap::new();
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for (t, p) in targets {
            match md
                .topics
                .get(t)
                .and_then(|ti| ti.partitions.iter().find(|x| x.partition == *p))
            {
                Some(info) if info.leader >= 0 => by_leader
                    .entry(info.leader)
                    .or_default()
                    .entry(t.clone())
                    .or_default()
                    .push(*p),
                _ => {
                    out.insert((t.clone(), *p), Err(ClientError::kafka(3, None)));
                }
            }
        }
        for (leader, topics) in by_leader {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(tn(t))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_timestamp(spec.wire())
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let conn = self.cluster.broker(leader).await?;
            let (_, resp) = conn
                .send(RequestKind::ListOffsets(req), ApiKey::ListOffsets, 8)
                .await?;
            let ResponseKind::ListOffsets(r) = resp else {
                return Err(unexpected("ListOffsets"));
            };
            for t in r.topics {
                for p in t.partitions {
                    let res = check(p.error_code, None).map(|_| ListedOffset {
                        offset: p.offset,
                        timestamp: p.timestamp,
                        leader_epoch: p.leader_epoch,
                    });
                    out.insert((t.name.to_string(), p.partition_index), res);
                }
            }
        }
        Ok(out)
    }

    /// ElectLeaders, sent to the controller as Kafka's admin client does: elects the leader of
    /// each partition (`None`: of every partition, and then the broker leaves out the partitions
    /// whose wanted leader already leads). One result per partition, in the broker's order.
    pub async fn elect_leaders(
        &self,
        election_type: ElectionType,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<ElectionResults, ClientError> {
        let conn = self.cluster.controller().await?;
        let version = conn.version(ApiKey::ElectLeaders, 2)?;
        let req = election_request(election_type, partitions, version, self.timeout_ms())?;
        let (_, resp) = conn
            .send(
                RequestKind::ElectLeaders(req),
                ApiKey::ElectLeaders,
                version,
            )
            .await?;
        let ResponseKind::ElectLeaders(r) = resp else {
            return Err(unexpected("ElectLeaders"));
        };
        election_results(r)
    }

    /// AlterPartitionReassignments, sent to the controller as Kafka's admin client does: moves
    /// each partition to its new replicas (`None`: cancels its reassignment). One result per
    /// partition, in request order.
    pub async fn alter_partition_reassignments(
        &self,
        reassignments: &[(String, i32, Option<Vec<i32>>)],
    ) -> Result<ReassignmentResults, ClientError> {
        let mut topics: Vec<alter_partition_reassignments_request::ReassignableTopic> = Vec::new();
        for (topic, partition, target) in reassignments {
            let name = tn(topic.clone());
            let i = match topics.iter().position(|t| t.name == name) {
                Some(i) => i,
                None => {
                    topics.push(
                        alter_partition_reassignments_request::ReassignableTopic::default()
                            .with_name(name),
                    );
                    topics.len() - 1
                }
            };
            topics[i].partitions.push(
                alter_partition_reassignments_request::ReassignablePartition::default()
                    .with_partition_index(*partition)
                    .with_replicas(
                        target
                            .as_ref()
                            .map(|rs| rs.iter().copied().map(BrokerId).collect()),
                    ),
            );
        }
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(topics);
        let conn = self.cluster.controller().await?;
        let (_, resp) = conn
            .send(
                RequestKind::AlterPartitionReassignments(req),
                ApiKey::AlterPartitionReassignments,
                0,
            )
            .await?;
        let ResponseKind::AlterPartitionReassignments(r) = resp else {
            return Err(unexpected("AlterPartitionReassignments"));
        };
        check(r.error_code, r.error_message.map(|m| m.to_string()))?;
        Ok(r.responses
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.to_string();
                t.partitions.into_iter().map(move |p| {
                    let result = check(p.error_code, p.error_message.map(|m| m.to_string()));
                    (topic.clone(), p.partition_index, result)
                })
            })
            .collect())
    }

    /// ListPartitionReassignments: the reassignments in progress, of the partitions named or of
    /// all (`None`), sorted by topic and partition.
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<OngoingReassignment>, ClientError> {
        let topics = partitions.map(|ps| {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (t, p) in ps {
                by_topic.entry(t.clone()).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    list_partition_reassignments_request::ListPartitionReassignmentsTopics::default(
                    )
                    .with_name(tn(t))
                    .with_partition_indexes(ps)
                })
                .collect()
        });
        let req = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(topics);
        let conn = self.cluster.controller().await?;
        let (_, resp) = conn
            .send(
                RequestKind::ListPartitionReassignments(req),
                ApiKey::ListPartitionReassignments,
                0,
            )
            .await?;
        let ResponseKind::ListPartitionReassignments(r) = resp else {
            return Err(unexpected("ListPartitionReassignments"));
        };
        check(r.error_code, r.error_message.map(|m| m.to_string()))?;
        let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect::<Vec<i32>>();
        let mut out: Vec<OngoingReassignment> = r
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.to_string();
                t.partitions.into_iter().map(move |p| OngoingReassignment {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding: ids(p.adding_replicas),
                    removing: ids(p.removing_replicas),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// DescribeQuorum, as Kafka's `describeMetadataQuorum`: the metadata log
    /// (`__cluster_metadata` partition 0) as its active controller sees it.
    pub async fn describe_metadata_quorum(&self) -> Result<QuorumInfo, ClientError> {
        use brook_protocol::kafka::messages::describe_quorum_request::{PartitionData, TopicData};
        let conn = self.cluster.any().await?;
        let version = conn.version(ApiKey::DescribeQuorum, 2)?;
        let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(tn("__cluster_metadata"))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let (_, resp) = conn
            .send(
                RequestKind::DescribeQuorum(req),
                ApiKey::DescribeQuorum,
                version,
            )
            .await?;
        let ResponseKind::DescribeQuorum(r) = resp else {
            return Err(unexpected("DescribeQuorum"));
        };
        check(r.error_code, r.error_message.map(|m| m.to_string()))?;
        let malformed = |m: String| ClientError::kafka(-1, Some(m));
        let [topic] = &r.topics[..] else {
            return Err(malformed(format!(
                "DescribeMetadataQuorum received {} topics when 1 was expected",
                r.topics.len()
            )));
        };
        if topic.topic_name.as_str() != "__cluster_metadata" {
            return Err(malformed(format!(
                "DescribeMetadataQuorum received a topic with name {} when __cluster_metadata was expected",
                topic.topic_name.as_str()
            )));
        }
        let [p] = &topic.partitions[..] else {
            return Err(malformed(format!(
                "DescribeMetadataQuorum received a topic __cluster_metadata with {} partitions when 1 was expected",
                topic.partitions.len()
            )));
        };
        check(
            p.error_code,
            p.error_message.as_ref().map(|m| m.to_string()),
        )?;
        let known = |t: i64| (t != -1).then_some(t);
        let replicas = |v: &[describe_quorum_response::ReplicaState]| {
            v.iter()
                .map(|s| QuorumReplica {
                    id: s.replica_id.0,
                    log_end_offset: s.log_end_offset,
                    last_fetch_ms: known(s.last_fetch_timestamp),
                    last_caught_up_ms: known(s.last_caught_up_timestamp),
                })
                .collect()
        };
        let nodes = r
            .nodes
            .iter()
            .map(|n| {
                let endpoints = n
                    .listeners
                    .iter()
                    .map(|l| format!("{}://{}:{}", l.name.as_str(), l.host.as_str(), l.port))
                    .collect();
                (n.node_id.0, endpoints)
            })
            .collect();
        Ok(QuorumInfo {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: replicas(&p.current_voters),
            observers: replicas(&p.observers),
            nodes,
        })
    }

    /// DescribeCluster.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, ClientError> {
        let conn = self.cluster.any().await?;
        let (_, resp) = conn
            .send(
                RequestKind::DescribeCluster(DescribeClusterRequest::default()),
                ApiKey::DescribeCluster,
                1,
            )
            .await?;
        let ResponseKind::DescribeCluster(r) = resp else {
            return Err(unexpected("DescribeCluster"));
        };
        check(r.error_code, r.error_message.map(|m| m.to_string()))?;
        Ok(ClusterDescription {
            cluster_id: r.cluster_id.to_string(),
            controller_id: r.controller_id.0,
            brokers: r
                .brokers
                .into_iter()
                .map(|b| BrokerInfo {
                    node_id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                })
                .collect(),
        })
    }

    pub(crate) fn timeout_ms(&self) -> i32 {
        self.cluster
            .config
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::kafka::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };
    use brook_protocol::kafka::protocol::Encodable;
    use bytes::BytesMut;

    #[test]
    fn election_types_parse_in_any_case_and_print_as_kafka() {
        for (text, want) in [
            ("preferred", ElectionType::Preferred),
            ("PREFERRED", ElectionType::Preferred),
            ("Unclean", ElectionType::Unclean),
        ] {
            assert_eq!(text.parse::<ElectionType>().unwrap(), want);
        }
        assert!("clean".parse::<ElectionType>().is_err());
        assert_eq!(ElectionType::Unclean.to_string(), "UNCLEAN");
    }

    #[test]
    fn election_requests_group_partitions_by_topic_once_each() {
        let ps: Vec<(String, i32)> = [("b", 1), ("a", 2), ("b", 0), ("b", 1)]
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        let req = election_request(ElectionType::Unclean, Some(&ps), 2, 500).unwrap();
        assert_eq!(req.election_type, 1);
        assert_eq!(req.timeout_ms, 500);
        let got: Vec<(String, Vec<i32>)> = req
            .topic_partitions
            .clone()
            .unwrap()
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect();
        assert_eq!(got, vec![("a".into(), vec![2]), ("b".into(), vec![0, 1])]);
        for v in 0..=2 {
            let req = election_request(ElectionType::Preferred, None, v, 500).unwrap();
            assert!(req.topic_partitions.is_none());
            req.encode(&mut BytesMut::new(), v).unwrap();
        }
        // Version 0 has no election type: only preferred elections.
        let e = election_request(ElectionType::Unclean, None, 0, 500).unwrap_err();
        assert_eq!(e.code(), Some(35));
    }

    #[test]
    fn election_results_keep_each_partitions_error() {
        let r = ElectLeadersResponse::default().with_replica_election_results(vec![
            ReplicaElectionResult::default()
                .with_topic(tn("t"))
                .with_partition_result(vec![
                    PartitionResult::default().with_partition_id(0),
                    PartitionResult::default()
                        .with_partition_id(1)
                        .with_error_code(84)
                        .with_error_message(Some(s("Leader election not needed"))),
                ]),
        ]);
        let got = election_results(r).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].2.is_ok() && (got[0].0.as_str(), got[0].1) == ("t", 0));
        assert_eq!(got[1].2.as_ref().unwrap_err().code(), Some(84));
        let whole = ElectLeadersResponse::default().with_error_code(41);
        assert_eq!(election_results(whole).unwrap_err().code(), Some(41));
    }
}
