//! One connection to one broker: requests are pipelined, responses matched to them in order
//! (Kafka answers each connection's requests in the order they were sent), and the API versions
//! are negotiated once with ApiVersions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::frame::take_frame;
use brook_protocol::kafka::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, RequestKind, ResponseKind,
};
use brook_protocol::kafka::protocol::{Encodable, StrBytes};
use brook_protocol::request::decode_response;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::error::{unexpected, ClientError};

/// Largest response accepted (Kafka's clients have no limit; this guards against garbage).
const MAX_RESPONSE: usize = 1 << 30;

struct InFlight {
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    reply: oneshot::Sender<Result<ResponseKind, ClientError>>,
}

struct Writer {
    sock: tokio::net::tcp::OwnedWriteHalf,
    next_correlation: i32,
    in_flight: mpsc::UnboundedSender<InFlight>,
    /// Frame buffers written out, for the next frames.
    spare: Vec<BytesMut>,
}

impl Writer {
    /// Keeps a written frame's buffer for a later frame (a few, none huge).
    fn recycle(&mut self, frame: Bytes) {
        if let Ok(buf) = frame.try_into_mut() {
            if self.spare.len() < 2 && buf.capacity() <= 16 << 20 {
                self.spare.push(buf);
            }
        }
    }
}

/// A connection to a broker.
pub struct Connection {
    addr: String,
    client_id: String,
    writer: Mutex<Writer>,
    versions: HashMap<i16, (i16, i16)>,
    timeout: Duration,
    /// Set once the socket failed or the broker closed it: the connection is of no more use.
    closed: Arc<AtomicBool>,
}

/// A request already written to the socket whose response has not been read yet (see
/// [`Connection::send_pipelined`]).
pub struct PendingResponse {
    version: i16,
    rx: oneshot::Receiver<Result<ResponseKind, ClientError>>,
    wait: Duration,
    addr: String,
}

impl PendingResponse {
    /// Waits for the response (at most the connection's request timeout): the negotiated
    /// version and the body.
    pub async fn response(self) -> Result<(i16, ResponseKind), ClientError> {
        match tokio::time::timeout(self.wait, self.rx).await {
            Err(_) => Err(ClientError::Timeout(self.wait)),
            Ok(Err(_)) => Err(ClientError::Connection {
                addr: self.addr,
                reason: "connection closed".into(),
            }),
            Ok(Ok(r)) => r.map(|body| (self.version, body)),
        }
    }
}

