//! Sparse offset index (`.index`) and time index (`.timeindex`) files of one segment.
//!
//! Both are kept whole in memory (a 1 GiB segment with the default 4 KiB interval has about
//! 260k entries, 2 MiB) and appended to their file as entries are added. Entries are Kafka's:
//! offset index `relative offset u32 BE, position u32 BE`; time index `timestamp i64 BE,
//! relative offset u32 BE`. Unlike Kafka the files are not preallocated, so their length is
//! always a whole number of entries.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// One fixed-size index entry.
pub(crate) trait Entry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Self;
}

/// Offset index entry: the batch whose last offset is `base + rel` starts at byte `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel: u32,
    pub pos: u32,
}

/// Time index entry: every record up to offset `base + rel` has a timestamp `<= ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub ts: i64,
    pub rel: u32,
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel.to_be_bytes());
        out.extend_from_slice(&self.pos.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            rel: be_u32(&b[0..4]),
            pos: be_u32(&b[4..8]),
        }
    }
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ts.to_be_bytes());
        out.extend_from_slice(&self.rel.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[0..8]);
        TimeEntry {
            ts: i64::from_be_bytes(a),
            rel: be_u32(&b[8..12]),
        }
    }
}

/// An index file and its entries.
pub(crate) struct IndexFile<E: Entry> {
    path: PathBuf,
    file: File,
    pub entries: Vec<E>,
}

fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
}

impl<E: Entry> IndexFile<E> {
    /// Creates (or empties) the file.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(IndexFile {
            path: path.to_path_buf(),
            file: open_rw(path, true)?,
            entries: Vec::new(),
        })
    }

    /// Reads the entries of an existing file; `None` when the file is missing or its length is
    /// not a whole number of entries (the caller then rebuilds it).
    pub fn load(path: &Path) -> io::Result<Option<Self>> {
        let mut file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        if buf.len() % E::SIZE != 0 {
            return Ok(None);
        }
        let entries = buf.chunks_exact(E::SIZE).map(E::decode).collect();
        // Appends go to the end: position the cursor there.
        use std::io::Seek;
        file.seek(io::SeekFrom::End(0))?;
        Ok(Some(IndexFile {
            path: path.to_path_buf(),
            file,
            entries,
        }))
    }

    pub fn append(&mut self, e: E) -> io::Result<()> {
        let mut buf = Vec::with_capacity(E::SIZE);
        e.encode(&mut buf);
        self.file.write_all(&buf)?;
        self.entries.push(e);
        Ok(())
    }

    /// Replaces the whole content with `entries`.
    pub fn rewrite(&mut self, entries: Vec<E>) -> io::Result<()> {
        let mut buf = Vec::with_capacity(entries.len() * E::SIZE);
        for e in &entries {
            e.encode(&mut buf);
        }
        self.file = open_rw(&self.path, true)?;
        self.file.write_all(&buf)?;
        self.entries = entries;
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    pub fn try_clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl IndexFile<OffsetEntry> {
    /// Position of the last indexed batch whose last offset is `<= rel`, or 0.
    pub fn lookup(&self, rel: u32) -> u32 {
        let i = self.entries.partition_point(|e| e.rel <= rel);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].pos
        }
    }

    /// Entries strictly increasing in offset and position, positions inside the log.
    pub fn is_sane(&self, log_size: u64) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].rel < w[1].rel && w[0].pos < w[1].pos)
            && self.entries.iter().all(|e| (e.pos as u64) < log_size)
    }
}

impl IndexFile<TimeEntry> {
    /// Relative offset of the last entry with a timestamp strictly below `ts`: every record up
    /// to that offset is older than `ts`, so a search may start at the batch holding it.
    pub fn lookup_before(&self, ts: i64) -> Option<u32> {
        let i = self.entries.partition_point(|e| e.ts < ts);
        if i == 0 {
            None
        } else {
            Some(self.entries[i - 1].rel)
        }
    }

    /// Appends when `ts` is newer than the last entry (entries stay strictly increasing).
    pub fn maybe_append(&mut self, ts: i64, rel: u32) -> io::Result<()> {
        match self.entries.last() {
            Some(last) if last.ts >= ts => Ok(()),
            _ if ts < 0 => Ok(()),
            _ => self.append(TimeEntry { ts, rel }),
        }
    }

    /// Timestamps strictly increasing, offsets non-decreasing and below `max_rel`.
    pub fn is_sane(&self, max_rel: i64) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].ts < w[1].ts && w[0].rel <= w[1].rel)
            && self.entries.iter().all(|e| (e.rel as i64) < max_rel.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = IndexFile::<OffsetEntry>::create(&dir.path().join("a.index")).unwrap();
        for (rel, pos) in [(9, 100), (19, 200), (29, 300)] {
            idx.append(OffsetEntry { rel, pos }).unwrap();
        }
        assert_eq!(idx.lookup(5), 0);
        assert_eq!(idx.lookup(9), 100);
        assert_eq!(idx.lookup(25), 200);
        assert_eq!(idx.lookup(1000), 300);
        let back = IndexFile::<OffsetEntry>::load(&dir.path().join("a.index"))
            .unwrap()
            .unwrap();
        assert_eq!(back.entries, idx.entries);
        assert!(back.is_sane(301));
        assert!(!back.is_sane(300));
    }

    #[test]
    fn time_index_only_grows_and_looks_up_strictly_below() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = IndexFile::<TimeEntry>::create(&dir.path().join("a.timeindex")).unwrap();
        idx.maybe_append(10, 1).unwrap();
        idx.maybe_append(10, 2).unwrap();
        idx.maybe_append(5, 3).unwrap();
        idx.maybe_append(20, 4).unwrap();
        assert_eq!(idx.entries.len(), 2);
        assert_eq!(idx.lookup_before(10), None);
        assert_eq!(idx.lookup_before(11), Some(1));
        assert_eq!(idx.lookup_before(21), Some(4));
    }

    #[test]
    fn torn_index_file_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.index");
        std::fs::write(&p, [0u8; 12]).unwrap();
        assert!(IndexFile::<OffsetEntry>::load(&p).unwrap().is_none());
    }
}
