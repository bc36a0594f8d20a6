//! Record batches (magic v2) as opaque bytes.
//!
//! The produce and fetch paths never decompress: the broker reads the 61-byte header, checks the
//! CRC32C over everything after the CRC field, and assigns offsets by rewriting the base offset and
//! the partition leader epoch, two fields the CRC does not cover. Only a log-append-time topic
//! changes covered bytes (the max timestamp), and then the CRC is recomputed.

use std::ops::Range;

/// Size of the fixed v2 batch header.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` that the length does not count (base offset + the length itself).
pub const LOG_OVERHEAD: usize = 12;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// "No producer" in the producer id field.
pub const NO_PRODUCER_ID: i64 = -1;
/// "No sequence" in the base sequence field.
pub const NO_SEQUENCE: i32 = -1;

/// Why bytes are not a valid v2 record batch. Each maps to one Kafka error code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the header, or than the header's length claims (CORRUPT_MESSAGE).
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// Magic byte other than 2 (UNSUPPORTED_FOR_MESSAGE_FORMAT).
    #[error("record batch magic {0} is not supported (only v2)")]
    UnsupportedMagic(i8),
    /// The stored CRC does not match the bytes (CORRUPT_MESSAGE).
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// A header field is out of range (INVALID_RECORD).
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
}

/// Compression codec named by the attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// The fields of a v2 batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Reads the header fields from the start of `b` (no CRC check; see [`validate`]).
    ///
    /// Checks only what is needed to walk a log safely: that the header is there, the magic is 2,
    /// and the length covers at least a header.
    pub fn parse(b: &[u8]) -> Result<BatchHeader, BatchError> {
        if b.len() < MAGIC + 1 {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: b.len(),
            });
        }
        let magic = b[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if b.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: b.len(),
            });
        }
        let batch_length = i32_at(b, BATCH_LENGTH);
        if (batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(BatchError::Invalid("batch length shorter than its header"));
        }
        Ok(BatchHeader {
            base_offset: i64_at(b, BASE_OFFSET),
            batch_length,
            partition_leader_epoch: i32_at(b, PARTITION_LEADER_EPOCH),
            magic,
            crc: i32_at(b, CRC) as u32,
            attributes: i16_at(b, ATTRIBUTES),
            last_offset_delta: i32_at(b, LAST_OFFSET_DELTA),
            base_timestamp: i64_at(b, BASE_TIMESTAMP),
            max_timestamp: i64_at(b, MAX_TIMESTAMP),
            producer_id: i64_at(b, PRODUCER_ID),
            producer_epoch: i16_at(b, PRODUCER_EPOCH),
            base_sequence: i32_at(b, BASE_SEQUENCE),
            records_count: i32_at(b, RECORDS_COUNT),
        })
    }

    /// Whole size of the batch on the wire and on disk.
    pub fn size(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }
    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    /// Offset following the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn compression(&self) -> Compression {
        match self.attributes & COMPRESSION_MASK {
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => Compression::None,
        }
    }
    /// True when the max timestamp is the broker's append time (LogAppendTime).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence of the last record (sequences wrap at `i32::MAX`, as in Kafka).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
}

/// Fully validates one batch that starts at `b[0]` and returns its header.
///
/// Beyond [`BatchHeader::parse`]: the bytes cover the stated length, the CRC32C matches, and the
/// counts agree (`records_count == last_offset_delta + 1` for non-empty batches, as producers write
/// them). Nothing is decompressed.
pub fn validate(b: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(b)?;
    if b.len() < h.size() {
        return Err(BatchError::Truncated {
            needed: h.size(),
            available: b.len(),
        });
    }
    let computed = crc32c::crc32c(&b[ATTRIBUTES..h.size()]);
    if computed != h.crc {
        return Err(BatchError::CrcMismatch {
            stored: h.crc,
            computed,
        });
    }
    if h.last_offset_delta < 0 {
        return Err(BatchError::Invalid("negative last offset delta"));
    }
    if h.records_count < 0 {
        return Err(BatchError::Invalid("negative record count"));
    }
    if h.records_count == 0 && !h.is_control() {
        return Err(BatchError::Invalid("batch without records"));
    }
    if h.records_count > 0 && h.records_count as i64 != h.last_offset_delta as i64 + 1 {
        return Err(BatchError::Invalid(
            "record count does not match last offset delta",
        ));
    }
    if h.attributes & COMPRESSION_MASK > 4 {
        return Err(BatchError::Invalid("unknown compression codec"));
    }
    Ok(h)
}

