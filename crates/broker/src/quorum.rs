//! The metadata quorum in cluster mode: Kafka's KRaft controllers, on openraft.
//!
//! Every node in `controller.quorum.voters` runs a Raft node over the metadata log of
//! [`brook_metadata::quorum`]; the Raft leader is the *active controller*. This module adds what
//! needs sockets, which only the broker crate may own:
//!
//! - the transport on the controller listener: one TCP connection per peer and direction, frames
//!   of a 4-byte big-endian length and a JSON body ([`ControllerRpc`] out, [`ControllerReply`]
//!   back), strictly one request then one reply. A frame over [`MAX_FRAME_BYTES`] or one that
//!   does not parse closes the connection with a log line; nothing a peer sends can panic us.
//! - [`Quorum`], the handle the broker uses: the published image, who leads, [`Quorum::commit`]
//!   for controller operations on the leader and [`Quorum::forward`] to reach the leader from
//!   anywhere else.
//!
//! Why the details are as they are:
//!
//! - openraft bounds each RPC with its own timeout (the heartbeat interval for AppendEntries, the
//!   election timeout for votes) and simply drops the future when it expires. A connection is
//!   therefore taken out of its slot for the duration of a call and put back only after a whole
//!   reply was read, so a reply that arrives late can never be read as the answer to the next
//!   request. Refused connections map to openraft's `Unreachable` (it backs off), everything
//!   else to `NetworkError` (it retries at once); both reconnect lazily on the next call.
//! - Controller operations are serialized by an async mutex, as Kafka's controller is
//!   single-threaded: an operation reads the image, decides on records and must not race another
//!   one that reads the same image. `ensure_linearizable` before reading makes sure a freshly
//!   elected leader has applied everything its predecessors committed.
//! - Forwarding is opaque bytes, so this module does not know the broker's controller operations;
//!   the callback given to [`Quorum::start`] decodes and runs them on the leader.
//! - A broker-only node (`process.roles=broker`) is an *observer* ([`Quorum::observe`]), as
//!   KRaft's brokers are: it runs no Raft node and has no controller listener; it long-polls a
//!   voter for the image ([`ControllerRpc::FetchImage`], answered once the voter has applied an
//!   entry past the observer's) and forwards like any other node. The image travels whole, as
//!   the records that rebuild it: simple, and small next to what a fetch moves.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use brook_metadata::quorum::{
    open_stores, MetadataStateMachine, NodeId, QuorumStoreError, Raft, RecordBatch, TypeConfig,
};
use brook_metadata::{MetadataImage, MetadataRecord};
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, Fatal, InitializeError, InstallSnapshotError,
    NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The largest frame either side accepts. Snapshot chunks are kept well below it.
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// Size of one InstallSnapshot chunk (bytes of snapshot data; JSON makes the frame bigger).
const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;
/// At most this many connections are served on the controller listener at once.
const MAX_CONNECTIONS: usize = 128;
/// Connecting to a peer gives up after this long even when openraft allows more.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long [`Quorum::forward`] and [`Quorum::commit`] keep trying before [`QuorumError::Timeout`].
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between forwarding attempts that failed.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// Log entries between two snapshots of the state machine.
const SNAPSHOT_EVERY: u64 = 1000;
/// How long a voter holds a [`ControllerRpc::FetchImage`] waiting for a newer image.
const IMAGE_POLL: Duration = Duration::from_millis(1000);

/// A boxed future, as returned by the forward callback (`futures::future::BoxFuture`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// Answers a forwarded request on the leader: opaque bytes in, opaque bytes out.
pub type ForwardFn = Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, Vec<u8>> + Send + Sync>;

/// A request on the controller listener.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerRpc {
    Vote(VoteRequest<NodeId>),
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// An opaque controller request for the leader's forward callback.
    Forward(Vec<u8>),
    /// An observer asks for the image once it holds an entry past `after` (long poll).
    FetchImage {
        after: u64,
    },
}

/// The reply to a [`ControllerRpc`] of the same name.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerReply {
    Vote(Result<VoteResponse<NodeId>, Fatal<NodeId>>),
    AppendEntries(Result<AppendEntriesResponse<NodeId>, Fatal<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Forward(ForwardReply),
    Image(ImageReply),
}

