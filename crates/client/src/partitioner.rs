//! Partitioners. The default one puts a keyed record exactly where Kafka's Java client and
//! librdkafka's `murmur2` partitioner put it: `toPositive(murmur2(key)) % partitions`. Records
//! without a key use the sticky partitioner (KIP-480): one partition until the batch is sent.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    to_positive(murmur2(key)) % partitions.max(1)
}

/// Chooses a partition for a record.
pub trait Partitioner: Send + Sync {
    /// `key` is the serialized key; `partitions` the topic's partition count (> 0).
    fn partition(&self, topic: &str, key: Option<&[u8]>, partitions: i32) -> i32;
    /// Called when a batch for the partition was sent (the sticky partitioner moves on then).
    fn on_new_batch(&self, _topic: &str, _partition: i32) {}
}

/// Kafka's default: murmur2 for keyed records, sticky for the others.
#[derive(Debug, Default)]
pub struct DefaultPartitioner {
    sticky: AtomicUsize,
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, _topic: &str, key: Option<&[u8]>, partitions: i32) -> i32 {
        match key {
            Some(k) => partition_for_key(k, partitions),
            None => (self.sticky.load(Ordering::Relaxed) % partitions.max(1) as usize) as i32,
        }
    }
    fn on_new_batch(&self, _topic: &str, _partition: i32) {
        self.sticky.fetch_add(1, Ordering::Relaxed);
    }
}

/// Round-robin over partitions for every record, keyed or not (Kafka's RoundRobinPartitioner).
#[derive(Debug, Default)]
pub struct RoundRobinPartitioner {
    next: AtomicUsize,
}

impl Partitioner for RoundRobinPartitioner {
    fn partition(&self, _topic: &str, _key: Option<&[u8]>, partitions: i32) -> i32 {
        (self.next.fetch_add(1, Ordering::Relaxed) % partitions.max(1) as usize) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), *want, "{:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keyed_records_use_to_positive_not_abs() {
        // murmur2("foobar") is negative; Kafka masks the sign bit.
        assert_eq!(
            partition_for_key(b"foobar", 10),
            (-790332482i32 & 0x7fffffff) % 10
        );
    }

    #[test]
    fn sticky_for_unkeyed_moves_on_a_new_batch() {
        let p = DefaultPartitioner::default();
        let first = p.partition("t", None, 3);
        assert_eq!(p.partition("t", None, 3), first);
        p.on_new_batch("t", first);
        assert_ne!(p.partition("t", None, 3), first);
    }
}
