//! The network server: accepts connections, reads whole frames, answers requests in order.
//!
//! Modelled on mini-redis's `server.rs`: the server is handed its listener and a shutdown signal;
//! connections are capped by a semaphore; each connection is one task that owns its socket, so a
//! client that vanishes takes nothing with it. Requests on one connection are answered strictly in
//! order, as Kafka guarantees.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::frame::{take_frame, FrameError};
use brook_protocol::kafka::messages::{ApiKey, ResponseKind};
use brook_protocol::outgoing::{encode_response_frame, OutgoingFrame};
use brook_protocol::request::{decode_request, encode_response, DecodeError};
use brook_protocol::ResponseError;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::config::{BrokerConfig, Listener};
use crate::handlers;
use crate::state::{Broker, StartError};

/// A broker with its listener bound but not yet serving.
pub struct BoundServer {
    pub broker: Arc<Broker>,
    /// The client listener; `None` on a dedicated controller (`process.roles=controller`).
    listener: Option<TcpListener>,
    /// Where the client listener (a dedicated controller: the controller listener) is bound.
    local: SocketAddr,
    /// Cluster mode: this node's controller role.
    controller: Option<Arc<crate::cluster::ControllerService>>,
    /// Stops the quorum's tasks once the broker is down.
    quorum_stop: Option<watch::Sender<bool>>,
}

