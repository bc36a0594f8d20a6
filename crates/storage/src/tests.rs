//! Tests of the on-disk log. The conformance suite runs here for both implementations.

use std::path::{Path, PathBuf};

use brook_protocol::batch::{build_batch, build_batch_with, Batches, SimpleRecord};
use brook_protocol::kafka::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::conformance::{decode_all, DecodedRecord};
use crate::{conformance, AppendOutcome, Log, LogConfig, MemoryLog, StorageError, STATE_FILE};

#[test]
fn memory_log_passes_the_conformance_suite() {
    conformance::run_all(|| MemoryLog::new(LogConfig::default()));
}

#[test]
fn disk_log_passes_the_conformance_suite() {
    let dirs = std::cell::RefCell::new(Vec::new());
    conformance::run_all(|| {
        let d = tempfile::tempdir().unwrap();
        let log = Log::open(&d.path().join("t-0"), LogConfig::default(), 0).unwrap();
        dirs.borrow_mut().push(d);
        log
    });
}

/// Disk log conformance again with tiny segments and a dense index, so that every check also
/// crosses segment and index boundaries.
#[test]
fn disk_log_with_tiny_segments_passes_the_conformance_suite() {
    let dirs = std::cell::RefCell::new(Vec::new());
    conformance::run_all(|| {
        let d = tempfile::tempdir().unwrap();
        let log = Log::open(&d.path().join("t-0"), small(150, 10), 0).unwrap();
        dirs.borrow_mut().push(d);
        log
    });
}

fn small(segment_bytes: u64, index_interval: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: index_interval,
        ..LogConfig::default()
    }
}

fn value(i: i64) -> Vec<u8> {
    format!("value-{i:06}").into_bytes()
}

/// Appends one single-record batch with value `value(i)` where `i` is its expected offset.
fn append_one(log: &mut Log, ts: i64) -> i64 {
    let v = value(log.log_end_offset());
    let mut b = build_batch(
        0,
        ts,
        &[SimpleRecord {
            key: None,
            value: Some(&v),
            headers: &[],
        }],
    );
    match log.append_as_leader(&mut b, 0, ts).unwrap() {
        AppendOutcome::Appended(i) => i.first_offset,
        d => panic!("{d:?}"),
    }
}

fn keyed(key: &str, v: Option<&str>, ts: i64) -> Vec<u8> {
    build_batch(
        0,
        ts,
        &[SimpleRecord {
            key: Some(key.as_bytes()),
            value: v.map(str::as_bytes),
            headers: &[],
        }],
    )
}

/// All records of the log, read batch by batch from the log start offset.
fn read_everything(log: &Log) -> Vec<DecodedRecord> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let bytes = log.read(next, 1 << 20, i64::MAX, true).unwrap();
        assert!(!bytes.is_empty(), "read at {next} returned nothing");
        for (h, _) in Batches::new(&bytes, false).map(|b| b.unwrap()) {
            next = next.max(h.next_offset());
        }
        out.extend(
            decode_all(&bytes)
                .into_iter()
                .filter(|r| r.0 >= log.log_start_offset()),
        );
    }
    out.dedup_by_key(|r| r.0);
    out
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    v
}

fn tmp_log(config: LogConfig) -> (tempfile::TempDir, PathBuf, Log) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("topic-0");
    let log = Log::open(&dir, config, 0).unwrap();
    (d, dir, log)
}

#[test]
fn rolls_at_segment_bytes_with_kafka_file_names_and_reads_across_segments() {
    let (_d, dir, mut log) = tmp_log(small(500, 100));
    for _ in 0..40 {
        append_one(&mut log, 1_000);
    }
    assert!(log.segment_count() > 3);
    let logs = files_with_ext(&dir, ".log");
    assert_eq!(logs[0], "00000000000000000000.log");
    for (name, base) in logs.iter().zip(log.segment_base_offsets()) {
        assert_eq!(name, &format!("{base:020}.log"));
        assert_eq!(name.len(), 24);
    }
    assert_eq!(files_with_ext(&dir, ".index").len(), logs.len());
    assert_eq!(files_with_ext(&dir, ".timeindex").len(), logs.len());
    for seg in log.segments.iter().take(log.segments.len() - 1) {
        assert!(seg.size <= 500, "segment of {} bytes", seg.size);
    }
    let all = read_everything(&log);
    assert_eq!(all.len(), 40);
    for (i, r) in all.iter().enumerate() {
        assert_eq!((r.0, r.2.clone()), (i as i64, Some(value(i as i64))));
    }
}

