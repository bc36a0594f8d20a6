//! The metadata state machine: committed entries in, [`MetadataImage`]s out.
//!
//! Applying is deterministic (records in log order, through [`MetadataImage::apply`]), so every
//! controller and broker that applies the same log builds the same image. The image lives in
//! memory only; what is durable is the snapshot, written when openraft's snapshot policy asks
//! for one, after which openraft re-applies the committed log beyond it on restart.
//!
//! After each applied batch the new image is published on a watch channel and then the applied
//! index on a second one, in that order: whoever sees index `n` and then reads the image sees
//! every entry up to `n` in it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::codec::{encode_line, read_file, write_atomic, ReadError};
use super::{Entry, NodeId, QuorumStoreError, StorageError, TypeConfig};
use crate::image::MetadataImage;
use crate::record::MetadataRecord;

const SNAPSHOT_FILE: &str = "raft-snapshot.json";

type Meta = SnapshotMeta<NodeId, BasicNode>;

/// The snapshot file: the metadata plus the records that rebuild the image.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: Meta,
    records: Vec<MetadataRecord>,
}

struct State {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, BasicNode>,
    /// The current snapshot: its metadata and its data as sent to followers (the records' JSON).
    snapshot: Option<(Meta, Vec<u8>)>,
}

struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    applied_tx: watch::Sender<Option<u64>>,
    snapshot_seq: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, state: &State) {
        self.image_tx.send_replace(state.image.clone());
        self.applied_tx
            .send_replace(state.last_applied.map(|l| l.index));
    }

    fn persist(&self, meta: &Meta, records: Vec<MetadataRecord>) -> std::io::Result<Vec<u8>> {
        let data = serde_json::to_vec(&records).map_err(std::io::Error::other)?;
        let file = SnapshotFile {
            meta: meta.clone(),
            records,
        };
        let bytes = encode_line(&file).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join(SNAPSHOT_FILE), &bytes)?;
        Ok(data)
    }
}

/// The state machine of the metadata quorum. Cheap to clone; clones share the same image.
#[derive(Clone)]
pub struct MetadataStateMachine {
    shared: Arc<Shared>,
}

impl MetadataStateMachine {
    /// Opens the state machine kept in `dir`, starting from its last snapshot (if any).
    pub fn open(dir: &Path) -> Result<MetadataStateMachine, QuorumStoreError> {
        std::fs::create_dir_all(dir).map_err(|source| QuorumStoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(SNAPSHOT_FILE);
        let file: Option<SnapshotFile> = match read_file(&path) {
            Ok(f) => f,
            Err(ReadError::Io(source)) => return Err(QuorumStoreError::Io { path, source }),
            Err(ReadError::Corrupt(reason)) => {
                return Err(QuorumStoreError::Corrupt {
                    path,
                    line: 1,
                    reason,
                })
            }
        };
        let mut state = State {
            image: Arc::new(MetadataImage::default()),
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshot: None,
        };
        if let Some(file) = file {
            let mut image = MetadataImage::default();
            for r in &file.records {
                image.apply(r);
            }
            let data =
                serde_json::to_vec(&file.records).map_err(|e| QuorumStoreError::Corrupt {
                    path: path.clone(),
                    line: 1,
                    reason: e.to_string(),
                })?;
            state.image = Arc::new(image);
            state.last_applied = file.meta.last_log_id;
            state.last_membership = file.meta.last_membership.clone();
            state.snapshot = Some((file.meta, data));
        }
        let (image_tx, _) = watch::channel(state.image.clone());
        let (applied_tx, _) = watch::channel(state.last_applied.map(|l| l.index));
        Ok(MetadataStateMachine {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                state: Mutex::new(state),
                image_tx,
                applied_tx,
                snapshot_seq: AtomicU64::new(0),
            }),
        })
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.shared.image_tx.borrow().clone()
    }

    /// Every image published from now on (the current one is marked seen).
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.shared.image_tx.subscribe()
    }

    /// The index of the last log entry applied to the published image.
    pub fn applied_index(&self) -> watch::Receiver<Option<u64>> {
        self.shared.applied_tx.subscribe()
    }
}

/// Builds snapshots of the state machine's image for openraft.
pub struct MetadataSnapshotBuilder {
    shared: Arc<Shared>,
}

impl RaftSnapshotBuilder<TypeConfig> for MetadataSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let mut state = self.shared.lock();
        let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match state.last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("0-0-{seq}"),
        };
        let meta = Meta {
            last_log_id: state.last_applied,
            last_membership: state.last_membership.clone(),
            snapshot_id,
        };
        let data = self
            .shared
            .persist(&meta, state.image.to_records())
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
            })?;
        state.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MetadataStateMachine {
    type SnapshotBuilder = MetadataSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError> {
        let state = self.shared.lock();
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.shared.lock();
        let mut replies = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    let image = Arc::make_mut(&mut state.image);
                    for record in &batch.0 {
                        image.apply(record);
                    }
                }
                EntryPayload::Membership(m) => {
                    state.last_membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            replies.push(());
        }
        if !replies.is_empty() {
            self.shared.publish(&state);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        MetadataSnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let records: Vec<MetadataRecord> = serde_json::from_slice(&data).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        let mut image = MetadataImage::default();
        for r in &records {
            image.apply(r);
        }
        let mut state = self.shared.lock();
        self.shared.persist(meta, records).map_err(|e| {
            StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        state.image = Arc::new(image);
        state.last_applied = meta.last_log_id;
        state.last_membership = meta.last_membership.clone();
        state.snapshot = Some((meta.clone(), data));
        self.shared.publish(&state);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let state = self.shared.lock();
        Ok(state.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}
