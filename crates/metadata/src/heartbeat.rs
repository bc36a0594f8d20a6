//! Broker sessions on the active controller (Kafka's `BrokerHeartbeatManager`).
//!
//! A broker that stops heartbeating must stop leading partitions, or producers and consumers
//! hang on it; but liveness is a judgement only the active controller can make, from the
//! heartbeats it receives, and it must not live in the replicated log (a heartbeat every couple
//! of seconds per broker would flood it). So sessions are soft state here, beside the image:
//! the image says who is registered and fenced (durable, agreed), this says when each broker was
//! last heard from (local, rebuilt by [`BrokerHeartbeats::reset_all`] on every controller
//! failover, which gives every broker a full new session rather than fencing the whole cluster
//! because the new controller never heard from anyone). It is a sans-io state machine: time is
//! always an argument, so the session rules are tested by driving time, not by sleeping, and the
//! decisions it returns are carried out by the caller with the [`crate::cluster`] functions.

use std::collections::BTreeMap;

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// What the controller should do about one heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// The broker is not registered (BROKER_ID_NOT_REGISTERED, 102): it must register.
    NotRegistered,
    /// The broker quotes another registration's epoch (STALE_BROKER_EPOCH, 77): it must
    /// re-register. The heartbeat does not count toward the current registration's session.
    StaleBrokerEpoch,
    /// The broker is fenced and wants to serve: unfence it ([`crate::cluster::unfence_broker`])
    /// once its metadata offset has reached its registration record (Kafka's caught-up check;
    /// the log offsets are the caller's).
    Unfence,
    /// The broker is live and wants to stop: move its leaderships away
    /// ([`crate::cluster::begin_controlled_shutdown`]) and tell it to wait.
    ControlledShutdown,
    /// The broker wants to stop and is already fenced: tell it to shut down now.
    ShutdownNow,
    /// The broker is live and stays so.
    NoChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Session {
    epoch: i64,
    fenced: bool,
    last_contact_ms: u64,
}

/// The active controller's view of broker sessions.
#[derive(Debug, Clone)]
pub struct BrokerHeartbeats {
    session_timeout_ms: u64,
    sessions: BTreeMap<i32, Session>,
}

impl BrokerHeartbeats {
    /// No sessions yet; call [`BrokerHeartbeats::reset_all`] when becoming the active controller.
    pub fn new(session_timeout_ms: u64) -> BrokerHeartbeats {
        BrokerHeartbeats {
            session_timeout_ms,
            sessions: BTreeMap::new(),
        }
    }

    pub fn session_timeout_ms(&self) -> u64 {
        self.session_timeout_ms
    }

    /// When the broker was last heard from (under its current registration).
    pub fn last_contact_ms(&self, node_id: i32) -> Option<u64> {
        self.sessions.get(&node_id).map(|s| s.last_contact_ms)
    }

    /// A newly elected controller: every registered broker gets a fresh session starting now,
    /// with the registration epoch and fencing the image records.
    pub fn reset_all(&mut self, now_ms: u64, image: &MetadataImage) {
        self.sessions = image
            .brokers
            .values()
            .map(|b| {
                (
                    b.node_id,
                    Session {
                        epoch: b.epoch,
                        fenced: b.fenced,
                        last_contact_ms: now_ms,
                    },
                )
            })
            .collect();
    }

    /// Follows a record the image applied, so registrations and fencing stay in step with it
    /// (Kafka's controller updates its heartbeat manager on replay the same way). A registration
    /// starts a new session; an unfence counts as contact (it answers a heartbeat).
    pub fn replay(&mut self, record: &MetadataRecord, now_ms: u64) {
        match record {
            MetadataRecord::RegisterBroker {
                node_id,
                epoch,
                fenced,
                ..
            } => {
                self.sessions.insert(
                    *node_id,
                    Session {
                        epoch: *epoch,
                        fenced: *fenced,
                        last_contact_ms: now_ms,
                    },
                );
            }
            MetadataRecord::FenceBroker { node_id } => {
                if let Some(s) = self.sessions.get_mut(node_id) {
                    s.fenced = true;
                }
            }
            MetadataRecord::UnfenceBroker { node_id } => {
                if let Some(s) = self.sessions.get_mut(node_id) {
                    s.fenced = false;
                    s.last_contact_ms = s.last_contact_ms.max(now_ms);
                }
            }
            _ => {}
        }
    }

    /// A heartbeat from `node_id` quoting `broker_epoch`; `wants_fence` is a controlled
    /// shutdown request. Refreshes the session and says what to do; the fencing state itself
    /// changes only when the resulting records come back through [`BrokerHeartbeats::replay`].
    pub fn on_heartbeat(
        &mut self,
        node_id: i32,
        broker_epoch: i64,
        now_ms: u64,
        wants_fence: bool,
    ) -> HeartbeatOutcome {
        let Some(session) = self.sessions.get_mut(&node_id) else {
            return HeartbeatOutcome::NotRegistered;
        };
        if session.epoch != broker_epoch {
            return HeartbeatOutcome::StaleBrokerEpoch;
        }
        session.last_contact_ms = session.last_contact_ms.max(now_ms);
        match (wants_fence, session.fenced) {
            (true, true) => HeartbeatOutcome::ShutdownNow,
            (true, false) => HeartbeatOutcome::ControlledShutdown,
            (false, true) => HeartbeatOutcome::Unfence,
            (false, false) => HeartbeatOutcome::NoChange,
        }
    }

    /// Unfenced brokers not heard from for longer than the session timeout, by id: the caller
    /// fences them ([`crate::cluster::fence_broker`]).
    pub fn expired(&self, now_ms: u64) -> Vec<i32> {
        self.sessions
            .iter()
            .filter(|(_, s)| {
                !s.fenced && now_ms.saturating_sub(s.last_contact_ms) > self.session_timeout_ms
            })
            .map(|(id, _)| *id)
            .collect()
    }
}
