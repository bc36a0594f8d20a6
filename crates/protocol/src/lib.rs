//! Brook's Kafka wire codec.
//!
//! This crate owns everything about bytes on the wire and nothing about sockets, disks or
//! brokers: it checks that a whole size-prefixed frame has arrived ([`frame`]), decodes request
//! envelopes and encodes responses with the generated message types of the `kafka-protocol`
//! crate ([`request`]; [`outgoing`] keeps Fetch record sets shared rather than copied), states which API keys and versions Brook speaks ([`versions`]), and reads,
//! validates and rewrites the headers of v2 record batches without decompressing them
//! ([`batch`]). It performs no I/O and must never depend on the storage or broker crates; a
//! malformed input is always an error value, never a panic.

pub mod batch;
pub mod frame;
pub mod outgoing;
pub mod request;
pub mod versions;

/// The generated Kafka message types, re-exported so that other crates use one version of them.
pub use kafka_protocol as kafka;
pub use kafka_protocol::error::ResponseError;

/// Kafka's numeric error code for a [`ResponseError`] (0 is success).
pub fn error_code(e: ResponseError) -> i16 {
    e.code()
}
