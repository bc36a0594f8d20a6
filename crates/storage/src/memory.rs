//! [`MemoryLog`]: an in-memory [`PartitionLog`] (a vector of batches) for tests.

use brook_protocol::batch::BatchHeader;
use bytes::Bytes;

use crate::append::{
    first_record_at_or_after, parse_follower_batches, prepare_leader_append, LeaderAppend, Prepared,
};
use crate::error::StorageError;
use crate::producer::ProducerState;
use crate::{AppendOutcome, LogAppendInfo, LogConfig, PartitionLog, TimestampOffset};

/// A partition log kept in memory, with the same offset, read and idempotence semantics as
/// [`crate::Log`] but no segments, retention or durability.
#[derive(Default)]
pub struct MemoryLog {
    config: LogConfig,
    batches: Vec<(BatchHeader, Vec<u8>)>,
    log_start_offset: i64,
    log_end_offset: i64,
    producers: ProducerState,
}

impl MemoryLog {
    pub fn new(config: LogConfig) -> MemoryLog {
        MemoryLog {
            config,
            ..MemoryLog::default()
        }
    }

    fn out_of_range(&self, requested: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            requested,
            log_start: self.log_start_offset,
            log_end: self.log_end_offset,
        }
    }

    fn rebuild_producers(&mut self) {
        let mut p = ProducerState::default();
        for (h, _) in &self.batches {
            p.update(h);
        }
        self.producers = p;
    }
}

impl PartitionLog for MemoryLog {
    fn append_as_leader(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        let prepared = prepare_leader_append(
            records,
            &LeaderAppend {
                leader_epoch,
                now_ms,
                max_message_bytes: self.config.max_message_bytes,
                log_append_time: self.config.message_timestamp_log_append_time,
                producers: &self.producers,
                log_end_offset: self.log_end_offset,
                log_start_offset: self.log_start_offset,
            },
        )?;
        let (headers, info) = match prepared {
            Prepared::Duplicate(info) => return Ok(AppendOutcome::Duplicate(info)),
            Prepared::Ready { headers, info } => (headers, info),
        };
        let mut pos = 0;
        for h in headers {
            self.batches
                .push((h, records[pos..pos + h.size()].to_vec()));
            pos += h.size();
            self.producers.update(&h);
            self.log_end_offset = h.next_offset();
        }
        Ok(AppendOutcome::Appended(info))
    }

    fn append_as_follower(&mut self, records: &[u8]) -> Result<LogAppendInfo, StorageError> {
        let (headers, info) =
            parse_follower_batches(records, self.log_end_offset, self.log_start_offset)?;
        let mut pos = 0;
        for h in headers {
            self.batches
                .push((h, records[pos..pos + h.size()].to_vec()));
            pos += h.size();
            self.producers.update(&h);
            self.log_end_offset = h.next_offset();
        }
        Ok(info)
    }

    fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Bytes, StorageError> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(self.out_of_range(offset));
        }
        if offset == self.log_end_offset || offset >= max_offset {
            return Ok(Bytes::new());
        }
        let mut out = Vec::new();
        for (h, b) in self
            .batches
            .iter()
            .filter(|(h, _)| h.last_offset() >= offset)
        {
            if h.last_offset() >= max_offset {
                break;
            }
            if out.len() + b.len() > max_bytes && !(out.is_empty() && min_one_batch) {
                break;
            }
            out.extend_from_slice(b);
        }
        Ok(Bytes::from(out))
    }

    fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        if offset > self.log_end_offset || offset < 0 {
            return Err(self.out_of_range(offset));
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            self.batches.retain(|(h, _)| h.next_offset() > offset);
            self.producers.evict_below(offset);
        }
        Ok(self.log_start_offset)
    }

    fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(self.out_of_range(offset));
        }
        if offset >= self.log_end_offset {
            return Ok(());
        }
        self.batches.retain(|(h, _)| h.last_offset() < offset);
        if offset < self.log_start_offset {
            self.batches.clear();
            self.log_start_offset = offset;
        }
        self.log_end_offset = offset;
        self.rebuild_producers();
        Ok(())
    }

    fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, StorageError> {
        for (h, b) in &self.batches {
            if h.max_timestamp >= timestamp && h.last_offset() >= self.log_start_offset {
                if let Some((offset, ts)) =
                    first_record_at_or_after(b.clone(), h, timestamp, self.log_start_offset)?
                {
                    return Ok(Some(TimestampOffset {
                        timestamp: ts,
                        offset,
                        leader_epoch: h.partition_leader_epoch.max(-1),
                    }));
                }
            }
        }
        Ok(None)
    }
}
