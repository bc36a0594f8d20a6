//! Cluster mode: how a node takes part in a KRaft-style cluster.
//!
//! A node is a combined broker and controller (`process.roles=broker,controller`, a voter of the
//! quorum), a dedicated controller (`controller`: a voter that never registers as a broker) or a
//! broker only (`broker`, an observer of the quorum). The controller quorum
//! ([`crate::quorum`], openraft) replicates the metadata log; its leader is the *active
//! controller*. This module is the glue around it:
//! - [`ControllerService`] runs on every controller and acts only while it leads: it executes the
//!   operations brokers forward to it ([`ControllerRequest`]), tracks broker heartbeats, fences
//!   brokers whose session expired (moving their partition leadership to another ISR member),
//!   moves leadership back to preferred replicas, and describes the quorum (DescribeQuorum: the
//!   voters from Raft's replication state, the observers from the metadata offsets brokers
//!   report in their heartbeats).
//! - The broker side ([`spawn_broker_tasks`]) registers this broker, heartbeats, applies every new
//!   metadata image to the hosted partitions, and forwards the ISR changes partition leaders
//!   propose (Kafka's AlterPartition).
//!
//! Operations cross the network as JSON in the quorum's transport; the decisions themselves are
//! the pure functions of `brook-metadata` (`cluster`, `heartbeat`, `ops`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_metadata::controller::ControllerError;
use brook_metadata::heartbeat::{BrokerHeartbeats, HeartbeatOutcome};
use brook_metadata::{ControllerOp, ControllerReply, MetadataImage};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::ClusterSettings;
use crate::quorum::{Quorum, QuorumError};
use crate::state::{now_ms, Broker, CommitError};

/// What a broker asks of the active controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// A metadata change (admin requests, registration, ISR changes, elections).
    Op(ControllerOp),
    /// Kafka's BrokerHeartbeat: the broker is alive (and whether it wants to shut down).
    Heartbeat {
        node_id: i32,
        broker_epoch: i64,
        want_shutdown: bool,
        /// The next metadata log offset this broker will apply (Kafka's
        /// `currentMetadataOffset`), for DescribeQuorum's observers.
        #[serde(default)]
        metadata_offset: i64,
    },
    /// Kafka's DescribeQuorum: the active controller's view of the metadata log's replicas.
    DescribeQuorum,
}

/// One replica of the metadata log, as DescribeQuorum reports it. Offsets are the next one to
/// write or apply; times are milliseconds since the epoch, -1 when unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumReplica {
    pub id: i32,
    pub log_end_offset: i64,
    pub last_fetch_ms: i64,
    pub last_caught_up_ms: i64,
}

/// The metadata log's leader and replicas (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

/// The active controller's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerResponse {
    /// The operation's outcome, and the metadata log index at which its records were applied on
    /// the controller (the caller waits for its own image to reach it: read-your-writes).
    Op {
        result: Result<ControllerReply, ControllerError>,
        applied_index: u64,
    },
    Heartbeat {
        /// The broker must register (again): unknown, or its epoch is stale.
        must_register: bool,
        fenced: bool,
    },
    Quorum(QuorumDescription),
    /// This node is not (or no longer) the active controller, or failed to commit.
    Unavailable(String),
}