/// A voter's answer to [`ControllerRpc::FetchImage`].
#[derive(Debug, Serialize, Deserialize)]
pub struct ImageReply {
    /// Whom the voter believes leads.
    pub leader: Option<i32>,
    /// The last entry applied to the voter's image.
    pub index: u64,
    /// The image as the records that rebuild it; `None` when `index` is not past the asked one.
    pub records: Option<Vec<MetadataRecord>>,
}

/// What a node answers to a forwarded request.
#[derive(Debug, Serialize, Deserialize)]
pub enum ForwardReply {
    /// The leader's callback answered.
    Answer(Vec<u8>),
    /// This node is not the leader (any more); `leader` is whom it believes leads.
    NotLeader { leader: Option<i32> },
}

/// Timeouts of the quorum, from Kafka's `controller.quorum.*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumSettings {
    /// `controller.quorum.election.timeout.ms`: a follower that hears no leader for a random
    /// time between this and 4/3 of this starts an election.
    pub election_timeout_ms: u64,
    /// How often the leader sends heartbeats; also openraft's AppendEntries RPC timeout.
    pub heartbeat_interval_ms: u64,
}

impl Default for QuorumSettings {
    fn default() -> Self {
        QuorumSettings {
            election_timeout_ms: 1000,
            heartbeat_interval_ms: 100,
        }
    }
}

/// Why a quorum operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("this node is not the active controller (the active controller is {leader:?})")]
    NotLeader { leader: Option<i32> },
    #[error("the active controller did not answer in time")]
    Timeout,
    #[error("the active controller cannot reach a majority of the quorum: {0}")]
    NoQuorum(String),
    #[error("invalid metadata quorum configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] QuorumStoreError),
    #[error("the metadata quorum has stopped: {0}")]
    Stopped(String),
}

// ---------------------------------------------------------------------------------------------
// Frames

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Reads one frame; `None` on a clean end of stream between frames.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into())
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), FrameError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(body.len()));
    }
    write_body(w, &body).await
}

async fn write_body<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> Result<(), FrameError> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Client side

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: {source}")]
    Frame { addr: String, source: FrameError },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr} answered a {got} with the wrong reply")]
    WrongReply { addr: String, got: &'static str },
    /// Not sent: the request does not fit in a frame.
    #[error("a request of {bytes} bytes exceeds the frame limit of {MAX_FRAME_BYTES}")]
    TooLarge { bytes: usize },
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, BasicNode, E> {
        match self {
            CallError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&self)),
            _ => RPCError::Network(NetworkError::new(&self)),
        }
    }
}

/// One connection to one peer, opened on first use and after any failure.
struct PeerConn {
    addr: String,
    conn: Option<TcpStream>,
}

impl PeerConn {
    fn new(addr: String) -> PeerConn {
        PeerConn { addr, conn: None }
    }

    /// Sends `req` and reads the reply within `timeout`. The connection is only kept when a whole
    /// reply was read; if the caller drops this future, the connection goes with it.
    async fn call(
        &mut self,
        req: &ControllerRpc,
        timeout: Duration,
    ) -> Result<ControllerReply, CallError> {
        let addr = self.addr.clone();
        let body = serde_json::to_vec(req).map_err(|e| CallError::Frame {
            addr: addr.clone(),
            source: FrameError::Malformed(e),
        })?;
        if body.len() > MAX_FRAME_BYTES {
            return Err(CallError::TooLarge { bytes: body.len() });
        }
        let conn = self.conn.take();
        let result = tokio::time::timeout(timeout, async {
            let mut conn = match conn {
                Some(c) => c,
                None => {
                    let connect = TcpStream::connect(addr.as_str());
                    let c = tokio::time::timeout(timeout.min(CONNECT_TIMEOUT), connect)
                        .await
                        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))
                        .and_then(|r| r)
                        .map_err(|source| CallError::Connect {
                            addr: addr.clone(),
                            source,
                        })?;
                    let _ = c.set_nodelay(true);
                    c
                }
            };
            let frame_err = |source| CallError::Frame {
                addr: addr.clone(),
                source,
            };
            write_body(&mut conn, &body).await.map_err(frame_err)?;
            let body = read_frame(&mut conn)
                .await
                .map_err(frame_err)?
                .ok_or_else(|| CallError::Closed { addr: addr.clone() })?;
            let reply: ControllerReply =
                serde_json::from_slice(&body).map_err(|e| frame_err(FrameError::Malformed(e)))?;
            Ok((conn, reply))
        })
        .await;
        match result {
            Ok(Ok((conn, reply))) => {
                self.conn = Some(conn);
                Ok(reply)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CallError::Timeout {
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }
}

/// Makes openraft's clients for the peers.
struct Network;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            conn: PeerConn::new(node.addr.clone()),
        }
    }
}

