//! Idempotent producer state (Kafka's `ProducerStateManager`, without transactions).
//!
//! Per producer id: the current epoch and the last [`MAX_CACHED_BATCHES`] appended batches.
//! Snapshots are JSON files named like Kafka's, `<offset, 20 digits>.snapshot`, holding the state
//! as of (just before) that offset. They are written when a segment rolls and at clean close; at
//! open the newest snapshot at or below the log end offset is loaded and the batch headers after
//! it are replayed (header-only, no bodies). Without a snapshot every retained batch header is
//! replayed. (The content is Brook's own JSON, not Kafka's binary snapshot format.)

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use brook_protocol::batch::BatchHeader;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::fsutil::{remove_if_exists, write_atomically};

/// Kafka keeps the metadata of the last five batches per producer for duplicate detection.
pub(crate) const MAX_CACHED_BATCHES: usize = 5;

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
}

impl ProducerEntry {
    fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }
}

/// Result of checking one batch against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    /// Not an idempotent batch, or in sequence.
    Ok,
    /// A retry of a batch already in the log.
    Duplicate(BatchMeta),
}

#[derive(Debug, Default, Clone)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The sequence fields of an idempotent data batch, or `None` for batches without them.
fn idempotent(h: &BatchHeader) -> bool {
    h.producer_id >= 0 && h.base_sequence >= 0 && !h.is_control()
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    producers: Vec<ProducerEntry>,
}

fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}.snapshot")
}

/// Snapshot files in `dir`, sorted by offset.
pub(crate) fn list_snapshots(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".snapshot") {
            if stem.len() == 20 {
                if let Ok(o) = stem.parse::<i64>() {
                    out.push((o, entry.path()));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

impl ProducerState {
    /// Checks `h` against `self` (Kafka's sequence and epoch rules) without changing anything.
    pub fn check(&self, h: &BatchHeader) -> Result<SeqCheck, StorageError> {
        if h.producer_id < 0 {
            return Ok(SeqCheck::Ok);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // Unknown producer: accept any sequence (its state may have gone with retention).
            return Ok(SeqCheck::Ok);
        };
        if h.producer_epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                current: entry.epoch,
                got: h.producer_epoch,
            });
        }
        if !idempotent(h) {
            return Ok(SeqCheck::Ok);
        }
        if h.producer_epoch > entry.epoch {
            if h.base_sequence != 0 {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                });
            }
            return Ok(SeqCheck::Ok);
        }
        let last_seq = h.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SeqCheck::Duplicate(*dup));
        }
        let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if h.base_sequence != expected {
            return Err(StorageError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected,
                got: h.base_sequence,
            });
        }
        Ok(SeqCheck::Ok)
    }

    /// Records an appended batch (its offsets already assigned). Followers and recovery call this
    /// without [`Self::check`].
    pub fn update(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
            });
        if h.producer_epoch > entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        } else if h.producer_epoch < entry.epoch {
            // Replicated history from an older epoch: nothing to learn.
            return;
        }
        if !idempotent(h) {
            return;
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            timestamp: h.max_timestamp,
        });
        while entry.batches.len() > MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// Forgets producers whose last batch is below the log start offset (gone with retention).
    pub fn evict_below(&mut self, log_start_offset: i64) {
        self.producers
            .retain(|_, e| e.batches.is_empty() || e.last_offset() >= log_start_offset);
    }

    /// Writes `<offset>.snapshot` in `dir` and removes all but the two newest snapshots.
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> io::Result<()> {
        let mut producers: Vec<ProducerEntry> = self.producers.values().cloned().collect();
        producers.sort_by_key(|p| p.producer_id);
        let data = serde_json::to_vec(&Snapshot {
            version: 1,
            producers,
        })
        .map_err(io::Error::other)?;
        write_atomically(&dir.join(snapshot_name(offset)), &data)?;
        let all = list_snapshots(dir)?;
        if all.len() > 2 {
            for (_, p) in &all[..all.len() - 2] {
                remove_if_exists(p)?;
            }
        }
        Ok(())
    }

    /// Loads a snapshot file; `None` if it does not parse (it is then ignored).
    pub fn read_snapshot(path: &Path) -> io::Result<Option<ProducerState>> {
        let data = std::fs::read(path)?;
        match serde_json::from_slice::<Snapshot>(&data) {
            Ok(s) if s.version == 1 => Ok(Some(ProducerState {
                producers: s
                    .producers
                    .into_iter()
                    .map(|p| (p.producer_id, p))
                    .collect(),
            })),
            _ => {
                tracing::warn!(path = %path.display(), "ignoring unreadable producer snapshot");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::batch::{build_batch_with, validate, SimpleRecord};

    fn header(pid: i64, epoch: i16, seq: i32, n: usize, base_offset: i64) -> BatchHeader {
        let recs = vec![
            SimpleRecord {
                key: None,
                value: Some(b"v"),
                headers: &[],
            };
            n
        ];
        validate(&build_batch_with(base_offset, 1, pid, epoch, seq, 0, &recs)).unwrap()
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerState::default();
        let first = header(7, 0, 0, 3, 0);
        assert_eq!(s.check(&first).unwrap(), SeqCheck::Ok);
        s.update(&first);
        assert!(
            matches!(s.check(&first).unwrap(), SeqCheck::Duplicate(m) if m.first_offset == 0 && m.last_offset == 2)
        );
        assert_eq!(s.check(&header(7, 0, 3, 1, 3)).unwrap(), SeqCheck::Ok);
        assert!(matches!(
            s.check(&header(7, 0, 5, 1, 3)),
            Err(StorageError::OutOfOrderSequence {
                expected: 3,
                got: 5,
                ..
            })
        ));
        assert!(matches!(
            s.check(&header(7, 1, 4, 1, 3)),
            Err(StorageError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(s.check(&header(7, 1, 0, 1, 3)).unwrap(), SeqCheck::Ok);
        s.update(&header(7, 1, 0, 1, 3));
        assert!(matches!(
            s.check(&header(7, 0, 4, 1, 4)),
            Err(StorageError::InvalidProducerEpoch {
                current: 1,
                got: 0,
                ..
            })
        ));
        // Unknown producers may start anywhere.
        assert_eq!(s.check(&header(8, 0, 42, 1, 5)).unwrap(), SeqCheck::Ok);
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut s = ProducerState::default();
        s.update(&header(1, 0, i32::MAX, 1, 0));
        assert_eq!(s.check(&header(1, 0, 0, 1, 1)).unwrap(), SeqCheck::Ok);
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut s = ProducerState::default();
        for i in 0..6 {
            s.update(&header(1, 0, i, 1, i as i64));
        }
        assert!(matches!(
            s.check(&header(1, 0, 5, 1, 9)).unwrap(),
            SeqCheck::Duplicate(_)
        ));
        assert!(matches!(
            s.check(&header(1, 0, 1, 1, 9)).unwrap(),
            SeqCheck::Duplicate(_)
        ));
        assert!(s.check(&header(1, 0, 0, 1, 9)).is_err());
    }

    #[test]
    fn snapshots_round_trip_and_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        s.update(&header(3, 2, 0, 2, 10));
        for off in [1, 2, 3] {
            s.write_snapshot(dir.path(), off).unwrap();
        }
        let snaps = list_snapshots(dir.path()).unwrap();
        assert_eq!(snaps.iter().map(|s| s.0).collect::<Vec<_>>(), vec![2, 3]);
        let back = ProducerState::read_snapshot(&snaps[1].1).unwrap().unwrap();
        assert_eq!(back.producers, s.producers);
    }
}