/// The controller role of this node.
pub struct ControllerService {
    quorum: Quorum,
    settings: ClusterSettings,
    heartbeats: Mutex<BrokerHeartbeats>,
    /// Whether this node led at the last tick (a new leader resets every broker's session).
    was_leader: AtomicBool,
    last_rebalance_ms: AtomicI64,
    /// `unclean.leader.election.enable` of this controller, for topics without their own value.
    unclean_default: bool,
    /// Each broker's metadata offset at its last heartbeat: (offset, heartbeat time, last time
    /// it had applied everything committed), for DescribeQuorum's observers.
    metadata_offsets: Mutex<BTreeMap<i32, (i64, i64, i64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ControllerService {
    pub fn new(
        quorum: Quorum,
        settings: ClusterSettings,
        unclean_default: bool,
    ) -> Arc<ControllerService> {
        Arc::new(ControllerService {
            heartbeats: Mutex::new(BrokerHeartbeats::new(settings.broker_session_timeout_ms)),
            unclean_default,
            quorum,
            settings,
            was_leader: AtomicBool::new(false),
            last_rebalance_ms: AtomicI64::new(now_ms()),
            metadata_offsets: Mutex::new(BTreeMap::new()),
        })
    }

    /// Answers one forwarded request (JSON in, JSON out).
    pub async fn handle_bytes(&self, payload: Vec<u8>) -> Vec<u8> {
        let response = match serde_json::from_slice::<ControllerRequest>(&payload) {
            Ok(req) => self.handle(req).await,
            Err(e) => ControllerResponse::Unavailable(format!("undecodable request: {e}")),
        };
        serde_json::to_vec(&response).unwrap_or_default()
    }

    async fn handle(&self, req: ControllerRequest) -> ControllerResponse {
        match req {
            ControllerRequest::Op(op) => self.execute(op).await,
            ControllerRequest::Heartbeat {
                node_id,
                broker_epoch,
                want_shutdown,
                metadata_offset,
            } => {
                self.note_metadata_offset(node_id, metadata_offset);
                self.heartbeat(node_id, broker_epoch, want_shutdown).await
            }
            ControllerRequest::DescribeQuorum => self.describe_quorum(),
        }
    }

    fn note_metadata_offset(&self, node_id: i32, offset: i64) {
        let now = now_ms();
        let committed = self.quorum.applied_index() as i64 + 1;
        let mut offsets = lock(&self.metadata_offsets);
        let caught_up = match offsets.get(&node_id) {
            _ if offset >= committed => now,
            Some((_, _, caught_up)) => *caught_up,
            None => -1,
        };
        offsets.insert(node_id, (offset, now, caught_up));
    }

    /// DescribeQuorum on the active controller. Voters are the Raft voters: the leader, and
    /// followers by the index openraft knows matches (caught up, as of now, when it is the
    /// leader's last index; fetch times are not tracked). Observers are the other registered
    /// brokers, by the metadata offset their heartbeats report.
    fn describe_quorum(&self) -> ControllerResponse {
        let Some(status) = self.quorum.raft_status() else {
            return ControllerResponse::Unavailable("not the active controller".into());
        };
        let now = now_ms();
        let next = |index: Option<u64>| index.map_or(0, |i| i as i64 + 1);
        let leader_id = self.quorum.node_id();
        let leader_end = next(status.last_log_index);
        let voters = status
            .voters
            .iter()
            .map(|&id| {
                let end = if id == leader_id {
                    leader_end
                } else {
                    next(status.matched.get(&id).copied().flatten())
                };
                let seen = if end >= leader_end { now } else { -1 };
                QuorumReplica {
                    id,
                    log_end_offset: end,
                    last_fetch_ms: seen,
                    last_caught_up_ms: seen,
                }
            })
            .collect();
        let image = self.quorum.image();
        let offsets = lock(&self.metadata_offsets);
        let observers = image
            .brokers
            .keys()
            .filter(|id| !status.voters.contains(id))
            .map(|&id| {
                let (end, fetched, caught_up) = offsets.get(&id).copied().unwrap_or((-1, -1, -1));
                QuorumReplica {
                    id,
                    log_end_offset: end,
                    last_fetch_ms: fetched,
                    last_caught_up_ms: caught_up,
                }
            })
            .collect();
        ControllerResponse::Quorum(QuorumDescription {
            leader_id,
            leader_epoch: i32::try_from(status.term).unwrap_or(i32::MAX),
            high_watermark: next(status.committed),
            voters,
            observers,
        })
    }

    /// Runs an operation through the quorum and keeps the heartbeat manager in step with the
    /// records it committed.
    async fn commit_op(
        &self,
        op: &ControllerOp,
    ) -> Result<Result<ControllerReply, ControllerError>, QuorumError> {
        self.note_leadership();
        let result = self
            .quorum
            .commit(|image| {
                op.execute(image)
                    .map(|(records, reply)| (records.clone(), (records, reply)))
            })
            .await?;
        Ok(result.map(|(records, reply)| {
            let now = now_ms() as u64;
            let mut heartbeats = lock(&self.heartbeats);
            for r in &records {
                heartbeats.replay(r, now);
            }
            reply
        }))
    }

    async fn execute(&self, op: ControllerOp) -> ControllerResponse {
        match self.commit_op(&op).await {
            Ok(result) => ControllerResponse::Op {
                result,
                applied_index: self.quorum.applied_index(),
            },
            Err(e) => ControllerResponse::Unavailable(e.to_string()),
        }
    }

    /// On becoming the active controller, every broker gets a fresh session: this node has no
    /// record of when they last heartbeated (Kafka does the same).
    fn note_leadership(&self) {
        if !self.quorum.is_leader() {
            self.was_leader.store(false, Ordering::Release);
            return;
        }
        if !self.was_leader.swap(true, Ordering::AcqRel) {
            let now = now_ms();
            // Kafka gives every broker a whole new session here. A live broker heartbeats every
            // broker.heartbeat.interval.ms to the quorum's current leader; one whose heartbeat
            // went to the old controller gives up after two intervals and retries at once
            // (`heartbeat_loop`), so three intervals (at most the session timeout) are enough to
            // hear from it. This keeps a dead node that was also the controller from holding its
            // partitions for an election plus a full session.
            let session = self.settings.broker_session_timeout_ms;
            let grace = (3 * self.settings.broker_heartbeat_interval_ms).min(session);
            let start = (now as u64).saturating_sub(session - grace);
            lock(&self.heartbeats).reset_all(start, &self.quorum.image());
            self.last_rebalance_ms.store(now, Ordering::Release);
            tracing::info!("this node is now the active controller");
        }
    }

    async fn heartbeat(
        &self,
        node_id: i32,
        broker_epoch: i64,
        want_shutdown: bool,
    ) -> ControllerResponse {
        self.note_leadership();
        if !self.quorum.is_leader() {
            return ControllerResponse::Unavailable("not the active controller".into());
        }
        let outcome = lock(&self.heartbeats).on_heartbeat(
            node_id,
            broker_epoch,
            now_ms() as u64,
            want_shutdown,
        );
        let (op, fenced_after) = match outcome {
            HeartbeatOutcome::NotRegistered | HeartbeatOutcome::StaleBrokerEpoch => {
                return ControllerResponse::Heartbeat {
                    must_register: true,
                    fenced: true,
                }
            }
            HeartbeatOutcome::Unfence => (Some(ControllerOp::UnfenceBroker { node_id }), false),
            HeartbeatOutcome::ControlledShutdown => {
                (Some(ControllerOp::ControlledShutdown { node_id }), true)
            }
            HeartbeatOutcome::ShutdownNow => (None, true),
            HeartbeatOutcome::NoChange => (None, false),
        };
        if let Some(op) = op {
            match self.commit_op(&op).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(node_id, error = %e, "broker state change refused");
                    return ControllerResponse::Heartbeat {
                        must_register: false,
                        fenced: !fenced_after,
                    };
                }
                Err(e) => return ControllerResponse::Unavailable(e.to_string()),
            }
        }
        ControllerResponse::Heartbeat {
            must_register: false,
            fenced: fenced_after,
        }
    }

