//! [`Log`]: one partition's segments, state files and in-memory caches.

use std::io;
use std::path::{Path, PathBuf};

use brook_protocol::batch::BatchHeader;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::append::{
    first_record_at_or_after, parse_follower_batches, prepare_leader_append, LeaderAppend, Prepared,
};
use crate::epoch::LeaderEpochCache;
use crate::error::StorageError;
use crate::fsutil::{remove_if_exists, sync_dir, write_atomically};
use crate::producer::{list_snapshots, ProducerState};
use crate::segment::{segment_file, Segment};
use crate::{AppendOutcome, LogAppendInfo, LogConfig, PartitionLog, TimestampOffset};

/// Name of the per-partition state file (log start offset, recovery point, clean shutdown).
pub const STATE_FILE: &str = "brook-partition-state";

const TEMP_SUFFIXES: [&str; 4] = [".cleaned", ".swap", ".deleted", ".tmp"];

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct PartitionState {
    version: u32,
    log_start_offset: i64,
    recovery_point: i64,
    clean_shutdown: bool,
}

/// What [`Log::run_maintenance`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// The active segment was rolled (segment.ms, or to expire it by retention).
    pub rolled: bool,
    /// Segments deleted by retention.
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    /// Segments rewritten by compaction.
    pub segments_compacted: usize,
    /// Records removed by compaction.
    pub records_compacted: u64,
    /// The log was fsynced (flush.ms).
    pub flushed: bool,
    pub log_start_offset: i64,
}

/// Compaction bookkeeping (in memory only; a restart simply compacts once more).
#[derive(Debug, Default)]
pub(crate) struct CompactionState {
    /// Base of the active segment at the last compaction run.
    pub last_active_base: Option<i64>,
    /// Earliest time at which a retained tombstone expires.
    pub next_tombstone_expiry: Option<i64>,
    /// The last run skipped segments because of `min.compaction.lag.ms`.
    pub lagging: bool,
}

/// A partition log on disk. Single-threaded: the broker wraps it in a mutex.
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Sorted by base offset, never empty; the last one is the active segment.
    pub(crate) segments: Vec<Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    epochs: LeaderEpochCache,
    producers: ProducerState,
    unflushed_messages: u64,
    last_flush_ms: i64,
    pub(crate) compaction: CompactionState,
    /// Bumped by every truncation, so that a flush prepared before one is not credited after it.
    truncations: u64,
}

/// Sealed segments not fsynced yet (see [`Log::pending_flush`]).
pub struct PendingFlush {
    files: Vec<std::fs::File>,
    upto: i64,
    truncations: u64,
}