#[test]
fn index_lookups_find_the_right_batch_among_many() {
    let (_d, dir, mut log) = tmp_log(small(1 << 20, 256));
    for _ in 0..2_000 {
        append_one(&mut log, 1_000);
    }
    let idx = std::fs::metadata(dir.join("00000000000000000000.index"))
        .unwrap()
        .len();
    assert!(idx > 8 * 100, "sparse index has entries: {idx} bytes");
    assert_eq!(idx % 8, 0);
    for o in [0, 1, 7, 255, 256, 999, 1_500, 1_998, 1_999] {
        let bytes = log.read(o, 1, i64::MAX, true).unwrap();
        let recs = decode_all(&bytes);
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].0, recs[0].2.clone()), (o, Some(value(o))));
    }
}

#[test]
fn reopen_after_clean_close_finds_everything() {
    let (_d, dir, mut log) = tmp_log(small(400, 64));
    for i in 0..30 {
        append_one(&mut log, 1_000 + i);
    }
    let before = read_everything(&log);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    let state = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
    assert!(state.contains("\"clean_shutdown\":true"), "{state}");
    let mut log = Log::open(&dir, small(400, 64), 0).unwrap();
    let state = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
    assert!(
        state.contains("\"clean_shutdown\":false"),
        "marker removed at open: {state}"
    );
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(read_everything(&log), before);
    assert_eq!(log.offset_for_timestamp(1_010).unwrap().unwrap().offset, 10);
    assert_eq!(append_one(&mut log, 2_000), 30);
}

fn active_log_file(log: &Log) -> PathBuf {
    log.segments.last().unwrap().log_path().to_path_buf()
}

fn append_bytes(path: &Path, data: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(data).unwrap();
}

