//! Controller logic: validates admin requests against the image and answers with the records that
//! carry them out. Pure functions over the image (no I/O), so a Raft-replicated controller can run
//! the same code and tests need no broker.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::image::MetadataImage;
use crate::record::{ConfigResource, MetadataRecord};
use crate::topic_config::{validate_topic_config, ConfigError};

/// Why the controller refused a change. Each variant is one Kafka error code (mapped by the broker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    #[error("This server does not host this topic ID.")]
    UnknownTopicId,
    #[error("{0}")]
    InvalidRequest(String),
    /// A partition leader's ISR change was refused (it carries its own Kafka error code).
    #[error(transparent)]
    AlterPartition(#[from] crate::cluster::AlterPartitionError),
}

impl From<ConfigError> for ControllerError {
    fn from(e: ConfigError) -> Self {
        ControllerError::InvalidConfig(e.to_string())
    }
}

/// Broker-wide defaults the controller applies.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ControllerDefaults {
    pub num_partitions: i32,
    pub default_replication_factor: i16,
}

/// Kafka's longest legal topic name.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// Kafka's topic name rules (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::InvalidTopic(
            "Topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(ControllerError::InvalidTopic(
            "Topic name cannot be \".\" or \"..\"".into(),
        ));
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters, topic name: {name}"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// A request to create one topic.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// -1 = broker default.
    pub num_partitions: i32,
    /// -1 = broker default.
    pub replication_factor: i16,
    /// Explicit replica lists by partition index (then both counts above must be -1).
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: Vec<(String, Option<String>)>,
}

/// Outcome of a successful create: the records plus what was decided.
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    pub records: Vec<MetadataRecord>,
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// Where new partitions' replicas go: Kafka's replica assignment over the live (unfenced) brokers.
///
/// When every live broker has a rack, Kafka's rack-aware scheme: brokers are interleaved rack by
/// rack, the leader of partition `p` is the `(start + p)`-th of that list and each further
/// replica is the next broker (shifted per round, as Kafka does) whose rack holds no replica of
/// the partition yet, as long as such a rack exists. When no broker has a rack, plain round-robin:
/// partition `p` gets brokers `start + p, start + p + 1, ...`. Either way leaders rotate over
/// every broker, so `n * k` partitions on `n` brokers give each broker exactly `k` leaders.
/// Deterministic (Kafka picks `start` at random; here the caller derives it from the image).
pub fn place_replicas(
    image: &MetadataImage,
    first_partition: i32,
    count: i32,
    replication_factor: usize,
    start: usize,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    let brokers = placement_order(image)?;
    let n = brokers.len();
    if replication_factor == 0 || replication_factor > n {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {n} broker(s) are registered and unfenced."
        )));
    }
    let racks: BTreeMap<i32, &str> = brokers
        .iter()
        .filter_map(|id| Some((*id, image.brokers.get(id)?.rack.as_deref()?)))
        .collect();
    let first = first_partition.max(0) as usize;
    let placed = (first..first + count.max(0) as usize)
        .map(|p| {
            let leader_index = (start + p) % n;
            if racks.is_empty() {
                (0..replication_factor)
                    .map(|j| brokers[(leader_index + j) % n])
                    .collect()
            } else {
                rack_aware_replicas(
                    &brokers,
                    &racks,
                    leader_index,
                    start + p / n,
                    replication_factor,
                )
            }
        })
        .collect();
    Ok(placed)
}

