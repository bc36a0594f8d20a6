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

fn live_brokers(image: &MetadataImage) -> Vec<i32> {
    image.brokers.keys().copied().collect()
}

/// Round-robin replica placement, Kafka's non-rack-aware scheme: partition p's replicas start at
/// broker `(start + p) % n`, so leaders spread evenly.
fn place_replicas(
    brokers: &[i32],
    first_partition: i32,
    count: i32,
    rf: usize,
    start: usize,
) -> Vec<Vec<i32>> {
    let n = brokers.len();
    (first_partition..first_partition + count)
        .map(|p| {
            (0..rf)
                .map(|j| brokers[(start + p as usize + j) % n])
                .collect()
        })
        .collect()
}

fn partition_record(topic_id: Uuid, partition: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        leader: replicas[0],
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    }
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
    let brokers = live_brokers(image);
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
        if rf as usize > brokers.len() {
            return Err(ControllerError::InvalidReplicationFactor(format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
                brokers.len()
            )));
        }
        let start = (image.topics.len()) % brokers.len().max(1);
        place_replicas(&brokers, 0, partitions, rf as usize, start)
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
        records.push(partition_record(topic_id, p as i32, replicas));
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
            let brokers = live_brokers(image);
            if rf > brokers.len() {
                return Err(ControllerError::InvalidReplicationFactor(format!(
                    "Unable to replicate the partition {rf} time(s): only {} broker(s) are registered.",
                    brokers.len()
                )));
            }
            place_replicas(&brokers, current, new, rf, 0)
        }
    };
    Ok(placed
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| partition_record(t.topic_id, current + i as i32, replicas))
        .collect())
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
}
