//! Request handlers: one function per API key, each turning a decoded request into its response.
//!
//! Handlers read the metadata image, run controller logic through [`Broker::commit`], and append to
//! and read from partition logs. Every refusal is a Kafka error code in the response.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use brook_metadata::controller::{self, ConfigOp, NewTopic};
use brook_metadata::topic_config::{ConfigType, TOPIC_CONFIGS};
use brook_metadata::MetadataImage;
use brook_metadata::{ControllerOp, ControllerReply};
use brook_protocol::kafka::messages::api_versions_response::ApiVersion;
use brook_protocol::kafka::messages::create_partitions_response::CreatePartitionsTopicResult;
use brook_protocol::kafka::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use brook_protocol::kafka::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use brook_protocol::kafka::messages::delete_topics_response::DeletableTopicResult;
use brook_protocol::kafka::messages::describe_cluster_response::DescribeClusterBroker;
use brook_protocol::kafka::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use brook_protocol::kafka::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use brook_protocol::kafka::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use brook_protocol::kafka::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use brook_protocol::kafka::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::kafka::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use brook_protocol::kafka::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use brook_protocol::kafka::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use brook_protocol::kafka::messages::*;
use brook_protocol::kafka::messages::{alter_configs_response, incremental_alter_configs_response};
use brook_protocol::kafka::protocol::StrBytes;
use brook_protocol::request::Request;
use brook_protocol::versions::SUPPORTED;
use brook_protocol::ResponseError;
use brook_storage::{AppendOutcome, StorageError};
use bytes::Bytes;
use uuid::Uuid;

use crate::errors::{controller_code, storage_code};
use crate::state::{now_ms, Broker, CommitError, Role};

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}
fn tn(v: impl Into<String>) -> TopicName {
    TopicName(s(v))
}
fn code(e: ResponseError) -> i16 {
    e.code()
}

pub(crate) fn commit_error(e: &CommitError) -> (i16, String) {
    match e {
        CommitError::Refused(c) => (code(controller_code(c)), c.to_string()),
        // The active controller could not be reached in time (a quorum election, a partition):
        // the client retries, as it would on Kafka's REQUEST_TIMED_OUT from forwarding.
        CommitError::Unavailable(msg) => (code(ResponseError::RequestTimedOut), msg.clone()),
        other => {
            tracing::error!(error = %other, "metadata commit failed");
            (code(ResponseError::UnknownServerError), other.to_string())
        }
    }
}

const CONSUMER_OFFSETS: &str = "__consumer_offsets";
const TRANSACTION_STATE: &str = "__transaction_state";

fn is_internal(topic: &str) -> bool {
    topic == CONSUMER_OFFSETS || topic == TRANSACTION_STATE
}

/// What the server does after a request.
pub enum Reply {
    Send(Box<ResponseKind>),
    /// The request took effect; its answer comes when this completes (a Produce waiting for
    /// the ISR). The connection goes on reading meanwhile and answers strictly in order.
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = ResponseKind> + Send>>),
    /// Nothing is sent (Produce with acks=0).
    Nothing,
    /// The connection is closed.
    Close,
}

/// Dispatches a request.
pub async fn handle(broker: &Arc<Broker>, req: Request, peer: std::net::SocketAddr) -> Reply {
    use crate::group_handlers as g;
    let v = req.version();
    let client_id = req
        .header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    Reply::Send(Box::new(match req.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(None)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata(broker, r, v)),
        RequestKind::Produce(r) => {
            return match produce(broker, r, v) {
                Some(done) => {
                    Reply::Later(Box::pin(async move { ResponseKind::Produce(done.await) }))
                }
                None => Reply::Nothing,
            }
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch(broker, r, v).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets(broker, r)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics(broker, r, v)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics(broker, r, v)),
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions(broker, r))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs(broker, r))
        }
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(alter_configs(broker, r)),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(incremental_alter_configs(broker, r))
        }
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records(broker, r)),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(init_producer_id(broker, r)),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster(broker, r))
        }
        RequestKind::DescribeTopicPartitions(r) => {
            ResponseKind::DescribeTopicPartitions(describe_topic_partitions(broker, r))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch(broker, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(g::find_coordinator(broker, r, v))
        }
        RequestKind::JoinGroup(r) => {
            let caller = g::Caller {
                client_id: &client_id,
                client_host: format!("/{}", peer.ip()),
            };
            ResponseKind::JoinGroup(g::join_group(broker, r, v, caller).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(g::sync_group(broker, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(g::heartbeat(broker, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(g::leave_group(broker, r, v)),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(g::offset_commit(broker, r).await)
        }
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(g::offset_fetch(broker, r, v)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(g::describe_groups(broker, r, v))
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(g::list_groups(broker, r)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(g::delete_groups(broker, r)),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(g::offset_delete(broker, r)),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            let caller = g::Caller {
                client_id: &client_id,
                client_host: format!("/{}", peer.ip()),
            };
            ResponseKind::ConsumerGroupHeartbeat(g::consumer_group_heartbeat(broker, r, caller))
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(g::consumer_group_describe(broker, r))
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(crate::cluster_handlers::elect_leaders(broker, r))
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            crate::cluster_handlers::alter_partition_reassignments(broker, r),
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            crate::cluster_handlers::list_partition_reassignments(broker, r),
        ),
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(crate::cluster_handlers::describe_quorum(broker, r))
        }
        other => {
            // The decoder only lets through keys in the version table, so this is a table entry
            // without a handler: a bug, answered by closing the connection.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for request");
            return Reply::Close;
        }
    }))
}

/// The ApiVersions response, with an error when the request's version was not supported.
pub fn api_versions(error: Option<ResponseError>) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error.map(code).unwrap_or(0))
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|r| {
                    ApiVersion::default()
                        .with_api_key(r.key as i16)
                        .with_min_version(r.min)
                        .with_max_version(r.max)
                })
                .collect(),
        )
        .with_finalized_features_epoch(-1)
}