/// The live brokers in the order placement walks them: by id, or alternating racks (Kafka's
/// `getRackAlternatedBrokerList`: racks sorted by name, each contributing its next broker in
/// turn) when every live broker has a rack. Kafka refuses a mix of brokers with and without one.
fn placement_order(image: &MetadataImage) -> Result<Vec<i32>, ControllerError> {
    let live = image.live_brokers();
    let mut by_rack: BTreeMap<&str, std::collections::VecDeque<i32>> = BTreeMap::new();
    for id in &live {
        if let Some(rack) = image.brokers.get(id).and_then(|b| b.rack.as_deref()) {
            by_rack.entry(rack).or_default().push_back(*id);
        }
    }
    let with_rack: usize = by_rack.values().map(|v| v.len()).sum();
    if with_rack == 0 {
        return Ok(live);
    }
    if with_rack != live.len() {
        return Err(ControllerError::InvalidReplicationFactor(
            "Not all brokers have rack information for replica rack aware assignment.".into(),
        ));
    }
    let mut out = Vec::with_capacity(live.len());
    while out.len() < live.len() {
        for queue in by_rack.values_mut() {
            if let Some(id) = queue.pop_front() {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// One partition's replicas under Kafka's rack-aware scheme: after the leader, walk the brokers
/// from a per-round shift and take a broker unless its rack (while some rack has none yet) or the
/// broker itself (while some broker has none yet) already holds a replica.
fn rack_aware_replicas(
    brokers: &[i32],
    racks: &BTreeMap<i32, &str>,
    leader_index: usize,
    shift: usize,
    replication_factor: usize,
) -> Vec<i32> {
    let n = brokers.len();
    let num_racks = racks
        .values()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let leader = brokers[leader_index];
    let mut replicas = vec![leader];
    let mut used_racks: std::collections::BTreeSet<&str> =
        racks.get(&leader).copied().into_iter().collect();
    let mut k = 0usize;
    // Candidates refused since the last pick: after a lap of n - 1 nothing rack-free is left
    // (cannot happen while a rack is unused, but it bounds the loop), so any new broker will do.
    let mut refused = 0usize;
    while replicas.len() < replication_factor {
        // Kafka's replicaIndex: never the leader's own slot, every other slot within n - 1 steps.
        let offset = 1 + (shift * num_racks + k) % (n - 1);
        let broker = brokers[(leader_index + offset) % n];
        let rack = racks.get(&broker).copied().unwrap_or_default();
        let rack_ok =
            !used_racks.contains(rack) || used_racks.len() >= num_racks || refused >= n - 1;
        if rack_ok && !replicas.contains(&broker) {
            replicas.push(broker);
            used_racks.insert(rack);
            refused = 0;
        } else {
            refused += 1;
        }
        k += 1;
    }
    replicas
}

/// A new partition's record: the ISR is its live replicas, the leader the first of them.
fn partition_record(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    replicas: Vec<i32>,
) -> Result<MetadataRecord, ControllerError> {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|b| image.is_live(*b))
        .collect();
    let leader = *isr.first().ok_or_else(|| {
        ControllerError::InvalidReplicaAssignment(format!(
            "All brokers specified in the manual partition assignment for partition {partition} are fenced or in controlled shutdown."
        ))
    })?;
    Ok(MetadataRecord::Partition {
        topic_id,
        partition,
        leader,
        isr,
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

fn check_assignment(
    image: &MetadataImage,
    replicas: &[i32],
    partition: i32,
) -> Result<(), ControllerError> {
    if replicas.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "Partition {partition} has an empty replica assignment."
        )));
    }
    let mut seen = replicas.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != replicas.len() {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "Duplicate brokers are not allowed in replica assignment: {replicas:?} for partition {partition}."
        )));
    }
    if let Some(b) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "Replica assignment for partition {partition} names broker {b}, which is not registered."
        )));
    }
    Ok(())
}