    /// The controller's clock: fences brokers whose session expired and rebalances leadership.
    /// Runs on every controller; does nothing unless this node is the active controller.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let tick = Duration::from_millis((self.settings.broker_heartbeat_interval_ms / 2).max(50));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => return,
            }
            self.note_leadership();
            if !self.quorum.is_leader() {
                continue;
            }
            let now = now_ms();
            let expired = lock(&self.heartbeats).expired(now as u64);
            for node_id in expired {
                tracing::warn!(node_id, "broker session expired: fencing it");
                let op = ControllerOp::FenceBroker {
                    node_id,
                    unclean_default: self.unclean_default,
                };
                match self.commit_op(&op).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(node_id, error = %e, "could not fence broker"),
                    Err(e) => tracing::warn!(node_id, error = %e, "could not fence broker"),
                }
            }
            let interval = self.settings.leader_imbalance_check_interval_ms as i64;
            if self.settings.auto_leader_rebalance_enable
                && now - self.last_rebalance_ms.load(Ordering::Acquire) >= interval
            {
                self.last_rebalance_ms.store(now, Ordering::Release);
                let op = ControllerOp::AutoRebalance {
                    imbalance_percentage: self.settings.leader_imbalance_per_broker_percentage,
                };
                if let Err(e) = self.commit_op(&op).await {
                    tracing::warn!(error = %e, "automatic leader rebalance failed");
                }
            }
        }
    }
}