/// openraft's view of one peer.
struct PeerClient {
    target: NodeId,
    conn: PeerConn,
}

type RpcResult<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, BasicNode, E>>;

impl PeerClient {
    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<NodeId, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }

    fn wrong<E: std::error::Error>(&self, got: &'static str) -> RPCError<NodeId, BasicNode, E> {
        CallError::WrongReply {
            addr: self.conn.addr.clone(),
            got,
        }
        .into_rpc()
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let entries = rpc.entries.len() as u64;
        let req = ControllerRpc::AppendEntries(rpc);
        match self.conn.call(&req, option.soft_ttl()).await {
            Ok(ControllerReply::AppendEntries(Ok(r))) => Ok(r),
            Ok(ControllerReply::AppendEntries(Err(e))) => Err(self.remote(RaftError::Fatal(e))),
            Ok(_) => Err(self.wrong("AppendEntries")),
            // openraft resends fewer entries at a time.
            Err(CallError::TooLarge { .. }) if entries > 1 => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(entries / 2),
            )),
            Err(e) => Err(e.into_rpc()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let req = ControllerRpc::InstallSnapshot(rpc);
        match self.conn.call(&req, option.soft_ttl()).await {
            Ok(ControllerReply::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(ControllerReply::InstallSnapshot(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(self.wrong("InstallSnapshot")),
            Err(e) => Err(e.into_rpc()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let req = ControllerRpc::Vote(rpc);
        match self.conn.call(&req, option.soft_ttl()).await {
            Ok(ControllerReply::Vote(Ok(r))) => Ok(r),
            Ok(ControllerReply::Vote(Err(e))) => Err(self.remote(RaftError::Fatal(e))),
            Ok(_) => Err(self.wrong("Vote")),
            Err(e) => Err(e.into_rpc()),
        }
    }
}

/// `RaftError<_, Infallible>` can only be fatal; the wire carries just that.
fn fatal_only(e: RaftError<NodeId>) -> Fatal<NodeId> {
    match e {
        RaftError::Fatal(f) => f,
        RaftError::APIError(never) => match never {},
    }
}

// ---------------------------------------------------------------------------------------------
// Server side

/// Serves the controller listener until `stop` turns true, then closes every connection.
async fn serve(listener: TcpListener, quorum: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
        let (socket, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "controller listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let quorum = quorum.clone();
        let stop = stop.clone();
        conns.spawn(async move {
            if let Err(e) = serve_connection(socket, peer, quorum, stop).await {
                tracing::info!(%peer, error = %e, "closing controller connection");
            }
            drop(permit);
        });
    }
    drop(listener);
    conns.shutdown().await;
}

async fn serve_connection(
    mut socket: TcpStream,
    peer: SocketAddr,
    quorum: Weak<Inner>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), FrameError> {
    loop {
        let body = tokio::select! {
            f = read_frame(&mut socket) => match f? {
                Some(b) => b,
                None => return Ok(()),
            },
            _ = stop.changed() => return Ok(()),
        };
        let rpc: ControllerRpc = serde_json::from_slice(&body)?;
        // The quorum is only held while the reply is made, never while it is written.
        let reply = {
            let Some(inner) = quorum.upgrade() else {
                return Ok(());
            };
            match rpc {
                ControllerRpc::Vote(r) => {
                    ControllerReply::Vote(inner.raft.vote(r).await.map_err(fatal_only))
                }
                ControllerRpc::AppendEntries(r) => ControllerReply::AppendEntries(
                    inner.raft.append_entries(r).await.map_err(fatal_only),
                ),
                ControllerRpc::InstallSnapshot(r) => {
                    ControllerReply::InstallSnapshot(inner.raft.install_snapshot(r).await)
                }
                ControllerRpc::FetchImage { after } => {
                    let mut applied = inner.sm.applied_index();
                    let sm = inner.sm.clone();
                    drop(inner);
                    tokio::select! {
                        _ = tokio::time::timeout(IMAGE_POLL, applied.wait_for(|i| i.unwrap_or(0) > after)) => {}
                        _ = stop.changed() => return Ok(()),
                    }
                    let Some(inner) = quorum.upgrade() else {
                        return Ok(());
                    };
                    // The state machine publishes the image before the index: read in the other
                    // order, the image is at least as new as the index it is sent with.
                    let index = sm.applied_index().borrow().unwrap_or(0);
                    ControllerReply::Image(ImageReply {
                        leader: inner.leader_id(),
                        index,
                        records: (index > after).then(|| sm.image().to_records()),
                    })
                }
                ControllerRpc::Forward(payload) => {
                    tracing::debug!(%peer, bytes = payload.len(), "forwarded controller request");
                    ControllerReply::Forward(if inner.is_leader() {
                        ForwardReply::Answer((inner.forward)(payload).await)
                    } else {
                        ForwardReply::NotLeader {
                            leader: inner.leader_id(),
                        }
                    })
                }
            }
        };
        write_frame(&mut socket, &reply).await?;
    }
}

// ---------------------------------------------------------------------------------------------
// The quorum handle

struct Inner {
    node_id: i32,
    raft: Raft,
    sm: MetadataStateMachine,
    /// Controller listener address of each voter.
    voters: BTreeMap<i32, String>,
    forward: ForwardFn,
    /// Serializes controller operations.
    commit_lock: tokio::sync::Mutex<()>,
    stop: watch::Sender<bool>,
    server: StdMutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    fn leader_id(&self) -> Option<i32> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .map(|id| id as i32)
    }

    fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id as NodeId)
    }
}

/// The active controller's view of the metadata log (see [`Quorum::raft_status`]).
#[derive(Debug, Clone)]
pub struct RaftStatus {
    /// The Raft term: Kafka's leader epoch of the metadata partition.
    pub term: u64,
    /// The leader's last log index.
    pub last_log_index: Option<u64>,
    /// The last index applied on the leader, which is committed.
    pub committed: Option<u64>,
    /// Each follower's last index known to match the leader's log.
    pub matched: BTreeMap<i32, Option<u64>>,
    pub voters: Vec<i32>,
}

/// The controller listener address of each voter, checked: ids are non-negative and distinct.
fn voter_addrs(voters: &[(i32, String, u16)]) -> Result<BTreeMap<i32, String>, QuorumError> {
    let mut addrs = BTreeMap::new();
    for (id, host, port) in voters {
        if *id < 0 {
            return Err(QuorumError::Config(format!("voter id {id} is negative")));
        }
        if addrs
            .insert(*id, crate::peer::socket_addr(host, *port as i32))
            .is_some()
        {
            return Err(QuorumError::Config(format!("voter {id} is listed twice")));
        }
    }
    Ok(addrs)
}

/// A broker-only node's view of the quorum (see the module doc).
struct Observer {
    node_id: i32,
    /// Controller listener address of each voter.
    voters: BTreeMap<i32, String>,
    image: watch::Sender<Arc<MetadataImage>>,
    applied: watch::Sender<Option<u64>>,
    /// The active controller as the voters last said.
    leader: watch::Sender<Option<i32>>,
    stop: watch::Sender<bool>,
    task: StdMutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Observer {
    /// The voter to ask and its address: `hint` when it names a voter, else the `next`-th in
    /// turn (`None` only without voters, which [`Quorum::observe`] refuses).
    fn target(&self, hint: Option<i32>, next: usize) -> Option<(i32, String)> {
        hint.and_then(|l| self.voters.get_key_value(&l))
            .or_else(|| self.voters.iter().nth(next % self.voters.len().max(1)))
            .map(|(id, addr)| (*id, addr.clone()))
    }
}

/// Keeps an observer's image current: long-polls the active controller (any voter while none is
/// known) for images past the one it holds.
async fn observe(observer: Weak<Observer>, mut stop: watch::Receiver<bool>) {
    let mut conns: BTreeMap<i32, PeerConn> = BTreeMap::new();
    let mut next = 0usize;
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(o) = observer.upgrade() else { return };
        let after = o.applied.borrow().unwrap_or(0);
        let leader = *o.leader.borrow();
        let Some((target, addr)) = o.target(leader, next) else {
            return;
        };
        drop(o);
        let conn = conns.entry(target).or_insert_with(|| PeerConn::new(addr));
        let request = ControllerRpc::FetchImage { after };
        let reply = tokio::select! {
            r = conn.call(&request, IMAGE_POLL + CONNECT_TIMEOUT) => r,
            _ = stop.changed() => return,
        };
        let Some(o) = observer.upgrade() else { return };
        match reply {
            Ok(ControllerReply::Image(r)) => {
                o.leader.send_replace(r.leader);
                if r.leader.is_none() {
                    next += 1;
                }
                if let Some(records) = r.records.filter(|_| r.index > after) {
                    let mut image = MetadataImage::default();
                    for record in &records {
                        image.apply(record);
                    }
                    o.image.send_replace(Arc::new(image));
                    o.applied.send_replace(Some(r.index));
                }
                continue;
            }
            Ok(_) => tracing::warn!(voter = target, "image fetch: wrong reply kind"),
            Err(e) => tracing::debug!(voter = target, error = %e, "image fetch failed"),
        }
        o.leader.send_replace(None);
        next += 1;
        drop(o);
        tokio::select! {
            _ = tokio::time::sleep(RETRY_BACKOFF) => {}
            _ = stop.changed() => return,
        }
    }
}

/// A node of the metadata quorum: a voter, or an observer (a broker-only node). Cheap to clone.
#[derive(Clone)]
pub struct Quorum {
    node: Node,
}

#[derive(Clone)]
enum Node {
    Voter(Arc<Inner>),
    Observer(Arc<Observer>),
}

fn stopped(e: impl std::fmt::Display) -> QuorumError {
    QuorumError::Stopped(e.to_string())
}

impl Quorum {
    /// Opens the quorum's stores in `dir`, starts the Raft node and serves `listener` (the
    /// controller listener) until [`Quorum::shutdown`] or `shutdown` turning true.
    ///
    /// On the very first start the cluster is initialized with every voter; each voter may do so,
    /// and a node whose log already holds a membership skips it.
    pub async fn start(
        node_id: i32,
        voters: Vec<(i32, String, u16)>,
        dir: &Path,
        listener: TcpListener,
        settings: QuorumSettings,
        forward: ForwardFn,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Quorum, QuorumError> {
        let addrs = voter_addrs(&voters)?;
        if !addrs.contains_key(&node_id) {
            return Err(QuorumError::Config(format!(
                "node.id {node_id} is not one of the controller.quorum.voters {:?}",
                addrs.keys().collect::<Vec<_>>()
            )));
        }
        let config = openraft::Config {
            cluster_name: "brook-metadata".into(),
            // openraft's followers wait their leader lease (`election_timeout_max`) plus their
            // own random timeout (between the min and the max) after the last word from the
            // leader, and voters refuse votes within their lease. A third and two thirds of the
            // configured timeout make that one to 4/3 of it: a new controller is elected between
            // one and 4/3 election timeouts after the old one went silent (it was 1.5 to 2 with
            // a half and the whole, which made a dead controller's failover the slowest case).
            election_timeout_min: (settings.election_timeout_ms / 3).max(1),
            election_timeout_max: (settings.election_timeout_ms * 2 / 3).max(2),
            heartbeat_interval: settings.heartbeat_interval_ms,
            install_snapshot_timeout: settings.election_timeout_ms.max(1000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;

        let (log, sm) = open_stores(dir)?;
        let raft = Raft::new(
            node_id as NodeId,
            Arc::new(config),
            Network,
            log,
            sm.clone(),
        )
        .await
        .map_err(stopped)?;
        let (stop, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            node_id,
            raft,
            sm,
            voters: addrs,
            forward,
            commit_lock: tokio::sync::Mutex::new(()),
            stop,
            server: StdMutex::new(None),
        });
        let server = tokio::spawn(serve(listener, Arc::downgrade(&inner), stop_rx));
        *inner.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
        let quorum = Quorum {
            node: Node::Voter(inner.clone()),
        };

        let initialized = inner.raft.is_initialized().await.map_err(stopped)?;
        if !initialized {
            let members: BTreeMap<NodeId, BasicNode> = inner
                .voters
                .iter()
                .map(|(id, addr)| (*id as NodeId, BasicNode::new(addr)))
                .collect();
            match inner.raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    quorum.shutdown().await;
                    return Err(stopped(e));
                }
            }
        }

        Self::stop_on(shutdown, quorum.clone());
        Ok(quorum)
    }

    /// Starts a broker-only node's view of the quorum: no Raft node and no listener, an image
    /// kept current from the voters (see the module doc), requests forwarded to the active
    /// controller. Runs until [`Quorum::shutdown`] or `shutdown` turning true.
    pub fn observe(
        node_id: i32,
        voters: Vec<(i32, String, u16)>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Quorum, QuorumError> {
        let addrs = voter_addrs(&voters)?;
        if addrs.is_empty() {
            return Err(QuorumError::Config("no controller.quorum.voters".into()));
        }
        if addrs.contains_key(&node_id) {
            return Err(QuorumError::Config(format!(
                "node.id {node_id} is a voter: a broker-only node cannot be one"
            )));
        }
        let (stop, stop_rx) = watch::channel(false);
        let observer = Arc::new(Observer {
            node_id,
            voters: addrs,
            image: watch::channel(Arc::new(MetadataImage::default())).0,
            applied: watch::channel(None).0,
            leader: watch::channel(None).0,
            stop,
            task: StdMutex::new(None),
        });
        let task = tokio::spawn(observe(Arc::downgrade(&observer), stop_rx));
        *observer.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        let quorum = Quorum {
            node: Node::Observer(observer),
        };
        Self::stop_on(shutdown, quorum.clone());
        Ok(quorum)
    }

    /// Shuts `quorum` down when `shutdown` turns true. Holds only a weak reference meanwhile.
    fn stop_on(mut shutdown: watch::Receiver<bool>, quorum: Quorum) {
        let weak = match &quorum.node {
            Node::Voter(inner) => WeakNode::Voter(Arc::downgrade(inner)),
            Node::Observer(o) => WeakNode::Observer(Arc::downgrade(o)),
        };
        drop(quorum);
        tokio::spawn(async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    // The sender is gone without asking for a shutdown: the node runs until
                    // `Quorum::shutdown`.
                    return;
                }
            }
            let node = match weak {
                WeakNode::Voter(w) => w.upgrade().map(Node::Voter),
                WeakNode::Observer(w) => w.upgrade().map(Node::Observer),
            };
            if let Some(node) = node {
                Quorum { node }.shutdown().await;
            }
        });
    }

    fn voter(&self) -> Option<&Arc<Inner>> {
        match &self.node {
            Node::Voter(inner) => Some(inner),
            Node::Observer(_) => None,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        match &self.node {
            Node::Voter(inner) => inner.node_id,
            Node::Observer(o) => o.node_id,
        }
    }

    /// Whether this node is a voter (a controller) rather than an observer.
    pub fn is_voter(&self) -> bool {
        self.voter().is_some()
    }

    /// The metadata image as of the last applied entry.
    pub fn image(&self) -> Arc<MetadataImage> {
        match &self.node {
            Node::Voter(inner) => inner.sm.image(),
            Node::Observer(o) => o.image.borrow().clone(),
        }
    }

    /// Every image the state machine publishes from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        match &self.node {
            Node::Voter(inner) => inner.sm.subscribe(),
            Node::Observer(o) => o.image.subscribe(),
        }
    }

    /// The node that this node believes is the active controller.
    pub fn leader_id(&self) -> Option<i32> {
        match &self.node {
            Node::Voter(inner) => inner.leader_id(),
            Node::Observer(o) => *o.leader.borrow(),
        }
    }

    /// What the active controller knows of the metadata log's voters (Kafka's DescribeQuorum);
    /// `None` on any other node. Log positions are openraft indexes.
    pub fn raft_status(&self) -> Option<RaftStatus> {
        let inner = self.voter()?;
        if !inner.is_leader() {
            return None;
        }
        let m = inner.raft.metrics();
        let m = m.borrow();
        let voters: Vec<i32> = m
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| id as i32)
            .collect();
        let matched = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|(id, log)| (*id as i32, log.map(|l| l.index)))
                    .collect()
            })
            .unwrap_or_default();
        Some(RaftStatus {
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed: m.last_applied.map(|l| l.index),
            matched,
            voters,
        })
    }

    /// Whether this node is the active controller.
    pub fn is_leader(&self) -> bool {
        self.voter().is_some_and(|inner| inner.is_leader())
    }

    fn applied_watch(&self) -> watch::Receiver<Option<u64>> {
        match &self.node {
            Node::Voter(inner) => inner.sm.applied_index(),
            Node::Observer(o) => o.applied.subscribe(),
        }
    }

    /// The index of the last metadata log entry applied to this node's image (0: none).
    pub fn applied_index(&self) -> u64 {
        self.applied_watch().borrow().unwrap_or(0)
    }

    /// Waits until this node's image has applied entry `index` (or `timeout` passes): after a
    /// forwarded change, the next request on this node sees it.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) {
        let mut applied = self.applied_watch();
        let _ = tokio::time::timeout(timeout, applied.wait_for(|i| i.is_some_and(|i| i >= index)))
            .await;
    }

    /// Waits until some node is known to lead; `None` when none is within `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<i32> {
        match &self.node {
            Node::Voter(inner) => {
                let m = inner
                    .raft
                    .wait(Some(timeout))
                    .metrics(|m| m.current_leader.is_some(), "a leader")
                    .await
                    .ok()?;
                m.current_leader.map(|id| id as i32)
            }
            Node::Observer(o) => {
                let mut leader = o.leader.subscribe();
                let found = tokio::time::timeout(timeout, leader.wait_for(|l| l.is_some()))
                    .await
                    .ok()?
                    .ok()?;
                *found
            }
        }
    }

    /// Asks the state machine for a snapshot now (otherwise one is taken every
    /// [`SNAPSHOT_EVERY`] entries). Nothing to do on an observer.
    pub async fn trigger_snapshot(&self) -> Result<(), QuorumError> {
        match self.voter() {
            Some(inner) => inner.raft.trigger().snapshot().await.map_err(stopped),
            None => Ok(()),
        }
    }

    /// Runs a controller operation on the active controller: `op` sees an image holding every
    /// committed entry, and the records it returns are committed by the quorum and applied here
    /// before this returns. Operations are serialized. `Ok(Err(e))` is `op`'s own refusal.
    ///
    /// A [`QuorumError::Timeout`] leaves the records' fate open: they may still commit.
    pub async fn commit<T, E>(
        &self,
        op: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), E>,
    ) -> Result<Result<T, E>, QuorumError> {
        let Some(inner) = self.voter() else {
            return Err(QuorumError::NotLeader {
                leader: self.leader_id(),
            });
        };
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let _guard = inner.commit_lock.lock().await;
        let read = tokio::time::timeout_at(deadline, inner.raft.ensure_linearizable())
            .await
            .map_err(|_| QuorumError::Timeout)?;
        match read {
            Ok(_) => {}
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                return Err(QuorumError::NotLeader {
                    leader: f.leader_id.map(|id| id as i32),
                })
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                return Err(QuorumError::NoQuorum(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => return Err(stopped(e)),
        }
        let image = self.image();
        let (records, out) = match op(&image) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        if records.is_empty() {
            return Ok(Ok(out));
        }
        let write =
            tokio::time::timeout_at(deadline, inner.raft.client_write(RecordBatch(records)))
                .await
                .map_err(|_| QuorumError::Timeout)?;
        let index = match write {
            Ok(resp) => resp.log_id.index,
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                return Err(QuorumError::NotLeader {
                    leader: f.leader_id.map(|id| id as i32),
                })
            }
            Err(RaftError::APIError(e)) => return Err(stopped(e)),
            Err(RaftError::Fatal(e)) => return Err(stopped(e)),
        };
        // openraft answers after applying; waiting on the published index makes "the image
        // reflects the records" this function's own guarantee.
        let mut applied = inner.sm.applied_index();
        tokio::time::timeout_at(
            deadline,
            applied.wait_for(|i| i.is_some_and(|i| i >= index)),
        )
        .await
        .map_err(|_| QuorumError::Timeout)?
        .map_err(stopped)?;
        Ok(Ok(out))
    }

    /// Sends an opaque request to the active controller's forward callback and returns its
    /// answer, following leadership changes until a deadline ([`QuorumError::Timeout`]). On the
    /// leader itself the callback runs locally.
    ///
    /// A request whose connection broke after it reached the leader is sent again, so the
    /// callback may see it twice.
    pub async fn forward(&self, payload: Vec<u8>) -> Result<Vec<u8>, QuorumError> {
        let inner = match &self.node {
            Node::Voter(inner) => inner,
            Node::Observer(o) => return forward_from_observer(o, payload).await,
        };
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let mut metrics = inner.raft.metrics();
        let mut conns: BTreeMap<i32, PeerConn> = BTreeMap::new();
        loop {
            let leader = metrics
                .borrow_and_update()
                .current_leader
                .map(|id| id as i32);
            let now = Instant::now();
            if now >= deadline {
                return Err(QuorumError::Timeout);
            }
            let Some(leader) = leader else {
                // No leader known: wait for the metrics to name one.
                let _ = tokio::time::timeout_at(deadline, metrics.changed()).await;
                continue;
            };
            if leader == inner.node_id && self.is_leader() {
                return Ok((inner.forward)(payload).await);
            }
            if let Some(addr) = inner.voters.get(&leader) {
                let conn = conns
                    .entry(leader)
                    .or_insert_with(|| PeerConn::new(addr.clone()));
                let request = ControllerRpc::Forward(payload.clone());
                // A leader that froze or died holds the call until the deadline: as soon as the
                // quorum names another, ask that one instead (the abandoned connection goes).
                let reply = tokio::select! {
                    r = conn.call(&request, deadline - now) => r,
                    _ = metrics.wait_for(|m| m.current_leader != Some(leader as NodeId)) => {
                        tracing::debug!(leader, "forward: the leader changed meanwhile, retrying");
                        continue;
                    }
                };
                match reply {
                    Ok(ControllerReply::Forward(ForwardReply::Answer(answer))) => {
                        return Ok(answer)
                    }
                    Ok(ControllerReply::Forward(ForwardReply::NotLeader { leader: hint })) => {
                        tracing::debug!(asked = leader, ?hint, "forward: not the leader, retrying");
                    }
                    Ok(_) => tracing::warn!(leader, "forward: wrong reply kind, retrying"),
                    Err(e) => tracing::debug!(leader, error = %e, "forward failed, retrying"),
                }
            } else {
                tracing::warn!(leader, "forward: the leader is not a configured voter");
            }
            tokio::time::sleep(
                RETRY_BACKOFF.min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
    }

    /// Stops the Raft node and the controller listener (its port is free once this returns), or
    /// an observer's polling.
    pub async fn shutdown(&self) {
        let (stop, task) = match &self.node {
            Node::Voter(inner) => {
                if let Err(e) = inner.raft.shutdown().await {
                    tracing::warn!(error = %e, "metadata quorum: raft did not stop cleanly");
                }
                (&inner.stop, &inner.server)
            }
            Node::Observer(o) => (&o.stop, &o.task),
        };
        stop.send_replace(true);
        let task = task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

enum WeakNode {
    Voter(Weak<Inner>),
    Observer(Weak<Observer>),
}

/// [`Quorum::forward`] from an observer: to the leader the voters named, else to each voter in
/// turn, following their hints.
async fn forward_from_observer(o: &Observer, payload: Vec<u8>) -> Result<Vec<u8>, QuorumError> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut conns: BTreeMap<i32, PeerConn> = BTreeMap::new();
    let mut hint = *o.leader.borrow();
    let mut next = 0usize;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(QuorumError::Timeout);
        }
        let Some((target, addr)) = o.target(hint, next) else {
            return Err(QuorumError::Config("no controller.quorum.voters".into()));
        };
        let conn = conns.entry(target).or_insert_with(|| PeerConn::new(addr));
        let request = ControllerRpc::Forward(payload.clone());
        let mut leader = o.leader.subscribe();
        // As for a voter: stop waiting on a controller the voters no longer name.
        let reply = tokio::select! {
            r = conn.call(&request, deadline - now) => r,
            changed = leader.wait_for(|l| l.is_some_and(|l| l != target)) => {
                tracing::debug!(target, "forward: the leader changed meanwhile, retrying");
                hint = changed.ok().and_then(|l| *l);
                continue;
            }
        };
        match reply {
            Ok(ControllerReply::Forward(ForwardReply::Answer(answer))) => return Ok(answer),
            Ok(ControllerReply::Forward(ForwardReply::NotLeader { leader })) => {
                tracing::debug!(asked = target, ?leader, "forward: not the leader, retrying");
                hint = leader.filter(|l| *l != target);
                if hint.is_none() {
                    next += 1;
                }
            }
            Ok(_) => {
                tracing::warn!(voter = target, "forward: wrong reply kind, retrying");
                hint = None;
                next += 1;
            }
            Err(e) => {
                tracing::debug!(voter = target, error = %e, "forward failed, retrying");
                hint = None;
                next += 1;
            }
        }
        tokio::time::sleep(RETRY_BACKOFF.min(deadline.saturating_duration_since(Instant::now())))
            .await;
    }
}

#[cfg(test)]
mod tests;