fn auto_create(broker: &Broker, name: &str) -> Result<(), (i16, String)> {
    let req = NewTopic {
        name: name.to_string(),
        num_partitions: -1,
        replication_factor: -1,
        ..Default::default()
    };
    broker
        .submit(ControllerOp::CreateTopic {
            topic: req,
            defaults: broker.controller_defaults(),
            validate_only: false,
            // Another request may have created it meanwhile.
            if_missing: true,
        })
        .map_err(|e| commit_error(&e))?;
    tracing::info!(topic = name, "auto-created topic");
    Ok(())
}

fn metadata_topic(image: &MetadataImage, name: &str) -> Option<MetadataResponseTopic> {
    let t = image.topic(name)?;
    Some(
        MetadataResponseTopic::default()
            .with_name(Some(tn(name)))
            .with_topic_id(t.topic_id)
            .with_is_internal(is_internal(name))
            .with_partitions(
                t.partitions
                    .values()
                    .map(|p| {
                        MetadataResponsePartition::default()
                            .with_error_code(if p.leader < 0 {
                                code(ResponseError::LeaderNotAvailable)
                            } else {
                                0
                            })
                            .with_partition_index(p.partition)
                            .with_leader_id(BrokerId(p.leader))
                            .with_leader_epoch(p.leader_epoch)
                            .with_replica_nodes(p.replicas.iter().map(|b| BrokerId(*b)).collect())
                            .with_isr_nodes(p.isr.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            ),
    )
}

fn metadata(broker: &Arc<Broker>, r: MetadataRequest, version: i16) -> MetadataResponse {
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let wanted: Option<Vec<MetadataRequestTopic>> = match r.topics {
        Some(t) if t.is_empty() && version == 0 => None,
        other => other,
    };
    let allow_auto =
        (version < 4 || r.allow_auto_topic_creation) && broker.config.auto_create_topics_enable;
    let mut topics = Vec::new();
    match wanted {
        None => {
            let image = broker.image();
            for name in image.topics.keys() {
                topics.extend(metadata_topic(&image, name));
            }
        }
        Some(list) => {
            for t in list {
                let name = match (&t.name, t.topic_id) {
                    (Some(n), _) => n.to_string(),
                    (None, id) if !id.is_nil() => match broker.image().topic_by_id(&id) {
                        Some(topic) => topic.name.clone(),
                        None => {
                            topics.push(
                                MetadataResponseTopic::default()
                                    .with_topic_id(id)
                                    .with_error_code(code(ResponseError::UnknownTopicId)),
                            );
                            continue;
                        }
                    },
                    _ => {
                        topics.push(
                            MetadataResponseTopic::default()
                                .with_error_code(code(ResponseError::InvalidRequest)),
                        );
                        continue;
                    }
                };
                if controller::validate_topic_name(&name).is_err() {
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_name(Some(tn(name)))
                            .with_error_code(code(ResponseError::InvalidTopicException)),
                    );
                    continue;
                }
                if broker.image().topic(&name).is_none() && allow_auto && !is_internal(&name) {
                    if let Err((c, msg)) = auto_create(broker, &name) {
                        tracing::warn!(topic = %name, error = %msg, "auto topic creation failed");
                        topics.push(
                            MetadataResponseTopic::default()
                                .with_name(Some(tn(name)))
                                .with_error_code(c),
                        );
                        continue;
                    }
                }
                match metadata_topic(&broker.image(), &name) {
                    Some(t) => topics.push(t),
                    None => topics.push(
                        MetadataResponseTopic::default()
                            .with_name(Some(tn(name)))
                            .with_error_code(code(ResponseError::UnknownTopicOrPartition)),
                    ),
                }
            }
        }
    }
    let image = broker.image();
    MetadataResponse::default()
        .with_brokers(brokers(broker, &image))
        .with_cluster_id(Some(s(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_topics(topics)
}

fn brokers(broker: &Broker, image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    // Kafka lists the brokers that can serve: registered and not fenced (and always itself).
    image
        .brokers
        .values()
        .filter(|b| !b.fenced || b.node_id == broker.config.node_id)
        .map(|b| {
            let (host, port) = if b.node_id == broker.config.node_id {
                (
                    broker.advertised.host.clone(),
                    broker.advertised.port as i32,
                )
            } else {
                (b.host.clone(), b.port)
            };
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(s(host))
                .with_port(port)
                .with_rack(b.rack.clone().map(s))
        })
        .collect()
}

/// Resolves a topic given by name or (newer versions) by id.
fn resolve_topic(
    image: &MetadataImage,
    name: &TopicName,
    id: Uuid,
) -> Result<String, ResponseError> {
    if !id.is_nil() {
        return image
            .topic_by_id(&id)
            .map(|t| t.name.clone())
            .ok_or(ResponseError::UnknownTopicId);
    }
    Ok(name.to_string())
}

/// An acks=-1 partition waiting for its records to be committed (Kafka's DelayedProduce).
struct ProduceWaiter {
    topic: usize,
    part: usize,
    partition: Arc<crate::state::Partition>,
    /// The high watermark that commits the batch: its last offset + 1.
    required: i64,
    min_isr: usize,
}

/// Kafka's `checkEnoughReplicasReachOffset`: `None` while the batch is not committed yet.
fn produce_status(w: &ProduceWaiter) -> Option<Result<(), ResponseError>> {
    match &*w.partition.role() {
        Role::Leader(s) if s.high_watermark() >= w.required => {
            Some(if s.isr().len() >= w.min_isr {
                Ok(())
            } else {
                Err(ResponseError::NotEnoughReplicasAfterAppend)
            })
        }
        Role::Leader(_) => None,
        _ => Some(Err(ResponseError::NotLeaderOrFollower)),
    }
}

/// The effective `min.insync.replicas` of a topic.
fn min_insync_replicas(broker: &Broker, image: &MetadataImage, topic: &str) -> usize {
    broker
        .effective_topic_config(image, topic)
        .get("min.insync.replicas")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .max(1)
}

/// The answer to a Produce once its records are committed (acks=all) or at once.
type ProduceCompletion =
    std::pin::Pin<Box<dyn std::future::Future<Output = ProduceResponse> + Send>>;

/// Appends a Produce request's batches now and returns the wait for its answer (`None` for
/// acks=0). The appends happen in request order as the connection reads them; only the wait for
/// the ISR is deferred, so the next request on the connection can be appended meanwhile.
fn produce(broker: &Arc<Broker>, r: ProduceRequest, version: i16) -> Option<ProduceCompletion> {
    let acks = r.acks;
    let image = broker.image();
    let now = now_ms();
    let mut responses = Vec::new();
    let mut appended = false;
    let mut waiters: Vec<ProduceWaiter> = Vec::new();
    for topic in r.topic_data {
        let name = resolve_topic(&image, &topic.name, topic.topic_id);
        let mut parts = Vec::new();
        for p in topic.partition_data {
            let mut out = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let result: Result<(), (ResponseError, Option<String>)> = (|| {
                if !matches!(acks, -1..=1) {
                    return Err((ResponseError::InvalidRequiredAcks, None));
                }
                if r.transactional_id.is_some() {
                    return Err((
                        ResponseError::TransactionalIdAuthorizationFailed,
                        Some("transactions are not supported by this broker yet".into()),
                    ));
                }
                let name = name.clone().map_err(|e| (e, None))?;
                let partition = broker
                    .partition(&name, p.index)
                    .ok_or((ResponseError::UnknownTopicOrPartition, None))?;
                if !partition.is_leader() {
                    return Err((ResponseError::NotLeaderOrFollower, None));
                }
                let records = p
                    .records
                    .as_ref()
                    .ok_or((ResponseError::CorruptMessage, Some("no records".into())))?;
                check_produce_records(records, version)?;
                let min_isr = if acks == -1 {
                    // Kafka checks the committed ISR before appending.
                    let min_isr = min_insync_replicas(broker, &image, &name);
                    let isr = image
                        .topic(&name)
                        .and_then(|t| t.partitions.get(&p.index))
                        .map_or(0, |pi| pi.isr.len());
                    if isr < min_isr {
                        return Err((
                            ResponseError::NotEnoughReplicas,
                            Some(format!(
                                "The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min_isr} for partition {name}-{}",
                                p.index
                            )),
                        ));
                    }
                    min_isr
                } else {
                    1
                };
                let mut buf = records.to_vec();
                let mut log = partition.log();
                match log.append_as_leader(&mut buf, partition.leader_epoch(), now) {
                    Ok(AppendOutcome::Appended(info)) | Ok(AppendOutcome::Duplicate(info)) => {
                        out.base_offset = info.first_offset;
                        out.log_append_time_ms = info.log_append_time;
                        out.log_start_offset = info.log_start_offset;
                        let leo = log.log_end_offset();
                        if log.has_pending_flush() {
                            broker.flush_wanted.notify_one();
                        }
                        drop(log);
                        partition.on_leader_append(leo);
                        appended = true;
                        if acks == -1 {
                            waiters.push(ProduceWaiter {
                                topic: responses.len(),
                                part: parts.len(),
                                partition: partition.clone(),
                                required: info.last_offset + 1,
                                min_isr,
                            });
                        }
                        Ok(())
                    }
                    Err(e) => {
                        out.log_start_offset = log.log_start_offset();
                        if !matches!(
                            e,
                            StorageError::OutOfOrderSequence { .. }
                                | StorageError::InvalidProducerEpoch { .. }
                        ) {
                            tracing::debug!(topic = %name, partition = p.index, error = %e, "produce refused");
                        }
                        Err((storage_code(&e), Some(e.to_string())))
                    }
                }
            })();
            if let Err((e, msg)) = result {
                out.error_code = code(e);
                out.error_message = msg.map(s);
            }
            parts.push(out);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(parts),
        );
    }
    if appended {
        broker.data_arrived.notify_waiters();
    }
    if acks == 0 {
        return None;
    }
    // acks=-1: wait until the ISR has the records, at most the request's timeout.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(r.timeout_ms.max(0) as u64);
    Some(Box::pin(await_produce(responses, waiters, deadline)))
}

async fn await_produce(
    mut responses: Vec<TopicProduceResponse>,
    waiters: Vec<ProduceWaiter>,
    deadline: tokio::time::Instant,
) -> ProduceResponse {
    for w in waiters {
        let status = loop {
            let changed = w.partition.state_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(status) = produce_status(&w) {
                break status;
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(deadline) => {
                    break produce_status(&w).unwrap_or(Err(ResponseError::RequestTimedOut));
                }
            }
        };
        if let Err(e) = status {
            let out: &mut PartitionProduceResponse =
                &mut responses[w.topic].partition_responses[w.part];
            out.error_code = code(e);
        }
    }
    ProduceResponse::default().with_responses(responses)
}

/// Kafka's rules for the records of a Produce request (v3+): exactly one batch, magic 2, and
/// zstd only from Produce v7 (KIP-110). Checked on the header alone; nothing is decompressed.
fn check_produce_records(
    records: &[u8],
    version: i16,
) -> Result<(), (ResponseError, Option<String>)> {
    use brook_protocol::batch::{BatchError, BatchHeader, Compression};
    let invalid = |m: &str| (ResponseError::InvalidRecord, Some(m.to_string()));
    let header = match BatchHeader::parse(records) {
        Ok(h) => h,
        Err(BatchError::UnsupportedMagic(_)) => {
            return Err(invalid(&format!(
                "Produce requests with version {version} are only allowed to contain record batches with magic version 2"
            )))
        }
        // Length and CRC problems are the log's to report (CORRUPT_MESSAGE).
        Err(_) => return Ok(()),
    };
    if header.size() < records.len() {
        return Err(invalid(&format!(
            "Produce requests with version {version} are only allowed to contain exactly one record batch"
        )));
    }
    if header.compression() == Compression::Zstd && version < 7 {
        return Err((
            ResponseError::UnsupportedCompressionType,
            Some("Produce requests with version below 7 cannot use zstd compression".into()),
        ));
    }
    Ok(())
}

fn check_leader_epoch(current: i32, requested: i32) -> Result<(), ResponseError> {
    if requested < 0 || requested == current {
        Ok(())
    } else if requested > current {
        Err(ResponseError::UnknownLeaderEpoch)
    } else {
        Err(ResponseError::FencedLeaderEpoch)
    }
}

async fn fetch(broker: &Arc<Broker>, r: FetchRequest, version: i16) -> FetchResponse {
    use crate::fetch_session::{FetchParams, PartitionKey, SessionRequest};
    let deadline = tokio::time::Instant::now() + Duration::from_millis(r.max_wait_ms.max(0) as u64);
    let min_bytes = r.min_bytes.max(0) as usize;
    let key = |topic: &TopicName, topic_id: Uuid, partition: i32| PartitionKey {
        topic: topic.to_string(),
        topic_id,
        partition,
    };
    let request = SessionRequest {
        // Sessions exist from Fetch v7; older fetchers are always sessionless.
        session_id: if version >= 7 { r.session_id } else { 0 },
        session_epoch: if version >= 7 { r.session_epoch } else { -1 },
        partitions: r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        key(&t.topic, t.topic_id, p.partition),
                        FetchParams {
                            fetch_offset: p.fetch_offset,
                            current_leader_epoch: p.current_leader_epoch,
                            last_fetched_epoch: p.last_fetched_epoch,
                            log_start_offset: p.log_start_offset,
                            partition_max_bytes: p.partition_max_bytes,
                        },
                    )
                })
            })
            .collect(),
        forgotten: r
            .forgotten_topics_data
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| key(&t.topic, t.topic_id, *p))
            })
            .collect(),
    };
    let planned = lock_sessions(broker).plan(request, std::time::Instant::now());
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            return FetchResponse::default()
                .with_error_code(e.code())
                .with_session_id(0)
        }
    };
    let read_committed = r.isolation_level == 1;
    let max_bytes = r.max_bytes;
    // A fetch from a follower names its broker (replica_id, or replica_state from v15).
    let replica_id = if version >= 15 {
        r.replica_state.replica_id.0
    } else {
        r.replica_id.0
    };
    let from_follower = replica_id >= 0;
    if from_follower {
        // The fetch offset is the follower's log end offset: it moves the high watermark.
        let image = broker.image();
        for (key, p) in &plan.partitions {
            let Ok(name) = resolve_topic(&image, &TopicName(s(key.topic.as_str())), key.topic_id)
            else {
                continue;
            };
            if let Some(partition) = broker.partition(&name, key.partition) {
                if check_leader_epoch(partition.leader_epoch(), p.current_leader_epoch).is_ok() {
                    broker.on_follower_fetch(&partition, replica_id, p.fetch_offset);
                }
            }
        }
    }
    let parts = loop {
        let notified = broker.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (parts, bytes, any_error) = fetch_once(
            broker,
            &plan.partitions,
            max_bytes,
            read_committed,
            from_follower,
        );
        // min_bytes=0 is satisfied by nothing: answer at once, as Kafka does.
        if bytes >= min_bytes || any_error || tokio::time::Instant::now() >= deadline {
            break parts;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {
                break fetch_once(broker, &plan.partitions, max_bytes, read_committed, from_follower).0;
            }
        }
    };
    let outcomes: Vec<_> = parts
        .iter()
        .map(|p| crate::fetch_session::PartitionOutcome {
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
            last_stable_offset: p.last_stable_offset,
            error_code: p.error_code,
            record_bytes: p.records.as_ref().map_or(0, |r| r.len()),
        })
        .collect();
    let (session_id, include) =
        lock_sessions(broker).complete(&plan, &outcomes, std::time::Instant::now());
    // Group the carried partitions by topic, keeping the plan's order.
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    for (((k, _), part), carried) in plan.partitions.iter().zip(parts).zip(include) {
        if !carried {
            continue;
        }
        match responses.last_mut() {
            Some(t) if t.topic.as_str() == k.topic && t.topic_id == k.topic_id => {
                t.partitions.push(part)
            }
            _ => responses.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(s(k.topic.as_str())))
                    .with_topic_id(k.topic_id)
                    .with_partitions(vec![part]),
            ),
        }
    }
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(responses)
}

