//! Kafka's offset checkpoint files (`OffsetCheckpointFile`): one offset per topic partition of a
//! log directory, such as `replication-offset-checkpoint` (high watermarks). The format is text:
//! a version line `0`, a count line, then `topic partition offset` per line. Topic names cannot
//! hold spaces (Kafka's legal characters are `[a-zA-Z0-9._-]`).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use crate::fsutil::write_atomically;

/// Kafka's name for the high watermark checkpoint of a log directory.
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";

/// Offsets by (topic, partition).
pub type PartitionOffsets = BTreeMap<(String, i32), i64>;

/// Reads a checkpoint file. A missing file is an empty map; a file that is not in the format is
/// an `InvalidData` error (the caller decides what to trust instead).
pub fn read(path: &Path) -> io::Result<PartitionOffsets> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PartitionOffsets::new()),
        Err(e) => return Err(e),
    };
    parse(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed offset checkpoint file {}", path.display()),
        )
    })
}

fn parse(text: &str) -> Option<PartitionOffsets> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut offsets = PartitionOffsets::new();
    for _ in 0..count {
        let mut parts = lines.next()?.split_whitespace();
        let topic = parts.next()?.to_string();
        let partition: i32 = parts.next()?.parse().ok()?;
        let offset: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || partition < 0 {
            return None;
        }
        offsets.insert((topic, partition), offset);
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return None;
    }
    Some(offsets)
}

/// Replaces the checkpoint file atomically and durably (temporary file, fsync, rename, directory
/// fsync), as Kafka's `CheckpointFile.write` does.
pub fn write(path: &Path, offsets: &PartitionOffsets) -> io::Result<()> {
    let mut text = format!("0\n{}\n", offsets.len());
    for ((topic, partition), offset) in offsets {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REPLICATION_OFFSET_CHECKPOINT);
        assert!(read(&path).unwrap().is_empty(), "a missing file is empty");
        let offsets = PartitionOffsets::from([
            (("orders".to_string(), 0), 42),
            (("orders".to_string(), 1), 7),
            (("__consumer_offsets".to_string(), 12), 0),
        ]);
        write(&path, &offsets).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "0\n3\n__consumer_offsets 12 0\norders 0 42\norders 1 7\n"
        );
        assert_eq!(read(&path).unwrap(), offsets);
        assert!(!dir
            .path()
            .join("replication-offset-checkpoint.tmp")
            .exists());
    }

    #[test]
    fn refuses_files_not_in_the_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REPLICATION_OFFSET_CHECKPOINT);
        for bad in [
            "",
            "1\n0\n",
            "0\n2\norders 0 42\n",
            "0\n1\norders x 42\n",
            "0\n1\norders 0 42 extra\n",
            "0\n1\norders -1 42\n",
            "0\n1\norders 0 42\nleftover 0 1\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = read(&path).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
    }
}