impl PendingFlush {
    /// Fsyncs the segments; needs no lock on the log.
    pub fn run(&self) -> io::Result<()> {
        for f in &self.files {
            f.sync_all()?;
        }
        Ok(())
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn read_state(dir: &Path) -> io::Result<Option<PartitionState>> {
    match std::fs::read(dir.join(STATE_FILE)) {
        Ok(data) => match serde_json::from_slice::<PartitionState>(&data) {
            Ok(s) if s.version == 1 => Ok(Some(s)),
            _ => {
                tracing::warn!(dir = %dir.display(), "unreadable partition state file, recovering the whole log");
                Ok(None)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_segment_name(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl Log {
    /// Opens (creating if missing) the partition log in `dir`, recovering after an unclean
    /// shutdown.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, StorageError> {
        std::fs::create_dir_all(dir)?;
        let state = read_state(dir)?;
        let interval = config.index_interval_bytes;

        // Temporaries and the segment list.
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if TEMP_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                tracing::info!(file = name, "removing leftover temporary file");
                remove_if_exists(&entry.path())?;
            } else if let Some(base) = parse_segment_name(name, ".log") {
                bases.push(base);
            } else if let Some(base) = parse_segment_name(name, ".index")
                .or_else(|| parse_segment_name(name, ".timeindex"))
            {
                index_files.push((base, entry.path()));
            }
        }
        bases.sort_unstable();
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                remove_if_exists(&path)?;
            }
        }

        let clean = state.is_some_and(|s| s.clean_shutdown);
        let recovery_point = state.map_or(0, |s| s.recovery_point);
        let (epochs, epochs_broken) = LeaderEpochCache::load(dir)?;
        let mut segments: Vec<Segment> = Vec::new();
        let mut epoch_starts: Vec<(i32, i64)> = Vec::new();
        let mut recovered = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let recover = !clean && next_base.is_none_or(|nb| nb > recovery_point);
            let mut note = |h: &BatchHeader| {
                let e = h.partition_leader_epoch;
                if e >= 0 && epoch_starts.last().is_none_or(|&(last, _)| e > last) {
                    epoch_starts.push((e, h.base_offset));
                }
            };
            let (seg, truncated) = Segment::open(dir, base, recover, interval, now_ms, &mut note)?;
            if recover {
                recovered.push(segments.len());
            }
            segments.push(seg);
            if truncated {
                for &later in &bases[i + 1..] {
                    tracing::warn!(base = later, "deleting segment after a truncated one");
                    for ext in ["log", "index", "timeindex"] {
                        remove_if_exists(&segment_file(dir, later, ext))?;
                    }
                }
                break;
            }
        }
        if !clean {
            // The active segment may have disk reserved past its end from before the crash.
            if let Some(active) = segments.last_mut() {
                active.release_reserved_space(true)?;
            }
        }
        let state_start = state.map_or(0, |s| s.log_start_offset);
        if segments.is_empty() {
            segments.push(Segment::create(dir, state_start.max(0))?);
        }
        let first_base = segments[0].base_offset;
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: state_start.max(first_base),
            recovery_point: 0,
            epochs,
            producers: ProducerState::default(),
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            compaction: CompactionState::default(),
            truncations: 0,
        };
        if log.log_start_offset > log.log_end_offset() {
            // Data below a durable delete-records point was lost: start the log at that point.
            let start = log.log_start_offset;
            log.roll_to(start)?;
        }
        for &i in &recovered {
            log.segments[i].flush()?;
        }
        sync_dir(dir)?;

        let leo = log.log_end_offset();
        log.epochs.truncate_from_end(leo)?;
        if epochs_broken {
            let mut all = Vec::new();
            log.scan_headers(i64::MIN, &mut |h| {
                let e = h.partition_leader_epoch;
                if e >= 0 && all.last().is_none_or(|&(last, _)| e > last) {
                    all.push((e, h.base_offset));
                }
            })?;
            epoch_starts = all;
        }
        for (e, o) in epoch_starts {
            log.epochs.assign(e, o)?;
        }
        let start = log.log_start_offset;
        log.epochs.truncate_from_start(start)?;
        log.rebuild_producer_state()?;
        log.recovery_point = leo;
        log.write_state(false)?;
        Ok(log)
    }

    /// Visits the headers of all batches whose base offset is `>= from`.
    fn scan_headers(&self, from: i64, f: &mut dyn FnMut(&BatchHeader)) -> Result<(), StorageError> {
        for seg in &self.segments {
            if seg.next_offset <= from {
                continue;
            }
            let mut pos = if from > seg.base_offset {
                match seg.find(from)? {
                    Some((p, _)) => p,
                    None => continue,
                }
            } else {
                0
            };
            while let Some(h) = seg.header_at(pos)? {
                if h.base_offset >= from {
                    f(&h);
                }
                pos += h.size() as u64;
            }
        }
        Ok(())
    }

    /// Loads the newest usable producer snapshot at or below the log end offset and replays the
    /// batch headers after it.
    fn rebuild_producer_state(&mut self) -> Result<(), StorageError> {
        let leo = self.log_end_offset();
        let mut state = ProducerState::default();
        let mut from = i64::MIN;
        let snaps = list_snapshots(&self.dir)?;
        for (o, p) in snaps.iter().rev() {
            if *o > leo {
                remove_if_exists(p)?;
                continue;
            }
            if let Some(s) = ProducerState::read_snapshot(p)? {
                state = s;
                from = *o;
                break;
            }
        }
        self.scan_headers(from, &mut |h| state.update(h))?;
        state.evict_below(self.log_start_offset);
        self.producers = state;
        Ok(())
    }

