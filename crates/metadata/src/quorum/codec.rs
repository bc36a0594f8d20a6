//! The on-disk encoding shared by the quorum's files: `<crc32c, 8 hex digits> <json>`, and the
//! atomic replacement of a whole file.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes `value` as one line, newline included.
pub(crate) fn encode_line<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(value)?;
    let mut out = Vec::with_capacity(json.len() + 10);
    out.extend_from_slice(format!("{:08x} ", crc32c::crc32c(&json)).as_bytes());
    out.extend_from_slice(&json);
    out.push(b'\n');
    Ok(out)
}

/// Decodes one line (without its newline), checking the CRC.
pub(crate) fn decode_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, String> {
    if line.len() < 9 || line[8] != b' ' {
        return Err("line too short or without a CRC".into());
    }
    let crc = std::str::from_utf8(&line[..8])
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| "CRC is not hexadecimal".to_string())?;
    let json = &line[9..];
    let computed = crc32c::crc32c(json);
    if computed != crc {
        return Err(format!(
            "CRC mismatch: stored {crc:08x}, computed {computed:08x}"
        ));
    }
    serde_json::from_slice(json).map_err(|e| e.to_string())
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content:
/// temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// Fsyncs the directory holding `path`, making a create or rename in it durable.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Reads a file written by [`write_atomic`] holding one encoded line; `None` when absent.
pub(crate) fn read_file<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ReadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    decode_line(line).map(Some).map_err(ReadError::Corrupt)
}

pub(crate) enum ReadError {
    Io(std::io::Error),
    Corrupt(String),
}
