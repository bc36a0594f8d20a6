//! Response frames that share record sets instead of copying them.
//!
//! A Fetch response is mostly record bytes that the log has just read into a [`Bytes`]. Encoding
//! it into one contiguous buffer would copy every record set once more (and again each time the
//! buffer grows); on a leader serving followers and consumers those copies dominate the CPU. So
//! the frame is kept as a list of chunks: the encoded fields in small owned buffers, and each
//! large byte string that is a slice of one of the caller's `Bytes` referenced in place. The
//! socket writer sends the list with vectored writes ([`OutgoingFrame`] is a [`Buf`]).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;

/// Byte strings shorter than this are copied: a separate chunk costs more than the copy.
const SHARE_MIN: usize = 4096;

/// An encoded frame (size prefix included) as chunks to be written in order.
#[derive(Debug, Default, Clone)]
pub struct OutgoingFrame {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl OutgoingFrame {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.remaining += b.len();
            self.chunks.push_back(b);
        }
    }

    /// How many chunks the frame has (1 when nothing was shared).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The whole frame in one buffer (copies when there is more than one chunk).
    pub fn into_bytes(mut self) -> Bytes {
        if self.chunks.len() == 1 {
            return self.chunks.pop_front().unwrap_or_default();
        }
        let n = self.remaining;
        self.copy_to_bytes(n)
    }
}

impl From<Bytes> for OutgoingFrame {
    fn from(b: Bytes) -> Self {
        let mut f = OutgoingFrame::default();
        f.push(b);
        f
    }
}

impl Buf for OutgoingFrame {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c[..])
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of the frame");
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.chunks.pop_front();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, c) in dst.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(c);
            n += 1;
        }
        n
    }
}

/// Encodes a whole response frame like [`crate::request::encode_response`], sharing the record
/// sets of a Fetch response with `body` instead of copying them.
pub fn encode_response_frame(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<OutgoingFrame> {
    let flat = || crate::request::encode_response(api_key, version, correlation_id, body);
    // `ResponseKind::encode` only writes into a `BytesMut`; the message types themselves take
    // any buffer.
    let ResponseKind::Fetch(fetch) = body else {
        return Ok(flat()?.into());
    };
    let shareable: Vec<Bytes> = fetch
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.clone())
        .filter(|b| b.len() >= SHARE_MIN)
        .collect();
    if shareable.is_empty() {
        return Ok(flat()?.into());
    }
    let mut buf = SharingBuf {
        shareable: &shareable,
        done: Vec::new(),
        done_len: 0,
        tail: BytesMut::with_capacity(256),
    };
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))?;
    fetch.encode(&mut buf, version)?;
    let size = i32::try_from(buf.offset())
        .map_err(|_| anyhow::anyhow!("response of {} bytes is too large", buf.offset()))?;
    let mut frame = OutgoingFrame::default();
    frame.push(Bytes::copy_from_slice(&size.to_be_bytes()));
    for c in buf.done {
        frame.push(c);
    }
    frame.push(buf.tail.freeze());
    Ok(frame)
}

/// An encoding buffer that, for a byte string lying inside one of `shareable`, keeps a slice of
/// that `Bytes` as its own chunk instead of copying it.
struct SharingBuf<'a> {
    shareable: &'a [Bytes],
    /// Finished chunks, in order.
    done: Vec<Bytes>,
    done_len: usize,
    /// The chunk being written.
    tail: BytesMut,
}

impl SharingBuf<'_> {
    /// The slice of a shareable `Bytes` that `src` is, if any.
    fn shared(&self, src: &[u8]) -> Option<Bytes> {
        let (p, len) = (src.as_ptr() as usize, src.len());
        self.shareable.iter().find_map(|b| {
            let start = b.as_ptr() as usize;
            (p >= start && p + len <= start + b.len()).then(|| b.slice(p - start..p - start + len))
        })
    }

    /// Makes everything from logical offset `from` on owned and contiguous in `tail` (copying
    /// shared chunks back), so that it can be rewritten. The generated encoders only do this for
    /// gaps, which Kafka's message types do not use around record sets; it is here for
    /// correctness, not speed.
    fn reclaim(&mut self, from: usize) {
        while self.done_len > from {
            let Some(c) = self.done.pop() else { break };
            self.done_len -= c.len();
            let mut t = BytesMut::with_capacity(c.len() + self.tail.len());
            t.extend_from_slice(&c);
            t.extend_from_slice(&self.tail);
            self.tail = t;
        }
    }
}

