//! Request envelopes in, response envelopes out.
//!
//! A frame holds a request header and a body whose layout depends on the API key and version;
//! both are decoded here with the generated types. Errors keep the correlation id when it could be
//! read, so the broker can answer (ApiVersions) or close the connection as Kafka does.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::versions;

/// A decoded request: its header and body.
#[derive(Debug, Clone)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// Why a request frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not even the fixed part of the header (key, version, correlation id) is there.
    #[error("request frame of {0} bytes is too short for a header")]
    Truncated(usize),
    /// The API key is not one Kafka defines or Brook serves.
    #[error("unknown or unsupported API key {api_key}")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    /// The API is served, but not at this version.
    #[error("unsupported version {version} of API {api_key:?}")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    /// Header or body do not parse at the stated version.
    #[error("malformed {api_key:?} v{version} request: {message}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        message: String,
    },
}

/// Decodes one request frame (the bytes after the size prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Request, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::Truncated(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = match ApiKey::try_from(raw_key) {
        Ok(k) if versions::supported(k).is_some() => k,
        _ => {
            return Err(DecodeError::UnknownApiKey {
                api_key: raw_key,
                correlation_id,
            })
        }
    };
    if !versions::accepts(api_key, version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |e: anyhow::Error| DecodeError::Malformed {
        api_key,
        version,
        correlation_id,
        message: format!("{e:#}"),
    };
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?;
    Ok(Request {
        api_key,
        header,
        body,
    })
}

/// Encodes a whole response frame, size prefix included, at the request's version.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    // ApiVersions responses always use header v0 so that a client that sent a version the broker
    // does not know can still read the error (KIP-511).
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Encodes a request frame, size prefix included (used by tests, fuzz seeds and clients).
pub fn encode_request(header: &RequestHeader, body: &RequestKind) -> anyhow::Result<Bytes> {
    let api_key = ApiKey::try_from(header.request_api_key)
        .map_err(|_| anyhow::anyhow!("unknown api key {}", header.request_api_key))?;
    let version = header.request_api_version;
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    header.encode(&mut buf, api_key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame body (after the size prefix); the inverse of [`encode_response`].
pub fn decode_response(
    api_key: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> anyhow::Result<(i32, ResponseKind)> {
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    let header = ResponseHeader::decode(&mut frame, header_version)?;
    let body = ResponseKind::decode(api_key, &mut frame, version)?;
    if frame.has_remaining() {
        anyhow::bail!(
            "{} trailing bytes after {api_key:?} response",
            frame.remaining()
        );
    }
    Ok((header.correlation_id, body))
}
