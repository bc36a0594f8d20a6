//! The Raft side of cluster metadata: the log and state machine that openraft replicates.
//!
//! In cluster mode the metadata records are not appended to [`crate::store`]'s file but proposed
//! to a Raft quorum of controllers (Kafka's KRaft). Consensus itself is openraft's; this module
//! only supplies what openraft asks the application for, with no sockets (the broker owns the
//! transport):
//!
//! - [`TypeConfig`]: one log entry carries a [`RecordBatch`], the records of one controller
//!   operation, so an operation is applied all or nothing.
//! - [`LogStore`]: the durable Raft log, vote and committed index in a directory. Every write is
//!   fsynced before openraft is told it happened, because a vote or an acknowledged entry that a
//!   crash forgets breaks Raft's safety, not just availability.
//! - [`MetadataStateMachine`]: applies committed entries to a [`MetadataImage`](crate::MetadataImage) and publishes each
//!   new image on a watch channel, which is how the broker learns about metadata. Its snapshots
//!   are the image's own records ([`to_records`](crate::MetadataImage::to_records)), persisted so a restart replays
//!   only the log since the last snapshot.
//!
//! Both stores are checked by openraft's storage conformance suite (see the tests), the same
//! "narrow trait plus conformance suite" habit the rest of the project follows.
//!
//! Files in the directory (the broker uses `<log.dirs>/__cluster_metadata-0/`):
//! `raft-log.jsonl` (entries), `raft-state.json` (vote, committed, last purged) and
//! `raft-snapshot.json`. Every line or file is `<crc32c as 8 hex digits> <json>`, so corruption
//! is detected; a torn last log line (a crash mid-append) is dropped on open, while a bad line
//! anywhere else is an error, as in [`crate::store`]. Whole files are replaced by writing a
//! temporary file, fsyncing it, renaming it over the old one and fsyncing the directory.

mod codec;
mod log_store;
mod state_machine;
#[cfg(test)]
mod tests;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::MetadataRecord;

pub use log_store::LogStore;
pub use state_machine::{MetadataSnapshotBuilder, MetadataStateMachine};

/// The records of one controller operation: one Raft log entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RecordBatch(pub Vec<MetadataRecord>);

openraft::declare_raft_types!(
    /// openraft's type configuration for the metadata quorum.
    pub TypeConfig:
        D = RecordBatch,
        R = (),
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft node id: Kafka's `node.id` (never negative) widened to openraft's `u64`.
pub type NodeId = u64;
/// A running Raft node of the metadata quorum.
pub type Raft = openraft::Raft<TypeConfig>;
/// One entry of the metadata Raft log.
pub type Entry = openraft::Entry<TypeConfig>;
/// openraft's storage error for this quorum.
pub type StorageError = openraft::StorageError<NodeId>;

/// Why the quorum's stores could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum QuorumStoreError {
    #[error("metadata quorum I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata quorum file {path} is corrupt at line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Opens (or creates) the Raft log and the state machine kept in `dir`.
///
/// The state machine starts from the last persisted snapshot; openraft then re-applies the
/// committed log entries after it, so the published image is complete once the node has started.
pub fn open_stores(dir: &Path) -> Result<(LogStore, MetadataStateMachine), QuorumStoreError> {
    let log = LogStore::open(dir)?;
    let sm = MetadataStateMachine::open(dir)?;
    Ok((log, sm))
}