// SAFETY: every method delegates to `tail`, a `BytesMut`, whose own implementation upholds the
// trait's contract; `put_slice` either does the same or only appends finished chunks.
unsafe impl BufMut for SharingBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.tail.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialized `cnt` bytes of `chunk_mut()`, which is `tail`'s.
        unsafe { self.tail.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.tail.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SHARE_MIN {
            if let Some(shared) = self.shared(src) {
                if !self.tail.is_empty() {
                    let t = self.tail.split().freeze();
                    self.done_len += t.len();
                    self.done.push(t);
                }
                self.done_len += shared.len();
                self.done.push(shared);
                return;
            }
        }
        self.tail.put_slice(src);
    }
}

impl ByteBufMut for SharingBuf<'_> {
    fn offset(&self) -> usize {
        self.done_len + self.tail.len()
    }

    fn seek(&mut self, offset: usize) {
        self.reclaim(offset);
        self.tail.resize(offset - self.done_len, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        self.reclaim(r.start);
        let base = self.done_len;
        &mut self.tail[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::encode_response;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn fetch_response(records: &[Option<Bytes>]) -> ResponseKind {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(42)
                    .with_records(r.clone())
            })
            .collect();
        ResponseKind::Fetch(FetchResponse::default().with_responses(
            vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions)],
        ))
    }

    fn pattern(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn shared_frames_are_byte_for_byte_the_flat_encoding_at_every_fetch_version() {
        let records = [
            Some(pattern(100_000, 1)),
            None,
            Some(pattern(10, 2)),
            Some(pattern(SHARE_MIN, 3)),
        ];
        let body = fetch_response(&records);
        for version in 4..=16 {
            let flat = encode_response(ApiKey::Fetch, version, 7, &body).unwrap();
            let frame = encode_response_frame(ApiKey::Fetch, version, 7, &body).unwrap();
            assert!(frame.chunk_count() > 2, "v{version}: nothing was shared");
            assert_eq!(frame.remaining(), flat.len());
            assert_eq!(frame.into_bytes(), flat, "v{version}");
        }
    }

    #[test]
    fn record_sets_are_referenced_not_copied() {
        let big = pattern(1 << 20, 9);
        let body = fetch_response(&[Some(big.clone())]);
        let frame = encode_response_frame(ApiKey::Fetch, 12, 1, &body).unwrap();
        let mut slices = [IoSlice::new(&[]); 8];
        let n = frame.chunks_vectored(&mut slices);
        assert!(slices[..n]
            .iter()
            .any(|s| s.as_ptr() == big.as_ptr() && s.len() == big.len()));
    }

    #[test]
    fn other_responses_are_one_chunk() {
        let body = fetch_response(&[Some(pattern(100, 1))]);
        let frame = encode_response_frame(ApiKey::Fetch, 12, 1, &body).unwrap();
        assert_eq!(frame.chunk_count(), 1);
    }

    #[test]
    fn advancing_across_chunks_keeps_the_remaining_bytes() {
        let mut f = OutgoingFrame::default();
        f.push(Bytes::from_static(b"abc"));
        f.push(Bytes::from_static(b"defgh"));
        f.push(Bytes::from_static(b"ij"));
        f.advance(4);
        assert_eq!(f.remaining(), 6);
        assert_eq!(f.chunk(), b"efgh");
        assert_eq!(f.into_bytes(), Bytes::from_static(b"efghij"));
    }

    #[test]
    fn rewriting_a_shared_region_copies_it_back_first() {
        let big = pattern(SHARE_MIN * 2, 5);
        let shareable = [big.clone()];
        let mut buf = SharingBuf {
            shareable: &shareable,
            done: Vec::new(),
            done_len: 0,
            tail: BytesMut::new(),
        };
        buf.put_slice(b"head");
        buf.put_slice(&big);
        buf.put_slice(b"tail");
        assert_eq!(buf.done.len(), 2);
        buf.range(2..6).copy_from_slice(b"XXXX");
        assert!(buf.done.is_empty());
        // Offsets 2..4 are in "head", 4..6 the first two bytes of the shared string.
        let mut expect = b"heXXXX".to_vec();
        expect.extend_from_slice(&big[2..]);
        expect.extend_from_slice(b"tail");
        assert!(buf.tail[..] == expect[..], "the rewritten buffer differs");
        // The caller's bytes are untouched.
        assert_eq!(big, pattern(SHARE_MIN * 2, 5));
    }
}
