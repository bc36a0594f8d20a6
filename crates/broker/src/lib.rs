//! The Brook broker: the network server and everything behind it on one node.
//!
//! This crate owns sockets ([`server`]), request routing and the request handlers ([`handlers`]),
//! the broker's configuration ([`config`]), the mapping of every internal error to a Kafka error
//! code ([`errors`]), and the replicas this broker hosts with their logs ([`state`]), and the group coordinator's I/O
//! ([`groups`]: waiting requests, `__consumer_offsets`, timers), and partition replication's I/O:
//! leader and follower roles from the metadata image ([`state`]), replica fetchers
//! ([`replica_fetcher`]) over a small inter-broker client ([`peer`]), with the decisions (high
//! watermark, ISR, truncation) taken by `brook-replication`. In cluster mode it also owns the Raft
//! metadata quorum's transport and handle ([`quorum`]) and the glue that makes this node a
//! controller and a registered broker ([`cluster`]). It builds on `brook-protocol` for bytes,
//! `brook-storage` for partition logs and `brook-metadata` for cluster metadata, and must not leak
//! sockets into those crates (openraft brings Tokio into `brook-metadata`'s quorum stores).

pub mod cluster;
pub mod cluster_handlers;
pub mod config;
pub mod errors;
pub mod fetch_session;
pub mod group_handlers;
pub mod groups;
pub mod handlers;
pub mod peer;
pub mod quorum;
pub mod replica_fetcher;
pub mod server;
pub mod state;

pub use config::BrokerConfig;
pub use server::{run, BoundServer};
pub use state::{Broker, IsrChange, Role};