/// Validates a topic creation and returns the records that perform it.
pub fn create_topic(
    image: &MetadataImage,
    defaults: ControllerDefaults,
    req: &NewTopic,
) -> Result<CreatedTopic, ControllerError> {
    validate_topic_name(&req.name)?;
    if image.topic(&req.name).is_some() {
        return Err(ControllerError::TopicAlreadyExists(req.name.clone()));
    }
    // Kafka refuses names that collide once '.' and '_' are treated alike (metric names).
    let normalized = req.name.replace('.', "_");
    if let Some(other) = image
        .topics
        .keys()
        .find(|t| t.replace('.', "_") == normalized)
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic '{}' collides with existing topic: {other}",
            req.name
        )));
    }
    for (name, value) in &req.configs {
        let value = value.as_deref().ok_or_else(|| {
            ControllerError::InvalidConfig(format!(
                "Null value not supported for topic configs: {name}"
            ))
        })?;
        validate_topic_config(name, value)?;
    }
    let assignments: Vec<Vec<i32>> = if !req.assignments.is_empty() {
        if req.num_partitions != -1 || req.replication_factor != -1 {
            return Err(ControllerError::InvalidRequest(
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        let mut out = Vec::new();
        for (i, (p, replicas)) in req.assignments.iter().enumerate() {
            if *p != i as i32 {
                return Err(ControllerError::InvalidReplicaAssignment(
                    "Partitions should be numbered 0, 1, 2, ... in a replica assignment.".into(),
                ));
            }
            check_assignment(image, replicas, *p)?;
            out.push(replicas.clone());
        }
        out
    } else {
        let partitions = if req.num_partitions == -1 {
            defaults.num_partitions
        } else {
            req.num_partitions
        };
        let rf = if req.replication_factor == -1 {
            defaults.default_replication_factor
        } else {
            req.replication_factor
        };
        if partitions <= 0 {
            return Err(ControllerError::InvalidPartitions(
                "Number of partitions was set to an invalid non-positive value.".into(),
            ));
        }
        if rf <= 0 {
            return Err(ControllerError::InvalidReplicationFactor(
                "Replication factor must be larger than 0.".into(),
            ));
        }
        // Each new topic starts one broker further, so single-partition topics spread too.
        place_replicas(image, 0, partitions, rf as usize, image.topics.len())?
    };
    let topic_id = loop {
        let id = Uuid::new_v4();
        if image.topic_by_id(&id).is_none() && id != Uuid::nil() {
            break id;
        }
    };
    let mut records = vec![MetadataRecord::Topic {
        name: req.name.clone(),
        topic_id,
    }];
    for (name, value) in &req.configs {
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(req.name.clone()),
            name: name.clone(),
            value: value.clone(),
        });
    }
    let replication_factor = assignments[0].len() as i16;
    let num_partitions = assignments.len() as i32;
    for (p, replicas) in assignments.into_iter().enumerate() {
        records.push(partition_record(image, topic_id, p as i32, replicas)?);
    }
    Ok(CreatedTopic {
        records,
        topic_id,
        num_partitions,
        replication_factor,
    })
}

/// Validates a topic deletion and returns its record.
pub fn delete_topic(
    image: &MetadataImage,
    topic_id: Uuid,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if image.topic_by_id(&topic_id).is_none() {
        return Err(ControllerError::UnknownTopicId);
    }
    Ok(vec![MetadataRecord::RemoveTopic { topic_id }])
}

/// Validates a partition count increase and returns the new partitions' records.
pub fn create_partitions(
    image: &MetadataImage,
    topic: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let t = image
        .topic(topic)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let current = t.partitions.len() as i32;
    if count < current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic currently has {current} partitions, which is higher than the requested {count}."
        )));
    }
    if count == current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic already has {current} partitions."
        )));
    }
    let rf = t
        .partitions
        .values()
        .next()
        .map(|p| p.replicas.len())
        .unwrap_or(1);
    let new = count - current;
    let placed = match assignments {
        Some(a) => {
            if a.len() as i32 != new {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Increasing the number of partitions by {new} but {} assignments provided.",
                    a.len()
                )));
            }
            for (i, replicas) in a.iter().enumerate() {
                check_assignment(image, replicas, current + i as i32)?;
            }
            a.to_vec()
        }
        None => {
            // Continue the topic's rotation: partition p is led by the broker p places after the
            // one partition 0 prefers (Kafka's addPartitions start index).
            let order = placement_order(image)?;
            let start = t
                .partitions
                .get(&0)
                .and_then(|p0| p0.replicas.first())
                .and_then(|first| order.iter().position(|b| b == first))
                .unwrap_or(0);
            place_replicas(image, current, new, rf, start)?
        }
    };
    placed
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| partition_record(image, t.topic_id, current + i as i32, replicas))
        .collect()
}

