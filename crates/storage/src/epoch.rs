//! Leader epoch cache and its `leader-epoch-checkpoint` file (Kafka's `LeaderEpochFileCache`).
//!
//! File format (Kafka's): a version line `0`, a count line, then one `epoch startOffset` line per
//! entry, oldest first. Rewritten atomically (temp file, fsync, rename) on every change.

use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::write_atomically;

pub(crate) const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

fn parse(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let line = lines.next()?;
        let mut parts = line.split_whitespace();
        let epoch: i32 = parts.next()?.parse().ok()?;
        let start_offset: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    let monotonic = entries
        .windows(2)
        .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset <= w[1].start_offset);
    monotonic.then_some(entries)
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir`. Returns the cache and whether the file was unreadable (the
    /// caller then rebuilds the entries from the batches' partition leader epochs).
    pub fn load(dir: &Path) -> io::Result<(LeaderEpochCache, bool)> {
        let path = dir.join(CHECKPOINT_FILE);
        let (entries, broken) = match std::fs::read_to_string(&path) {
            Ok(text) => match parse(&text) {
                Some(e) => (e, false),
                None => {
                    tracing::warn!(path = %path.display(), "malformed leader epoch checkpoint, rebuilding");
                    (Vec::new(), true)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), false),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => (Vec::new(), true),
            Err(e) => return Err(e),
        };
        Ok((LeaderEpochCache { path, entries }, broken))
    }

    fn persist(&self) -> io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        write_atomically(&self.path, text.as_bytes())
    }

    #[cfg(test)]
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` when it is newer than the latest epoch.
    /// Returns whether the cache changed. Does not persist (see [`Self::assign`]).
    pub fn assign_in_memory(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(last) if last.epoch >= epoch => {
                if last.epoch > epoch {
                    tracing::warn!(epoch, latest = last.epoch, "ignoring an older leader epoch");
                }
                false
            }
            _ => {
                // A new epoch cannot start before an older one's start: drop such entries.
                self.entries.retain(|e| e.start_offset < start_offset);
                self.entries.push(EpochEntry {
                    epoch,
                    start_offset,
                });
                true
            }
        }
    }

    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> io::Result<()> {
        if self.assign_in_memory(epoch, start_offset) {
            self.persist()?;
        }
        Ok(())
    }

    /// Removes entries starting at or after `end_offset` (log truncated to it).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// The log now starts at `start_offset`: drops entries wholly before it and moves the start
    /// of the epoch covering it up to `start_offset`.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> io::Result<()> {
        let covering = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset);
        let Some(i) = covering else { return Ok(()) };
        if i == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..i);
        self.entries[0].start_offset = start_offset;
        self.persist()
    }

    /// Kafka's `endOffsetFor`: `(epoch, end offset)` where the end offset is the start offset of
    /// the first epoch after `epoch` (or the log end offset for the latest epoch), and the epoch
    /// is the largest known epoch `<= epoch`. `None` when the epoch is unknown (newer than the
    /// latest, or the cache is empty): Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        let latest = self.entries.last()?;
        if latest.epoch == epoch {
            return Some((epoch, log_end_offset));
        }
        let higher = self.entries.iter().position(|e| e.epoch > epoch)?;
        let start_of_higher = self.entries[higher].start_offset;
        if higher == 0 {
            Some((epoch, start_of_higher))
        } else {
            Some((self.entries[higher - 1].epoch, start_of_higher))
        }
    }

    /// The epoch of the batch holding `offset` (largest entry starting at or before it).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, broken) = LeaderEpochCache::load(dir.path()).unwrap();
        assert!(!broken);
        for &(e, o) in entries {
            c.assign(e, o).unwrap();
        }
        (dir, c)
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let (_d, c) = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(5, 30), Some((5, 30)));
        assert_eq!(c.end_offset_for(3, 30), Some((3, 20)));
        assert_eq!(c.end_offset_for(4, 30), Some((3, 20)));
        assert_eq!(c.end_offset_for(0, 30), Some((0, 0)));
        assert_eq!(c.end_offset_for(6, 30), None);
        assert_eq!(c.end_offset_for(-1, 30), None);
        let (_d2, empty) = cache(&[]);
        assert_eq!(empty.end_offset_for(0, 0), None);
    }

    #[test]
    fn checkpoint_round_trips_in_kafka_format() {
        let (dir, mut c) = cache(&[(1, 0), (3, 10)]);
        let text = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n1 0\n3 10\n");
        c.truncate_from_start(12).unwrap();
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 12
            }]
        );
        let (back, broken) = LeaderEpochCache::load(dir.path()).unwrap();
        assert!(!broken);
        assert_eq!(back.entries(), c.entries());
    }

    #[test]
    fn truncation_from_end_drops_later_epochs() {
        let (_d, mut c) = cache(&[(1, 0), (2, 5), (3, 9)]);
        c.truncate_from_end(5).unwrap();
        assert_eq!(c.latest_epoch(), Some(1));
        assert!(!c.assign_in_memory(0, 7));
    }

    #[test]
    fn malformed_checkpoint_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "0\n3\n1 0\n").unwrap();
        let (c, broken) = LeaderEpochCache::load(dir.path()).unwrap();
        assert!(broken);
        assert!(c.entries().is_empty());
    }
}
