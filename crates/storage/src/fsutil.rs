//! Small durable-file helpers.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Fsyncs a directory so that created, renamed and removed entries survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `data` atomically and durably: write `<path>.tmp`, fsync, rename, fsync
/// the directory.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Appends `len` bytes of `file` from position `pos` to `out`, reading straight into its spare
/// capacity: a fetch reads up to megabytes at a time, and zeroing the buffer first cost the
/// leader as much CPU as a tenth of its replication work.
pub(crate) fn read_exact_at_into(
    file: &File,
    out: &mut Vec<u8>,
    mut pos: u64,
    len: usize,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    out.reserve(len);
    let end = out.len() + len;
    while out.len() < end {
        let want = end - out.len();
        let offset = libc::off_t::try_from(pos)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file position too large"))?;
        // SAFETY: the destination is `want` bytes of `out`'s spare capacity (reserved above), which
        // pread only writes to; `set_len` below covers exactly the bytes it reported written.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                out.as_mut_ptr().add(out.len()).cast(),
                want,
                offset,
            )
        };
        match n {
            n if n > 0 => {
                let n = n as usize;
                // SAFETY: pread initialized these `n <= want` bytes.
                unsafe { out.set_len(out.len() + n) };
                pos += n as u64;
            }
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn read_exact_at_into_appends_the_range_and_refuses_to_read_past_the_end() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        f.write_all(&data).unwrap();
        let mut out = b"head".to_vec();
        read_exact_at_into(&f, &mut out, 1_000, 90_000).unwrap();
        assert_eq!(&out[..4], b"head");
        assert_eq!(&out[4..], &data[1_000..91_000]);
        let before = out.clone();
        let e = read_exact_at_into(&f, &mut out, 99_990, 11).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        // What was read before the end stays; callers drop the buffer on error.
        assert_eq!(&out[..before.len()], &before[..]);
    }
}