/// One incremental config operation (IncrementalAlterConfigs' op codes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOp {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

/// Validates incremental config changes on a topic and returns their records.
pub fn alter_topic_configs_incremental(
    image: &MetadataImage,
    topic: &str,
    ops: &[(String, ConfigOp)],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if image.topic(topic).is_none() {
        return Err(ControllerError::UnknownTopicOrPartition);
    }
    let current = image.topic_configs(topic).cloned().unwrap_or_default();
    let mut records = Vec::new();
    for (name, op) in ops {
        let def = crate::topic_config::topic_config(name)
            .ok_or_else(|| ConfigError::Unknown(name.clone()))?;
        let value = match op {
            ConfigOp::Set(v) => Some(v.clone()),
            ConfigOp::Delete => None,
            ConfigOp::Append(v) | ConfigOp::Subtract(v) => {
                if def.kind != crate::topic_config::ConfigType::List {
                    return Err(ControllerError::InvalidConfig(format!(
                        "Config value append/subtract is not allowed for config key: {name}"
                    )));
                }
                let base = current
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| def.default.to_string());
                let mut items: Vec<String> = base
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if matches!(op, ConfigOp::Append(_)) {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                Some(items.join(","))
            }
        };
        if let Some(v) = &value {
            validate_topic_config(name, v)?;
        }
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(topic.to_string()),
            name: name.clone(),
            value,
        });
    }
    Ok(records)
}

/// The topic config whose broker property `name` is: the broker properties Kafka lets an operator
/// change at run time (per broker, or cluster-wide with `--entity-default`) are these topic
/// defaults (`log.retention.ms`, `log.segment.bytes`, `message.max.bytes`, ...).
pub fn dynamic_broker_config(name: &str) -> Option<&'static crate::topic_config::TopicConfigDef> {
    crate::topic_config::TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker_synonym == Some(name))
}

fn check_broker_resource(
    image: &MetadataImage,
    broker: Option<i32>,
) -> Result<(), ControllerError> {
    match broker {
        Some(id) if !image.brokers.contains_key(&id) => Err(ControllerError::InvalidRequest(
            format!("Broker {id} is not registered"),
        )),
        _ => Ok(()),
    }
}

fn validate_broker_config(name: &str, value: &str) -> Result<(), ControllerError> {
    let def = dynamic_broker_config(name).ok_or_else(|| {
        ControllerError::InvalidRequest(format!(
            "Cannot update these configs dynamically: Set({name})"
        ))
    })?;
    def.validate(value).map_err(|reason| {
        ControllerError::InvalidConfig(format!(
            "Invalid value {value} for configuration {name}: {reason}"
        ))
    })
}

/// Validates incremental changes to a broker's dynamic configs (`None`: the cluster-wide
/// default) and returns their records. Only Set and Delete apply to broker configs here.
pub fn alter_broker_configs_incremental(
    image: &MetadataImage,
    broker: Option<i32>,
    ops: &[(String, ConfigOp)],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    check_broker_resource(image, broker)?;
    let mut records = Vec::new();
    for (name, op) in ops {
        let value = match op {
            ConfigOp::Set(v) => {
                validate_broker_config(name, v)?;
                Some(v.clone())
            }
            ConfigOp::Delete => {
                if dynamic_broker_config(name).is_none() {
                    validate_broker_config(name, "")?;
                }
                None
            }
            ConfigOp::Append(_) | ConfigOp::Subtract(_) => {
                return Err(ControllerError::InvalidRequest(format!(
                    "Config value append/subtract is not supported for broker config: {name}"
                )))
            }
        };
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Broker(broker),
            name: name.clone(),
            value,
        });
    }
    Ok(records)
}

