//! The group coordinator: consumer groups and their committed offsets.
//!
//! Owns the classic group protocol ([`group`]: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and the
//! group state machine), the KIP-848 consumer group protocol ([`consumer_group`]: server-side
//! assignment, incremental reconciliation), committed offsets ([`offsets`]) and the binary records of
//! `__consumer_offsets` ([`records`]). Like Kafka's coordinators it is logic only: callers pass the
//! time, get back responses, deferred answers as events, and records to persist; the broker does
//! the I/O (appending records to `__consumer_offsets`, answering sockets, running the timer). It
//! must not depend on the broker, the network or storage.

pub mod consumer_group;
pub mod group;
pub mod offsets;
pub mod records;

pub use group::{
    Event, GroupConfig, GroupError, GroupState, Groups, JoinOutcome, JoinRequest, JoinResponse,
    SyncOutcome, SyncRequest, SyncResponse,
};
pub use offsets::{Committed, Offsets, OffsetsRecord};
