//! Turning the record bytes of a Fetch response into [`ConsumerRecord`]s without copying: an
//! uncompressed v2 batch is walked in place and each key, value and header value is a slice of the
//! fetched `Bytes` (a reference count, no allocation). A compressed batch's records are inflated
//! into one buffer and walked the same way, so repeated header names and LogAppendTime survive
//! there too.

use std::collections::VecDeque;

use brook_protocol::batch::{BatchHeader, Compression, HEADER_SIZE};
use brook_protocol::kafka::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
use bytes::Bytes;

use super::ConsumerRecord;
use crate::error::ClientError;

/// Appends the records of `data` at or after `position` (control records skipped) to `out`,
/// and returns the position after the last record seen. A batch cut short by the fetch size limit
/// ends the walk, as Kafka's consumers treat it.
pub(super) fn decode_into(
    data: &Bytes,
    topic: &str,
    partition: i32,
    position: i64,
    out: &mut VecDeque<ConsumerRecord>,
) -> Result<i64, ClientError> {
    let mut next = position;
    let mut at = 0usize;
    while data.len() - at >= HEADER_SIZE {
        let bytes = &data[at..];
        let Ok(h) = BatchHeader::parse(bytes) else {
            break;
        };
        let size = h.size();
        if bytes.len() < size {
            break;
        }
        let batch = data.slice(at..at + size);
        at += size;
        if h.next_offset() <= position {
            // Wholly before the position (a seek into the middle of what the broker returned).
            continue;
        }
        if h.is_control() {
            next = next.max(h.next_offset());
            continue;
        }
        let records = if h.compression() == Compression::None {
            batch.slice(HEADER_SIZE..)
        } else {
            inflate(batch.slice(HEADER_SIZE..), h.compression())?
        };
        next = next.max(walk(&records, &h, topic, partition, position, out)?);
        // Records removed by compaction still advance the position past the batch.
        next = next.max(h.next_offset());
    }
    Ok(next)
}

fn corrupt(what: &str) -> ClientError {
    ClientError::Protocol(format!("corrupt record batch: {what}"))
}

/// Reads a zig-zag varint (Kafka's record fields) at `*at`.
#[inline]
fn varint(b: &[u8], at: &mut usize) -> Result<i64, ClientError> {
    let mut raw: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = *b.get(*at).ok_or_else(|| corrupt("varint past the end"))?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
        shift += 7;
        if shift > 63 {
            return Err(corrupt("varint too long"));
        }
    }
}

/// A length-prefixed byte field (-1 = null) as a slice of the batch.
#[inline]
fn field(batch: &Bytes, at: &mut usize) -> Result<Option<Bytes>, ClientError> {
    let len = varint(batch, at)?;
    if len < 0 {
        return Ok(None);
    }
    let end = at
        .checked_add(len as usize)
        .filter(|e| *e <= batch.len())
        .ok_or_else(|| corrupt("field past the end"))?;
    let out = batch.slice(*at..end);
    *at = end;
    Ok(Some(out))
}

/// Walks the uncompressed records of a batch (the bytes after its header) in place.
fn walk(
    batch: &Bytes,
    h: &BatchHeader,
    topic: &str,
    partition: i32,
    position: i64,
    out: &mut VecDeque<ConsumerRecord>,
) -> Result<i64, ClientError> {
    let mut next = position;
    let mut at = 0;
    for _ in 0..h.records_count.max(0) {
        let len = varint(batch, &mut at)?;
        let end = at
            .checked_add(usize::try_from(len).map_err(|_| corrupt("negative record length"))?)
            .filter(|e| *e <= batch.len())
            .ok_or_else(|| corrupt("record past the end"))?;
        at += 1; // attributes (unused in v2)
        let timestamp_delta = varint(batch, &mut at)?;
        let offset = h.base_offset + varint(batch, &mut at)?;
        if offset < position {
            at = end;
            continue;
        }
        let key = field(batch, &mut at)?;
        let value = field(batch, &mut at)?;
        let count = varint(batch, &mut at)?;
        let mut headers = Vec::new();
        for _ in 0..count.max(0) {
            let k = field(batch, &mut at)?.unwrap_or_default();
            let v = field(batch, &mut at)?;
            headers.push((String::from_utf8_lossy(&k).into_owned(), v));
        }
        if at != end {
            return Err(corrupt("record length does not match its fields"));
        }
        let timestamp = if h.is_log_append_time() {
            h.max_timestamp
        } else {
            h.base_timestamp + timestamp_delta
        };
        out.push_back(ConsumerRecord {
            topic: topic.to_string(),
            partition,
            offset,
            timestamp,
            key,
            value,
            headers,
        });
        next = offset + 1;
    }
    Ok(next)
}

/// The uncompressed records of a compressed batch (the bytes after the batch header).
fn inflate(mut compressed: Bytes, codec: Compression) -> Result<Bytes, ClientError> {
    let take = |b: &mut Bytes| Ok(std::mem::take(b));
    match codec {
        Compression::Gzip => Gzip::decompress(&mut compressed, take),
        Compression::Snappy => Snappy::decompress(&mut compressed, take),
        Compression::Lz4 => Lz4::decompress(&mut compressed, take),
        Compression::Zstd => Zstd::decompress(&mut compressed, take),
        Compression::None => Ok(compressed),
    }
    .map_err(|e| corrupt(&format!("cannot decompress ({codec:?}): {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::batch::{build_batch, SimpleRecord};

    #[test]
    fn walks_an_uncompressed_batch_and_skips_records_before_the_position() {
        let hdr: &[(&str, Option<&[u8]>)] = &[("h", Some(b"x"))];
        let recs: Vec<SimpleRecord<'_>> = (0..3)
            .map(|i| SimpleRecord {
                key: Some(if i == 0 { b"a" } else { b"b" }),
                value: if i == 2 { None } else { Some(b"v") },
                headers: if i == 1 { hdr } else { &[] },
            })
            .collect();
        let mut data = build_batch(10, 1000, &recs);
        data.extend(build_batch(13, 2000, &recs[..1]));
        let data = Bytes::from(data);
        let mut out = VecDeque::new();
        let next = decode_into(&data, "t", 0, 11, &mut out).unwrap();
        assert_eq!(next, 14);
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![11, 12, 13]);
        assert_eq!(out[0].timestamp, 1000);
        assert_eq!(
            out[0].headers,
            vec![("h".to_string(), Some(Bytes::from_static(b"x")))]
        );
        assert_eq!(out[1].value, None);
        assert_eq!(out[2].key.as_deref(), Some(&b"a"[..]));
        // A batch cut short ends the walk without an error.
        let cut = data.slice(..data.len() - 3);
        let mut out = VecDeque::new();
        assert_eq!(decode_into(&cut, "t", 0, 0, &mut out).unwrap(), 13);
        assert_eq!(out.len(), 3);
    }
}
