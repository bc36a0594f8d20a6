//! Brook's partition log, in Kafka's on-disk layout.
//!
//! This crate owns everything one partition keeps on disk: segment files (`<base offset, 20
//! digits>.log`) with their sparse offset (`.index`) and time (`.timeindex`) indexes, the
//! `leader-epoch-checkpoint`, the `brook-partition-state` file (log start offset, recovery point
//! and the clean-shutdown marker), and idempotent producer state with its `<offset>.snapshot`
//! files. It assigns offsets, detects duplicate and out-of-order idempotent batches, serves reads
//! by offset and timestamp, recovers after a crash (CRC scan and truncation of a torn tail),
//! applies retention, delete-records and compaction. It knows nothing about the network: it opens
//! no sockets, never depends on the broker or metadata crates, and takes the current time and
//! leader epoch as arguments. Record batches stay opaque bytes on the produce and fetch paths
//! (only headers are read and rewritten); batches are decoded only for timestamp lookups and
//! compaction.
//!
//! # Files of a partition directory
//! * `<base>.log`, `<base>.index`, `<base>.timeindex`: Kafka's segment layout. Index files hold
//!   exactly their entries (not preallocated). A log file's length is always its batches; an
//!   active segment past 4 MiB reserves disk past its end (`fallocate` with KEEP_SIZE, as much
//!   as it holds, at most 64 MiB) so that fast writes skip per-block allocation, and gives it
//!   back when sealed, closed, or recovered after a crash.
//! * `leader-epoch-checkpoint`: Kafka's text format (`0`, count, `epoch startOffset` lines).
//! * `brook-partition-state`: JSON `{"version":1,"log_start_offset":..,"recovery_point":..,
//!   "clean_shutdown":bool}`, replaced atomically (temp file, fsync, rename, directory fsync).
//!   `clean_shutdown` is set by [`Log::close`] and cleared by [`Log::open`]; the recovery point is
//!   the offset below which everything is known to be fsynced. A roll does not fsync the segment
//!   it seals: as Kafka flushes after a roll in the background, the caller takes
//!   [`Log::pending_flush`], fsyncs it without holding the log and reports it with
//!   [`Log::complete_flush`], which moves the recovery point.
//! * `<offset>.snapshot`: producer state as of that offset, Brook's JSON (see `producer.rs`).
//! * `*.cleaned`, `*.swap`, `*.deleted`, `*.tmp`: temporaries, deleted at open.
//!
//! Beside the partition directories, a log directory holds Kafka's `replication-offset-checkpoint`
//! ([`offset_checkpoint`]): the format is here, the high watermarks it records are the broker's.
//!
//! # Errors
//! [`StorageError`] variants map to Kafka error codes as follows (the broker does the mapping):
//! `Io`/`Inconsistent` → KAFKA_STORAGE_ERROR, `CorruptBatch` and `Undecodable` → CORRUPT_MESSAGE,
//! `InvalidRecord` → INVALID_RECORD, `UnsupportedMagic` → UNSUPPORTED_FOR_MESSAGE_FORMAT,
//! `RecordTooLarge` → MESSAGE_TOO_LARGE, `OffsetOutOfRange` → OFFSET_OUT_OF_RANGE,
//! `OutOfOrderSequence` → OUT_OF_ORDER_SEQUENCE_NUMBER, `InvalidProducerEpoch` →
//! INVALID_PRODUCER_EPOCH, `UnexpectedAppendOffset` → (replication only; the follower must
//! truncate) UNKNOWN_SERVER_ERROR if it ever reaches a client.

mod append;
mod compaction;
pub mod conformance;
mod epoch;
mod error;
mod fsutil;
mod index;
mod log;
mod memory;
pub mod offset_checkpoint;
mod producer;
mod segment;
#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use error::StorageError;
pub use log::{Log, MaintenanceReport, PendingFlush, STATE_FILE};
pub use memory::MemoryLog;

/// Per-topic log settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes` (capped at `i32::MAX` as in Kafka).
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is this old.
    pub segment_ms: i64,
    /// `retention.ms`, -1 for unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`, -1 for unlimited.
    pub retention_bytes: i64,
    /// `cleanup.policy` contains `delete`.
    pub cleanup_policy_delete: bool,
    /// `cleanup.policy` contains `compact`.
    pub cleanup_policy_compact: bool,
    /// `flush.messages`: fsync after this many messages; `u64::MAX` = never by count.
    pub flush_interval_messages: u64,
    /// `flush.ms`: fsync from [`Log::run_maintenance`] when this long since the last flush.
    pub flush_interval_ms: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// `message.timestamp.type=LogAppendTime`.
    pub message_timestamp_log_append_time: bool,
    /// `delete.retention.ms`: tombstones older than this (by record timestamp) are dropped by
    /// compaction.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.message.bytes`: largest accepted batch.
    pub max_message_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            cleanup_policy_delete: true,
            cleanup_policy_compact: false,
            flush_interval_messages: u64::MAX,
            flush_interval_ms: i64::MAX,
            index_interval_bytes: 4096,
            message_timestamp_log_append_time: false,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_message_bytes: 1_048_588,
        }
    }
}

/// What an append did, as the produce response reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// -1 unless the topic uses LogAppendTime, then the append time (Kafka's produce response).
    /// For follower appends: the largest batch max timestamp.
    pub max_timestamp: i64,
    /// -1, or the append time for LogAppendTime topics.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// Number of records (sum of the batches' record counts).
    pub record_count: i64,
}

/// Result of [`Log::append_as_leader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended(LogAppendInfo),
    /// The batch is a retry of one already in the log; nothing was appended. The info carries
    /// the original offsets.
    Duplicate(LogAppendInfo),
}

impl AppendOutcome {
    /// The info of either outcome.
    pub fn info(&self) -> &LogAppendInfo {
        match self {
            AppendOutcome::Appended(i) | AppendOutcome::Duplicate(i) => i,
        }
    }
}

/// A record found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
    /// Partition leader epoch of the batch, -1 when unknown.
    pub leader_epoch: i32,
}

/// The narrow partition-log interface the broker's produce/fetch/list-offsets paths need,
/// implemented by the on-disk [`Log`] and the in-memory [`MemoryLog`]. Semantics are those of
/// the [`Log`] methods of the same names; [`conformance::run_all`] checks them.
pub trait PartitionLog {
    fn append_as_leader(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError>;
    fn append_as_follower(&mut self, records: &[u8]) -> Result<LogAppendInfo, StorageError>;
    fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Bytes, StorageError>;
    fn log_start_offset(&self) -> i64;
    fn log_end_offset(&self) -> i64;
    fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError>;
    fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError>;
    fn offset_for_timestamp(&self, timestamp: i64)
        -> Result<Option<TimestampOffset>, StorageError>;
}