/// Sends a request to the active controller (wherever it is) and decodes the answer, retrying
/// while the quorum has no leader, up to `timeout`.
pub async fn call_controller(
    quorum: &Quorum,
    req: &ControllerRequest,
    timeout: Duration,
) -> Result<ControllerResponse, String> {
    let payload = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // The timeout bounds each attempt too: a heartbeat must not outlive its interval waiting
        // on a controller that froze.
        let attempt = tokio::time::timeout_at(deadline, quorum.forward(payload.clone())).await;
        let Ok(forwarded) = attempt else {
            return Err("the active controller did not answer in time".to_string());
        };
        let last = match forwarded {
            Ok(bytes) => match serde_json::from_slice::<ControllerResponse>(&bytes) {
                Ok(ControllerResponse::Unavailable(reason)) => reason,
                Ok(resp) => return Ok(resp),
                Err(e) => format!("undecodable controller response: {e}"),
            },
            Err(QuorumError::Timeout) => "no active controller".to_string(),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the active controller did not answer in time: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Forwards a metadata change to the active controller and waits until this node's image shows
/// it, so the next request on this broker sees its own change.
pub async fn submit(quorum: &Quorum, op: ControllerOp) -> Result<ControllerReply, CommitError> {
    let resp = call_controller(quorum, &ControllerRequest::Op(op), Duration::from_secs(15))
        .await
        .map_err(CommitError::Unavailable)?;
    match resp {
        ControllerResponse::Op {
            result,
            applied_index,
        } => {
            let reply = result?;
            quorum
                .wait_applied(applied_index, Duration::from_secs(5))
                .await;
            Ok(reply)
        }
        other => Err(CommitError::Unavailable(format!(
            "unexpected controller response {other:?}"
        ))),
    }
}

/// Starts the broker side of cluster mode: image application, registration and heartbeats, and
/// the forwarding of ISR changes.
pub fn spawn_broker_tasks(
    broker: Arc<Broker>,
    quorum: Quorum,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(apply_images(broker.clone(), quorum.clone(), stop.clone())),
        tokio::spawn(heartbeat_loop(broker.clone(), quorum.clone(), stop.clone())),
        tokio::spawn(forward_isr_changes(broker, quorum, stop)),
    ]
}

async fn apply_images(broker: Arc<Broker>, quorum: Quorum, mut stop: watch::Receiver<bool>) {
    let mut images = quorum.subscribe();
    loop {
        let image: Arc<MetadataImage> = images.borrow_and_update().clone();
        let b = broker.clone();
        // Opening and truncating logs is blocking I/O.
        let _ = tokio::task::spawn_blocking(move || b.install_image(image)).await;
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// How soon a failed heartbeat is retried. `call_controller` already retries every 50 ms
/// within its deadline, so this only bounds a loop over fast failures.
const RETRY_FAILED_HEARTBEAT: Duration = Duration::from_millis(50);

async fn heartbeat_loop(broker: Arc<Broker>, quorum: Quorum, mut stop: watch::Receiver<bool>) {
    let settings = &broker.config.cluster;
    let interval = Duration::from_millis(settings.broker_heartbeat_interval_ms);
    let mut epoch: Option<i64> = None;
    let mut fenced = true;
    loop {
        // A heartbeat that failed (most often: it went to a controller that froze or died, and
        // timed out after two intervals) is retried at once, so that a newly elected controller
        // hears from this broker within its three-interval grace (see `note_leadership`).
        let mut next = interval;
        match epoch {
            None => {
                let op = ControllerOp::RegisterBroker {
                    node_id: broker.config.node_id,
                    host: broker.advertised.host.clone(),
                    port: broker.advertised.port as i32,
                    rack: broker.config.rack.clone(),
                };
                match submit(&quorum, op).await {
                    Ok(ControllerReply::Registered { broker_epoch }) => {
                        tracing::info!(broker_epoch, "registered with the controller");
                        epoch = Some(broker_epoch);
                        continue;
                    }
                    Ok(other) => tracing::error!(reply = ?other, "unexpected registration reply"),
                    Err(e) => tracing::info!(error = %e, "registration failed; retrying"),
                }
            }
            Some(broker_epoch) => {
                let req = ControllerRequest::Heartbeat {
                    node_id: broker.config.node_id,
                    broker_epoch,
                    want_shutdown: false,
                    metadata_offset: quorum.applied_index() as i64 + 1,
                };
                match call_controller(&quorum, &req, interval * 2).await {
                    Ok(ControllerResponse::Heartbeat {
                        must_register,
                        fenced: now_fenced,
                    }) => {
                        if must_register {
                            epoch = None;
                            continue;
                        }
                        if now_fenced != fenced {
                            tracing::info!(fenced = now_fenced, "broker state changed");
                            fenced = now_fenced;
                        }
                    }
                    Ok(other) => tracing::error!(reply = ?other, "unexpected heartbeat reply"),
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat failed");
                        next = RETRY_FAILED_HEARTBEAT;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Kafka's controlled shutdown: asks the controller to move this broker's leaderships away
/// before it stops, so clients fail over without waiting for the session to expire.
pub async fn controlled_shutdown(broker: &Broker, quorum: &Quorum) {
    let image = quorum.image();
    let Some(me) = image.brokers.get(&broker.config.node_id) else {
        return;
    };
    let req = ControllerRequest::Heartbeat {
        node_id: broker.config.node_id,
        broker_epoch: me.epoch,
        want_shutdown: true,
        metadata_offset: quorum.applied_index() as i64 + 1,
    };
    // Bounded (call_controller's timeout covers the whole call): when the whole cluster stops
    // together there may be no controller left to ask.
    match call_controller(quorum, &req, Duration::from_secs(3)).await {
        Ok(_) => tracing::info!("controlled shutdown: leadership moved away"),
        Err(e) => tracing::warn!(error = %e, "controlled shutdown failed; stopping anyway"),
    }
}

async fn forward_isr_changes(broker: Arc<Broker>, quorum: Quorum, mut stop: watch::Receiver<bool>) {
    let Some(mut changes) = broker.take_isr_changes() else {
        return;
    };
    loop {
        let change = tokio::select! {
            c = changes.recv() => match c { Some(c) => c, None => return },
            _ = stop.changed() => return,
        };
        let image = quorum.image();
        let broker_epoch = image
            .brokers
            .get(&broker.config.node_id)
            .map(|b| b.epoch)
            .unwrap_or(-1);
        let op = ControllerOp::AlterPartition(brook_metadata::cluster::AlterPartitionRequest {
            broker_id: broker.config.node_id,
            broker_epoch,
            topic_id: change.topic_id,
            partition: change.partition,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            new_isr: change.new_isr.clone(),
        });
        match submit(&quorum, op).await {
            Ok(_) => {
                tracing::info!(partition = change.partition, isr = ?change.new_isr, "ISR changed")
            }
            // The leader proposes again at its next check if it still wants the change.
            Err(e) => {
                tracing::info!(partition = change.partition, error = %e, "ISR change refused")
            }
        }
    }
}
