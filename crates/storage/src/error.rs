//! The one error type of the crate.

use brook_protocol::batch::BatchError;

/// Why a storage operation failed. Each variant maps to one Kafka error code; the broker does the
/// mapping (see the crate documentation for the table).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The disk failed us (KAFKA_STORAGE_ERROR).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A batch is cut short or its CRC does not match (CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    CorruptBatch(BatchError),
    /// A batch is well formed but not acceptable (INVALID_RECORD).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// Magic other than 2 (UNSUPPORTED_FOR_MESSAGE_FORMAT).
    #[error("record batch magic {0} is not supported")]
    UnsupportedMagic(i8),
    /// A batch is larger than `max.message.bytes` (MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: usize },
    /// The offset is outside `[log start, log end]` (OFFSET_OUT_OF_RANGE).
    #[error("offset {requested} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },
    /// An idempotent batch's sequence does not follow the producer's last one
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// A batch carries an older epoch than the latest seen for its producer id
    /// (INVALID_PRODUCER_EPOCH; Kafka's ProducerFencedException on the produce path).
    #[error("producer {producer_id} epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    /// A follower append whose offsets do not continue the log (the replica must truncate
    /// first; Kafka's UnexpectedAppendOffsetException, internal to replication).
    #[error("unexpected append offset {first_offset}: log end offset is {log_end}")]
    UnexpectedAppendOffset { first_offset: i64, log_end: i64 },
    /// A stored batch could not be decoded or decompressed (CORRUPT_MESSAGE).
    #[error("stored record batch cannot be decoded: {0}")]
    Undecodable(String),
    /// Files on disk are inconsistent beyond what recovery repairs (KAFKA_STORAGE_ERROR).
    #[error("log directory is inconsistent: {0}")]
    Inconsistent(String),
}

impl From<BatchError> for StorageError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::UnsupportedMagic(m) => StorageError::UnsupportedMagic(m),
            BatchError::Invalid(why) => StorageError::InvalidRecord(why.to_string()),
            e @ (BatchError::Truncated { .. } | BatchError::CrcMismatch { .. }) => {
                StorageError::CorruptBatch(e)
            }
        }
    }
}
