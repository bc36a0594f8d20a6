//! A behaviour suite every [`PartitionLog`] implementation must pass.
//!
//! `run_all(|| make_fresh_empty_log())` panics (assert) at the first divergence. Both [`crate::Log`]
//! and [`crate::MemoryLog`] run it in this crate's tests; a future implementation should too.

use brook_protocol::batch::{build_batch, build_batch_with, Batches, SimpleRecord};
use brook_protocol::kafka::records::RecordBatchDecoder;

use crate::{AppendOutcome, PartitionLog, StorageError};

fn records(n: usize, prefix: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("{prefix}-k{i}").into_bytes(),
                format!("{prefix}-v{i}").into_bytes(),
            )
        })
        .collect()
}

fn batch(ts: i64, recs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let simple: Vec<SimpleRecord<'_>> = recs
        .iter()
        .map(|(k, v)| SimpleRecord {
            key: Some(k),
            value: Some(v),
            headers: &[],
        })
        .collect();
    build_batch(0, ts, &simple)
}

fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let recs = vec![
        SimpleRecord {
            key: Some(b"k"),
            value: Some(b"v"),
            headers: &[],
        };
        n
    ];
    build_batch_with(0, 1_000, pid, epoch, seq, 0, &recs)
}

fn append<L: PartitionLog>(log: &mut L, ts: i64, n: usize, prefix: &str) -> (i64, i64) {
    let mut b = batch(ts, &records(n, prefix));
    match log.append_as_leader(&mut b, 1, ts) {
        Ok(AppendOutcome::Appended(i)) => (i.first_offset, i.last_offset),
        other => panic!("append failed: {other:?}"),
    }
}

/// `(offset, key, value)` of one record.
pub type DecodedRecord = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// `(offset, key, value)` of every record in `bytes`.
pub fn decode_all(bytes: &[u8]) -> Vec<DecodedRecord> {
    let mut out = Vec::new();
    let mut buf = bytes::Bytes::copy_from_slice(bytes);
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode(&mut buf).expect("decodable batch");
        for r in set.records {
            out.push((
                r.offset,
                r.key.map(|k| k.to_vec()),
                r.value.map(|v| v.to_vec()),
            ));
        }
    }
    out
}

/// Runs every check on fresh logs from `make`.
pub fn run_all<L: PartitionLog>(make: impl Fn() -> L) {
    offsets_are_contiguous(make());
    read_round_trips(make());
    read_limits(make());
    out_of_range(make());
    delete_records(make());
    truncation(make());
    timestamps(make());
    idempotence(make());
    follower_appends(make());
    invalid_input(make());
}

fn offsets_are_contiguous<L: PartitionLog>(mut log: L) {
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(append(&mut log, 10, 2, "a"), (0, 1));
    assert_eq!(append(&mut log, 10, 3, "b"), (2, 4));
    // Two batches in one append get consecutive offsets too.
    let mut two = batch(10, &records(2, "c"));
    two.extend(batch(10, &records(1, "d")));
    let info = *log.append_as_leader(&mut two, 1, 10).unwrap().info();
    assert_eq!(
        (info.first_offset, info.last_offset, info.record_count),
        (5, 7, 3)
    );
    assert_eq!(log.log_end_offset(), 8);
    let bases: Vec<i64> = Batches::new(&two, true)
        .map(|b| b.unwrap().0.base_offset)
        .collect();
    assert_eq!(
        bases,
        vec![5, 7],
        "the caller's buffer carries the assigned offsets"
    );
}

fn read_round_trips<L: PartitionLog>(mut log: L) {
    append(&mut log, 10, 2, "a");
    append(&mut log, 11, 3, "b");
    let all = log.read(0, usize::MAX, i64::MAX, false).unwrap();
    let got = decode_all(&all);
    let mut want = Vec::new();
    for (i, (k, v)) in records(2, "a")
        .into_iter()
        .chain(records(3, "b"))
        .enumerate()
    {
        want.push((i as i64, Some(k), Some(v)));
    }
    assert_eq!(got, want);
    // Reading in the middle of a batch returns the whole batch.
    let mid = log.read(3, usize::MAX, i64::MAX, false).unwrap();
    assert_eq!(decode_all(&mid).first().map(|r| r.0), Some(2));
    // Batches carry the leader epoch they were appended with.
    let (h, _) = Batches::new(&all, true).next().unwrap().unwrap();
    assert_eq!(h.partition_leader_epoch, 1);
}

