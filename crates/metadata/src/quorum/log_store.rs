//! The durable Raft log of the metadata quorum.
//!
//! The metadata log is small (the state machine snapshots every thousand entries or so and
//! openraft then purges the log behind it), so every live entry is also kept in memory and reads
//! never touch the disk. The file only has to be right after a crash:
//!
//! - appends write whole lines and fsync before openraft's callback fires;
//! - a truncation (a conflicting suffix from an old leader) cuts the file at the first removed
//!   entry's offset and fsyncs;
//! - a purge first makes the new `last_purged` durable in the state file, then rewrites the log
//!   without the purged entries; a crash in between leaves purged entries in the file, which
//!   open skips.
//!
//! I/O is done inline, on the calling task: metadata writes are rare and small, and doing them in
//! order on one task keeps the file's order equal to openraft's.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use serde::{Deserialize, Serialize};

use super::codec::{decode_line, encode_line, read_file, write_atomic, ReadError};
use super::{Entry, NodeId, QuorumStoreError, StorageError, TypeConfig};

const LOG_FILE: &str = "raft-log.jsonl";
const STATE_FILE: &str = "raft-state.json";

/// What must survive a restart besides the entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HardState {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
}

struct Inner {
    dir: PathBuf,
    file: File,
    /// Live entries (above `last_purged`) by index.
    entries: BTreeMap<u64, Entry>,
    /// Byte offset in the file at which each live entry's line starts.
    offsets: BTreeMap<u64, u64>,
    len: u64,
    state: HardState,
}