#[test]
fn torn_tail_is_truncated_on_unclean_open() {
    let cfg = small(1 << 20, 64);
    let (_d, dir, mut log) = tmp_log(cfg.clone());
    for _ in 0..20 {
        append_one(&mut log, 1_000);
    }
    let good_size = log.size_bytes();
    let active = active_log_file(&log);
    drop(log); // no close: unclean
               // Half a batch at the end, as a crash mid-write leaves it.
    let partial = build_batch(
        20,
        1_000,
        &[SimpleRecord {
            key: None,
            value: Some(b"lost"),
            headers: &[],
        }],
    );
    append_bytes(&active, &partial[..partial.len() / 2]);
    let mut log = Log::open(&dir, cfg.clone(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(log.size_bytes(), good_size);
    assert_eq!(std::fs::metadata(&active).unwrap().len(), good_size);
    assert_eq!(read_everything(&log).len(), 20);
    assert_eq!(append_one(&mut log, 1_000), 20);
    drop(log);

    // Garbage, then a bit flip inside the last whole batch.
    append_bytes(&active, &[0xAB; 100]);
    let log = Log::open(&dir, cfg.clone(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 21);
    let size = log.size_bytes();
    drop(log);
    let mut data = std::fs::read(&active).unwrap();
    let n = data.len();
    data[n - 3] ^= 0x40;
    std::fs::write(&active, &data).unwrap();
    let mut log = Log::open(&dir, cfg.clone(), 0).unwrap();
    assert_eq!(
        log.log_end_offset(),
        20,
        "the corrupt last batch is dropped"
    );
    assert!(log.size_bytes() < size);
    // Index rebuilt: lookups still land on the right batches.
    for o in [0, 5, 19] {
        assert_eq!(decode_all(&log.read(o, 1, i64::MAX, true).unwrap())[0].0, o);
    }
    assert_eq!(append_one(&mut log, 1_000), 20);
    assert_eq!(read_everything(&log).len(), 21);
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let cfg = small(600, 50);
    let (_d, dir, mut log) = tmp_log(cfg.clone());
    for i in 0..40 {
        append_one(&mut log, 1_000 + i);
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3);
    let index0 = crate::segment::segment_file(&dir, bases[0], "index");
    let time1 = crate::segment::segment_file(&dir, bases[1], "timeindex");
    let index2 = crate::segment::segment_file(&dir, bases[2], "index");
    let good0 = std::fs::read(&index0).unwrap();
    let good1 = std::fs::read(&time1).unwrap();
    let good2 = std::fs::read(&index2).unwrap();
    assert!(!good0.is_empty() && !good1.is_empty() && !good2.is_empty());
    log.close().unwrap();
    std::fs::remove_file(&index0).unwrap();
    std::fs::write(&time1, [1u8; 7]).unwrap(); // not a whole entry
                                               // Whole entries, but pointing past the end of the log.
    let mut bad = Vec::new();
    bad.extend_from_slice(&1u32.to_be_bytes());
    bad.extend_from_slice(&u32::MAX.to_be_bytes());
    std::fs::write(&index2, bad).unwrap();
    let log = Log::open(&dir, cfg, 0).unwrap();
    assert_eq!(std::fs::read(&index0).unwrap(), good0);
    assert_eq!(std::fs::read(&time1).unwrap(), good1);
    assert_eq!(std::fs::read(&index2).unwrap(), good2);
    assert_eq!(read_everything(&log).len(), 40);
    assert_eq!(log.offset_for_timestamp(1_020).unwrap().unwrap().offset, 20);
}

#[test]
fn retention_by_time_deletes_old_segments_and_moves_log_start() {
    let cfg = LogConfig {
        retention_ms: 10_000,
        ..small(300, 64)
    };
    let (_d, dir, mut log) = tmp_log(cfg);
    for i in 0..30 {
        append_one(&mut log, 1_000 + i * 1_000); // timestamps 1s..30s
    }
    let before = log.segment_count();
    let report = log.run_maintenance(25_000).unwrap();
    assert!(report.segments_deleted > 0);
    assert_eq!(log.segment_count(), before - report.segments_deleted);
    // Every remaining non-active segment has a record within retention.
    let start = log.log_start_offset();
    assert_eq!(start, log.segment_base_offsets()[0]);
    assert_eq!(report.log_start_offset, start);
    assert!(start > 0 && start <= 15, "start {start}");
    assert!(matches!(
        log.read(start - 1, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_everything(&log).first().map(|r| r.0), Some(start));
    assert_eq!(files_with_ext(&dir, ".log").len(), log.segment_count());
    // Far in the future everything expires; the active segment is rolled so it can go too.
    log.run_maintenance(1_000_000).unwrap();
    assert_eq!(log.log_start_offset(), 30);
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(append_one(&mut log, 1_000_000), 30);
}

#[test]
fn retention_by_size_keeps_the_newest_bytes() {
    let cfg = LogConfig {
        retention_bytes: 700,
        retention_ms: -1,
        ..small(300, 64)
    };
    let (_d, _dir, mut log) = tmp_log(cfg);
    for _ in 0..40 {
        append_one(&mut log, 1_000);
    }
    let report = log.run_maintenance(2_000).unwrap();
    assert!(report.segments_deleted > 0);
    let size = log.size_bytes();
    assert!(size >= 700, "size {size}");
    let oldest = log.segments[0].size;
    assert!(
        size - oldest < 700,
        "one more deletion would go below the limit"
    );
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert_eq!(log.log_end_offset(), 40);
}

#[test]
fn delete_records_is_durable_and_drops_whole_segments() {
    let cfg = small(300, 64);
    let (_d, dir, mut log) = tmp_log(cfg.clone());
    for _ in 0..30 {
        append_one(&mut log, 1_000);
    }
    let bases = log.segment_base_offsets();
    let cut = bases[2] + 1;
    assert_eq!(log.delete_records_before(cut).unwrap(), cut);
    assert_eq!(log.segment_base_offsets()[0], bases[2]);
    assert!(!crate::segment::segment_file(&dir, bases[0], "log").exists());
    drop(log); // crash
    let log = Log::open(&dir, cfg, 0).unwrap();
    assert_eq!(log.log_start_offset(), cut);
    assert!(matches!(
        log.read(cut - 1, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_everything(&log).first().map(|r| r.0), Some(cut));
}

fn gzip_batch(timestamps: &[i64]) -> Vec<u8> {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1 + i as i32,
            timestamp: ts,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'x'; 200])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::Gzip,
        },
    )
    .unwrap();
    buf.to_vec()
}

#[test]
fn offset_for_timestamp_looks_inside_compressed_batches() {
    let (_d, dir, mut log) = tmp_log(small(1 << 20, 64));
    append_one(&mut log, 50);
    let mut gz = gzip_batch(&[100, 200, 300, 150]);
    assert_eq!(
        brook_protocol::batch::validate(&gz).unwrap().compression(),
        brook_protocol::batch::Compression::Gzip
    );
    log.append_as_leader(&mut gz, 3, 1).unwrap();
    append_one(&mut log, 400);
    let at = |log: &Log, t| {
        log.offset_for_timestamp(t)
            .unwrap()
            .map(|x| (x.offset, x.timestamp, x.leader_epoch))
    };
    assert_eq!(at(&log, 10), Some((0, 50, 0)));
    assert_eq!(at(&log, 100), Some((1, 100, 3)));
    assert_eq!(at(&log, 101), Some((2, 200, 3)));
    assert_eq!(at(&log, 250), Some((3, 300, 3)));
    assert_eq!(at(&log, 301), Some((5, 400, 0)));
    assert_eq!(at(&log, 401), None);
    // MAX_TIMESTAMP: the record, not just the batch.
    let last = log.last_timestamp_offset().unwrap();
    assert_eq!((last.offset, last.timestamp), (5, 400));
    log.close().unwrap();
    let mut log = Log::open(&dir, small(1 << 20, 64), 0).unwrap();
    assert_eq!(at(&log, 250), Some((3, 300, 3)));
    append_one(&mut log, 10);
    let mut gz = gzip_batch(&[900, 1_000, 950]);
    log.append_as_leader(&mut gz, 3, 1).unwrap();
    let last = log.last_timestamp_offset().unwrap();
    assert_eq!(
        (last.offset, last.timestamp, last.leader_epoch),
        (8, 1_000, 3)
    );
}

#[test]
fn offset_for_timestamp_uses_the_time_index_across_segments() {
    let (_d, _dir, mut log) = tmp_log(small(400, 30));
    for i in 0..100 {
        append_one(&mut log, 10 * i);
    }
    assert!(log.segment_count() > 5);
    for (t, o) in [(0, 0), (5, 1), (10, 1), (555, 56), (990, 99)] {
        assert_eq!(
            log.offset_for_timestamp(t).unwrap().unwrap().offset,
            o,
            "t={t}"
        );
    }
    assert_eq!(log.offset_for_timestamp(991).unwrap(), None);
}

#[test]
fn log_append_time_topics_stamp_batches() {
    let cfg = LogConfig {
        message_timestamp_log_append_time: true,
        ..LogConfig::default()
    };
    let (_d, _dir, mut log) = tmp_log(cfg);
    let mut b = keyed("k", Some("v"), 5);
    let info = *log.append_as_leader(&mut b, 0, 77_000).unwrap().info();
    assert_eq!((info.max_timestamp, info.log_append_time), (77_000, 77_000));
    let bytes = log.read(0, 1000, i64::MAX, true).unwrap();
    let h = brook_protocol::batch::validate(&bytes).unwrap();
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 77_000);
    assert_eq!(
        log.offset_for_timestamp(70_000).unwrap().unwrap().timestamp,
        77_000
    );
    let plain = LogConfig::default();
    let (_d2, _dir2, mut log2) = tmp_log(plain);
    let info = *log2
        .append_as_leader(&mut keyed("k", Some("v"), 5), 0, 77_000)
        .unwrap()
        .info();
    assert_eq!((info.max_timestamp, info.log_append_time), (-1, -1));
}

fn idem(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let recs = vec![
        SimpleRecord {
            key: Some(b"k"),
            value: Some(b"v"),
            headers: &[]
        };
        n
    ];
    build_batch_with(0, 1_000, pid, epoch, seq, 0, &recs)
}

#[test]
fn producer_state_survives_clean_and_unclean_restarts() {
    let cfg = small(300, 64);
    let (_d, dir, mut log) = tmp_log(cfg.clone());
    let mut seq = 0;
    let mut last_info = None;
    for _ in 0..12 {
        let info = *log
            .append_as_leader(&mut idem(9, 2, seq, 2), 0, 1)
            .unwrap()
            .info();
        last_info = Some(info);
        seq += 2;
    }
    assert!(log.segment_count() > 2, "rolled, so snapshots were written");
    let last = last_info.unwrap();
    let check = |log: &mut Log| {
        let end = log.log_end_offset();
        match log
            .append_as_leader(&mut idem(9, 2, seq - 2, 2), 0, 1)
            .unwrap()
        {
            AppendOutcome::Duplicate(i) => {
                assert_eq!(
                    (i.first_offset, i.last_offset),
                    (last.first_offset, last.last_offset)
                )
            }
            a => panic!("expected duplicate, got {a:?}"),
        }
        assert_eq!(log.log_end_offset(), end);
        assert!(matches!(
            log.append_as_leader(&mut idem(9, 2, seq + 1, 1), 0, 1),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            log.append_as_leader(&mut idem(9, 1, seq, 1), 0, 1),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
    };
    check(&mut log);
    log.close().unwrap();
    let mut log = Log::open(&dir, cfg.clone(), 0).unwrap();
    check(&mut log);
    drop(log); // unclean
    let mut log = Log::open(&dir, cfg.clone(), 0).unwrap();
    check(&mut log);
    // Without any snapshot the state is rebuilt from batch headers.
    drop(log);
    for f in files_with_ext(&dir, ".snapshot") {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let mut log = Log::open(&dir, cfg, 0).unwrap();
    check(&mut log);
    assert!(matches!(
        log.append_as_leader(&mut idem(9, 2, seq, 1), 0, 1).unwrap(),
        AppendOutcome::Appended(_)
    ));
}

#[test]
fn compaction_keeps_the_newest_value_per_key_and_drops_old_tombstones() {
    let cfg = LogConfig {
        cleanup_policy_compact: true,
        cleanup_policy_delete: false,
        delete_retention_ms: 1_000,
        ..small(250, 64)
    };
    let (_d, dir, mut log) = tmp_log(cfg.clone());
    let now = 100_000;
    let mut expected: std::collections::BTreeMap<String, (i64, Option<String>)> =
        Default::default();
    let mut put = |log: &mut Log, k: &str, v: Option<&str>, ts: i64| {
        let info = *log
            .append_as_leader(&mut keyed(k, v, ts), 0, ts)
            .unwrap()
            .info();
        expected.insert(k.to_string(), (info.first_offset, v.map(str::to_string)));
    };
    for round in 0..6 {
        for k in ["a", "b", "c", "d"] {
            put(&mut log, k, Some(&format!("{k}{round}")), 1_000 + round);
        }
    }
    put(&mut log, "b", None, 2_000); // old tombstone: expires
    put(&mut log, "c", None, now - 10); // recent tombstone: kept
    put(&mut log, "e", Some("e0"), now);
    for i in 0..6 {
        append_one(&mut log, now + i); // keyless records stay
    }
    let leo = log.log_end_offset();
    let before = read_everything(&log).len();
    let report = log.run_maintenance(now).unwrap();
    assert!(report.segments_compacted > 0);
    assert!(report.records_compacted > 0);
    assert_eq!(log.log_end_offset(), leo);
    let after = read_everything(&log);
    assert_eq!(before - after.len(), report.records_compacted as usize);
    let check = |records: &[DecodedRecord]| {
        let mut latest: std::collections::BTreeMap<String, (i64, Option<String>)> =
            Default::default();
        let mut seen = std::collections::HashSet::new();
        for (o, k, v) in records {
            if let Some(k) = k {
                let k = String::from_utf8(k.clone()).unwrap();
                assert!(seen.insert(k.clone()), "key {k} appears twice");
                latest.insert(k, (*o, v.clone().map(|v| String::from_utf8(v).unwrap())));
            }
        }
        let mut want = expected.clone();
        want.remove("b");
        assert_eq!(
            latest, want,
            "newest per key at its original offset, old tombstone gone"
        );
        assert_eq!(records.iter().filter(|r| r.1.is_none()).count(), 6);
    };
    check(&after);
    // Offsets stay strictly increasing and batches valid after a restart.
    log.close().unwrap();
    let log = Log::open(&dir, cfg, 0).unwrap();
    let reread = read_everything(&log);
    assert_eq!(reread, after);
    check(&reread);
    assert!(files_with_ext(&dir, ".cleaned").is_empty());
}

#[test]
fn compaction_rewrites_compressed_batches_keeping_offsets() {
    let cfg = LogConfig {
        cleanup_policy_compact: true,
        cleanup_policy_delete: false,
        ..small(300, 64)
    };
    let (_d, _dir, mut log) = tmp_log(cfg);
    let mut gz = gzip_batch(&[1, 2, 3, 4]); // keys k0..k3, 200-byte values
    log.append_as_leader(&mut gz, 0, 1).unwrap();
    // Newer values for k1 and k3.
    log.append_as_leader(&mut keyed("k1", Some("new"), 5), 0, 5)
        .unwrap();
    log.append_as_leader(&mut keyed("k3", Some("new"), 5), 0, 5)
        .unwrap();
    log.append_as_leader(&mut keyed("z", Some("z"), 5), 0, 5)
        .unwrap();
    assert!(log.segment_count() >= 2);
    let report = log.run_maintenance(10).unwrap();
    assert_eq!(report.records_compacted, 2);
    let first = log.read(0, 1 << 20, i64::MAX, false).unwrap();
    let (h, _) = Batches::new(&first, false).next().unwrap().unwrap();
    assert_eq!(h.compression(), brook_protocol::batch::Compression::Gzip);
    assert_eq!(
        crate::segment::check_stored(&first).unwrap().records_count,
        2
    );
    let offs: Vec<i64> = read_everything(&log).iter().map(|r| r.0).collect();
    assert_eq!(offs, vec![0, 2, 4, 5, 6]);
    // Nothing new to clean: the next run does nothing.
    assert_eq!(log.run_maintenance(11).unwrap().segments_compacted, 0);
}

#[test]
fn leader_epoch_cache_answers_offset_for_leader_epoch() {
    let (_d, dir, mut log) = tmp_log(small(1 << 20, 64));
    for epoch in [1, 1, 3, 3, 3, 5] {
        let mut b = keyed("k", Some("v"), 1);
        log.append_as_leader(&mut b, epoch, 1).unwrap();
    }
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 2)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 2)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 5)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 6)));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
    assert_eq!(log.end_offset_for_epoch(6), None);
    let text = std::fs::read_to_string(dir.join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n3\n1 0\n3 2\n5 5\n");
    drop(log); // unclean: the cache is checked against the recovered log
    let mut log = Log::open(&dir, small(1 << 20, 64), 0).unwrap();
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 5)));
    log.truncate_to(4).unwrap();
    assert_eq!(log.latest_epoch(), Some(3));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 4)));
    // A lost checkpoint is rebuilt from the batches' partition leader epochs.
    drop(log);
    std::fs::write(dir.join("leader-epoch-checkpoint"), "garbage").unwrap();
    let log = Log::open(&dir, small(1 << 20, 64), 0).unwrap();
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 2)));
    assert_eq!(log.latest_epoch(), Some(3));
}

