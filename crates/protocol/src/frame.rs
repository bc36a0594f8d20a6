//! Size-prefixed frames: a 4-byte big-endian length followed by that many bytes.
//!
//! Following mini-redis's `connection.rs`, the reader first checks that a whole frame has arrived
//! and only then hands it on for parsing, so a partial read never reaches the decoder.

use bytes::{Buf, BytesMut};

/// Why a frame cannot be taken from the buffer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix is negative.
    #[error("negative frame size {0}")]
    NegativeSize(i32),
    /// The length prefix exceeds the configured limit (`socket.request.max.bytes`).
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
}

/// Takes one whole frame (without its length prefix) off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed. A frame larger than `max` is refused before any
/// of it is buffered, as Kafka does for `socket.request.max.bytes`.
pub fn take_frame(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if buf.len() < 4 + size {
        buf.reserve(4 + size - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_whole_frame() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1, 2][..]);
        assert_eq!(take_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(&[3, 0, 0]);
        let frame = take_frame(&mut buf, 100).unwrap().unwrap();
        assert_eq!(&frame[..], &[1, 2, 3]);
        assert_eq!(&buf[..], &[0, 0]);
        assert_eq!(take_frame(&mut buf, 100), Ok(None));
    }

    #[test]
    fn refuses_oversized_and_negative_sizes() {
        let mut buf = BytesMut::from(&[0u8, 0, 1, 0][..]);
        assert_eq!(
            take_frame(&mut buf, 255),
            Err(FrameError::TooLarge {
                size: 256,
                max: 255
            })
        );
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert_eq!(take_frame(&mut buf, 255), Err(FrameError::NegativeSize(-1)));
    }
}
