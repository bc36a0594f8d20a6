//! A small inter-broker client: one connection to another broker, one request at a time, for
//! the replica fetchers (Fetch, OffsetForLeaderEpoch, ListOffsets). Requests are encoded with the
//! codec at versions every Kafka 3.x/4.x broker serves; every request is bounded by
//! `replica.socket.timeout.ms`.

use std::time::Duration;

use brook_protocol::frame::take_frame;
use brook_protocol::kafka::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use brook_protocol::kafka::protocol::StrBytes;
use brook_protocol::request::{decode_response, encode_request};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted from a peer (replica.fetch.response.max.bytes is far below).
const MAX_RESPONSE: usize = 1 << 30;

/// Why a request to a peer failed; the connection is then dropped and made again.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}: i/o: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: no answer within {1:?}")]
    Timeout(String, Duration),
    #[error("{0}: connection closed")]
    Closed(String),
    #[error("{0}: {1}")]
    Protocol(String, String),
}

/// One connection to another broker.
pub struct PeerClient {
    addr: String,
    sock: TcpStream,
    buf: BytesMut,
    correlation: i32,
    client_id: String,
    timeout: Duration,
}

impl PeerClient {
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<PeerClient, PeerError> {
        let sock = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| PeerError::Timeout(addr.to_string(), timeout))?
            .map_err(|e| PeerError::Connect(addr.to_string(), e))?;
        let _ = sock.set_nodelay(true);
        Ok(PeerClient {
            addr: addr.to_string(),
            sock,
            buf: BytesMut::with_capacity(64 * 1024),
            correlation: 0,
            client_id: client_id.to_string(),
            timeout,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request at `version` and waits for its response.
    pub async fn send(
        &mut self,
        key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> Result<ResponseKind, PeerError> {
        let timeout = self.timeout;
        let addr = self.addr.clone();
        tokio::time::timeout(timeout, self.exchange(key, version, body))
            .await
            .map_err(|_| PeerError::Timeout(addr, timeout))?
    }

    async fn exchange(
        &mut self,
        key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> Result<ResponseKind, PeerError> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let frame = encode_request(&header, &body)
            .map_err(|e| PeerError::Protocol(self.addr.clone(), e.to_string()))?;
        self.sock
            .write_all(&frame)
            .await
            .map_err(|e| PeerError::Io(self.addr.clone(), e))?;
        let frame = loop {
            match take_frame(&mut self.buf, MAX_RESPONSE) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(e) => return Err(PeerError::Protocol(self.addr.clone(), e.to_string())),
            }
            let n = self
                .sock
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| PeerError::Io(self.addr.clone(), e))?;
            if n == 0 {
                return Err(PeerError::Closed(self.addr.clone()));
            }
        };
        let (correlation, body) = decode_response(key, version, frame.freeze())
            .map_err(|e| PeerError::Protocol(self.addr.clone(), format!("{e:#}")))?;
        if correlation != self.correlation {
            return Err(PeerError::Protocol(
                self.addr.clone(),
                format!(
                    "correlation id {correlation}, expected {}",
                    self.correlation
                ),
            ));
        }
        Ok(body)
    }
}

/// `host:port` for connecting, with an IPv6 literal in brackets (as configuration and metadata
/// give hosts without them).
pub(crate) fn socket_addr(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