#[test]
fn segment_ms_rolls_and_flush_by_count_advances_recovery_point() {
    let cfg = LogConfig {
        segment_ms: 1_000,
        flush_interval_messages: 3,
        ..LogConfig::default()
    };
    let (_d, dir, mut log) = tmp_log(cfg);
    append_one(&mut log, 0);
    assert!(!log.run_maintenance(500).unwrap().rolled);
    assert!(log.run_maintenance(1_000).unwrap().rolled);
    assert_eq!(log.segment_base_offsets(), vec![0, 1]);
    append_one(&mut log, 0);
    append_one(&mut log, 0);
    log.flush().unwrap();
    let state = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
    assert!(state.contains("\"recovery_point\":3"), "{state}");
}

#[test]
fn stray_temporary_files_are_removed_at_open() {
    let (_d, dir, mut log) = tmp_log(LogConfig::default());
    append_one(&mut log, 1);
    log.close().unwrap();
    for name in [
        "00000000000000000000.log.cleaned",
        "00000000000000000007.log.deleted",
        "x.swap",
    ] {
        std::fs::write(dir.join(name), b"junk").unwrap();
    }
    let log = Log::open(&dir, LogConfig::default(), 0).unwrap();
    assert!(files_with_ext(&dir, ".cleaned").is_empty());
    assert!(files_with_ext(&dir, ".deleted").is_empty());
    assert!(files_with_ext(&dir, ".swap").is_empty());
    assert_eq!(log.log_end_offset(), 1);
    log.delete().unwrap();
    assert!(!dir.exists());
}

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, ts: i64 },
    CloseReopen,
    CrashReopen,
    DeleteRecords(u8),
    Truncate(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..4, 0i64..10_000).prop_map(|(records, ts)| Op::Append { records, ts }),
        1 => Just(Op::CloseReopen),
        1 => Just(Op::CrashReopen),
        1 => any::<u8>().prop_map(Op::DeleteRecords),
        1 => any::<u8>().prop_map(Op::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let cfg = small(350, 40);
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("p-0");
        let mut log = Some(Log::open(&dir, cfg.clone(), 0).unwrap());
        let mut model: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut start = 0i64;
        let mut end = 0i64;
        for op in ops {
            let l = log.as_mut().unwrap();
            match op {
                Op::Append { records, ts } => {
                    let vals: Vec<Vec<u8>> = (0..records).map(|i| value(end + i as i64)).collect();
                    let recs: Vec<SimpleRecord<'_>> = vals.iter().map(|v| SimpleRecord { key: None, value: Some(v), headers: &[] }).collect();
                    let mut b = build_batch(0, ts, &recs);
                    let info = *l.append_as_leader(&mut b, 0, ts).unwrap().info();
                    prop_assert_eq!(info.first_offset, end);
                    for v in vals { model.push((end, v)); end += 1; }
                }
                Op::CloseReopen => {
                    log.take().unwrap().close().unwrap();
                    log = Some(Log::open(&dir, cfg.clone(), 0).unwrap());
                }
                Op::CrashReopen => {
                    drop(log.take());
                    log = Some(Log::open(&dir, cfg.clone(), 0).unwrap());
                }
                Op::DeleteRecords(f) => {
                    let target = start + (end - start) * f as i64 / 255;
                    let got = l.delete_records_before(target).unwrap();
                    start = start.max(target);
                    prop_assert_eq!(got, start);
                }
                Op::Truncate(f) => {
                    // Truncate only at batch boundaries, as a follower does.
                    let target = start + (end - start) * f as i64 / 255;
                    let bytes = if target < end { l.read(target, 1, i64::MAX, true).unwrap() } else { Bytes::new() };
                    let boundary = Batches::new(&bytes, false).next().map(|b| b.unwrap().0.base_offset).unwrap_or(end).max(start);
                    l.truncate_to(boundary).unwrap();
                    model.retain(|r| r.0 < boundary);
                    end = end.min(boundary);
                }
            }
            let l = log.as_ref().unwrap();
            prop_assert_eq!(l.log_start_offset(), start);
            prop_assert_eq!(l.log_end_offset(), end);
        }
        let l = log.as_ref().unwrap();
        let got: Vec<(i64, Vec<u8>)> = read_everything(l).into_iter().map(|r| (r.0, r.2.unwrap())).collect();
        let want: Vec<(i64, Vec<u8>)> = model.into_iter().filter(|r| r.0 >= start).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn logs_can_be_shared_across_threads() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Log>();
    assert_send::<MemoryLog>();
}

