//! Metadata records: the unit of change of cluster metadata (Kafka's `metadata` record types).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a config record applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// A broker by node id; `None` is the cluster-wide default (`--entity-default`).
    Broker(Option<i32>),
}

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker joined or re-registered (Kafka's RegisterBrokerRecord).
    RegisterBroker {
        node_id: i32,
        host: String,
        port: i32,
        rack: Option<String>,
        /// The broker epoch this registration hands out; heartbeats and AlterPartition requests
        /// must quote it. Absent (0) in logs written by single-node Brook.
        #[serde(default)]
        epoch: i64,
        /// Cluster registrations start fenced until the broker heartbeats as caught up. Absent
        /// (false) in logs written by single-node Brook, whose only broker is always live.
        #[serde(default)]
        fenced: bool,
    },
    /// A broker lost its session or is shutting down: it may lead nothing and is dropped from
    /// ISRs (Kafka's BrokerRegistrationChangeRecord with fenced=true).
    FenceBroker { node_id: i32 },
    /// A fenced broker caught up and may lead partitions again (Kafka's
    /// BrokerRegistrationChangeRecord with fenced=false).
    UnfenceBroker { node_id: i32 },
    /// A topic was created.
    Topic { name: String, topic_id: Uuid },
    /// A partition was created, or its replicas/leader/ISR changed.
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A topic and its partitions were deleted.
    RemoveTopic { topic_id: Uuid },
    /// A config was set (`Some`) or removed (`None`).
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// Producer ids below `next_producer_id` have been handed out.
    ProducerIds { next_producer_id: i64 },
    /// A partition reassignment began or changed target (`Some`), or ended (`None`: completed or
    /// cancelled). Kafka keeps adding and removing replicas in its PartitionRecord; Brook keeps
    /// the assignment before the reassignment and its target beside the partition, whose
    /// replicas are the target followed by the replicas being removed meanwhile.
    Reassignment {
        topic_id: Uuid,
        partition: i32,
        reassignment: Option<crate::image::Reassignment>,
    },
}
