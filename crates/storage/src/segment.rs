//! One log segment: `<base>.log`, `<base>.index`, `<base>.timeindex`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use brook_protocol::batch::{BatchError, BatchHeader, HEADER_SIZE};

use crate::error::StorageError;
use crate::fsutil::remove_if_exists;
use crate::index::{IndexFile, OffsetEntry, TimeEntry};

/// `<base offset, 20 digits>.<ext>` in `dir`.
pub(crate) fn segment_file(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

const ATTRIBUTES_AT: usize = 21;

/// Validates a batch read back from disk: header, length, CRC and counts that are sane.
///
/// Looser than [`brook_protocol::batch::validate`]: a compacted batch may hold fewer records
/// than its offset span, so `records_count == last_offset_delta + 1` is not required.
pub(crate) fn check_stored(b: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(b)?;
    if b.len() < h.size() {
        return Err(BatchError::Truncated {
            needed: h.size(),
            available: b.len(),
        });
    }
    let computed = crc32c::crc32c(&b[ATTRIBUTES_AT..h.size()]);
    if computed != h.crc {
        return Err(BatchError::CrcMismatch {
            stored: h.crc,
            computed,
        });
    }
    if h.last_offset_delta < 0 || h.records_count < 0 {
        return Err(BatchError::Invalid("negative offset delta or record count"));
    }
    if h.records_count as i64 > h.last_offset_delta as i64 + 1 {
        return Err(BatchError::Invalid("more records than offsets"));
    }
    if h.attributes & 0x07 > 4 {
        return Err(BatchError::Invalid("unknown compression codec"));
    }
    Ok(h)
}

pub(crate) struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    log: File,
    /// Bytes of whole batches in the log file.
    pub size: u64,
    /// End of the disk space reserved for the log file (`size` when nothing is reserved past it;
    /// see [`Segment::append`]).
    allocated: u64,
    /// Offset after the last batch (`base_offset` when empty).
    pub next_offset: i64,
    pub offset_index: IndexFile<OffsetEntry>,
    pub time_index: IndexFile<TimeEntry>,
    bytes_since_index: u64,
    /// Largest batch max timestamp in the segment, -1 when none.
    pub max_timestamp: i64,
    /// Last offset of the (first) batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// Wall-clock time of the first append since the segment was created or opened, for
    /// `segment.ms`.
    pub first_append_ms: Option<i64>,
}

/// A segment reserves disk space ahead of its writes once it holds this much, so that a
/// partition written at a high rate does not pay the filesystem's block allocation per write...
const PREALLOCATE_FROM: u64 = 4 << 20;
/// ...reserving as much again as it holds, at most this much: a segment never has more than
/// this reserved past its end, and gives it back when it is sealed or the log closed.
const PREALLOCATE_AHEAD_MAX: u64 = 64 << 20;