#[test]
fn corruption_in_an_unflushed_middle_segment_drops_everything_after_it() {
    let cfg = small(300, 64);
    let (_d, dir, mut log) = tmp_log(cfg.clone());
    for _ in 0..30 {
        append_one(&mut log, 1_000);
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);
    drop(log);
    // Pretend nothing was ever flushed, and damage the second segment's last batch.
    std::fs::write(
        dir.join(STATE_FILE),
        r#"{"version":1,"log_start_offset":0,"recovery_point":0,"clean_shutdown":false}"#,
    )
    .unwrap();
    let seg1 = crate::segment::segment_file(&dir, bases[1], "log");
    let mut data = std::fs::read(&seg1).unwrap();
    let n = data.len();
    data[n - 2] ^= 1;
    std::fs::write(&seg1, &data).unwrap();
    let mut log = Log::open(&dir, cfg, 0).unwrap();
    assert_eq!(log.segment_base_offsets(), bases[..2].to_vec());
    assert!(!crate::segment::segment_file(&dir, bases[2], "log").exists());
    assert!(log.log_end_offset() > bases[1] && log.log_end_offset() < bases[2]);
    let end = log.log_end_offset();
    assert_eq!(read_everything(&log).len() as i64, end);
    assert_eq!(append_one(&mut log, 1_000), end);
}

