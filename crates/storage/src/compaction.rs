//! Log compaction (`cleanup.policy=compact`).
//!
//! A run builds a key → latest offset map over the whole log (decoding every batch), then
//! rewrites each cleanable segment (non-active, and older than `min.compaction.lag.ms` by its
//! largest timestamp), keeping a keyed record only when it is the latest for its key and, for a
//! tombstone, when its timestamp is within `delete.retention.ms`. Records without a key and
//! control batches are kept. Offsets never change: a batch that loses records is re-encoded with
//! the same codec, with its base offset moved to its first kept record and the original offsets
//! kept through the offset deltas; an untouched batch is copied byte for byte.
//!
//! Swap protocol: write `<base>.log.cleaned`, fsync, delete the segment's index files, rename
//! over `<base>.log`, fsync the directory, rebuild the indexes. A crash leaves either the old or
//! the new log, and at worst missing indexes, which open rebuilds; `.cleaned` leftovers are
//! deleted at open.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;

use brook_protocol::batch::set_log_append_time;
use brook_protocol::kafka::records::{RecordBatchEncoder, RecordEncodeOptions};
use bytes::{Bytes, BytesMut};

use crate::append::decode_batch;
use crate::error::StorageError;
use crate::fsutil::{remove_if_exists, sync_dir};
use crate::log::Log;
use crate::segment::{check_stored, Segment};

impl Log {
    /// Runs compaction when something may have become cleanable since the last run. Returns
    /// `(segments rewritten, records removed)`.
    pub(crate) fn compact(&mut self, now_ms: i64) -> Result<(usize, u64), StorageError> {
        let active_base = self.active().base_offset;
        let due = self.compaction.last_active_base != Some(active_base)
            || self.compaction.lagging
            || self
                .compaction
                .next_tombstone_expiry
                .is_some_and(|t| now_ms >= t);
        if !due || self.segments.len() < 2 {
            return Ok((0, 0));
        }
        self.compaction.last_active_base = Some(active_base);
        let lag = self.config.min_compaction_lag_ms;
        let non_active = self.segments.len() - 1;
        let cleanable = self.segments[..non_active]
            .iter()
            .take_while(|s| lag <= 0 || now_ms.saturating_sub(s.max_timestamp) >= lag)
            .count();
        self.compaction.lagging = cleanable < non_active;
        if cleanable == 0 {
            return Ok((0, 0));
        }

        let latest = self.key_map()?;
        let mut expiry = None;
        let delete_retention = self.config.delete_retention_ms;
        let mut rewritten = 0;
        let mut removed = 0;
        let mut i = 0;
        let mut remaining = cleanable;
        while remaining > 0 {
            remaining -= 1;
            let (out, gone) = clean_segment(
                &self.segments[i],
                &latest,
                now_ms,
                delete_retention,
                &mut expiry,
            )?;
            if gone == 0 {
                i += 1;
                continue;
            }
            rewritten += 1;
            removed += gone;
            if out.is_empty() {
                // Nothing left: drop the segment (reads skip to the next one).
                let seg = self.segments.remove(i);
                seg.delete()?;
                sync_dir(&self.dir)?;
                continue;
            }
            let interval = self.config.index_interval_bytes;
            swap_in(&self.dir, &mut self.segments[i], &out, interval)?;
            i += 1;
        }
        self.compaction.next_tombstone_expiry = expiry;
        Ok((rewritten, removed))
    }

    /// Latest offset of every key in the log.
    fn key_map(&self) -> Result<HashMap<Bytes, i64>, StorageError> {
        let mut latest = HashMap::new();
        for seg in &self.segments {
            let mut pos = 0;
            while let Some(h) = seg.header_at(pos)? {
                if !h.is_control() {
                    let set = decode_batch(seg.read_bytes(pos, h.size())?)?;
                    for r in set.records {
                        if let Some(k) = r.key {
                            latest.insert(k, r.offset);
                        }
                    }
                }
                pos += h.size() as u64;
            }
        }
        Ok(latest)
    }
}

/// The cleaned content of one segment and how many records it lost; lowers `expiry` to the
/// time the earliest retained tombstone becomes droppable.
fn clean_segment(
    seg: &Segment,
    latest: &HashMap<Bytes, i64>,
    now_ms: i64,
    delete_retention: i64,
    expiry: &mut Option<i64>,
) -> Result<(Vec<u8>, u64), StorageError> {
    let mut out = Vec::with_capacity(seg.size as usize);
    let mut removed = 0u64;
    let mut pos = 0;
    while let Some(h) = seg.header_at(pos)? {
        let raw = seg.read_bytes(pos, h.size())?;
        pos += h.size() as u64;
        if h.is_control() {
            out.extend_from_slice(&raw);
            continue;
        }
        let set = decode_batch(raw.clone())?;
        let total = set.records.len();
        let mut keep = Vec::with_capacity(total);
        for r in set.records {
            let Some(k) = &r.key else {
                keep.push(r);
                continue;
            };
            if latest.get(k) != Some(&r.offset) {
                continue;
            }
            if r.value.is_none() {
                let ts = if h.is_log_append_time() {
                    h.max_timestamp
                } else {
                    r.timestamp
                };
                if now_ms.saturating_sub(ts) > delete_retention {
                    continue;
                }
                let at = ts.saturating_add(delete_retention).saturating_add(1);
                *expiry = Some(expiry.map_or(at, |t| t.min(at)));
            }
            keep.push(r);
        }
        if keep.len() == total {
            out.extend_from_slice(&raw);
            continue;
        }
        removed += (total - keep.len()) as u64;
        if keep.is_empty() {
            continue;
        }
        let first = keep[0].offset;
        for r in &mut keep {
            r.partition_leader_epoch = h.partition_leader_epoch;
            if h.base_sequence < 0 {
                // Keep "no sequence" in the rewritten header.
                r.sequence = (-1i32).wrapping_add((r.offset - first) as i32);
            }
        }
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            keep.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: set.compression,
            },
        )
        .map_err(|e| StorageError::Undecodable(format!("re-encoding failed: {e}")))?;
        if h.is_log_append_time() {
            set_log_append_time(&mut buf[..], h.max_timestamp)?;
        }
        let nh = check_stored(&buf)?;
        if nh.size() != buf.len() {
            return Err(StorageError::Inconsistent(
                "compaction re-encoded one batch into several".to_string(),
            ));
        }
        out.extend_from_slice(&buf);
    }
    Ok((out, removed))
}

fn swap_in(
    dir: &std::path::Path,
    seg: &mut Segment,
    content: &[u8],
    index_interval: u32,
) -> Result<(), StorageError> {
    let log_path = seg.log_path().to_path_buf();
    let mut cleaned = log_path.as_os_str().to_owned();
    cleaned.push(".cleaned");
    let cleaned = std::path::PathBuf::from(cleaned);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&cleaned)?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    remove_if_exists(seg.offset_index.path())?;
    remove_if_exists(seg.time_index.path())?;
    std::fs::rename(&cleaned, &log_path)?;
    sync_dir(dir)?;
    seg.reopen_log()?;
    seg.reindex(index_interval)?;
    seg.flush()?;
    Ok(())
}