fn lock_sessions(
    broker: &Broker,
) -> std::sync::MutexGuard<'_, crate::fetch_session::FetchSessionCache> {
    // The cache holds no invariant a panicking holder could break halfway.
    broker
        .fetch_sessions
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads the planned partitions once: the per-partition answers, the record bytes read, and
/// whether any partition failed.
fn fetch_once(
    broker: &Arc<Broker>,
    partitions: &[(
        crate::fetch_session::PartitionKey,
        crate::fetch_session::FetchParams,
    )],
    max_bytes: i32,
    read_committed: bool,
    from_follower: bool,
) -> (Vec<PartitionData>, usize, bool) {
    let image = broker.image();
    let mut remaining = if max_bytes <= 0 {
        usize::MAX
    } else {
        max_bytes as usize
    };
    let mut total = 0usize;
    let mut any_error = false;
    let mut out_parts = Vec::with_capacity(partitions.len());
    for (key, p) in partitions {
        let mut out = PartitionData::default()
            .with_partition_index(key.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1);
        let result = (|| {
            let name = resolve_topic(&image, &TopicName(s(key.topic.as_str())), key.topic_id)?;
            let partition = broker
                .partition(&name, key.partition)
                .ok_or(ResponseError::UnknownTopicOrPartition)?;
            check_leader_epoch(partition.leader_epoch(), p.current_leader_epoch)?;
            if !partition.is_leader() {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            let hw = partition.high_watermark();
            let log = partition.log();
            out.high_watermark = hw;
            out.last_stable_offset = hw;
            out.log_start_offset = log.log_start_offset();
            let max = (p.partition_max_bytes.max(0) as usize).min(remaining);
            // Followers read up to the log end, consumers up to the high watermark.
            let upto = if from_follower { i64::MAX } else { hw };
            let data = log
                .read(p.fetch_offset, max, upto, total == 0)
                .map_err(|e| storage_code(&e))?;
            Ok::<Bytes, ResponseError>(data)
        })();
        match result {
            Ok(data) => {
                total += data.len();
                remaining = remaining.saturating_sub(data.len());
                out.aborted_transactions = if read_committed { Some(vec![]) } else { None };
                out.records = Some(data);
            }
            Err(e) => {
                any_error = true;
                out.error_code = code(e);
                out.records = Some(Bytes::new());
            }
        }
        out_parts.push(out);
    }
    (out_parts, total, any_error)
}

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

fn list_offsets(broker: &Arc<Broker>, r: ListOffsetsRequest) -> ListOffsetsResponse {
    // Followers (replica_id >= 0) see the log end offset as LATEST; consumers the high watermark.
    let from_replica = r.replica_id.0 >= 0;
    let topics = r
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let result = (|| {
                        let partition = broker
                            .partition(topic.name.as_str(), p.partition_index)
                            .ok_or(ResponseError::UnknownTopicOrPartition)?;
                        check_leader_epoch(partition.leader_epoch(), p.current_leader_epoch)?;
                        if !partition.is_leader() {
                            return Err(ResponseError::NotLeaderOrFollower);
                        }
                        let log = partition.log();
                        let epoch = partition.leader_epoch();
                        match p.timestamp {
                            EARLIEST | EARLIEST_LOCAL => {
                                out.offset = log.log_start_offset();
                                out.leader_epoch = epoch;
                            }
                            LATEST => {
                                out.offset = if from_replica {
                                    log.log_end_offset()
                                } else {
                                    partition.high_watermark()
                                };
                                out.leader_epoch = epoch;
                            }
                            LATEST_TIERED => {}
                            MAX_TIMESTAMP => {
                                if let Some(t) = log.last_timestamp_offset() {
                                    out.offset = t.offset;
                                    out.timestamp = t.timestamp;
                                    out.leader_epoch = t.leader_epoch;
                                }
                            }
                            ts if ts >= 0 => {
                                let found =
                                    log.offset_for_timestamp(ts).map_err(|e| storage_code(&e))?;
                                if let Some(t) =
                                    found.filter(|t| t.offset < partition.high_watermark())
                                {
                                    out.offset = t.offset;
                                    out.timestamp = t.timestamp;
                                    out.leader_epoch = t.leader_epoch;
                                }
                            }
                            _ => return Err(ResponseError::InvalidRequest),
                        }
                        Ok(())
                    })();
                    if let Err(e) = result {
                        out.error_code = code(e);
                    }
                    out
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Config source codes of DescribeConfigs.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// The values a broker property has at each level that sets it, highest precedence first:
/// this broker's dynamic config, the dynamic cluster default, the static properties.
fn broker_property_levels(broker: &Broker, image: &MetadataImage, name: &str) -> Vec<(String, i8)> {
    let mut out = Vec::new();
    let dynamic = |id: Option<i32>| image.broker_configs(id).and_then(|c| c.get(name)).cloned();
    if let Some(v) = dynamic(Some(broker.config.node_id)) {
        out.push((v, SOURCE_DYNAMIC_BROKER));
    }
    if let Some(v) = dynamic(None) {
        out.push((v, SOURCE_DYNAMIC_DEFAULT_BROKER));
    }
    if let Some(v) = broker.config.properties.get(name) {
        out.push((v.clone(), SOURCE_STATIC_BROKER));
    }
    out
}

fn topic_config_entries(
    broker: &Broker,
    image: &MetadataImage,
    topic: &str,
    include_synonyms: bool,
    include_docs: bool,
    keys: Option<&HashSet<String>>,
) -> Vec<DescribeConfigsResourceResult> {
    let dynamic = image.topic_configs(topic);
    TOPIC_CONFIGS
        .iter()
        .filter(|d| keys.is_none_or(|k| k.contains(d.name)))
        .map(|d| {
            let topic_value = dynamic.and_then(|c| c.get(d.name)).cloned();
            // The broker levels; the static one also covers log.retention.hours and the like,
            // which the broker config folded into the topic default.
            let mut broker_levels: Vec<(String, i8)> = d
                .broker_synonym
                .map(|syn| broker_property_levels(broker, image, syn))
                .unwrap_or_default();
            broker_levels.retain(|(_, src)| *src != SOURCE_STATIC_BROKER);
            if let Some(v) = broker.config.topic_defaults.get(d.name) {
                broker_levels.push((v.clone(), SOURCE_STATIC_BROKER));
            }
            let (value, source) = match (&topic_value, broker_levels.first()) {
                (Some(v), _) => (v.clone(), SOURCE_TOPIC),
                (None, Some((v, src))) => (v.clone(), *src),
                (None, None) => (d.default.to_string(), SOURCE_DEFAULT),
            };
            let mut synonyms = Vec::new();
            if include_synonyms {
                if let Some(v) = &topic_value {
                    synonyms.push(
                        DescribeConfigsSynonym::default()
                            .with_name(s(d.name))
                            .with_value(Some(s(v.clone())))
                            .with_source(SOURCE_TOPIC),
                    );
                }
                if let Some(syn) = d.broker_synonym {
                    for (v, src) in &broker_levels {
                        synonyms.push(
                            DescribeConfigsSynonym::default()
                                .with_name(s(syn))
                                .with_value(Some(s(v.clone())))
                                .with_source(*src),
                        );
                    }
                }
                synonyms.push(
                    DescribeConfigsSynonym::default()
                        .with_name(s(d.broker_synonym.unwrap_or(d.name)))
                        .with_value(Some(s(d.default)))
                        .with_source(SOURCE_DEFAULT),
                );
            }
            DescribeConfigsResourceResult::default()
                .with_name(s(d.name))
                .with_value(Some(s(value)))
                .with_read_only(false)
                .with_config_source(source)
                .with_is_sensitive(false)
                .with_synonyms(synonyms)
                .with_config_type(d.kind as i8)
                .with_documentation(include_docs.then(|| s(d.doc)))
        })
        .collect()
}

/// One broker config of DescribeConfigs: read-only unless it can change at run time.
fn broker_config_entry(
    name: &str,
    value: &str,
    source: i8,
    synonyms: Option<Vec<(String, i8)>>,
) -> DescribeConfigsResourceResult {
    let def = brook_metadata::controller::dynamic_broker_config(name);
    DescribeConfigsResourceResult::default()
        .with_name(s(name))
        .with_value(Some(s(value)))
        .with_read_only(def.is_none())
        .with_config_source(source)
        .with_is_sensitive(false)
        .with_config_type(def.map_or(ConfigType::String, |d| d.kind) as i8)
        .with_synonyms(
            synonyms
                .unwrap_or_default()
                .into_iter()
                .map(|(v, src)| {
                    DescribeConfigsSynonym::default()
                        .with_name(s(name))
                        .with_value(Some(s(v)))
                        .with_source(src)
                })
                .collect(),
        )
}

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

fn describe_configs(broker: &Arc<Broker>, r: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let image = broker.image();
    let results = r
        .resources
        .into_iter()
        .map(|res| {
            let keys: Option<HashSet<String>> = res
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|x| x.to_string()).collect());
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match res.resource_type {
                RESOURCE_TOPIC => {
                    let name = res.resource_name.to_string();
                    if image.topic(&name).is_none() {
                        out.error_code = code(ResponseError::UnknownTopicOrPartition);
                        out.error_message = Some(s(format!("Topic '{name}' does not exist.")));
                    } else {
                        out.configs = topic_config_entries(
                            broker,
                            &image,
                            &name,
                            r.include_synonyms,
                            r.include_documentation,
                            keys.as_ref(),
                        );
                    }
                }
                RESOURCE_BROKER => {
                    let name = res.resource_name.to_string();
                    let wanted = |k: &str| keys.as_ref().is_none_or(|ks| ks.contains(k));
                    if name.is_empty() {
                        // The cluster-wide default (--entity-default): only what was set there.
                        out.configs = image
                            .broker_configs(None)
                            .into_iter()
                            .flatten()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, v)| {
                                broker_config_entry(
                                    k,
                                    v,
                                    SOURCE_DYNAMIC_DEFAULT_BROKER,
                                    r.include_synonyms
                                        .then(|| vec![(v.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER)]),
                                )
                            })
                            .collect();
                    } else if name != broker.config.node_id.to_string() {
                        out.error_code = code(ResponseError::InvalidRequest);
                        out.error_message = Some(s(format!(
                            "Unexpected broker id, expected {} or empty string, but received {name}",
                            broker.config.node_id
                        )));
                    } else {
                        // Every property set at some level, then Kafka's default for the rest.
                        let mut names: BTreeSet<&str> = broker
                            .config
                            .properties
                            .keys()
                            .map(String::as_str)
                            .chain(crate::config::BROKER_DEFAULTS.iter().map(|(k, _)| *k))
                            .collect();
                        for id in [None, Some(broker.config.node_id)] {
                            names.extend(
                                image.broker_configs(id).into_iter().flatten().map(|(k, _)| k.as_str()),
                            );
                        }
                        out.configs = names
                            .into_iter()
                            .filter(|k| wanted(k))
                            .filter_map(|k| {
                                let mut levels = broker_property_levels(broker, &image, k);
                                if let Some((_, v)) =
                                    crate::config::BROKER_DEFAULTS.iter().find(|(d, _)| *d == k)
                                {
                                    levels.push((v.to_string(), SOURCE_DEFAULT));
                                }
                                let (value, source) = levels.first().cloned()?;
                                Some(broker_config_entry(
                                    k,
                                    &value,
                                    source,
                                    r.include_synonyms.then_some(levels),
                                ))
                            })
                            .collect();
                    }
                }
                RESOURCE_BROKER_LOGGER => {
                    out.configs = vec![];
                }
                other => {
                    out.error_code = code(ResponseError::InvalidRequest);
                    out.error_message = Some(s(format!("Unsupported resource type {other}")));
                }
            }
            out
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn alter_configs(broker: &Arc<Broker>, r: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = r
        .resources
        .into_iter()
        .map(|res| {
            let mut out = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let result = match res.resource_type {
                RESOURCE_TOPIC => {
                    let topic = res.resource_name.to_string();
                    let configs: Vec<(String, Option<String>)> = res
                        .configs
                        .iter()
                        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                        .collect();
                    commit_configs(
                        broker,
                        ControllerOp::ReplaceTopicConfigs {
                            topic,
                            configs,
                            validate_only: r.validate_only,
                        },
                    )
                }
                RESOURCE_BROKER => {
                    let configs: Vec<(String, Option<String>)> = res
                        .configs
                        .iter()
                        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                        .collect();
                    broker_resource(&res.resource_name).and_then(|id| {
                        commit_configs(
                            broker,
                            ControllerOp::ReplaceBrokerConfigs {
                                broker: id,
                                configs,
                                validate_only: r.validate_only,
                            },
                        )
                    })
                }
                _ => Err(unsupported_resource(res.resource_type)),
            };
            if let Err((c, msg)) = result {
                out.error_code = c;
                out.error_message = Some(s(msg));
            }
            out
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Validates a config change and, unless it is validate-only, commits it.
fn commit_configs(broker: &Broker, op: ControllerOp) -> Result<(), (i16, String)> {
    broker.submit(op).map(|_| ()).map_err(|e| commit_error(&e))
}

fn unsupported_resource(resource_type: i8) -> (i16, String) {
    (
        code(ResponseError::InvalidRequest),
        format!("Unsupported resource type {resource_type} for altering configs"),
    )
}

/// The broker a config resource names: empty is the cluster-wide default.
fn broker_resource(name: &str) -> Result<Option<i32>, (i16, String)> {
    if name.is_empty() {
        return Ok(None);
    }
    name.parse::<i32>().map(Some).map_err(|_| {
        (
            code(ResponseError::InvalidRequest),
            format!("Invalid broker id {name:?}: expected a node id or an empty string"),
        )
    })
}

/// IncrementalAlterConfigs' operations, or the reason they are malformed.
fn incremental_ops(
    configs: &[incremental_alter_configs_request::AlterableConfig],
) -> Result<Vec<(String, ConfigOp)>, (i16, String)> {
    configs
        .iter()
        .map(|c| {
            let name = c.name.to_string();
            let value = c.value.as_ref().map(|v| v.to_string());
            let op = match (c.config_operation, value) {
                (0, Some(v)) => ConfigOp::Set(v),
                (1, _) => ConfigOp::Delete,
                (2, Some(v)) => ConfigOp::Append(v),
                (3, Some(v)) => ConfigOp::Subtract(v),
                (0 | 2 | 3, None) => {
                    return Err((
                        code(ResponseError::InvalidRequest),
                        format!("Null value not supported for: {name}"),
                    ))
                }
                (op, _) => {
                    return Err((
                        code(ResponseError::InvalidRequest),
                        format!("Unknown config operation {op}"),
                    ))
                }
            };
            Ok((name, op))
        })
        .collect()
}

fn incremental_alter_configs(
    broker: &Arc<Broker>,
    r: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = r
        .resources
        .into_iter()
        .map(|res| {
            let mut out =
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
            let result = match res.resource_type {
                RESOURCE_TOPIC => {
                    let topic = res.resource_name.to_string();
                    let ops = incremental_ops(&res.configs);
                    ops.and_then(|ops| {
                        commit_configs(
                            broker,
                            ControllerOp::IncrementalTopicConfigs {
                                topic,
                                ops,
                                validate_only: r.validate_only,
                            },
                        )
                    })
                }
                RESOURCE_BROKER => {
                    let ops = incremental_ops(&res.configs);
                    ops.and_then(|ops| {
                        let id = broker_resource(&res.resource_name)?;
                        commit_configs(
                            broker,
                            ControllerOp::IncrementalBrokerConfigs {
                                broker: id,
                                ops,
                                validate_only: r.validate_only,
                            },
                        )
                    })
                }
                _ => Err(unsupported_resource(res.resource_type)),
            };
            if let Err((c, msg)) = result {
                out.error_code = c;
                out.error_message = Some(s(msg));
            }
            out
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn create_topics(
    broker: &Arc<Broker>,
    r: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for t in &r.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    let defaults = broker.controller_defaults();
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.to_string();
            let mut out = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            if seen.get(&name).copied().unwrap_or(0) > 1 {
                out.error_code = code(ResponseError::InvalidRequest);
                out.error_message = Some(s(format!(
                    "Create topics request from client contains a duplicate topic: {name}"
                )));
                return out;
            }
            let req = NewTopic {
                name: name.clone(),
                num_partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect(),
                configs: t
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect(),
            };
            let result = broker.submit(ControllerOp::CreateTopic {
                topic: req.clone(),
                defaults,
                validate_only: r.validate_only,
                if_missing: false,
            });
            match result {
                Ok(ControllerReply::TopicCreated {
                    topic_id: id,
                    num_partitions: partitions,
                    replication_factor: rf,
                }) => {
                    out.topic_id = if r.validate_only { Uuid::nil() } else { id };
                    out.num_partitions = partitions;
                    out.replication_factor = rf;
                    if version >= 5 {
                        let image = broker.image();
                        let mut view = (*image).clone();
                        if r.validate_only {
                            // Show the configs the topic would get.
                            for (k, v) in &req.configs {
                                view.apply(&brook_metadata::MetadataRecord::Config {
                                    resource: brook_metadata::record::ConfigResource::Topic(
                                        name.clone(),
                                    ),
                                    name: k.clone(),
                                    value: v.clone(),
                                });
                            }
                        }
                        out.configs = Some(
                            topic_config_entries(broker, &view, &name, false, false, None)
                                .into_iter()
                                .map(|c| {
                                    CreatableTopicConfigs::default()
                                        .with_name(c.name)
                                        .with_value(c.value)
                                        .with_read_only(c.read_only)
                                        .with_config_source(c.config_source)
                                        .with_is_sensitive(c.is_sensitive)
                                })
                                .collect(),
                        );
                    }
                    if !r.validate_only {
                        tracing::info!(topic = %name, partitions, "created topic");
                    }
                }
                Ok(other) => {
                    tracing::error!(reply = ?other, "unexpected controller reply to CreateTopic");
                    out.error_code = code(ResponseError::UnknownServerError);
                }
                Err(e) => {
                    let (c, msg) = commit_error(&e);
                    out.error_code = c;
                    out.error_message = Some(s(msg));
                }
            }
            out
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn delete_topics(
    broker: &Arc<Broker>,
    r: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let requested: Vec<(Option<String>, Uuid)> = if version >= 6 {
        r.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        r.topic_names
            .iter()
            .map(|n| (Some(n.to_string()), Uuid::nil()))
            .collect()
    };
    let responses = requested
        .into_iter()
        .map(|(name, id)| {
            let mut out = DeletableTopicResult::default()
                .with_name(name.clone().map(tn))
                .with_topic_id(id);
            if !broker.config.delete_topic_enable {
                out.error_code = code(ResponseError::TopicDeletionDisabled);
                return out;
            }
            let image = broker.image();
            let target = match (&name, id.is_nil()) {
                (Some(n), _) => image
                    .topic(n)
                    .map(|t| t.topic_id)
                    .ok_or(ResponseError::UnknownTopicOrPartition),
                (None, false) => image
                    .topic_by_id(&id)
                    .map(|t| t.topic_id)
                    .ok_or(ResponseError::UnknownTopicId),
                (None, true) => Err(ResponseError::InvalidRequest),
            };
            match target {
                Ok(topic_id) => {
                    let topic_name = image.topic_by_id(&topic_id).map(|t| t.name.clone());
                    out.topic_id = topic_id;
                    out.name = topic_name.clone().map(tn);
                    if let Err(e) = broker.submit(ControllerOp::DeleteTopic { topic_id }) {
                        let (c, msg) = commit_error(&e);
                        out.error_code = c;
                        out.error_message = Some(s(msg));
                    } else {
                        tracing::info!(topic = ?topic_name, "deleted topic");
                    }
                }
                Err(e) => out.error_code = code(e),
            }
            out
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

fn create_partitions(broker: &Arc<Broker>, r: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = r
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.to_string();
            let mut out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let assignments: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            let result = broker.submit(ControllerOp::CreatePartitions {
                topic: name,
                count: t.count,
                assignments,
                validate_only: r.validate_only,
            });
            if let Err(e) = result {
                let (c, msg) = commit_error(&e);
                out.error_code = c;
                out.error_message = Some(s(msg));
            }
            out
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

fn delete_records(broker: &Arc<Broker>, r: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let result = (|| {
                        let partition = broker
                            .partition(t.name.as_str(), p.partition_index)
                            .ok_or(ResponseError::UnknownTopicOrPartition)?;
                        let hw = partition.high_watermark();
                        // -1 means "up to the high watermark" (Kafka's DeleteRecordsRequest.HIGH_WATERMARK).
                        let offset = if p.offset == -1 { hw } else { p.offset };
                        if offset < 0 || offset > hw {
                            return Err(ResponseError::OffsetOutOfRange);
                        }
                        let mut log = partition.log();
                        log.delete_records_before(offset)
                            .map_err(|e| storage_code(&e))
                    })();
                    match result {
                        Ok(low) => out.low_watermark = low,
                        Err(e) => out.error_code = code(e),
                    }
                    out
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

fn init_producer_id(broker: &Arc<Broker>, r: InitProducerIdRequest) -> InitProducerIdResponse {
    let out = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match r.transactional_id.as_ref().map(|t| t.0.as_str()) {
        Some("") => return out.with_error_code(code(ResponseError::InvalidRequest)),
        Some(_) => {
            // Transactions (a transaction coordinator) are not built yet; refuse clearly rather
            // than hand out an id whose transactions would never commit.
            return out.with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed));
        }
        None => {}
    }
    // KIP-360: an idempotent producer may ask to bump its own epoch after a fatal sequence error.
    if r.producer_id.0 >= 0 && r.producer_epoch >= 0 && r.producer_epoch < i16::MAX - 1 {
        return out
            .with_producer_id(r.producer_id)
            .with_producer_epoch(r.producer_epoch + 1);
    }
    match broker.next_producer_id() {
        Ok(id) => out.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => out.with_error_code(commit_error(&e).0),
    }
}

fn describe_cluster(broker: &Arc<Broker>, r: DescribeClusterRequest) -> DescribeClusterResponse {
    let image = broker.image();
    DescribeClusterResponse::default()
        .with_endpoint_type(r.endpoint_type)
        .with_cluster_id(s(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_brokers(
            brokers(broker, &image)
                .into_iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(b.node_id)
                        .with_host(b.host)
                        .with_port(b.port)
                        .with_rack(b.rack)
                })
                .collect(),
        )
}

fn describe_topic_partitions(
    broker: &Arc<Broker>,
    r: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = broker.image();
    let mut names: Vec<String> = if r.topics.is_empty() {
        image.topics.keys().cloned().collect()
    } else {
        r.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &r.cursor {
        Some(c) => (Some(c.topic_name.to_string()), c.partition_index),
        None => (None, 0),
    };
    let mut budget = if r.response_partition_limit <= 0 {
        2000
    } else {
        r.response_partition_limit as usize
    };
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if let Some(ct) = &cursor_topic {
            if name < *ct {
                continue;
            }
        }
        let Some(t) = image.topic(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(tn(name)))
                    .with_error_code(code(ResponseError::UnknownTopicOrPartition)),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(tn(name))
                    .with_partition_index(0),
            );
            break;
        }
        let start = if cursor_topic.as_deref() == Some(name.as_str()) {
            cursor_partition
        } else {
            0
        };
        let mut partitions = Vec::new();
        for p in t.partitions.values().filter(|p| p.partition >= start) {
            if budget == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(tn(name.clone()))
                        .with_partition_index(p.partition),
                );
                break;
            }
            budget -= 1;
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p.partition)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replicas.iter().map(|b| BrokerId(*b)).collect())
                    .with_isr_nodes(p.isr.iter().map(|b| BrokerId(*b)).collect())
                    .with_eligible_leader_replicas(Some(vec![]))
                    .with_last_known_elr(Some(vec![])),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(tn(name.clone())))
                .with_topic_id(t.topic_id)
                .with_is_internal(is_internal(&name))
                .with_partitions(partitions),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn offset_for_leader_epoch(
    broker: &Arc<Broker>,
    r: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let result = (|| {
                        let partition = broker
                            .partition(t.topic.as_str(), p.partition)
                            .ok_or(ResponseError::UnknownTopicOrPartition)?;
                        check_leader_epoch(partition.leader_epoch(), p.current_leader_epoch)?;
                        if !partition.is_leader() {
                            return Err(ResponseError::NotLeaderOrFollower);
                        }
                        let log = partition.log();
                        Ok(log.end_offset_for_epoch(p.leader_epoch))
                    })();
                    match result {
                        Ok(Some((epoch, end))) => {
                            out.leader_epoch = epoch;
                            out.end_offset = end;
                        }
                        Ok(None) => {}
                        Err(e) => out.error_code = code(e),
                    }
                    out
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