impl BoundServer {
    /// Binds the client listener (port 0 picks a free port), then opens the broker's data with the
    /// advertised address resolved to the bound port.
    pub async fn bind(config: BrokerConfig) -> Result<BoundServer, BindError> {
        if config.cluster.enabled() && !config.cluster.process_roles.broker {
            return Self::bind_controller(config).await;
        }
        let l = config.client_listener().clone();
        let host = if l.host.is_empty() {
            "0.0.0.0".to_string()
        } else {
            l.host.clone()
        };
        let listener = TcpListener::bind((host.as_str(), l.port))
            .await
            .map_err(|e| BindError::Bind(format!("{}://{}:{}", l.name, l.host, l.port), e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| BindError::Bind(l.host.clone(), e))?;
        let mut advertised = config
            .advertised_listeners
            .iter()
            .find(|a| a.name == l.name)
            .cloned()
            .unwrap_or_else(|| l.clone());
        if advertised.port == 0 {
            advertised.port = bound.port();
        }
        if advertised.host.is_empty() || advertised.host == "0.0.0.0" {
            advertised.host = bound.ip().to_string();
            if bound.ip().is_unspecified() {
                advertised.host = "localhost".into();
            }
        }
        if !config.cluster.enabled() {
            let broker = tokio::task::block_in_place(|| Broker::open(config, advertised))
                .map_err(BindError::Start)?;
            return Ok(BoundServer {
                broker,
                listener: Some(listener),
                local: bound,
                controller: None,
                quorum_stop: None,
            });
        }
        let (quorum, controller, quorum_stop, _) = start_quorum(&config).await?;
        let broker =
            tokio::task::block_in_place(|| Broker::open_with(config, advertised, Some(quorum)))
                .map_err(BindError::Start)?;
        Ok(BoundServer {
            broker,
            listener: Some(listener),
            local: bound,
            controller,
            quorum_stop: Some(quorum_stop),
        })
    }

    /// A dedicated controller: the quorum and the controller, no client listener, and never a
    /// registered broker.
    async fn bind_controller(config: BrokerConfig) -> Result<BoundServer, BindError> {
        let (quorum, controller, quorum_stop, bound) = start_quorum(&config).await?;
        let bound = bound.ok_or_else(|| BindError::Quorum("no controller listener".into()))?;
        let mut advertised = config
            .cluster
            .controller_listener
            .clone()
            .ok_or_else(|| BindError::Quorum("no controller listener".into()))?;
        advertised.port = bound.port();
        if advertised.host.is_empty() || advertised.host == "0.0.0.0" {
            advertised.host = bound.ip().to_string();
        }
        let broker =
            tokio::task::block_in_place(|| Broker::open_with(config, advertised, Some(quorum)))
                .map_err(BindError::Start)?;
        Ok(BoundServer {
            broker,
            listener: None,
            local: bound,
            controller,
            quorum_stop: Some(quorum_stop),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }

    pub fn advertised(&self) -> &Listener {
        &self.broker.advertised
    }
}

/// Binds the controller listener and joins the metadata quorum, with this node's controller
/// service answering what brokers forward to the active controller.
async fn start_quorum(
    config: &BrokerConfig,
) -> Result<
    (
        crate::quorum::Quorum,
        Option<Arc<crate::cluster::ControllerService>>,
        watch::Sender<bool>,
        Option<SocketAddr>,
    ),
    BindError,
> {
    let settings = &config.cluster;
    let voters: Vec<_> = settings
        .voters
        .iter()
        .map(|v| (v.id, v.host.clone(), v.port))
        .collect();
    if !settings.process_roles.controller {
        // A broker-only node observes the quorum: no controller listener, no controller.
        let (stop_tx, stop_rx) = watch::channel(false);
        let quorum = crate::quorum::Quorum::observe(config.node_id, voters, stop_rx)
            .map_err(|e| BindError::Quorum(e.to_string()))?;
        return Ok((quorum, None, stop_tx, None));
    }
    let l = settings.controller_listener.clone().ok_or_else(|| {
        BindError::Quorum("a controller needs a listener named in controller.listener.names".into())
    })?;
    let host = if l.host.is_empty() {
        "0.0.0.0"
    } else {
        l.host.as_str()
    };
    let listener = TcpListener::bind((host, l.port))
        .await
        .map_err(|e| BindError::Bind(format!("{}://{}:{}", l.name, l.host, l.port), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| BindError::Bind(l.host.clone(), e))?;
    // The forward callback needs the service, and the service needs the started quorum.
    let service: Arc<std::sync::OnceLock<Arc<crate::cluster::ControllerService>>> =
        Arc::new(std::sync::OnceLock::new());
    let cell = service.clone();
    let forward: crate::quorum::ForwardFn = Arc::new(move |payload: Vec<u8>| {
        let service = cell.get().cloned();
        Box::pin(async move {
            match service {
                Some(s) => s.handle_bytes(payload).await,
                None => serde_json::to_vec(&crate::cluster::ControllerResponse::Unavailable(
                    "the controller is starting".into(),
                ))
                .unwrap_or_default(),
            }
        })
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let quorum = crate::quorum::Quorum::start(
        config.node_id,
        voters,
        &config.log_dir.join("__cluster_metadata-0"),
        listener,
        crate::quorum::QuorumSettings {
            election_timeout_ms: settings.election_timeout_ms,
            heartbeat_interval_ms: (settings.election_timeout_ms / 10).clamp(20, 500),
        },
        forward,
        stop_rx,
    )
    .await
    .map_err(|e| BindError::Quorum(e.to_string()))?;
    let unclean = config
        .topic_defaults
        .get("unclean.leader.election.enable")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let controller =
        crate::cluster::ControllerService::new(quorum.clone(), settings.clone(), unclean);
    let _ = service.set(controller.clone());
    Ok((quorum, Some(controller), stop_tx, Some(bound)))
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error(transparent)]
    Start(StartError),
    #[error("cannot join the controller quorum: {0}")]
    Quorum(String),
}

/// Serves until `shutdown` completes, then stops accepting, lets connections finish their current
/// request, and closes every log cleanly.
pub async fn run(server: BoundServer, shutdown: impl Future<Output = ()>) {
    let BoundServer {
        broker,
        listener,
        controller,
        quorum_stop,
        ..
    } = server;
    // A dedicated controller is no broker: it neither registers nor hosts partitions.
    let is_broker = broker.quorum.is_none() || broker.config.cluster.process_roles.broker;
    let limit = Arc::new(Semaphore::new(
        broker.config.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);

    let maintenance = every(
        &broker,
        broker.config.log_retention_check_interval_ms,
        &stop_rx,
        Broker::run_maintenance,
    );
    let hw_checkpoint = every(
        &broker,
        broker.config.replica_high_watermark_checkpoint_interval_ms,
        &stop_rx,
        Broker::checkpoint_high_watermarks,
    );

    // Segments sealed by a roll are fsynced here, off the produce and replication paths.
    let flusher = {
        let broker = broker.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = broker.flush_wanted.notified() => {
                        let b = broker.clone();
                        let _ = tokio::task::spawn_blocking(move || b.flush_rolled_segments()).await;
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };

    let group_timers = crate::groups::spawn_timers(broker.clone(), stop_rx.clone());

    let mut cluster_tasks = Vec::new();
    if let Some(quorum) = broker.quorum.clone() {
        if let Some(controller) = controller {
            cluster_tasks.push(tokio::spawn(controller.run(stop_rx.clone())));
        }
        if is_broker {
            cluster_tasks.extend(crate::cluster::spawn_broker_tasks(
                broker.clone(),
                quorum,
                stop_rx.clone(),
            ));
        }
    }

    // Kafka's isr-expiration task: every replica.lag.time.max.ms / 2.
    let isr_check = {
        let broker = broker.clone();
        let mut stop = stop_rx.clone();
        let every =
            Duration::from_millis((broker.config.cluster.replica_lag_time_max_ms / 2).max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => broker.maybe_shrink_isr(crate::state::now_ms()),
                    _ = stop.changed() => break,
                }
            }
        })
    };

    let accept = async {
        let Some(listener) = listener else {
            // A dedicated controller serves only its controller listener (the quorum's).
            return std::future::pending::<()>().await;
        };
        loop {
            let permit = match limit.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return,
            };
            let (socket, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let broker = broker.clone();
            let stop = stop_rx.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_connection(&broker, socket, peer, stop).await {
                    tracing::debug!(%peer, error = %e, "connection closed");
                }
                drop(permit);
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
    tracing::info!("shutting down");
    if let (Some(quorum), true) = (&broker.quorum, is_broker) {
        // Kafka's controlled shutdown: leadership moves before this broker stops serving.
        crate::cluster::controlled_shutdown(&broker, quorum).await;
    }
    let _ = stop_tx.send(true);
    limit.close();
    let _ = maintenance.await;
    let _ = hw_checkpoint.await;
    let _ = flusher.await;
    let _ = group_timers.await;
    let _ = isr_check.await;
    for t in cluster_tasks {
        let _ = t.await;
    }
    broker.stop_fetchers().await;
    // Give in-flight requests a moment to finish before the logs are closed under them.
    let all = broker.config.max_connections.min(Semaphore::MAX_PERMITS) as u32;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        // Closed semaphores refuse new permits, so wait by polling the available count.
        while limit.available_permits() < all as usize {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::task::block_in_place(|| broker.shutdown());
    if let Some(quorum) = &broker.quorum {
        quorum.shutdown().await;
    }
    if let Some(stop) = quorum_stop {
        let _ = stop.send(true);
    }
}

/// Runs blocking broker work every `period_ms` (the first time one period after the start) on the
/// blocking pool, until `stop` changes.
fn every(
    broker: &Arc<Broker>,
    period_ms: u64,
    stop: &watch::Receiver<bool>,
    work: fn(&Broker),
) -> tokio::task::JoinHandle<()> {
    let broker = broker.clone();
    let mut stop = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(period_ms));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let b = broker.clone();
                    let _ = tokio::task::spawn_blocking(move || work(&b)).await;
                }
                _ = stop.changed() => break,
            }
        }
    })
}

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("cannot encode response: {0}")]
    Encode(String),
}

