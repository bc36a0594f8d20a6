//! Brook's Kafka client for Rust.
//!
//! Owns what a Kafka client needs beyond the wire codec: serializers ([`serde`]), the partitioners
//! that place records exactly where Kafka's Java client and librdkafka put them ([`partitioner`]),
//! pipelined broker connections ([`connection`]), cluster metadata and request routing
//! ([`cluster`]), the admin client ([`admin`]), the producer ([`producer`]) and the consumer ([`consumer`]). It speaks only the Kafka protocol, through
//! `brook-protocol`, so it works against any Kafka cluster; it must never depend on Brook's broker,
//! storage or metadata crates.
//!
//! Settings come typed ([`ProducerConfig`], [`ConsumerConfig`], [`cluster::ClientConfig`]) or from
//! Kafka's property names ([`properties`]). Feature `json`: `serde::JsonSerde`.
//!
//! # Usage
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use brook_client::admin::NewTopic;
//! use brook_client::cluster::ClientConfig;
//! use brook_client::consumer::OffsetReset;
//! use brook_client::serde::{LongSerde, Serializer, StringSerde};
//! use brook_client::{Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // Admin: create a topic with 3 partitions, one replica each.
//! let admin = Admin::new(ClientConfig::new("localhost:9092"))?;
//! admin.create_topics(&[NewTopic::new("prices", 3, 1)], false).await?;
//!
//! // Producer: `send` queues the record; its future resolves once the broker has it.
//! let producer = Producer::new(ProducerConfig::new("localhost:9092"))?;
//! let record = ProducerRecord::new(
//!     "prices",
//!     StringSerde.serialize("prices", "tea"),
//!     LongSerde.serialize("prices", &250),
//! );
//! let delivery = producer.send(record).await?;
//! producer.flush().await?;
//! let stored = delivery.await?;
//! println!("partition {} offset {}", stored.partition, stored.offset);
//!
//! // Consumer: join a group, read, commit.
//! let mut config = ConsumerConfig::new("localhost:9092", Some("price-watchers"));
//! config.auto_offset_reset = OffsetReset::Earliest;
//! let mut consumer = Consumer::new(config)?;
//! consumer.subscribe(vec!["prices".to_string()])?;
//! for record in consumer.poll(Duration::from_secs(1)).await? {
//!     let item: String = record.key_as(&StringSerde)?;
//!     let cents: i64 = record.value_as(&LongSerde)?;
//!     println!("{item}: {cents}");
//! }
//! consumer.commit_sync().await?;
//! consumer.close().await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

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