/// Disk blocks held by a file (including any reserved past its end).
fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

fn append_big(log: &mut Log, value_len: usize) {
    let v = vec![7u8; value_len];
    let mut b = build_batch(
        0,
        1_000,
        &[SimpleRecord {
            key: None,
            value: Some(&v),
            headers: &[],
        }],
    );
    log.append_as_leader(&mut b, 0, 1_000).unwrap();
}

#[test]
fn disk_reserved_ahead_of_a_busy_segment_is_invisible_and_given_back() {
    let (_d, dir, mut log) = tmp_log(small(24 << 20, 4096));
    for _ in 0..12 {
        append_big(&mut log, 512 << 10);
    }
    let active = active_log_file(&log);
    let len = std::fs::metadata(&active).unwrap().len();
    assert_eq!(
        len,
        log.segments.last().unwrap().size,
        "the reservation changed the file length"
    );
    let reserved = allocated_bytes(&active) > len + (1 << 20);
    if !reserved {
        // A filesystem without fallocate: the log works as before, nothing to give back.
        eprintln!("no disk reserved ahead on this filesystem; checking reads only");
    }
    let records = read_everything(&log);
    assert_eq!(records.len(), 12);

    // Rolling seals the segment: its reservation goes.
    while log.segments.len() == 1 {
        append_big(&mut log, 512 << 10);
    }
    let sealed = log.segments[0].log_path().to_path_buf();
    let sealed_len = std::fs::metadata(&sealed).unwrap().len();
    assert!(
        allocated_bytes(&sealed) < sealed_len + (1 << 20),
        "sealed segment kept its reservation"
    );

    // A crash leaves the active segment's reservation behind; the next open gives it back.
    for _ in 0..12 {
        append_big(&mut log, 512 << 10);
    }
    let active = active_log_file(&log);
    if reserved {
        assert!(allocated_bytes(&active) > std::fs::metadata(&active).unwrap().len() + (1 << 20));
    }
    let count = read_everything(&log).len();
    drop(log);
    let log = Log::open(&dir, small(24 << 20, 4096), 0).unwrap();
    let len = std::fs::metadata(&active).unwrap().len();
    assert!(
        allocated_bytes(&active) < len + (1 << 20),
        "reservation survived recovery"
    );
    assert_eq!(read_everything(&log).len(), count);

    // A clean close gives it back too.
    let mut log = log;
    for _ in 0..12 {
        append_big(&mut log, 512 << 10);
    }
    log.close().unwrap();
    let len = std::fs::metadata(&active).unwrap().len();
    assert!(
        allocated_bytes(&active) < len + (1 << 20),
        "reservation survived a clean close"
    );
}