/// Walks the batches of a buffer holding whole batches back to back.
///
/// Yields each batch's header and byte range; stops with an error at the first batch that does not
/// parse or is cut short. `validate_crc` selects full [`validate`] or header-only parsing.
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    validate_crc: bool,
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8], validate_crc: bool) -> Self {
        Batches {
            buf,
            pos: 0,
            validate_crc,
        }
    }
    /// Byte position of the next batch to be read.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(BatchHeader, Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let parsed = if self.validate_crc {
            validate(rest)
        } else {
            BatchHeader::parse(rest).and_then(|h| {
                if rest.len() < h.size() {
                    Err(BatchError::Truncated {
                        needed: h.size(),
                        available: rest.len(),
                    })
                } else {
                    Ok(h)
                }
            })
        };
        match parsed {
            Ok(h) => {
                let range = self.pos..self.pos + h.size();
                self.pos = range.end;
                Some(Ok((h, range)))
            }
            Err(e) => {
                // Stop for good: a broken batch makes everything after it unreadable.
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

/// Writes the base offset (not covered by the CRC).
pub fn set_base_offset(b: &mut [u8], base_offset: i64) {
    b[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch (not covered by the CRC).
pub fn set_partition_leader_epoch(b: &mut [u8], epoch: i32) {
    b[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with the given time and recomputes the CRC, as Kafka does
/// for topics with `message.timestamp.type=LogAppendTime`.
pub fn set_log_append_time(b: &mut [u8], now_ms: i64) -> Result<(), BatchError> {
    let h = BatchHeader::parse(b)?;
    if b.len() < h.size() {
        return Err(BatchError::Truncated {
            needed: h.size(),
            available: b.len(),
        });
    }
    let attributes = h.attributes | TIMESTAMP_TYPE_BIT;
    b[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    b[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES..h.size()]);
    b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Builds an uncompressed batch from `(key, value, headers)` records: for tests, fuzz seeds and
/// internal records. Timestamps are all `timestamp`; offsets start at `base_offset`.
pub fn build_batch(base_offset: i64, timestamp: i64, records: &[SimpleRecord<'_>]) -> Vec<u8> {
    build_batch_with(
        base_offset,
        timestamp,
        NO_PRODUCER_ID,
        -1,
        NO_SEQUENCE,
        0,
        records,
    )
}

/// A record for [`build_batch`].
#[derive(Debug, Clone, Copy)]
pub struct SimpleRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// [`build_batch`] with producer fields and attributes.
pub fn build_batch_with(
    base_offset: i64,
    timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
    records: &[SimpleRecord<'_>],
) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut rec = Vec::new();
        rec.push(0); // record attributes
        put_varlong(&mut rec, 0); // timestamp delta
        put_varint(&mut rec, i as i32); // offset delta
        put_bytes(&mut rec, r.key);
        put_bytes(&mut rec, r.value);
        put_varint(&mut rec, r.headers.len() as i32);
        for (k, v) in r.headers {
            put_bytes(&mut rec, Some(k.as_bytes()));
            put_bytes(&mut rec, *v);
        }
        put_varint(&mut body, rec.len() as i32);
        body.extend_from_slice(&rec);
    }
    let mut b = Vec::with_capacity(HEADER_SIZE + body.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32 - 1).max(0).to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32).to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c::crc32c(&b[ATTRIBUTES..]);
    b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_varlong(out, v as i64)
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec<'a>(k: &'a [u8], v: &'a [u8]) -> SimpleRecord<'a> {
        SimpleRecord {
            key: Some(k),
            value: Some(v),
            headers: &[],
        }
    }

    #[test]
    fn built_batch_validates_and_reports_its_fields() {
        let b = build_batch(7, 1_000, &[rec(b"a", b"1"), rec(b"b", b"2")]);
        let h = validate(&b).unwrap();
        assert_eq!(h.base_offset, 7);
        assert_eq!(h.last_offset(), 8);
        assert_eq!(h.records_count, 2);
        assert_eq!(h.size(), b.len());
        assert_eq!(h.compression(), Compression::None);
    }

    #[test]
    fn offset_and_epoch_rewrites_keep_the_crc_valid() {
        let mut b = build_batch(0, 1_000, &[rec(b"k", b"v")]);
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 3);
        let h = validate(&b).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (42, 3));
    }

    #[test]
    fn log_append_time_rewrite_recomputes_the_crc() {
        let mut b = build_batch(0, 1_000, &[rec(b"k", b"v")]);
        set_log_append_time(&mut b, 99_000).unwrap();
        let h = validate(&b).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 99_000);
    }

    #[test]
    fn a_flipped_bit_is_a_crc_mismatch() {
        let mut b = build_batch(0, 1_000, &[rec(b"k", b"v")]);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(validate(&b), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn old_magic_is_unsupported() {
        let mut b = build_batch(0, 1_000, &[rec(b"k", b"v")]);
        b[MAGIC] = 1;
        assert_eq!(validate(&b), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn batches_iterator_stops_at_a_torn_tail() {
        let mut buf = build_batch(0, 1, &[rec(b"a", b"1")]);
        buf.extend(build_batch(1, 1, &[rec(b"b", b"2")]));
        let whole = buf.len();
        buf.extend(&build_batch(2, 1, &[rec(b"c", b"3")])[..20]);
        let mut it = Batches::new(&buf, true);
        assert_eq!(it.next().unwrap().unwrap().0.base_offset, 0);
        assert_eq!(it.next().unwrap().unwrap().1.end, whole);
        assert!(matches!(it.next(), Some(Err(BatchError::Truncated { .. }))));
        assert!(it.next().is_none());
    }

    #[test]
    fn built_batch_decodes_with_the_reference_codec() {
        use kafka_protocol::records::RecordBatchDecoder;
        let b = build_batch(5, 1_234, &[rec(b"key", b"value")]);
        let mut bytes = bytes::Bytes::from(b);
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records.len(), 1);
        let r = &set.records[0];
        assert_eq!(r.offset, 5);
        assert_eq!(r.timestamp, 1_234);
        assert_eq!(r.key.as_deref(), Some(&b"key"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"value"[..]));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = validate(&bytes);
            for item in Batches::new(&bytes, false) { let _ = item; }
        }

        #[test]
        fn any_single_byte_corruption_is_detected(pos in 16usize..80, bit in 0u8..8) {
            let b = build_batch(0, 1, &[rec(b"some-key", b"some value here")]);
            prop_assume!(pos < b.len());
            let mut c = b.clone();
            c[pos] ^= 1 << bit;
            prop_assert!(validate(&c).is_err());
        }
    }
}
