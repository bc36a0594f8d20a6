//! The records of `__consumer_offsets`, in Kafka's binary layout, so that the topic's contents
//! mean the same to Brook and to Kafka's tools.
//!
//! Keys start with a version: 0 and 1 are an offset commit key (group, topic, partition), 2 is a
//! group metadata key (group). A record with a null value is a tombstone.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A decoded `__consumer_offsets` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// A committed offset as stored (OffsetCommitValue v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// Group metadata as stored (GroupMetadataValue v3, without members: Brook restores a group's
/// generation and protocol, and members rejoin after a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct RecordError(&'static str);

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn get_i16(b: &mut Bytes) -> Result<i16, RecordError> {
    b.try_get_i16().map_err(|_| RecordError("truncated"))
}
fn get_i32(b: &mut Bytes) -> Result<i32, RecordError> {
    b.try_get_i32().map_err(|_| RecordError("truncated"))
}
fn get_i64(b: &mut Bytes) -> Result<i64, RecordError> {
    b.try_get_i64().map_err(|_| RecordError("truncated"))
}

fn get_nullable_str(b: &mut Bytes) -> Result<Option<String>, RecordError> {
    let n = get_i16(b)?;
    if n < 0 {
        return Ok(None);
    }
    let n = n as usize;
    if b.remaining() < n {
        return Err(RecordError("string longer than the record"));
    }
    let s = b.split_to(n);
    String::from_utf8(s.to_vec())
        .map(Some)
        .map_err(|_| RecordError("string is not UTF-8"))
}

fn get_str(b: &mut Bytes) -> Result<String, RecordError> {
    get_nullable_str(b)?.ok_or(RecordError("null string"))
}

impl OffsetsKey {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            OffsetsKey::Offset {
                group,
                topic,
                partition,
            } => {
                b.put_i16(1);
                put_str(&mut b, group);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
            OffsetsKey::Group { group } => {
                b.put_i16(2);
                put_str(&mut b, group);
            }
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<OffsetsKey, RecordError> {
        match get_i16(&mut b)? {
            0 | 1 => Ok(OffsetsKey::Offset {
                group: get_str(&mut b)?,
                topic: get_str(&mut b)?,
                partition: get_i32(&mut b)?,
            }),
            2 => Ok(OffsetsKey::Group {
                group: get_str(&mut b)?,
            }),
            _ => Err(RecordError("unknown key version")),
        }
    }

    pub fn group(&self) -> &str {
        match self {
            OffsetsKey::Offset { group, .. } | OffsetsKey::Group { group } => group,
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_str(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp);
        b.freeze()
    }

    /// Decodes versions 0 to 4 (Kafka's OffsetCommitValue); v4 adds tagged fields, ignored here.
    pub fn decode(mut b: Bytes) -> Result<OffsetValue, RecordError> {
        let version = get_i16(&mut b)?;
        let offset = get_i64(&mut b)?;
        let leader_epoch = if version >= 3 { get_i32(&mut b)? } else { -1 };
        let metadata = if version >= 4 {
            // Flexible version: compact string (unsigned varint length + 1).
            let mut len: u64 = 0;
            let mut shift = 0;
            loop {
                let byte = b.try_get_u8().map_err(|_| RecordError("truncated"))?;
                len |= ((byte & 0x7f) as u64) << shift;
                if byte & 0x80 == 0 {
                    break;
                }
                shift += 7;
                if shift > 28 {
                    return Err(RecordError("varint too long"));
                }
            }
            let n = len.saturating_sub(1) as usize;
            if b.remaining() < n {
                return Err(RecordError("string longer than the record"));
            }
            String::from_utf8(b.split_to(n).to_vec())
                .map_err(|_| RecordError("string is not UTF-8"))?
        } else {
            get_str(&mut b)?
        };
        let commit_timestamp = get_i64(&mut b)?;
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        })
    }
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_str(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_nullable_str(&mut b, self.protocol.as_deref());
        put_nullable_str(&mut b, self.leader.as_deref());
        b.put_i64(self.current_state_timestamp);
        b.put_i32(0); // members: Brook does not restore members (see the type's doc)
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<GroupValue, RecordError> {
        let version = get_i16(&mut b)?;
        if !(0..=3).contains(&version) {
            return Err(RecordError("unsupported group metadata version"));
        }
        let protocol_type = get_str(&mut b)?;
        let generation = get_i32(&mut b)?;
        let protocol = get_nullable_str(&mut b)?;
        let leader = get_nullable_str(&mut b)?;
        let current_state_timestamp = if version >= 2 { get_i64(&mut b)? } else { -1 };
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
        })
    }
}

/// Kafka's partition of `__consumer_offsets` for a group: `abs(groupId.hashCode) % partitions`,
/// with Java's String.hashCode over UTF-16 code units.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    // Kafka's Utils.abs maps Integer.MIN_VALUE to 0 rather than overflowing.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let k = OffsetsKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(OffsetsKey::decode(k.encode()).unwrap(), k);
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp: 1000,
        };
        assert_eq!(OffsetValue::decode(v.encode()).unwrap(), v);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            current_state_timestamp: 9,
        };
        assert_eq!(GroupValue::decode(g.encode()).unwrap(), g);
    }

    #[test]
    fn truncated_records_are_errors() {
        let k = OffsetsKey::Group {
            group: "abc".into(),
        }
        .encode();
        assert!(OffsetsKey::decode(k.slice(..4)).is_err());
        assert!(OffsetValue::decode(Bytes::from_static(&[0, 3, 0])).is_err());
    }

    #[test]
    fn partition_matches_java_string_hashcode() {
        // "test-group".hashCode() == 627841412 in Java; % 50 == 12.
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