#[test]
fn append_may_roll_says_when_the_next_append_rolls_by_size_or_age() {
    let (_d, _dir, mut log) = tmp_log(LogConfig {
        segment_ms: 60_000,
        ..small(200, 4096)
    });
    // An empty active segment never rolls.
    assert!(!log.append_may_roll(10_000, 1_000));
    append_one(&mut log, 1_000);
    let size = log.segments.last().unwrap().size as usize;
    assert!(!log.append_may_roll(200 - size, 1_000));
    assert!(log.append_may_roll(200 - size + 1, 1_000));
    // segment.ms counts from the segment's first append.
    assert!(log.append_may_roll(1, i64::MAX));
    let bases = log.segment_base_offsets();
    let mut b = build_batch(
        0,
        1_000,
        &[SimpleRecord {
            key: None,
            value: Some(&[0u8; 200]),
            headers: &[],
        }],
    );
    log.append_as_leader(&mut b, 0, 1_000).unwrap();
    assert_eq!(
        log.segment_base_offsets().len(),
        bases.len() + 1,
        "the predicted roll happened"
    );
}

/// Appends single-record batches until the log has `n` segments (the last one active).
fn append_until_segments(log: &mut Log, n: usize) {
    while log.segments.len() < n {
        append_one(log, 1_000);
    }
}