/// The Raft log, vote and committed index, on disk in one directory. Cheap to clone: clones share
/// the same log (openraft's log reader is such a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> QuorumStoreError + '_ {
    move |source| QuorumStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, dropping a torn last line.
    pub fn open(dir: &Path) -> Result<LogStore, QuorumStoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let state_path = dir.join(STATE_FILE);
        let state: HardState = match read_file(&state_path) {
            Ok(s) => s.unwrap_or_default(),
            Err(ReadError::Io(e)) => return Err(io_err(&state_path)(e)),
            Err(ReadError::Corrupt(reason)) => {
                return Err(QuorumStoreError::Corrupt {
                    path: state_path,
                    line: 1,
                    reason,
                })
            }
        };
        let path = dir.join(LOG_FILE);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io_err(&path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        let purged = state.last_purged.map(|l| l.index);
        let mut entries = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        let mut good_len = 0usize;
        let mut last_index: Option<u64> = None;
        let mut line_no = 0usize;
        let mut skipped_purged = false;
        while good_len < bytes.len() {
            line_no += 1;
            let rest = &bytes[good_len..];
            let (line, complete) = match rest.iter().position(|b| *b == b'\n') {
                Some(n) => (&rest[..n], true),
                None => (rest, false),
            };
            let decoded = if complete {
                decode_line::<Entry>(line)
            } else {
                Err("line not terminated".to_string())
            };
            let entry = match decoded {
                Ok(e) => e,
                Err(reason) => {
                    let is_last = good_len + line.len() + usize::from(complete) >= bytes.len();
                    if !is_last {
                        return Err(QuorumStoreError::Corrupt {
                            path,
                            line: line_no,
                            reason,
                        });
                    }
                    tracing::warn!(line = line_no, %reason, "dropping torn last Raft log entry");
                    break;
                }
            };
            let index = entry.log_id.index;
            if let Some(prev) = last_index {
                if index <= prev {
                    return Err(QuorumStoreError::Corrupt {
                        path,
                        line: line_no,
                        reason: format!("entry {index} follows entry {prev}"),
                    });
                }
            }
            last_index = Some(index);
            if purged.is_none_or(|p| index > p) {
                offsets.insert(index, good_len as u64);
                entries.insert(index, entry);
            } else {
                skipped_purged = true;
            }
            good_len += line.len() + 1;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if good_len < bytes.len() {
            file.set_len(good_len as u64).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
        }
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            file,
            entries,
            offsets,
            len: good_len as u64,
            state,
        };
        if skipped_purged {
            // A crash interrupted a purge: finish it, so the next append cannot leave a gap
            // between the purged entries still in the file and the new ones.
            inner.rewrite().map_err(io_err(&path))?;
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// Appends `entries` and fsyncs them: what [`RaftLogStorage::append`] does before it fires
    /// openraft's callback.
    #[allow(clippy::result_large_err)] // openraft's error type, which the trait returns anyway
    pub fn append_durably(&self, entries: Vec<Entry>) -> Result<(), StorageError> {
        self.lock().append(entries)
    }

    /// A poisoned lock means a panic mid-operation; every write leaves memory consistent with the
    /// file before it can panic, so the state is still usable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn save_state(&self) -> std::io::Result<()> {
        let bytes = encode_line(&self.state).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join(STATE_FILE), &bytes)
    }

    /// Rewrites the log file with the live entries only (after a purge).
    fn rewrite(&mut self) -> std::io::Result<()> {
        let path = self.dir.join(LOG_FILE);
        let mut bytes = Vec::new();
        let mut offsets = BTreeMap::new();
        for (index, entry) in &self.entries {
            offsets.insert(*index, bytes.len() as u64);
            bytes.extend_from_slice(&encode_line(entry).map_err(std::io::Error::other)?);
        }
        write_atomic(&path, &bytes)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.offsets = offsets;
        self.len = bytes.len() as u64;
        Ok(())
    }

    /// Cuts the file and the memory at the first live entry at or above `index`.
    fn truncate_from(&mut self, index: u64) -> std::io::Result<()> {
        let Some((_, &offset)) = self.offsets.range(index..).next() else {
            return Ok(());
        };
        self.file.set_len(offset)?;
        self.file.sync_all()?;
        self.len = offset;
        self.entries.split_off(&index);
        self.offsets.split_off(&index);
        Ok(())
    }

    #[allow(clippy::result_large_err)] // openraft's error type, which the trait returns anyway
    fn append(&mut self, entries: Vec<Entry>) -> Result<(), StorageError> {
        let Some(first) = entries.first().map(|e| e.log_id) else {
            return Ok(());
        };
        // openraft truncates before it overwrites, but an entry that replaces an existing index
        // must never leave the old one in the file, whoever calls.
        if self.entries.contains_key(&first.index) {
            self.truncate_from(first.index)
                .map_err(|e| StorageIOError::write_log_entry(first, AnyError::new(&e)))?;
        }
        let mut prev = self.entries.keys().next_back().copied();
        let mut bytes = Vec::new();
        let mut new_offsets = Vec::with_capacity(entries.len());
        for entry in &entries {
            let index = entry.log_id.index;
            if prev.is_some_and(|p| index <= p) {
                return Err(StorageIOError::write_log_entry(
                    entry.log_id,
                    AnyError::error(format!("entry {index} appended after entry {prev:?}")),
                )
                .into());
            }
            prev = Some(index);
            new_offsets.push((index, self.len + bytes.len() as u64));
            let line = encode_line(entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, AnyError::new(&e)))?;
            bytes.extend_from_slice(&line);
        }
        let write = |file: &mut File| {
            file.write_all(&bytes)?;
            file.sync_data()
        };
        if let Err(e) = write(&mut self.file) {
            // Leave no partial line behind for a later append to follow.
            let _ = self.file.set_len(self.len);
            return Err(StorageIOError::write_logs(AnyError::new(&e)).into());
        }
        self.len += bytes.len() as u64;
        self.offsets.extend(new_offsets);
        for entry in entries {
            self.entries.insert(entry.log_id.index, entry);
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last_purged_log_id = inner.state.last_purged;
        let last_log_id = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let old = inner.state.vote.replace(*vote);
        if let Err(e) = inner.save_state() {
            inner.state.vote = old;
            return Err(StorageIOError::write_vote(AnyError::new(&e)).into());
        }
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.lock().state.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if inner.state.committed == committed {
            return Ok(());
        }
        let old = std::mem::replace(&mut inner.state.committed, committed);
        if let Err(e) = inner.save_state() {
            inner.state.committed = old;
            return Err(StorageIOError::write(AnyError::new(&e)).into());
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.lock().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let result = self.append_durably(entries.into_iter().collect());
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.lock()
            .truncate_from(log_id.index)
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if inner
            .state
            .last_purged
            .is_some_and(|p| p.index >= log_id.index)
        {
            return Ok(());
        }
        let old = inner.state.last_purged.replace(log_id);
        if let Err(e) = inner.save_state() {
            inner.state.last_purged = old;
            return Err(StorageIOError::write_logs(AnyError::new(&e)).into());
        }
        let keep = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = keep;
        let keep = inner.offsets.split_off(&(log_id.index + 1));
        inner.offsets = keep;
        inner
            .rewrite()
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        Ok(())
    }
}