impl Connection {
    /// Connects and negotiates API versions.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let sock = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = sock.set_nodelay(true);
        let (read, write) = sock.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(read_responses(addr.to_string(), read, rx, closed.clone()));
        let mut conn = Connection {
            addr: addr.to_string(),
            client_id: client_id.to_string(),
            writer: Mutex::new(Writer {
                sock: write,
                next_correlation: 0,
                in_flight: tx,
                spare: Vec::new(),
            }),
            versions: HashMap::new(),
            timeout,
            closed,
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("brook-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp = match conn
            .send_at(
                RequestKind::ApiVersions(req.clone()),
                ApiKey::ApiVersions,
                3,
            )
            .await?
        {
            ResponseKind::ApiVersions(r) if r.error_code == 35 => {
                // The broker does not know v3: retry with the version it offers (v0 always works).
                match conn
                    .send_at(RequestKind::ApiVersions(req), ApiKey::ApiVersions, 0)
                    .await?
                {
                    ResponseKind::ApiVersions(r) => r,
                    _ => return Err(unexpected("ApiVersions")),
                }
            }
            ResponseKind::ApiVersions(r) => r,
            _ => return Err(unexpected("ApiVersions")),
        };
        crate::error::check(resp.error_code, None)?;
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(conn)
    }

    /// The broker's `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the socket failed or the broker closed it (a new connection is needed).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The highest version both sides support, capped at `max` (the highest the caller handles).
    pub fn version(&self, key: ApiKey, max: i16) -> Result<i16, ClientError> {
        let ours = key.valid_versions();
        let (bmin, bmax) = self
            .versions
            .get(&(key as i16))
            .copied()
            .ok_or_else(|| ClientError::Protocol(format!("broker does not support {key:?}")))?;
        let v = bmax.min(ours.max).min(max);
        if v < bmin.max(ours.min) {
            return Err(ClientError::Protocol(format!(
                "no common version of {key:?}: broker {bmin}..={bmax}, client {}..={}",
                ours.min,
                ours.max.min(max)
            )));
        }
        Ok(v)
    }

    /// [`Connection::send`] with a longer wait for the answer: a JoinGroup is held by the
    /// coordinator until the rebalance completes (up to the rebalance timeout).
    pub async fn send_waiting(
        &self,
        body: RequestKind,
        key: ApiKey,
        max: i16,
        wait: Duration,
    ) -> Result<(i16, ResponseKind), ClientError> {
        let v = self.version(key, max)?;
        Ok((v, self.send_at_for(body, key, v, wait).await?))
    }

    /// Sends a request at the negotiated version (at most `max`) and waits for its response.
    pub async fn send(
        &self,
        body: RequestKind,
        key: ApiKey,
        max: i16,
    ) -> Result<(i16, ResponseKind), ClientError> {
        let v = self.version(key, max)?;
        Ok((v, self.send_at(body, key, v).await?))
    }

    /// Encodes a request under the next correlation id (the writer lock keeps ids in send order).
    fn next_frame(
        &self,
        w: &mut Writer,
        body: &RequestKind,
        key: ApiKey,
        version: i16,
    ) -> Result<(i32, Bytes), ClientError> {
        w.next_correlation = w.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(w.next_correlation)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        // As `encode_request`, but into a buffer sized for the records up front (a reused one
        // when there is one): growing a large frame step by step copies it again and again, and
        // fresh large allocations cost a page fault per page.
        let records: usize = match body {
            RequestKind::Produce(r) => r
                .topic_data
                .iter()
                .flat_map(|t| &t.partition_data)
                .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
                .sum(),
            _ => 0,
        };
        let mut buf = w.spare.pop().unwrap_or_default();
        buf.clear();
        buf.reserve(records + 256);
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        body.encode(&mut buf, version)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        Ok((w.next_correlation, buf.freeze()))
    }

    /// Sends a request the broker does not answer (Produce with acks=0).
    pub async fn send_without_response(
        &self,
        body: RequestKind,
        key: ApiKey,
        max: i16,
    ) -> Result<(), ClientError> {
        let version = self.version(key, max)?;
        let mut w = self.writer.lock().await;
        let (_, frame) = self.next_frame(&mut w, &body, key, version)?;
        w.sock
            .write_all(&frame)
            .await
            .map_err(|e| self.closed(&e.to_string()))?;
        w.recycle(frame);
        Ok(())
    }

    /// Writes a request at the negotiated version (at most `max`) and returns without waiting
    /// for its response. Requests written in turn are answered in turn, so a caller that writes
    /// one request after another keeps their order on the wire (a producer's batches).
    pub async fn send_pipelined(
        &self,
        body: RequestKind,
        key: ApiKey,
        max: i16,
    ) -> Result<PendingResponse, ClientError> {
        let version = self.version(key, max)?;
        let rx = self.write_request(body, key, version).await?;
        Ok(PendingResponse {
            version,
            rx,
            wait: self.timeout,
            addr: self.addr.clone(),
        })
    }

    /// Writes a request and registers it with the reader; the receiver gets its response.
    async fn write_request(
        &self,
        body: RequestKind,
        key: ApiKey,
        version: i16,
    ) -> Result<oneshot::Receiver<Result<ResponseKind, ClientError>>, ClientError> {
        let (tx, rx) = oneshot::channel();
        let mut w = self.writer.lock().await;
        let (correlation_id, frame) = self.next_frame(&mut w, &body, key, version)?;
        let in_flight = InFlight {
            correlation_id,
            api_key: key,
            version,
            reply: tx,
        };
        w.in_flight
            .send(in_flight)
            .map_err(|_| self.closed("reader stopped"))?;
        w.sock
            .write_all(&frame)
            .await
            .map_err(|e| self.closed(&e.to_string()))?;
        w.recycle(frame);
        Ok(rx)
    }

    async fn send_at(
        &self,
        body: RequestKind,
        key: ApiKey,
        version: i16,
    ) -> Result<ResponseKind, ClientError> {
        self.send_at_for(body, key, version, self.timeout).await
    }

    async fn send_at_for(
        &self,
        body: RequestKind,
        key: ApiKey,
        version: i16,
        wait: Duration,
    ) -> Result<ResponseKind, ClientError> {
        let rx = self.write_request(body, key, version).await?;
        match tokio::time::timeout(wait, rx).await {
            Err(_) => Err(ClientError::Timeout(wait)),
            Ok(Err(_)) => Err(self.closed("connection closed")),
            Ok(Ok(r)) => r,
        }
    }

    fn closed(&self, reason: &str) -> ClientError {
        self.closed.store(true, Ordering::Relaxed);
        ClientError::Connection {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        }
    }
}

async fn read_responses(
    addr: String,
    read: tokio::net::tcp::OwnedReadHalf,
    in_flight: mpsc::UnboundedReceiver<InFlight>,
    closed: Arc<AtomicBool>,
) {
    read_until_closed(addr, read, in_flight).await;
    closed.store(true, Ordering::Relaxed);
}

async fn read_until_closed(
    addr: String,
    mut read: tokio::net::tcp::OwnedReadHalf,
    mut in_flight: mpsc::UnboundedReceiver<InFlight>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let frame: Bytes = loop {
            match take_frame(&mut buf, MAX_RESPONSE) {
                Ok(Some(f)) => break f.freeze(),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "bad response frame; closing");
                    return;
                }
            }
            match read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let Some(req) = in_flight.recv().await else {
            return;
        };
        let correlation = match frame.get(..4) {
            Some(c) => i32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            None => i32::MIN,
        };
        if correlation != req.correlation_id {
            let _ = req.reply.send(Err(ClientError::Protocol(format!(
                "response correlation id {correlation} does not match request {}",
                req.correlation_id
            ))));
            return;
        }
        let result = decode_response(req.api_key, req.version, frame)
            .map(|(_, body)| body)
            .map_err(|e| ClientError::Protocol(format!("{:?} v{}: {e}", req.api_key, req.version)));
        let _ = req.reply.send(result);
    }
}