#[test]
fn a_roll_leaves_the_sealed_segment_to_a_flush_that_moves_the_recovery_point() {
    let (_d, dir, mut log) = tmp_log(small(150, 10));
    append_until_segments(&mut log, 3);
    let active_base = *log.segment_base_offsets().last().unwrap();
    assert!(log.has_pending_flush());
    assert!(log.recovery_point() < active_base);
    let pending = log.pending_flush().unwrap().unwrap();
    pending.run().unwrap();
    log.complete_flush(&pending).unwrap();
    assert!(!log.has_pending_flush());
    assert_eq!(log.recovery_point(), active_base);
    let state = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
    assert!(
        state.contains(&format!("\"recovery_point\":{active_base}")),
        "{state}"
    );
    assert!(log.pending_flush().unwrap().is_none());
}

#[test]
fn a_flush_prepared_before_a_truncation_is_not_credited() {
    let (_d, _dir, mut log) = tmp_log(small(150, 10));
    append_until_segments(&mut log, 4);
    let pending = log.pending_flush().unwrap().unwrap();
    let before = log.recovery_point();
    // A follower truncation, then new (unsynced) data rolled past the old offsets.
    log.truncate_to(1).unwrap();
    append_until_segments(&mut log, 4);
    pending.run().unwrap();
    log.complete_flush(&pending).unwrap();
    assert!(
        log.recovery_point() <= before.max(1),
        "credited a flush of files the truncation replaced"
    );
}

#[test]
fn a_crash_before_the_flush_recovers_the_unflushed_sealed_segments() {
    let (_d, dir, mut log) = tmp_log(small(150, 10));
    append_until_segments(&mut log, 3);
    let first_sealed = log.segments[0].log_path().to_path_buf();
    let records = read_everything(&log).len();
    // No close: a crash, with the roll's flush never done.
    drop(log);
    // A write the disk never completed in the first sealed segment: the length is intact, a
    // record byte is not. Only a recovery scan (CRC) notices; a trusted segment would not.
    let mut bytes = std::fs::read(&first_sealed).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0xff;
    std::fs::write(&first_sealed, &bytes).unwrap();
    let log = Log::open(&dir, small(150, 10), 0).unwrap();
    let after = read_everything(&log).len();
    assert!(
        after < records,
        "the unflushed segment was trusted instead of recovered"
    );
    assert_eq!(log.log_end_offset() as usize, after);
}