/// Validates a full replacement of a broker's dynamic configs (legacy AlterConfigs).
pub fn replace_broker_configs(
    image: &MetadataImage,
    broker: Option<i32>,
    configs: &[(String, Option<String>)],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    check_broker_resource(image, broker)?;
    let mut wanted = BTreeMap::new();
    for (name, value) in configs {
        let value = value.as_deref().ok_or_else(|| {
            ControllerError::InvalidConfig(format!("Null value not supported for: {name}"))
        })?;
        validate_broker_config(name, value)?;
        wanted.insert(name.clone(), value.to_string());
    }
    let mut records = Vec::new();
    if let Some(current) = image.broker_configs(broker) {
        for name in current.keys().filter(|n| !wanted.contains_key(*n)) {
            records.push(MetadataRecord::Config {
                resource: ConfigResource::Broker(broker),
                name: name.clone(),
                value: None,
            });
        }
    }
    for (name, value) in wanted {
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Broker(broker),
            name,
            value: Some(value),
        });
    }
    Ok(records)
}

/// Validates a full replacement of a topic's configs (legacy AlterConfigs) and returns the records.
pub fn replace_topic_configs(
    image: &MetadataImage,
    topic: &str,
    configs: &[(String, Option<String>)],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if image.topic(topic).is_none() {
        return Err(ControllerError::UnknownTopicOrPartition);
    }
    let mut records = Vec::new();
    let mut wanted = BTreeMap::new();
    for (name, value) in configs {
        let value = value.as_deref().ok_or_else(|| {
            ControllerError::InvalidConfig(format!("Null value not supported for: {name}"))
        })?;
        validate_topic_config(name, value)?;
        wanted.insert(name.clone(), value.to_string());
    }
    if let Some(current) = image.topic_configs(topic) {
        for name in current.keys().filter(|n| !wanted.contains_key(*n)) {
            records.push(MetadataRecord::Config {
                resource: ConfigResource::Topic(topic.to_string()),
                name: name.clone(),
                value: None,
            });
        }
    }
    for (name, value) in wanted {
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(topic.to_string()),
            name,
            value: Some(value),
        });
    }
    Ok(records)
}

