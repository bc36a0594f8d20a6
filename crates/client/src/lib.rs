//! Brook's Kafka client for Rust.
//!
//! Owns what a Kafka client needs beyond the wire codec: serializers ([`serde`]), the partitioners
//! that place records exactly where Kafka's Java client and librdkafka put them ([`partitioner`]),
//! pipelined broker connections ([`connection`]), cluster metadata and request routing
//! ([`cluster`]), the admin client ([`admin`]), the producer ([`producer`]) and the consumer ([`consumer`]). It speaks only the Kafka protocol, through
//! `brook-protocol`, so it works against any Kafka cluster; it must never depend on Brook's broker,
//! storage or metadata crates.

pub mod admin;
pub mod admin_groups;
pub mod admin_topics;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod partitioner;
pub mod producer;
pub mod properties;
pub mod serde;

pub use admin::Admin;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord};
pub use error::ClientError;
pub use producer::{Producer, ProducerConfig, ProducerRecord, RecordMetadata};
