//! The consumer group protocol of KIP-848 (`group.protocol=consumer`): membership by
//! ConsumerGroupHeartbeat alone. The coordinator computes the assignment; a background task
//! heartbeats (joining with epoch 0, then at the interval the coordinator asks for) and hands each
//! assignment it receives to `poll`, which reconciles it (revoking and assigning through the
//! rebalance listener) and records what the member owns; the next heartbeat, sent at once,
//! acknowledges that. Leaving sends epoch -1.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use brook_protocol::kafka::messages::consumer_group_heartbeat_request::TopicPartitions;
use brook_protocol::kafka::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, GroupId, RequestKind, ResponseKind, TopicName,
};
use brook_protocol::kafka::protocol::StrBytes;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::connection::Connection;
use crate::error::ClientError;

/// A partition as the coordinator names it (topic id, partition).
pub(super) type IdPartition = (Uuid, i32);

/// What the heartbeat task and `poll` share.
#[derive(Debug, Default)]
pub(super) struct State {
    pub member_id: String,
    pub epoch: i32,
    /// The subscribed topic names sent with each heartbeat.
    pub subscription: Vec<String>,
    /// The last assignment received and not yet reconciled by `poll`.
    pub received: Option<BTreeSet<IdPartition>>,
    /// What the member owns (reported in each heartbeat: the acknowledgement).
    pub owned: BTreeSet<IdPartition>,
    /// The coordinator fenced the member: `poll` must treat its partitions as lost.
    pub fenced: bool,
    /// A refusal that heartbeating cannot get past (an invalid request, a full group, ...).
    pub error: Option<(i16, Option<String>)>,
}

/// The settings a heartbeat carries.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub group_id: String,
    pub instance_id: Option<String>,
    pub rebalance_timeout: Duration,
    pub server_assignor: Option<String>,
    /// Until the coordinator names its interval.
    pub initial_interval: Duration,
}

/// A live KIP-848 membership.
pub(super) struct Membership {
    pub state: Arc<Mutex<State>>,
    pub wake: Arc<Notify>,
    pub coordinator: Arc<Connection>,
    pub settings: Settings,
    task: tokio::task::JoinHandle<()>,
}

/// Locks the shared state (it holds no invariant a panicking holder could break halfway).
pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Membership {
    /// Starts heartbeating (the first heartbeat, epoch 0, joins the group).
    pub fn start(
        coordinator: Arc<Connection>,
        settings: Settings,
        subscription: Vec<String>,
    ) -> Self {
        let state = Arc::new(Mutex::new(State {
            subscription,
            ..State::default()
        }));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(heartbeat_loop(
            coordinator.clone(),
            settings.clone(),
            state.clone(),
            wake.clone(),
        ));
        Membership {
            state,
            wake,
            coordinator,
            settings,
            task,
        }
    }

    /// Stops heartbeating and leaves the group (epoch -1).
    pub async fn leave(self) {
        self.task.abort();
        let (member_id, epoch) = {
            let s = lock(&self.state);
            (s.member_id.clone(), s.epoch)
        };
        if member_id.is_empty() || epoch <= 0 {
            return;
        }
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(
                self.settings.group_id.clone(),
            )))
            .with_member_id(StrBytes::from_string(member_id))
            .with_instance_id(self.settings.instance_id.clone().map(StrBytes::from_string))
            .with_member_epoch(-1);
        let _ = self
            .coordinator
            .send(
                RequestKind::ConsumerGroupHeartbeat(req),
                ApiKey::ConsumerGroupHeartbeat,
                0,
            )
            .await;
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn request(settings: &Settings, s: &State) -> ConsumerGroupHeartbeatRequest {
    let mut by_topic: std::collections::BTreeMap<Uuid, Vec<i32>> = Default::default();
    for (t, p) in &s.owned {
        by_topic.entry(*t).or_default().push(*p);
    }
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(settings.group_id.clone())))
        .with_member_id(StrBytes::from_string(s.member_id.clone()))
        .with_member_epoch(s.epoch)
        .with_instance_id(settings.instance_id.clone().map(StrBytes::from_string))
        .with_rebalance_timeout_ms(settings.rebalance_timeout.as_millis() as i32)
        .with_subscribed_topic_names(Some(
            s.subscription
                .iter()
                .map(|t| TopicName(StrBytes::from_string(t.clone())))
                .collect(),
        ))
        .with_server_assignor(settings.server_assignor.clone().map(StrBytes::from_string))
        .with_topic_partitions(Some(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(t)
                        .with_partitions(ps)
                })
                .collect(),
        ))
}

async fn heartbeat_loop(
    coordinator: Arc<Connection>,
    settings: Settings,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
) {
    let mut interval = settings.initial_interval;
    loop {
        let req = request(&settings, &lock(&state));
        let sent = coordinator
            .send(
                RequestKind::ConsumerGroupHeartbeat(req),
                ApiKey::ConsumerGroupHeartbeat,
                0,
            )
            .await;
        let mut again_now = false;
        match sent {
            Ok((_, ResponseKind::ConsumerGroupHeartbeat(r))) => {
                let mut s = lock(&state);
                match r.error_code {
                    0 => {
                        if let Some(id) = r.member_id {
                            s.member_id = id.to_string();
                        }
                        s.epoch = r.member_epoch;
                        if r.heartbeat_interval_ms > 0 {
                            interval = Duration::from_millis(r.heartbeat_interval_ms as u64);
                        }
                        if let Some(a) = r.assignment {
                            s.received = Some(
                                a.topic_partitions
                                    .iter()
                                    .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
                                    .collect(),
                            );
                        }
                    }
                    // UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH: the partitions are lost; rejoin
                    // at once with epoch 0 and nothing owned.
                    25 | 110 => {
                        s.fenced = true;
                        s.epoch = 0;
                        s.member_id.clear();
                        s.owned.clear();
                        s.received = None;
                        again_now = true;
                    }
                    // The coordinator is loading or moving: try again after the interval.
                    14..=16 => {}
                    code => {
                        s.error = Some((code, r.error_message.map(|m| m.to_string())));
                        return;
                    }
                }
            }
            Ok(_) => {
                lock(&state).error = Some((
                    -1,
                    Some("unexpected response to ConsumerGroupHeartbeat".into()),
                ));
                return;
            }
            // A lost connection or a timeout: the next heartbeat tries again.
            Err(_) => {}
        }
        if !again_now {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = wake.notified() => {}
            }
        }
    }
}

/// The stored refusal as a client error.
pub(super) fn error(code: i16, message: Option<String>) -> ClientError {
    ClientError::kafka(
        code,
        message.or_else(|| Some("ConsumerGroupHeartbeat".into())),
    )
}