/// Size of a block of producer ids handed out at once (Kafka's `ProducerIdsBlock` is 1000).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// Reserves the next block of producer ids: returns its first id and the record.
pub fn allocate_producer_ids(image: &MetadataImage) -> (i64, MetadataRecord) {
    let first = image.next_producer_id;
    (
        first,
        MetadataRecord::ProducerIds {
            next_producer_id: first + PRODUCER_ID_BLOCK,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with_brokers(n: i32) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=n {
            image.apply(&MetadataRecord::RegisterBroker {
                node_id: id,
                host: "localhost".into(),
                port: 9092,
                rack: None,
                epoch: id as i64,
                fenced: false,
            });
        }
        image
    }

    const DEFAULTS: ControllerDefaults = ControllerDefaults {
        num_partitions: 1,
        default_replication_factor: 1,
    };

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            image.apply(r);
        }
    }

    #[test]
    fn dynamic_broker_configs_accept_only_topic_default_properties() {
        let mut image = image_with_brokers(1);
        let set = |v: &str| vec![("log.retention.ms".to_string(), ConfigOp::Set(v.into()))];
        let recs = alter_broker_configs_incremental(&image, Some(1), &set("1000")).unwrap();
        apply(&mut image, &recs);
        assert_eq!(
            image.broker_configs(Some(1)).unwrap()["log.retention.ms"],
            "1000"
        );
        let recs = alter_broker_configs_incremental(&image, None, &set("5")).unwrap();
        apply(&mut image, &recs);
        assert_eq!(image.broker_configs(None).unwrap()["log.retention.ms"], "5");
        // Replacing with nothing clears this broker's values only.
        let recs = replace_broker_configs(&image, Some(1), &[]).unwrap();
        apply(&mut image, &recs);
        assert!(image.broker_configs(Some(1)).is_none());
        assert!(image.broker_configs(None).is_some());

        let static_only = vec![("num.partitions".to_string(), ConfigOp::Set("3".into()))];
        assert!(matches!(
            alter_broker_configs_incremental(&image, Some(1), &static_only),
            Err(ControllerError::InvalidRequest(m)) if m.contains("dynamically")
        ));
        assert!(matches!(
            alter_broker_configs_incremental(&image, Some(1), &set("soon")),
            Err(ControllerError::InvalidConfig(_))
        ));
        assert!(alter_broker_configs_incremental(&image, Some(7), &set("1")).is_err());
    }

    #[test]
    fn creates_a_topic_with_defaults_and_spreads_leaders() {
        let mut image = image_with_brokers(3);
        let created = create_topic(
            &image,
            DEFAULTS,
            &NewTopic {
                name: "t".into(),
                num_partitions: 6,
                replication_factor: 3,
                ..Default::default()
            },
        )
        .unwrap();
        apply(&mut image, &created.records);
        let t = image.topic("t").unwrap();
        assert_eq!(t.partitions.len(), 6);
        let mut leaders: Vec<i32> = t.partitions.values().map(|p| p.leader).collect();
        leaders.sort();
        assert_eq!(leaders, vec![1, 1, 2, 2, 3, 3]);
        assert!(t.partitions.values().all(|p| p.isr.len() == 3));
    }

    #[test]
    fn refuses_duplicates_bad_names_and_too_large_replication() {
        let mut image = image_with_brokers(1);
        let new = NewTopic {
            name: "a.b".into(),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        };
        let created = create_topic(&image, DEFAULTS, &new).unwrap();
        apply(&mut image, &created.records);
        assert!(matches!(
            create_topic(&image, DEFAULTS, &new),
            Err(ControllerError::TopicAlreadyExists(_))
        ));
        let collide = NewTopic {
            name: "a_b".into(),
            ..new.clone()
        };
        assert!(matches!(
            create_topic(&image, DEFAULTS, &collide),
            Err(ControllerError::InvalidTopic(_))
        ));
        for bad in ["", ".", "..", "has space", &"x".repeat(250)] {
            let t = NewTopic {
                name: bad.to_string(),
                ..new.clone()
            };
            assert!(matches!(
                create_topic(&image, DEFAULTS, &t),
                Err(ControllerError::InvalidTopic(_))
            ));
        }
        let rf3 = NewTopic {
            name: "c".into(),
            replication_factor: 3,
            ..new.clone()
        };
        assert!(matches!(
            create_topic(&image, DEFAULTS, &rf3),
            Err(ControllerError::InvalidReplicationFactor(_))
        ));
        let badcfg = NewTopic {
            name: "d".into(),
            configs: vec![("retention.ms".into(), Some("soon".into()))],
            ..new
        };
        assert!(matches!(
            create_topic(&image, DEFAULTS, &badcfg),
            Err(ControllerError::InvalidConfig(_))
        ));
    }

    #[test]
    fn partitions_only_increase() {
        let mut image = image_with_brokers(1);
        let new = NewTopic {
            name: "t".into(),
            num_partitions: 3,
            replication_factor: 1,
            ..Default::default()
        };
        let created = create_topic(&image, DEFAULTS, &new).unwrap();
        apply(&mut image, &created.records);
        assert!(matches!(
            create_partitions(&image, "t", 2, None),
            Err(ControllerError::InvalidPartitions(_))
        ));
        let recs = create_partitions(&image, "t", 5, None).unwrap();
        apply(&mut image, &recs);
        assert_eq!(image.topic("t").unwrap().partitions.len(), 5);
    }

    #[test]
    fn incremental_config_ops() {
        let mut image = image_with_brokers(1);
        let new = NewTopic {
            name: "t".into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        };
        let created = create_topic(&image, DEFAULTS, &new).unwrap();
        apply(&mut image, &created.records);
        let recs = alter_topic_configs_incremental(
            &image,
            "t",
            &[
                ("retention.ms".into(), ConfigOp::Set("1000".into())),
                ("cleanup.policy".into(), ConfigOp::Append("compact".into())),
            ],
        )
        .unwrap();
        apply(&mut image, &recs);
        let c = image.topic_configs("t").unwrap();
        assert_eq!(c["retention.ms"], "1000");
        assert_eq!(c["cleanup.policy"], "delete,compact");
        let recs = alter_topic_configs_incremental(
            &image,
            "t",
            &[("retention.ms".into(), ConfigOp::Delete)],
        )
        .unwrap();
        apply(&mut image, &recs);
        assert!(!image
            .topic_configs("t")
            .unwrap()
            .contains_key("retention.ms"));
        assert!(alter_topic_configs_incremental(
            &image,
            "t",
            &[("retention.ms".into(), ConfigOp::Append("1".into()))]
        )
        .is_err());
    }

    fn image_with_racks(brokers: &[(i32, Option<&str>)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (id, rack) in brokers {
            image.apply(&MetadataRecord::RegisterBroker {
                node_id: *id,
                host: "localhost".into(),
                port: 9092,
                rack: rack.map(str::to_string),
                epoch: *id as i64,
                fenced: false,
            });
        }
        image
    }

    fn racks_of(image: &MetadataImage, replicas: &[i32]) -> std::collections::BTreeSet<String> {
        replicas
            .iter()
            .filter_map(|b| image.brokers[b].rack.clone())
            .collect()
    }

    #[test]
    fn rack_aware_placement_spreads_replicas_over_racks_and_leaders_over_brokers() {
        let image = image_with_racks(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        let placed = place_replicas(&image, 0, 12, 3, 0).unwrap();
        let mut leaders = BTreeMap::new();
        for replicas in &placed {
            assert_eq!(racks_of(&image, replicas).len(), 3, "{replicas:?}");
            *leaders.entry(replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6]);
        // The rack-alternated order: a, b, c, a, b, c.
        let firsts: Vec<i32> = placed.iter().take(6).map(|r| r[0]).collect();
        assert_eq!(firsts, vec![1, 3, 5, 2, 4, 6]);
        // Two racks, three replicas: both racks hold one.
        let two = image_with_racks(&[(1, Some("a")), (2, Some("a")), (3, Some("b"))]);
        for replicas in place_replicas(&two, 0, 6, 2, 1).unwrap() {
            assert_eq!(racks_of(&two, &replicas).len(), 2, "{replicas:?}");
        }
    }

    #[test]
    fn a_mix_of_brokers_with_and_without_racks_is_refused() {
        let mut image = image_with_racks(&[(1, Some("a")), (2, None)]);
        let new = NewTopic {
            name: "t".into(),
            num_partitions: 2,
            replication_factor: 1,
            ..Default::default()
        };
        assert!(matches!(
            create_topic(&image, DEFAULTS, &new),
            Err(ControllerError::InvalidReplicationFactor(m)) if m.contains("rack information")
        ));
        // An explicit assignment needs no placement.
        let manual = NewTopic {
            name: "m".into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: BTreeMap::from([(0, vec![2, 1])]),
            ..Default::default()
        };
        assert!(create_topic(&image, DEFAULTS, &manual).is_ok());
        // A fenced broker does not count.
        image.apply(&MetadataRecord::FenceBroker { node_id: 2 });
        assert!(create_topic(&image, DEFAULTS, &new).is_ok());
    }

    #[test]
    fn fenced_brokers_get_no_new_replicas() {
        let mut image = image_with_brokers(3);
        image.apply(&MetadataRecord::FenceBroker { node_id: 2 });
        let new = NewTopic {
            name: "t".into(),
            num_partitions: 4,
            replication_factor: 2,
            ..Default::default()
        };
        let created = create_topic(&image, DEFAULTS, &new).unwrap();
        apply(&mut image, &created.records);
        let t = image.topic("t").unwrap();
        assert!(t.partitions.values().all(|p| !p.replicas.contains(&2)));
        let rf3 = NewTopic {
            name: "u".into(),
            replication_factor: 3,
            ..new.clone()
        };
        assert!(matches!(
            create_topic(&image, DEFAULTS, &rf3),
            Err(ControllerError::InvalidReplicationFactor(_))
        ));
        let recs = create_partitions(&image, "t", 6, None).unwrap();
        apply(&mut image, &recs);
        let t = image.topic("t").unwrap();
        assert!(t.partitions.values().all(|p| !p.replicas.contains(&2)));
        // A manual assignment may name a fenced broker; it just starts outside the ISR.
        let recs = create_partitions(&image, "t", 7, Some(&[vec![2, 3]])).unwrap();
        apply(&mut image, &recs);
        let p6 = &image.topic("t").unwrap().partitions[&6];
        assert_eq!((p6.leader, p6.isr.clone()), (3, vec![3]));
        assert!(matches!(
            create_partitions(&image, "t", 8, Some(&[vec![2]])),
            Err(ControllerError::InvalidReplicaAssignment(m)) if m.contains("fenced")
        ));
    }

    #[test]
    fn added_partitions_continue_the_leader_rotation() {
        let mut image = image_with_brokers(3);
        let new = NewTopic {
            name: "t".into(),
            num_partitions: 2,
            replication_factor: 1,
            ..Default::default()
        };
        let created = create_topic(&image, DEFAULTS, &new).unwrap();
        apply(&mut image, &created.records);
        let recs = create_partitions(&image, "t", 6, None).unwrap();
        apply(&mut image, &recs);
        let leaders: Vec<i32> = image
            .topic("t")
            .unwrap()
            .partitions
            .values()
            .map(|p| p.leader)
            .collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
    }

    proptest::proptest! {
        #[test]
        fn placement_balances_leaders_and_spreads_racks(
            n in 1usize..9,
            num_racks in 0usize..5,
            rf_seed in 0usize..100,
            k in 1usize..4,
            start in 0usize..20,
        ) {
            let brokers: Vec<(i32, Option<String>)> = (0..n)
                .map(|i| {
                    let rack = (num_racks > 0).then(|| format!("r{}", i % num_racks));
                    (i as i32 + 1, rack)
                })
                .collect();
            let refs: Vec<(i32, Option<&str>)> =
                brokers.iter().map(|(id, r)| (*id, r.as_deref())).collect();
            let image = image_with_racks(&refs);
            let rf = 1 + rf_seed % n;
            let placed = place_replicas(&image, 0, (n * k) as i32, rf, start).unwrap();
            let mut leaders = BTreeMap::new();
            let distinct_racks = num_racks.min(n);
            for replicas in &placed {
                proptest::prop_assert_eq!(replicas.len(), rf);
                let mut unique = replicas.clone();
                unique.sort_unstable();
                unique.dedup();
                proptest::prop_assert_eq!(unique.len(), rf);
                if num_racks > 0 {
                    proptest::prop_assert_eq!(racks_of(&image, replicas).len(), rf.min(distinct_racks));
                }
                *leaders.entry(replicas[0]).or_insert(0usize) += 1;
            }
            proptest::prop_assert_eq!(leaders.len(), n);
            proptest::prop_assert!(leaders.values().all(|c| *c == k));
        }
    }
}