/// How many answered-later requests (acks=all produces) a connection may have waiting at once;
/// beyond that the connection stops reading until the oldest is answered. librdkafka and the
/// Java producer send at most 5 at a time.
const MAX_PENDING_RESPONSES: usize = 16;

/// A response on its way out: encoded now, or once its request completes.
type PendingResponse = Pin<Box<dyn Future<Output = Result<OutgoingFrame, ConnError>> + Send>>;

/// Serves one connection: a reader that takes whole frames, runs each request in order and queues
/// its answer, and a writer that sends the answers strictly in request order. A Produce waiting
/// for its ISR (acks=all) does not stop the reader from appending the next request on the same
/// connection; only the answers wait, in order, as Kafka guarantees.
async fn serve_connection(
    broker: &Arc<Broker>,
    socket: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) -> Result<(), ConnError> {
    let (read_half, mut write_half) = socket.into_split();
    let (tx, mut rx) = mpsc::channel::<PendingResponse>(MAX_PENDING_RESPONSES);
    let reader = read_requests(broker, read_half, peer, stop, tx);
    let writer = async move {
        while let Some(pending) = rx.recv().await {
            let mut frame = pending.await?;
            // Vectored writes: a Fetch response's record sets go out from the log's buffers.
            write_half.write_all_buf(&mut frame).await?;
        }
        Ok::<(), ConnError>(())
    };
    // The writer ends when the reader is done and every queued answer is sent, or at the first
    // write error (then the reader's next send fails and it ends too).
    let (read, written) = tokio::join!(reader, writer);
    read.and(written)
}

fn ready(frame: OutgoingFrame) -> PendingResponse {
    Box::pin(std::future::ready(Ok(frame)))
}

async fn read_requests(
    broker: &Arc<Broker>,
    mut socket: tokio::net::tcp::OwnedReadHalf,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    tx: mpsc::Sender<PendingResponse>,
) -> Result<(), ConnError> {
    let max = broker.config.socket_request_max_bytes;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let frame = loop {
            if let Some(frame) = take_frame(&mut buf, max)? {
                break frame;
            }
            tokio::select! {
                n = socket.read_buf(&mut buf) => {
                    if n? == 0 {
                        return Ok(());
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        };
        let request = match decode_request(frame.freeze()) {
            Ok(r) => r,
            Err(DecodeError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                // KIP-511: answer with a v0 error response listing what we support, so the client
                // can pick a version.
                let body = ResponseKind::ApiVersions(handlers::api_versions(Some(
                    ResponseError::UnsupportedVersion,
                )));
                let bytes = encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)
                    .map_err(|e| ConnError::Encode(e.to_string()))?;
                if tx.send(ready(bytes.into())).await.is_err() {
                    return Ok(());
                }
                continue;
            }
            Err(e) => {
                tracing::info!(error = %e, "closing connection after bad request");
                return Err(e.into());
            }
        };
        let api_key = request.api_key;
        let version = request.version();
        let correlation_id = request.correlation_id();
        let encode = move |response: &ResponseKind| {
            encode_response_frame(api_key, version, correlation_id, response)
                .map_err(|e| ConnError::Encode(format!("{api_key:?} v{version}: {e}")))
        };
        let pending: PendingResponse = match handlers::handle(broker, request, peer).await {
            handlers::Reply::Send(r) => ready(encode(&r)?),
            handlers::Reply::Later(done) => Box::pin(async move { encode(&done.await) }),
            handlers::Reply::Nothing => continue,
            handlers::Reply::Close => return Ok(()),
        };
        if tx.send(pending).await.is_err() {
            // The writer stopped (the client went away).
            return Ok(());
        }
    }
}