    fn write_state(&self, clean_shutdown: bool) -> io::Result<()> {
        let s = PartitionState {
            version: 1,
            log_start_offset: self.log_start_offset,
            recovery_point: self.recovery_point,
            clean_shutdown,
        };
        let data = serde_json::to_vec(&s).map_err(io::Error::other)?;
        write_atomically(&self.dir.join(STATE_FILE), &data)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the configuration; retention, compaction and flush settings apply at the next
    /// maintenance, segment size and timestamp type at the next append.
    pub fn update_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Total bytes of all segment logs.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Number of segments (for tests and metrics).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }

    pub(crate) fn active(&self) -> &Segment {
        // Invariant: `segments` is never empty.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let n = self.segments.len();
        &mut self.segments[n - 1]
    }

    fn max_segment_bytes(&self) -> u64 {
        self.config.segment_bytes.clamp(1, i32::MAX as u64)
    }

    fn should_roll(&self, bytes: u64, last_offset: i64, now_ms: i64) -> bool {
        let a = self.active();
        a.size > 0
            && (a.size + bytes > self.max_segment_bytes()
                || a.first_append_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.segment_ms)
                || last_offset - a.base_offset > i32::MAX as i64)
    }

    /// The sealed segments a roll left unsynced, to fsync with [`PendingFlush::run`] outside the
    /// log's lock and then report with [`Log::complete_flush`]. `None` when there are none.
    pub fn pending_flush(&self) -> Result<Option<PendingFlush>, StorageError> {
        if !self.has_pending_flush() {
            return Ok(None);
        }
        let upto = self.active().base_offset;
        let mut files = Vec::new();
        for seg in &self.segments[..self.segments.len() - 1] {
            if seg.next_offset > self.recovery_point {
                files.extend(seg.sync_handles()?);
            }
        }
        Ok(Some(PendingFlush {
            files,
            upto,
            truncations: self.truncations,
        }))
    }

    /// Moves the recovery point past what `done` flushed, unless the log was truncated since.
    pub fn complete_flush(&mut self, done: &PendingFlush) -> Result<(), StorageError> {
        if done.truncations == self.truncations && done.upto > self.recovery_point {
            self.recovery_point = done.upto.min(self.log_end_offset());
            self.write_state(false)?;
        }
        Ok(())
    }

    /// Whether a roll left sealed segments unsynced.
    pub fn has_pending_flush(&self) -> bool {
        self.recovery_point < self.active().base_offset
    }

    /// Offset below which everything is known to be on disk (crash recovery scans from here).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Whether appending `bytes` now may roll the active segment (by size or `segment.ms`), which
    /// creates files and fsyncs the directory and small state files: callers that must not wait
    /// on the filesystem can move such an append to a thread that may.
    pub fn append_may_roll(&self, bytes: usize, now_ms: i64) -> bool {
        self.should_roll(bytes as u64, self.log_end_offset(), now_ms)
    }

    /// Makes a new active segment starting at `base` (>= the log end offset). An empty active
    /// segment is replaced rather than kept.
    pub(crate) fn roll_to(&mut self, base: i64) -> Result<(), StorageError> {
        if self.active().size == 0 {
            if self.active().base_offset == base {
                return Ok(());
            }
            if let Some(seg) = self.segments.pop() {
                seg.delete()?;
            }
        } else {
            // The sealed segment is fsynced later, off the append path (Kafka's flush after
            // roll); the recovery point moves when that is done.
            self.active_mut().seal()?;
            self.producers.write_snapshot(&self.dir, base)?;
        }
        self.segments.push(Segment::create(&self.dir, base)?);
        sync_dir(&self.dir)?;
        self.write_state(false)?;
        Ok(())
    }

    /// Validates, assigns offsets to and appends batches from a producer. See the crate docs.
    pub fn append_as_leader(
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
                log_end_offset: self.log_end_offset(),
                log_start_offset: self.log_start_offset,
            },
        )?;
        let (headers, info) = match prepared {
            Prepared::Duplicate(info) => return Ok(AppendOutcome::Duplicate(info)),
            Prepared::Ready { headers, info } => (headers, info),
        };
        if self.should_roll(records.len() as u64, info.last_offset, now_ms) {
            let leo = self.log_end_offset();
            self.roll_to(leo)?;
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut()
            .append(records, &headers, interval, now_ms)?;
        self.epochs.assign(leader_epoch, info.first_offset)?;
        for h in &headers {
            self.producers.update(h);
        }
        self.note_appended(info.record_count as u64, now_ms)?;
        Ok(AppendOutcome::Appended(info))
    }

    fn note_appended(&mut self, records: u64, now_ms: i64) -> Result<(), StorageError> {
        self.unflushed_messages = self.unflushed_messages.saturating_add(records);
        if self.unflushed_messages >= self.config.flush_interval_messages {
            self.flush_segments()?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Appends replicated batches whose offsets are already assigned. The first batch must start
    /// at or after the log end offset (gaps are allowed: compacted leaders have them).
    pub fn append_as_follower(&mut self, records: &[u8]) -> Result<LogAppendInfo, StorageError> {
        let (headers, info) =
            parse_follower_batches(records, self.log_end_offset(), self.log_start_offset)?;
        let now_ms = wall_clock_ms();
        let a = self.active();
        if self.should_roll(records.len() as u64, info.last_offset, now_ms)
            || info.last_offset - a.base_offset > i32::MAX as i64
        {
            self.roll_to(info.first_offset)?;
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut()
            .append(records, &headers, interval, now_ms)?;
        for h in &headers {
            self.epochs
                .assign(h.partition_leader_epoch, h.base_offset)?;
            self.producers.update(h);
        }
        self.note_appended(info.record_count as u64, now_ms)?;
        Ok(info)
    }

    fn out_of_range(&self, requested: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            requested,
            log_start: self.log_start_offset,
            log_end: self.log_end_offset(),
        }
    }

    /// Index of the segment that may hold `offset` (last one with base <= offset, or the first).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at least one batch with
    /// `min_one_batch`, KIP-74), only batches whose last offset is below `max_offset` (the high
    /// watermark). Reads continue across segment boundaries while `max_bytes` allows.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Bytes, StorageError> {
        let leo = self.log_end_offset();
        if offset < self.log_start_offset || offset > leo {
            return Err(self.out_of_range(offset));
        }
        if offset == leo || offset >= max_offset {
            return Ok(Bytes::new());
        }
        // The byte ranges first, then one buffer read into directly: the records are copied once,
        // from the page cache, and go out to the socket from this buffer.
        let mut ranges: Vec<(&Segment, u64, usize)> = Vec::new();
        let mut total = 0usize;
        let mut found = false;
        for seg in &self.segments[self.segment_index_for(offset)..] {
            let mut start = 0u64;
            if !found {
                match seg.find(offset)? {
                    Some((p, _)) => start = p,
                    None => continue,
                }
                found = true;
            }
            let mut end = start;
            let mut full = false;
            while let Some(h) = seg.header_at(end)? {
                let fits = total + (end - start) as usize + h.size() <= max_bytes
                    || (min_one_batch && total == 0 && end == start);
                if h.last_offset() >= max_offset || !fits {
                    full = true;
                    break;
                }
                end += h.size() as u64;
            }
            if end > start {
                ranges.push((seg, start, (end - start) as usize));
                total += (end - start) as usize;
            }
            if full {
                break;
            }
        }
        let mut out = Vec::with_capacity(total);
        for (seg, start, len) in ranges {
            seg.read_into(&mut out, start, len)?;
        }
        Ok(Bytes::from(out))
    }

    /// The earliest record (offset >= log start) whose timestamp is `>= timestamp`.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, StorageError> {
        for seg in &self.segments {
            if seg.max_timestamp < timestamp || seg.next_offset <= self.log_start_offset {
                continue;
            }
            let mut pos = seg.position_for_timestamp(timestamp);
            if seg.base_offset < self.log_start_offset {
                if let Some((p, _)) = seg.find(self.log_start_offset)? {
                    pos = pos.max(p);
                }
            }
            while let Some(h) = seg.header_at(pos)? {
                if h.max_timestamp >= timestamp && h.last_offset() >= self.log_start_offset {
                    let batch = seg.read_bytes(pos, h.size())?;
                    if let Some((offset, ts)) =
                        first_record_at_or_after(batch, &h, timestamp, self.log_start_offset)?
                    {
                        return Ok(Some(TimestampOffset {
                            timestamp: ts,
                            offset,
                            leader_epoch: h.partition_leader_epoch.max(-1),
                        }));
                    }
                }
                pos += h.size() as u64;
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the record with the largest timestamp (the first such record),
    /// for ListOffsets MAX_TIMESTAMP. `None` for an empty log. A batch that cannot be read back
    /// makes the answer fall back to that batch's last offset.
    pub fn last_timestamp_offset(&self) -> Option<TimestampOffset> {
        let mut best: Option<&Segment> = None;
        for seg in &self.segments {
            if seg.max_timestamp >= 0 && best.is_none_or(|b| seg.max_timestamp > b.max_timestamp) {
                best = Some(seg);
            }
        }
        let seg = best?;
        let fallback = TimestampOffset {
            timestamp: seg.max_timestamp,
            offset: seg.offset_of_max_timestamp,
            leader_epoch: self
                .epochs
                .epoch_for_offset(seg.offset_of_max_timestamp)
                .unwrap_or(-1),
        };
        let exact = || -> Result<Option<TimestampOffset>, StorageError> {
            let Some((pos, h)) = seg.find(seg.offset_of_max_timestamp)? else {
                return Ok(None);
            };
            if h.max_timestamp != seg.max_timestamp {
                return Ok(None);
            }
            let found = if h.is_log_append_time() {
                Some((h.base_offset, h.max_timestamp))
            } else {
                first_record_at_or_after(seg.read_bytes(pos, h.size())?, &h, h.max_timestamp, 0)?
            };
            Ok(found.map(|(offset, timestamp)| TimestampOffset {
                timestamp,
                offset,
                leader_epoch: h.partition_leader_epoch.max(-1),
            }))
        };
        match exact() {
            Ok(Some(t)) => Some(t),
            Ok(None) => Some(fallback),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the batch with the max timestamp");
                Some(fallback)
            }
        }
    }

    /// Moves the log start offset up to `offset` (durably) and deletes segments wholly below it.
    /// Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        if offset > self.log_end_offset() || offset < 0 {
            return Err(self.out_of_range(offset));
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        self.write_state(false)?;
        self.after_log_start_moved()?;
        Ok(offset)
    }

    /// Deletes segments wholly below the log start offset and trims caches.
    fn after_log_start_moved(&mut self) -> Result<(u64, usize), StorageError> {
        let mut bytes = 0;
        let mut count = 0;
        while self.segments.len() > 1 && self.segments[1].base_offset <= self.log_start_offset {
            let seg = self.segments.remove(0);
            bytes += seg.size;
            count += 1;
            seg.delete()?;
        }
        let start = self.log_start_offset;
        self.epochs.truncate_from_start(start)?;
        self.producers.evict_below(start);
        Ok((bytes, count))
    }

    /// Removes everything at or after `offset`; afterwards the log end offset is `offset`
    /// (a batch straddling it goes whole; the log then continues at `offset` in a new segment).
    /// Below the log start offset the log is emptied and restarts at `offset`. No-op when
    /// `offset >= log end offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(self.out_of_range(offset));
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.truncations += 1;
        let interval = self.config.index_interval_bytes;
        if offset < self.log_start_offset || offset <= self.segments[0].base_offset {
            for seg in self.segments.drain(..) {
                seg.delete()?;
            }
            for (_, p) in list_snapshots(&self.dir)? {
                remove_if_exists(&p)?;
            }
            self.segments.push(Segment::create(&self.dir, offset)?);
            self.log_start_offset = offset;
        } else {
            while self.active().base_offset >= offset {
                if let Some(seg) = self.segments.pop() {
                    seg.delete()?;
                }
            }
            self.active_mut().truncate_to(offset, interval)?;
            self.active_mut().flush()?;
        }
        sync_dir(&self.dir)?;
        let leo = self.log_end_offset();
        self.recovery_point = self.recovery_point.min(leo);
        self.epochs.truncate_from_end(leo)?;
        for (o, p) in list_snapshots(&self.dir)? {
            if o > leo {
                remove_if_exists(&p)?;
            }
        }
        self.rebuild_producer_state()?;
        if leo < offset {
            // A batch straddled `offset`: continue the log at `offset` in a new segment, so the
            // log end offset survives a restart.
            self.roll_to(offset)?;
        }
        self.write_state(false)?;
        Ok(())
    }

    /// Kafka's OffsetForLeaderEpoch answer: `(largest epoch <= epoch, its end offset)`, `None`
    /// for an unknown epoch (UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// Rolls by segment.ms, applies retention (delete policy) and compaction (compact policy),
    /// and fsyncs when flush.ms has passed.
    pub fn run_maintenance(&mut self, now_ms: i64) -> Result<MaintenanceReport, StorageError> {
        let mut report = MaintenanceReport::default();
        if self.should_roll(0, self.log_end_offset(), now_ms) {
            let leo = self.log_end_offset();
            self.roll_to(leo)?;
            report.rolled = true;
        }
        if self.config.cleanup_policy_delete {
            self.apply_retention(now_ms, &mut report)?;
        }
        if self.config.cleanup_policy_compact {
            let (segments, records) = self.compact(now_ms)?;
            report.segments_compacted = segments;
            report.records_compacted = records;
        }
        if now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_interval_ms {
            self.flush()?;
            self.last_flush_ms = now_ms;
            report.flushed = true;
        }
        report.log_start_offset = self.log_start_offset;
        Ok(report)
    }

    fn expired(&self, seg: &Segment, now_ms: i64) -> bool {
        let retention = self.config.retention_ms;
        retention >= 0
            && (seg.size == 0 || (seg.max_timestamp >= 0 && now_ms - seg.max_timestamp > retention))
    }

    fn apply_retention(
        &mut self,
        now_ms: i64,
        report: &mut MaintenanceReport,
    ) -> Result<(), StorageError> {
        // Kafka rolls an expired active segment so that it can be deleted.
        let all_old_expired = self.segments[..self.segments.len() - 1]
            .iter()
            .all(|s| self.expired(s, now_ms));
        if all_old_expired && self.active().size > 0 && self.expired(self.active(), now_ms) {
            let leo = self.log_end_offset();
            self.roll_to(leo)?;
            report.rolled = true;
        }
        let mut delete = 0;
        let non_active = self.segments.len() - 1;
        while delete < non_active && self.expired(&self.segments[delete], now_ms) {
            delete += 1;
        }
        if self.config.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            for seg in &self.segments[..delete] {
                excess -= seg.size as i64;
            }
            while delete < non_active && excess - self.segments[delete].size as i64 >= 0 {
                excess -= self.segments[delete].size as i64;
                delete += 1;
            }
        }
        if delete == 0 {
            return Ok(());
        }
        let new_start = self.segments[delete].base_offset;
        if new_start > self.log_start_offset {
            self.log_start_offset = new_start;
            self.write_state(false)?;
        }
        let (bytes, count) = self.after_log_start_moved()?;
        report.segments_deleted += count;
        report.bytes_deleted += bytes;
        Ok(())
    }

    fn flush_segments(&mut self) -> Result<(), StorageError> {
        for seg in &self.segments {
            if seg.next_offset > self.recovery_point || seg.base_offset >= self.recovery_point {
                seg.flush()?;
            }
        }
        self.recovery_point = self.log_end_offset();
        self.unflushed_messages = 0;
        Ok(())
    }

    /// Fsyncs all segments and persists the recovery point.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.flush_segments()?;
        self.write_state(false)?;
        Ok(())
    }

    /// Flushes, snapshots producer state and marks the shutdown clean, so that the next open
    /// skips the CRC scan.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.active_mut().release_reserved_space(false)?;
        self.flush_segments()?;
        let leo = self.log_end_offset();
        self.producers.write_snapshot(&self.dir, leo)?;
        self.write_state(true)?;
        Ok(())
    }

    /// Removes the partition directory and everything in it.
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl PartitionLog for Log {
    fn append_as_leader(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        Log::append_as_leader(self, records, leader_epoch, now_ms)
    }
    fn append_as_follower(&mut self, records: &[u8]) -> Result<LogAppendInfo, StorageError> {
        Log::append_as_follower(self, records)
    }
    fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Bytes, StorageError> {
        Log::read(self, offset, max_bytes, max_offset, min_one_batch)
    }
    fn log_start_offset(&self) -> i64 {
        Log::log_start_offset(self)
    }
    fn log_end_offset(&self) -> i64 {
        Log::log_end_offset(self)
    }
    fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        Log::delete_records_before(self, offset)
    }
    fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        Log::truncate_to(self, offset)
    }
    fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, StorageError> {
        Log::offset_for_timestamp(self, timestamp)
    }
}
