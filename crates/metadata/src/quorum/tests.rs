use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{log_id, StoreBuilder, Suite};
use openraft::{BasicNode, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, Vote};
use tempfile::TempDir;
use uuid::Uuid;

use super::*;

struct DiskBuilder;

impl StoreBuilder<TypeConfig, LogStore, MetadataStateMachine, TempDir> for DiskBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, MetadataStateMachine), StorageError> {
        let dir = tempfile::tempdir()
            .map_err(|e| openraft::StorageIOError::write(openraft::AnyError::new(&e)))?;
        let (log, sm) = open_stores(dir.path())
            .map_err(|e| openraft::StorageIOError::write(openraft::AnyError::new(&e)))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_conformance_suite() {
    Suite::test_all(DiskBuilder).unwrap();
}

fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        topic_id: Uuid::new_v4(),
    }
}

fn normal(term: u64, index: u64, records: Vec<MetadataRecord>) -> Entry {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(RecordBatch(records)),
    }
}

fn membership(term: u64, index: u64) -> Entry {
    let nodes: BTreeMap<NodeId, BasicNode> = (1..=3)
        .map(|i| (i, BasicNode::new(format!("127.0.0.1:{}", 9092 + i))))
        .collect();
    let voters = nodes.keys().copied().collect();
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Membership(Membership::new(vec![voters], nodes)),
    }
}

/// Appends as `RaftLogStorage::append` does (openraft alone can build its flush callback; the
/// conformance suite covers that path).
async fn append(log: &mut LogStore, entries: Vec<Entry>) {
    log.append_durably(entries).unwrap();
}

async fn all_entries(log: &mut LogStore) -> Vec<Entry> {
    log.try_get_log_entries(..).await.unwrap()
}

#[tokio::test]
async fn reopen_after_crash_keeps_vote_log_committed_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, mut sm) = open_stores(dir.path()).unwrap();
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        append(
            &mut log,
            vec![
                membership(1, 0),
                normal(1, 1, vec![topic("a")]),
                normal(2, 2, vec![topic("b")]),
            ],
        )
        .await;
        log.save_committed(Some(log_id(2, 1, 2))).await.unwrap();
        let entries = all_entries(&mut log).await;
        sm.apply(entries[..2].to_vec()).await.unwrap();
        let snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 1, 1)));
        log.purge(log_id(1, 1, 1)).await.unwrap();
        sm.apply(entries[2..].to_vec()).await.unwrap();
        // Dropped without any shutdown: all that is left is what reached the disk.
    }
    let (mut log, mut sm) = open_stores(dir.path()).unwrap();
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 1))
    );
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 1, 2)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 1)));
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 2)));
    let entries = all_entries(&mut log).await;
    assert_eq!(entries.len(), 1);
    // The state machine restarts from the snapshot; openraft re-applies entry 2 from the log.
    let (applied, mem) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 1)));
    assert_eq!(mem.log_id(), &Some(log_id(1, 1, 0)));
    assert!(sm.image().topic("a").is_some());
    assert!(sm.image().topic("b").is_none());
    assert!(sm.get_current_snapshot().await.unwrap().is_some());
    let mut images = sm.subscribe();
    sm.apply(entries).await.unwrap();
    assert!(images.has_changed().unwrap());
    assert!(images.borrow_and_update().topic("b").is_some());
    assert_eq!(*sm.applied_index().borrow(), Some(2));
}

#[tokio::test]
async fn a_torn_last_line_is_dropped_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open_stores(dir.path()).unwrap();
        append(
            &mut log,
            vec![membership(1, 0), normal(1, 1, vec![topic("a")])],
        )
        .await;
    }
    let path = dir.path().join("raft-log.jsonl");
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"0badc0de {\"log_id\":{\"leader_").unwrap();
    drop(f);
    {
        let (mut log, _) = open_stores(dir.path()).unwrap();
        assert_eq!(all_entries(&mut log).await.len(), 2);
        append(&mut log, vec![normal(1, 2, vec![topic("b")])]).await;
    }
    let (mut log, _) = open_stores(dir.path()).unwrap();
    let entries = all_entries(&mut log).await;
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2].log_id, log_id(1, 1, 2));
}

#[tokio::test]
async fn a_corrupt_middle_line_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open_stores(dir.path()).unwrap();
        append(
            &mut log,
            vec![
                membership(1, 0),
                normal(1, 1, vec![topic("a")]),
                normal(1, 2, vec![]),
            ],
        )
        .await;
    }
    let path = dir.path().join("raft-log.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("\"a\"", "\"x\"", 1);
    std::fs::write(&path, text).unwrap();
    assert!(matches!(
        LogStore::open(dir.path()),
        Err(QuorumStoreError::Corrupt { line: 2, .. })
    ));
}

#[tokio::test]
async fn truncate_removes_the_conflicting_suffix_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open_stores(dir.path()).unwrap();
        append(
            &mut log,
            vec![
                membership(1, 0),
                normal(1, 1, vec![topic("a")]),
                normal(1, 2, vec![topic("b")]),
            ],
        )
        .await;
        log.truncate(log_id(1, 1, 1)).await.unwrap();
        append(&mut log, vec![normal(2, 1, vec![topic("c")])]).await;
    }
    let (mut log, _) = open_stores(dir.path()).unwrap();
    let entries = all_entries(&mut log).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].log_id, log_id(2, 1, 1));
    assert!(
        matches!(&entries[1].payload, EntryPayload::Normal(b) if b.0 == vec![MetadataRecord::Topic {
            name: "c".into(),
            topic_id: match &b.0[0] { MetadataRecord::Topic { topic_id, .. } => *topic_id, _ => Uuid::nil() },
        }])
    );
}

#[tokio::test]
async fn an_interrupted_purge_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let (mut log, _) = open_stores(dir.path()).unwrap();
        append(
            &mut log,
            vec![membership(1, 0), normal(1, 1, vec![]), normal(1, 2, vec![])],
        )
        .await;
        before = std::fs::read(dir.path().join("raft-log.jsonl")).unwrap();
        // A snapshot installed beyond the log purges everything.
        log.purge(log_id(1, 1, 10)).await.unwrap();
    }
    // Crash after the state file recorded the purge but before the log was rewritten.
    std::fs::write(dir.path().join("raft-log.jsonl"), before).unwrap();
    {
        let (mut log, _) = open_stores(dir.path()).unwrap();
        assert!(all_entries(&mut log).await.is_empty());
        append(&mut log, vec![normal(1, 11, vec![])]).await;
    }
    let (mut log, _) = open_stores(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 10)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 11)));
}