/// Reserves `len` bytes of disk from `offset` without changing the file's length.
#[cfg(target_os = "linux")]
fn reserve(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    // SAFETY: fallocate on an open descriptor we own; KEEP_SIZE leaves the visible length alone.
    match unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
fn reserve(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

fn open_log(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .open(path)
}

impl Segment {
    /// Creates an empty segment (empties files left behind by an earlier segment of that name).
    pub fn create(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let log_path = segment_file(dir, base_offset, "log");
        let log = open_log(&log_path, true)?;
        log.set_len(0)?;
        Ok(Segment {
            base_offset,
            log,
            log_path,
            size: 0,
            allocated: 0,
            next_offset: base_offset,
            offset_index: IndexFile::create(&segment_file(dir, base_offset, "index"))?,
            time_index: IndexFile::create(&segment_file(dir, base_offset, "timeindex"))?,
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_append_ms: None,
        })
    }

    /// Opens an existing segment. With `recover`, every batch is CRC-checked, the log is cut at
    /// the first bad one and the indexes are rebuilt; otherwise the indexes are trusted after a
    /// sanity check (and rebuilt with a full check when they fail it). `on_batch` sees the
    /// headers of batches scanned during a rebuild. Returns the segment and whether its log was
    /// truncated.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        recover: bool,
        index_interval: u32,
        now_ms: i64,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> Result<(Segment, bool), StorageError> {
        let log_path = segment_file(dir, base_offset, "log");
        let log = open_log(&log_path, false)?;
        let size = log.metadata()?.len();
        let index_path = segment_file(dir, base_offset, "index");
        let time_path = segment_file(dir, base_offset, "timeindex");
        let loaded = if recover {
            None
        } else {
            match (IndexFile::load(&index_path)?, IndexFile::load(&time_path)?) {
                (Some(o), Some(t)) => Some((o, t)),
                _ => None,
            }
        };
        let (offset_index, time_index, trusted) = match loaded {
            Some((o, t)) => (o, t, true),
            None => (
                IndexFile::create(&index_path)?,
                IndexFile::create(&time_path)?,
                false,
            ),
        };
        let mut seg = Segment {
            base_offset,
            log,
            log_path,
            size,
            allocated: size,
            next_offset: base_offset,
            offset_index,
            time_index,
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_append_ms: (size > 0).then_some(now_ms),
        };
        if trusted {
            match seg.load_from_indexes() {
                Ok(true) => return Ok((seg, false)),
                Ok(false) => {
                    tracing::warn!(segment = %seg.log_path.display(), "index failed its sanity check, rebuilding");
                }
                Err(StorageError::Io(e)) => return Err(StorageError::Io(e)),
                Err(e) => {
                    tracing::warn!(segment = %seg.log_path.display(), error = %e, "bad batch after the last index entry, recovering segment");
                }
            }
        }
        let truncated = seg.rebuild(index_interval, on_batch)?;
        Ok((seg, truncated))
    }

    /// Trusted open: sanity-checks the indexes and scans the headers after the last index entry.
    /// `Ok(false)` when the indexes do not look right.
    fn load_from_indexes(&mut self) -> Result<bool, StorageError> {
        if !self.offset_index.is_sane(self.size) || !self.time_index.is_sane(i64::MAX) {
            return Ok(false);
        }
        let mut pos = 0u64;
        if let Some(last) = self.offset_index.entries.last().copied() {
            match self.header_at(last.pos as u64)? {
                Some(h) if h.last_offset() == self.base_offset + last.rel as i64 => {}
                _ => return Ok(false),
            }
            pos = last.pos as u64;
        }
        if let Some(t) = self.time_index.entries.last() {
            self.max_timestamp = t.ts;
            self.offset_of_max_timestamp = self.base_offset + t.rel as i64;
        }
        self.bytes_since_index = 0;
        while let Some(h) = self.header_at(pos)? {
            if h.base_offset < self.next_offset {
                return Ok(false);
            }
            self.note_batch(&h);
            self.bytes_since_index += h.size() as u64;
            pos += h.size() as u64;
        }
        if let Some(t) = self.time_index.entries.last() {
            if t.rel as i64 > self.next_offset - self.base_offset {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn note_batch(&mut self, h: &BatchHeader) {
        self.next_offset = h.next_offset();
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
    }

    fn rel(&self, offset: i64) -> u32 {
        (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32
    }

    /// Full scan with CRC checks: cuts the log at the first bad batch and rewrites both indexes.
    fn rebuild(
        &mut self,
        index_interval: u32,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> Result<bool, StorageError> {
        let mut pos = 0u64;
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        let mut times = IndexFile::<TimeEntry>::create(self.time_index.path())?;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.bytes_since_index = 0;
        let mut truncated = false;
        while pos < self.size {
            let h = match self.read_checked(pos, &mut buf)? {
                Ok(h) => h,
                Err(why) => {
                    tracing::warn!(segment = %self.log_path.display(), pos, %why, "truncating log at a bad batch");
                    truncated = true;
                    break;
                }
            };
            if h.base_offset < self.next_offset
                || h.last_offset() - self.base_offset > u32::MAX as i64
            {
                tracing::warn!(segment = %self.log_path.display(), pos, "truncating log at a batch with an out-of-place offset");
                truncated = true;
                break;
            }
            if self.bytes_since_index > index_interval as u64 {
                offsets.push(OffsetEntry {
                    rel: self.rel(h.last_offset()),
                    pos: pos as u32,
                });
                times.maybe_append(self.max_timestamp, self.rel(self.offset_of_max_timestamp))?;
                self.bytes_since_index = 0;
            }
            self.note_batch(&h);
            self.bytes_since_index += h.size() as u64;
            on_batch(&h);
            pos += h.size() as u64;
        }
        if truncated {
            self.log.set_len(pos)?;
            self.size = pos;
            self.allocated = pos;
        }
        self.offset_index.rewrite(offsets)?;
        self.time_index = times;
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.rel(self.offset_of_max_timestamp))?;
        }
        Ok(truncated)
    }

    /// Reads the whole batch at `pos` and checks it. The outer error is I/O, the inner one says
    /// why the bytes are not a good batch.
    fn read_checked(&self, pos: u64, buf: &mut Vec<u8>) -> io::Result<Result<BatchHeader, String>> {
        let remaining = self.size - pos;
        if remaining < HEADER_SIZE as u64 {
            return Ok(Err(format!("{remaining} bytes left, less than a header")));
        }
        buf.resize(HEADER_SIZE, 0);
        self.log.read_exact_at(buf, pos)?;
        let h = match BatchHeader::parse(buf) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if h.size() as u64 > remaining {
            return Ok(Err(format!(
                "batch of {} bytes, only {remaining} left",
                h.size()
            )));
        }
        buf.resize(h.size(), 0);
        self.log
            .read_exact_at(&mut buf[HEADER_SIZE..], pos + HEADER_SIZE as u64)?;
        Ok(check_stored(buf).map_err(|e| e.to_string()))
    }

    /// Header of the batch at `pos` (no CRC check), `None` at the end of the log.
    pub fn header_at(&self, pos: u64) -> Result<Option<BatchHeader>, StorageError> {
        if pos >= self.size {
            return Ok(None);
        }
        let remaining = self.size - pos;
        if remaining < HEADER_SIZE as u64 {
            return Err(StorageError::CorruptBatch(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: remaining as usize,
            }));
        }
        let mut buf = [0u8; HEADER_SIZE];
        self.log.read_exact_at(&mut buf, pos)?;
        let h = BatchHeader::parse(&buf).map_err(StorageError::CorruptBatch)?;
        if h.size() as u64 > remaining {
            return Err(StorageError::CorruptBatch(BatchError::Truncated {
                needed: h.size(),
                available: remaining as usize,
            }));
        }
        Ok(Some(h))
    }

    /// Appends whole batches (offsets already assigned) and indexes them.
    pub fn append(
        &mut self,
        data: &[u8],
        headers: &[BatchHeader],
        index_interval: u32,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        if self.size + data.len() as u64 > u32::MAX as u64 {
            return Err(StorageError::Inconsistent(
                "segment would exceed 4 GiB".to_string(),
            ));
        }
        let end = self.size + data.len() as u64;
        if end > self.allocated && end >= PREALLOCATE_FROM {
            // Best effort: without the reservation the write allocates as it goes.
            let target = end + end.min(PREALLOCATE_AHEAD_MAX);
            self.allocated = match reserve(&self.log, self.size, target - self.size) {
                Ok(()) => target,
                // Not supported here, or the disk is nearly full: stop trying for this segment.
                Err(_) => u64::MAX,
            };
        }
        if let Err(e) = self.log.write_all(data) {
            // Do not leave a torn batch behind.
            let _ = self.log.set_len(self.size);
            self.allocated = self.size;
            return Err(e.into());
        }
        let mut pos = self.size;
        self.size += data.len() as u64;
        self.first_append_ms.get_or_insert(now_ms);
        for h in headers {
            if self.bytes_since_index > index_interval as u64 {
                self.offset_index.append(OffsetEntry {
                    rel: self.rel(h.last_offset()),
                    pos: pos as u32,
                })?;
                self.time_index
                    .maybe_append(self.max_timestamp, self.rel(self.offset_of_max_timestamp))?;
                self.bytes_since_index = 0;
            }
            self.note_batch(h);
            self.bytes_since_index += h.size() as u64;
            pos += h.size() as u64;
        }
        Ok(())
    }

    /// Position and header of the first batch whose last offset is `>= offset`.
    pub fn find(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let mut pos = self.offset_index.lookup(self.rel(offset)) as u64;
        while let Some(h) = self.header_at(pos)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// Position from which to search for the first record with a timestamp `>= ts`.
    pub fn position_for_timestamp(&self, ts: i64) -> u64 {
        match self.time_index.lookup_before(ts) {
            Some(rel) => self.offset_index.lookup(rel) as u64,
            None => 0,
        }
    }

    pub fn read_bytes(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_into(&mut buf, pos, len)?;
        Ok(buf)
    }

    /// Appends `len` bytes from position `pos` of the segment's log file to `out`.
    pub fn read_into(&self, out: &mut Vec<u8>, pos: u64, len: usize) -> io::Result<()> {
        crate::fsutil::read_exact_at_into(&self.log, out, pos, len)
    }

    /// Removes every batch whose last offset is `>= offset` (a batch straddling `offset` goes
    /// whole, as in Kafka) and rebuilds the indexes.
    pub fn truncate_to(&mut self, offset: i64, index_interval: u32) -> Result<(), StorageError> {
        if let Some((pos, _)) = self.find(offset)? {
            self.log.set_len(pos)?;
            self.size = pos;
            self.allocated = pos;
            self.rebuild(index_interval, &mut |_| {})?;
        }
        Ok(())
    }

    /// Called when the segment stops being the active one: final time index entry and the disk
    /// reserved past its end given back. The fsync is left to [`crate::Log::pending_flush`].
    pub fn seal(&mut self) -> io::Result<()> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.rel(self.offset_of_max_timestamp))?;
        }
        self.release_reserved_space(false)
    }

    /// Handles on the segment's files, to fsync them without holding the log.
    pub fn sync_handles(&self) -> io::Result<Vec<File>> {
        Ok(vec![
            self.log.try_clone()?,
            self.offset_index.try_clone_file()?,
            self.time_index.try_clone_file()?,
        ])
    }

    /// Gives back the disk reserved past the log's end (cutting a file to its own length frees
    /// its blocks past the end). After a crash the reservation is unknown, so `force` cuts anyway.
    pub fn release_reserved_space(&mut self, force: bool) -> io::Result<()> {
        if force || self.allocated > self.size {
            self.log.set_len(self.size)?;
            self.allocated = self.size;
        }
        Ok(())
    }

    pub fn flush(&self) -> io::Result<()> {
        self.log.sync_all()?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Reopens the log file after it was replaced on disk (compaction swap).
    pub fn reopen_log(&mut self) -> io::Result<()> {
        self.log = open_log(&self.log_path, false)?;
        self.size = self.log.metadata()?.len();
        self.allocated = self.size;
        Ok(())
    }

    /// Rebuilds the indexes and in-memory summary from the log file (after a swap).
    pub fn reindex(&mut self, index_interval: u32) -> Result<(), StorageError> {
        let base = self.next_offset;
        self.rebuild(index_interval, &mut |_| {})?;
        // A compacted segment may end in a gap: keep its old end so offsets stay assigned.
        self.next_offset = self.next_offset.max(base);
        Ok(())
    }

    /// Deletes the segment's files.
    pub fn delete(self) -> io::Result<()> {
        let Segment {
            log_path,
            log,
            offset_index,
            time_index,
            ..
        } = self;
        drop(log);
        remove_if_exists(&log_path)?;
        remove_if_exists(offset_index.path())?;
        remove_if_exists(time_index.path())
    }
}
