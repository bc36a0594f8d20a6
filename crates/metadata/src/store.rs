//! Durable metadata on a single node: an append-only file of records, one JSON document per line
//! with its CRC32C, fsynced on every append (metadata changes are rare and must not be lost).
//!
//! On open a torn last line (a crash mid-write) is dropped; a bad line before the end is an error,
//! since silently skipping a middle record would build a wrong image. When the file has grown well
//! past the image it describes, it is rewritten as a snapshot (the image's records) through a
//! temporary file and an atomic rename. In cluster mode a Raft log takes this file's place.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

const FILE_NAME: &str = "metadata.log";
const SNAPSHOT_THRESHOLD: usize = 10_000;

/// Why the metadata store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata log {path} is corrupt at line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Line {
    crc: u32,
    record: serde_json::Value,
}

/// The single-node metadata log.
pub struct MetadataStore {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl MetadataStore {
    /// Opens (or creates) the store in `dir` and returns it with the image its records build.
    pub fn open(dir: &Path) -> Result<(MetadataStore, MetadataImage), StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(FILE_NAME);
        let mut image = MetadataImage::default();
        let mut lines = 0usize;
        let mut good_len = 0u64;
        if path.exists() {
            let f = File::open(&path).map_err(io(&path))?;
            let mut reader = BufReader::new(f);
            let mut buf = String::new();
            loop {
                buf.clear();
                let n = reader.read_line(&mut buf).map_err(io(&path))?;
                if n == 0 {
                    break;
                }
                let complete = buf.ends_with('\n');
                match parse_line(buf.trim_end_matches('\n')) {
                    Ok(record) if complete => {
                        image.apply(&record);
                        lines += 1;
                        good_len += n as u64;
                    }
                    Ok(_) | Err(_) => {
                        // Only the last line may be torn; anything after it means corruption.
                        let rest = reader.fill_buf().map_err(io(&path))?.len();
                        if rest > 0 || complete {
                            return Err(StoreError::Corrupt {
                                path,
                                line: lines + 1,
                                reason: parse_line(buf.trim_end_matches('\n'))
                                    .err()
                                    .unwrap_or_else(|| "line not terminated".into()),
                            });
                        }
                        tracing::warn!(line = lines + 1, "dropping torn last metadata record");
                        break;
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        file.set_len(good_len).map_err(io(&path))?;
        let mut store = MetadataStore { path, file, lines };
        if store.lines > SNAPSHOT_THRESHOLD && store.lines > 4 * image.to_records().len() {
            store.snapshot(&image)?;
        }
        Ok((store, image))
    }

    /// Appends records durably (fsync before returning).
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<(), StoreError> {
        let mut out = Vec::new();
        for r in records {
            out.extend_from_slice(encode_line(r).as_bytes());
            out.push(b'\n');
        }
        let path = self.path.clone();
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        self.file.write_all(&out).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.lines += records.len();
        Ok(())
    }

    /// Rewrites the log as the records of `image` (a snapshot), atomically.
    pub fn snapshot(&mut self, image: &MetadataImage) -> Result<(), StoreError> {
        let tmp = self.path.with_extension("log.tmp");
        let io = |p: &Path| {
            let path = p.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let records = image.to_records();
        {
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            for r in &records {
                f.write_all(encode_line(r).as_bytes()).map_err(io(&tmp))?;
                f.write_all(b"\n").map_err(io(&tmp))?;
            }
            f.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        self.lines = records.len();
        Ok(())
    }
}

fn encode_line(record: &MetadataRecord) -> String {
    let value = serde_json::to_value(record).unwrap_or(serde_json::Value::Null);
    let crc = crc32c::crc32c(value.to_string().as_bytes());
    serde_json::to_string(&Line { crc, record: value }).unwrap_or_default()
}

fn parse_line(line: &str) -> Result<MetadataRecord, String> {
    let l: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let crc = crc32c::crc32c(l.record.to_string().as_bytes());
    if crc != l.crc {
        return Err(format!("CRC mismatch: stored {}, computed {crc}", l.crc));
    }
    serde_json::from_value(l.record).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn topic(name: &str) -> MetadataRecord {
        MetadataRecord::Topic {
            name: name.into(),
            topic_id: Uuid::new_v4(),
        }
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = MetadataStore::open(dir.path()).unwrap();
            s.append(&[topic("a"), topic("b")]).unwrap();
        }
        let (_, image) = MetadataStore::open(dir.path()).unwrap();
        assert!(image.topic("a").is_some() && image.topic("b").is_some());
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = MetadataStore::open(dir.path()).unwrap();
            s.append(&[topic("a")]).unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"crc\":12,\"rec").unwrap();
        drop(f);
        {
            let (mut s, image) = MetadataStore::open(dir.path()).unwrap();
            assert!(image.topic("a").is_some());
            s.append(&[topic("b")]).unwrap();
        }
        let (_, image) = MetadataStore::open(dir.path()).unwrap();
        assert!(image.topic("b").is_some());
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = MetadataStore::open(dir.path()).unwrap();
            s.append(&[topic("a"), topic("b")]).unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        let text = fs::read_to_string(&path)
            .unwrap()
            .replacen("\"a\"", "\"x\"", 1);
        fs::write(&path, text).unwrap();
        assert!(matches!(
            MetadataStore::open(dir.path()),
            Err(StoreError::Corrupt { line: 1, .. })
        ));
    }

    #[test]
    fn snapshot_keeps_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = MetadataStore::open(dir.path()).unwrap();
        s.append(&[topic("a"), topic("b")]).unwrap();
        let (_, image) = MetadataStore::open(dir.path()).unwrap();
        s.snapshot(&image).unwrap();
        s.append(&[topic("c")]).unwrap();
        let (_, reopened) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(reopened.topics.len(), 3);
    }
}