fn read_limits<L: PartitionLog>(mut log: L) {
    append(&mut log, 10, 2, "a");
    append(&mut log, 10, 2, "b");
    let one = log.read(0, usize::MAX, i64::MAX, false).unwrap();
    let first_len = Batches::new(&one, true).next().unwrap().unwrap().1.len();
    // max_offset (high watermark) cuts at batch granularity.
    let hw = log.read(0, usize::MAX, 2, false).unwrap();
    assert_eq!(hw.len(), first_len);
    assert!(log.read(2, usize::MAX, 2, false).unwrap().is_empty());
    // max_bytes: whole batches only; min_one_batch returns an oversized first batch.
    assert_eq!(
        log.read(0, first_len + 1, i64::MAX, false).unwrap().len(),
        first_len
    );
    assert!(log.read(0, 1, i64::MAX, false).unwrap().is_empty());
    assert_eq!(log.read(0, 1, i64::MAX, true).unwrap().len(), first_len);
}

fn out_of_range<L: PartitionLog>(mut log: L) {
    append(&mut log, 10, 2, "a");
    assert!(log.read(2, 1000, i64::MAX, true).unwrap().is_empty());
    assert!(matches!(
        log.read(3, 1000, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange {
            requested: 3,
            log_start: 0,
            log_end: 2
        })
    ));
    assert!(matches!(
        log.read(-1, 1000, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

fn delete_records<L: PartitionLog>(mut log: L) {
    append(&mut log, 10, 3, "a");
    append(&mut log, 10, 3, "b");
    assert_eq!(log.delete_records_before(4).unwrap(), 4);
    assert_eq!(log.log_start_offset(), 4);
    assert!(matches!(
        log.read(2, 1000, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // The batch holding the log start offset is returned whole.
    let r = decode_all(&log.read(4, 1000, i64::MAX, true).unwrap());
    assert_eq!(r.first().map(|x| x.0), Some(3));
    // Never backwards; not beyond the end.
    assert_eq!(log.delete_records_before(1).unwrap(), 4);
    assert!(matches!(
        log.delete_records_before(7),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records_before(6).unwrap(), 6);
    assert!(log.read(6, 1000, i64::MAX, true).unwrap().is_empty());
    assert_eq!(append(&mut log, 10, 1, "c"), (6, 6));
}

fn truncation<L: PartitionLog>(mut log: L) {
    append(&mut log, 10, 2, "a");
    append(&mut log, 10, 2, "b");
    append(&mut log, 10, 2, "c");
    log.truncate_to(4).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(
        decode_all(&log.read(0, 10_000, i64::MAX, true).unwrap()).len(),
        4
    );
    // A batch straddling the target goes whole; the log still continues at the target.
    log.truncate_to(3).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(
        decode_all(&log.read(0, 10_000, i64::MAX, true).unwrap()).len(),
        2
    );
    assert_eq!(append(&mut log, 10, 1, "d"), (3, 3));
    log.truncate_to(100).unwrap();
    assert_eq!(log.log_end_offset(), 4);
}

fn timestamps<L: PartitionLog>(mut log: L) {
    append(&mut log, 100, 2, "a");
    append(&mut log, 300, 2, "b");
    append(&mut log, 200, 2, "c");
    let at = |log: &L, t| {
        log.offset_for_timestamp(t)
            .unwrap()
            .map(|x| (x.offset, x.timestamp))
    };
    assert_eq!(at(&log, 0), Some((0, 100)));
    assert_eq!(at(&log, 100), Some((0, 100)));
    assert_eq!(at(&log, 101), Some((2, 300)));
    assert_eq!(at(&log, 300), Some((2, 300)));
    assert_eq!(at(&log, 301), None);
    assert_eq!(
        log.offset_for_timestamp(0).unwrap().map(|x| x.leader_epoch),
        Some(1)
    );
    log.delete_records_before(1).unwrap();
    assert_eq!(at(&log, 0), Some((1, 100)));
}

fn idempotence<L: PartitionLog>(mut log: L) {
    let mut b0 = idempotent_batch(42, 0, 0, 2);
    let first = match log.append_as_leader(&mut b0.clone(), 0, 1).unwrap() {
        AppendOutcome::Appended(i) => i,
        d => panic!("{d:?}"),
    };
    let mut other = batch(5, &records(1, "x"));
    log.append_as_leader(&mut other, 0, 1).unwrap();
    let end = log.log_end_offset();
    match log.append_as_leader(&mut b0, 0, 1).unwrap() {
        AppendOutcome::Duplicate(i) => {
            assert_eq!(
                (i.first_offset, i.last_offset),
                (first.first_offset, first.last_offset)
            )
        }
        a => panic!("expected a duplicate, got {a:?}"),
    }
    assert_eq!(log.log_end_offset(), end, "a duplicate appends nothing");
    assert!(matches!(
        log.append_as_leader(&mut idempotent_batch(42, 0, 3, 1), 0, 1),
        Err(StorageError::OutOfOrderSequence {
            expected: 2,
            got: 3,
            ..
        })
    ));
    assert!(log
        .append_as_leader(&mut idempotent_batch(42, 0, 2, 1), 0, 1)
        .is_ok());
    assert!(log
        .append_as_leader(&mut idempotent_batch(42, 1, 0, 1), 0, 1)
        .is_ok());
    assert!(matches!(
        log.append_as_leader(&mut idempotent_batch(42, 0, 3, 1), 0, 1),
        Err(StorageError::InvalidProducerEpoch {
            current: 1,
            got: 0,
            ..
        })
    ));
    // A multi-batch append is checked as a whole: nothing goes in when one batch is bad.
    let end = log.log_end_offset();
    let mut pair = idempotent_batch(42, 1, 1, 1);
    pair.extend(idempotent_batch(42, 1, 5, 1));
    assert!(log.append_as_leader(&mut pair, 0, 1).is_err());
    assert_eq!(log.log_end_offset(), end);
}

fn follower_appends<L: PartitionLog>(mut log: L) {
    let mut b = batch(10, &records(2, "a"));
    brook_protocol::batch::set_base_offset(&mut b, 0);
    let info = log.append_as_follower(&b).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 1));
    let mut gap = batch(10, &records(1, "b"));
    brook_protocol::batch::set_base_offset(&mut gap, 5);
    log.append_as_follower(&gap).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert!(matches!(
        log.append_as_follower(&b),
        Err(StorageError::UnexpectedAppendOffset {
            first_offset: 0,
            log_end: 6
        })
    ));
    let offs: Vec<i64> = decode_all(&log.read(0, 10_000, i64::MAX, true).unwrap())
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(offs, vec![0, 1, 5]);
}

fn invalid_input<L: PartitionLog>(mut log: L) {
    let mut b = batch(10, &records(1, "a"));
    let last = b.len() - 1;
    b[last] ^= 0xff;
    assert!(matches!(
        log.append_as_leader(&mut b, 0, 1),
        Err(StorageError::CorruptBatch(_))
    ));
    let mut b = batch(10, &records(1, "a"));
    b[16] = 1;
    assert!(matches!(
        log.append_as_leader(&mut b, 0, 1),
        Err(StorageError::UnsupportedMagic(1))
    ));
    let mut big = batch(10, &[(b"k".to_vec(), vec![7u8; 2_000_000])]);
    assert!(matches!(
        log.append_as_leader(&mut big, 0, 1),
        Err(StorageError::RecordTooLarge { .. })
    ));
    assert!(matches!(
        log.append_as_leader(&mut [], 0, 1),
        Err(StorageError::InvalidRecord(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
}
