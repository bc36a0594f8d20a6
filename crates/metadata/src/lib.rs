//! Cluster metadata: what topics, partitions, configs and brokers exist.
//!
//! Mirrors Kafka's KRaft design. Every change is a [`MetadataRecord`]; the [`MetadataImage`] is what
//! applying them in order builds; the [`controller`] validates a request against the image and
//! answers with the records to append plus a per-item result, without doing any I/O itself, so the
//! same logic can later sit behind a Raft quorum. [`store`] keeps the records durable on one node
//! (in cluster mode [`quorum`]'s Raft log and state machine, replicated by openraft, replace it).
//! [`topic_config`] defines Kafka's topic configuration names, defaults and validation. [`ops`]
//! turns every metadata change into a serializable operation, so a broker can forward it to the
//! active controller. This crate knows nothing of sockets, partition data or the wire codec.
//!
//! For a cluster, [`cluster`] holds the controller's broker fencing, ISR and leader-election
//! logic, [`reassignment`] moving partitions between brokers, and [`heartbeat`] the active
//! controller's broker sessions, all pure as well.

pub mod cluster;
pub mod controller;
pub mod heartbeat;
pub mod image;
pub mod ops;
pub mod quorum;
pub mod reassignment;
pub mod record;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod topic_config;

pub use image::{MetadataImage, PartitionImage, TopicImage};
pub use ops::{ControllerOp, ControllerReply};
pub use record::MetadataRecord;
