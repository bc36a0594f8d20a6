//! Validation and offset assignment shared by [`crate::Log`] and [`crate::MemoryLog`].

use brook_protocol::batch::{
    set_base_offset, set_log_append_time, set_partition_leader_epoch, BatchHeader, Batches,
};
use brook_protocol::kafka::records::RecordBatchDecoder;
use bytes::Bytes;

use crate::error::StorageError;
use crate::producer::{BatchMeta, ProducerState, SeqCheck};
use crate::segment::check_stored;
use crate::LogAppendInfo;

/// A leader append ready to be written: the (rewritten) batches' headers and the info to report.
pub(crate) enum Prepared {
    Duplicate(LogAppendInfo),
    Ready {
        headers: Vec<BatchHeader>,
        info: LogAppendInfo,
    },
}

pub(crate) struct LeaderAppend<'a> {
    pub leader_epoch: i32,
    pub now_ms: i64,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub producers: &'a ProducerState,
    pub log_end_offset: i64,
    pub log_start_offset: i64,
}

fn duplicate_info(m: &BatchMeta, a: &LeaderAppend<'_>) -> LogAppendInfo {
    let t = if a.log_append_time { m.timestamp } else { -1 };
    LogAppendInfo {
        first_offset: m.first_offset,
        last_offset: m.last_offset,
        max_timestamp: t,
        log_append_time: t,
        log_start_offset: a.log_start_offset,
        record_count: m.last_offset - m.first_offset + 1,
    }
}

/// Validates every batch (CRC, header, size, no control batches), checks idempotent producer
/// state for all of them, then rewrites base offsets, leader epoch and (LogAppendTime) the max
/// timestamp in place. Nothing is rewritten when an error or a duplicate is found.
pub(crate) fn prepare_leader_append(
    records: &mut [u8],
    a: &LeaderAppend<'_>,
) -> Result<Prepared, StorageError> {
    let mut batches = Vec::new();
    for item in Batches::new(records, true) {
        let (h, range) = item?;
        if h.size() > a.max_message_bytes {
            return Err(StorageError::RecordTooLarge {
                size: h.size(),
                max: a.max_message_bytes,
            });
        }
        if h.is_control() {
            return Err(StorageError::InvalidRecord(
                "clients may not produce control batches".to_string(),
            ));
        }
        batches.push((h, range));
    }
    if batches.is_empty() {
        return Err(StorageError::InvalidRecord(
            "produce request without record batches".to_string(),
        ));
    }
    // Offsets as they will be assigned.
    let mut next = a.log_end_offset;
    let mut assigned = Vec::with_capacity(batches.len());
    for (h, _) in &batches {
        let mut x = *h;
        x.base_offset = next;
        x.partition_leader_epoch = a.leader_epoch;
        if a.log_append_time {
            x.max_timestamp = a.now_ms;
            x.attributes |= 0x08;
        }
        next = x.next_offset();
        assigned.push(x);
    }
    if assigned.iter().any(|h| h.producer_id >= 0) {
        if assigned.len() == 1 {
            if let SeqCheck::Duplicate(m) = a.producers.check(&assigned[0])? {
                return Ok(Prepared::Duplicate(duplicate_info(&m, a)));
            }
        } else {
            let mut scratch = a.producers.clone();
            for h in &assigned {
                if let SeqCheck::Duplicate(m) = scratch.check(h)? {
                    return Ok(Prepared::Duplicate(duplicate_info(&m, a)));
                }
                scratch.update(h);
            }
        }
    }
    for ((_, range), h) in batches.iter().zip(&assigned) {
        let b = &mut records[range.clone()];
        set_base_offset(b, h.base_offset);
        set_partition_leader_epoch(b, a.leader_epoch);
        if a.log_append_time {
            set_log_append_time(b, a.now_ms)?;
        }
    }
    let t = if a.log_append_time { a.now_ms } else { -1 };
    let info = LogAppendInfo {
        first_offset: a.log_end_offset,
        last_offset: next - 1,
        max_timestamp: t,
        log_append_time: t,
        log_start_offset: a.log_start_offset,
        record_count: assigned.iter().map(|h| h.records_count as i64).sum(),
    };
    Ok(Prepared::Ready {
        headers: assigned,
        info,
    })
}

/// Validates replicated batches: stored-batch checks (compacted batches allowed), offsets at or
/// after `log_end_offset` and increasing.
pub(crate) fn parse_follower_batches(
    records: &[u8],
    log_end_offset: i64,
    log_start_offset: i64,
) -> Result<(Vec<BatchHeader>, LogAppendInfo), StorageError> {
    let mut headers: Vec<BatchHeader> = Vec::new();
    let mut pos = 0;
    let mut next = log_end_offset;
    while pos < records.len() {
        let h = check_stored(&records[pos..])?;
        if h.base_offset < next {
            return Err(StorageError::UnexpectedAppendOffset {
                first_offset: h.base_offset,
                log_end: next,
            });
        }
        next = h.next_offset();
        pos += h.size();
        headers.push(h);
    }
    let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
        return Err(StorageError::InvalidRecord(
            "replicated records without batches".to_string(),
        ));
    };
    let info = LogAppendInfo {
        first_offset: first.base_offset,
        last_offset: last.last_offset(),
        max_timestamp: headers.iter().map(|h| h.max_timestamp).max().unwrap_or(-1),
        log_append_time: -1,
        log_start_offset,
        record_count: headers.iter().map(|h| h.records_count as i64).sum(),
    };
    Ok((headers, info))
}

/// Decodes one stored batch (may decompress).
pub(crate) fn decode_batch(
    batch: Vec<u8>,
) -> Result<brook_protocol::kafka::records::RecordSet, StorageError> {
    let mut bytes = Bytes::from(batch);
    RecordBatchDecoder::decode(&mut bytes).map_err(|e| StorageError::Undecodable(e.to_string()))
}

/// `(offset, timestamp)` of the first record of the batch with a timestamp `>= ts` and an
/// offset `>= min_offset`. In a LogAppendTime batch every record has the batch's max timestamp.
pub(crate) fn first_record_at_or_after(
    batch: Vec<u8>,
    h: &BatchHeader,
    ts: i64,
    min_offset: i64,
) -> Result<Option<(i64, i64)>, StorageError> {
    let set = decode_batch(batch)?;
    Ok(set.records.iter().find_map(|r| {
        let t = if h.is_log_append_time() {
            h.max_timestamp
        } else {
            r.timestamp
        };
        (t >= ts && r.offset >= min_offset).then_some((r.offset, t))
    }))
}
