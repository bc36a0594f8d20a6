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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster;

    const TIMEOUT: u64 = 9_000;

    /// Applies records to both the image and the session view, as the active controller does.
    fn commit(
        image: &mut MetadataImage,
        hb: &mut BrokerHeartbeats,
        now: u64,
        decide: impl FnOnce(&MetadataImage) -> Vec<MetadataRecord>,
    ) {
        for r in &decide(image) {
            image.apply(r);
            hb.replay(r, now);
        }
    }

    fn registered(n: i32) -> (MetadataImage, BrokerHeartbeats) {
        let mut image = MetadataImage::default();
        let mut hb = BrokerHeartbeats::new(TIMEOUT);
        for id in 1..=n {
            let recs = cluster::register_broker(&image, id, "h", 9092, None);
            commit(&mut image, &mut hb, 0, |_| recs);
        }
        (image, hb)
    }

    #[test]
    fn a_registered_broker_is_unfenced_on_heartbeat_and_unknown_ones_must_register() {
        let (mut image, mut hb) = registered(2);
        let epoch = image.brokers[&1].epoch;
        assert_eq!(
            hb.on_heartbeat(1, epoch, 100, false),
            HeartbeatOutcome::Unfence
        );
        commit(&mut image, &mut hb, 100, |img| {
            cluster::unfence_broker(img, 1)
        });
        assert_eq!(
            hb.on_heartbeat(1, epoch, 200, false),
            HeartbeatOutcome::NoChange
        );
        assert_eq!(
            hb.on_heartbeat(1, epoch + 5, 300, false),
            HeartbeatOutcome::StaleBrokerEpoch
        );
        assert_eq!(
            hb.last_contact_ms(1),
            Some(200),
            "a stale heartbeat is not contact"
        );
        assert_eq!(
            hb.on_heartbeat(7, 0, 300, false),
            HeartbeatOutcome::NotRegistered
        );
        // Re-registering hands out a new epoch; the old one is stale from then on.
        commit(&mut image, &mut hb, 400, |img| {
            cluster::register_broker(img, 1, "h", 9092, None)
        });
        assert_eq!(
            hb.on_heartbeat(1, epoch, 500, false),
            HeartbeatOutcome::StaleBrokerEpoch
        );
        let new_epoch = image.brokers[&1].epoch;
        assert_eq!(
            hb.on_heartbeat(1, new_epoch, 500, false),
            HeartbeatOutcome::Unfence
        );
    }

    #[test]
    fn only_unfenced_brokers_silent_past_the_session_timeout_expire() {
        let (mut image, mut hb) = registered(3);
        for id in [1, 2] {
            let epoch = image.brokers[&id].epoch;
            hb.on_heartbeat(id, epoch, 1_000, false);
            commit(&mut image, &mut hb, 1_000, |img| {
                cluster::unfence_broker(img, id)
            });
        }
        assert_eq!(hb.expired(1_000 + TIMEOUT), Vec::<i32>::new());
        let e2 = image.brokers[&2].epoch;
        assert_eq!(
            hb.on_heartbeat(2, e2, 5_000, false),
            HeartbeatOutcome::NoChange
        );
        // Broker 3 never unfenced, so it never expires; broker 1 went silent.
        assert_eq!(hb.expired(1_001 + TIMEOUT), vec![1]);
        assert_eq!(hb.expired(5_001 + TIMEOUT), vec![1, 2]);
        commit(&mut image, &mut hb, 20_000, |img| {
            cluster::fence_broker(img, 1, |_| false)
        });
        assert_eq!(hb.expired(20_000), vec![2]);
        // A clock that steps back does not expire or panic.
        assert!(hb.expired(0).is_empty());
    }

    #[test]
    fn a_new_controller_gives_every_broker_a_fresh_session() {
        let (mut image, mut hb) = registered(2);
        commit(&mut image, &mut hb, 0, |img| {
            cluster::unfence_broker(img, 1)
        });
        assert_eq!(hb.expired(100_000), vec![1]);
        let mut successor = BrokerHeartbeats::new(TIMEOUT);
        successor.reset_all(100_000, &image);
        assert!(successor.expired(100_000 + TIMEOUT).is_empty());
        assert_eq!(successor.expired(100_001 + TIMEOUT), vec![1]);
        let e2 = image.brokers[&2].epoch;
        assert_eq!(
            successor.on_heartbeat(2, e2, 100_500, false),
            HeartbeatOutcome::Unfence
        );
        assert_eq!(successor.session_timeout_ms(), TIMEOUT);
    }

    #[test]
    fn controlled_shutdown_moves_leaders_then_lets_the_broker_go() {
        let (mut image, mut hb) = registered(2);
        for id in [1, 2] {
            commit(&mut image, &mut hb, 0, |img| {
                cluster::unfence_broker(img, id)
            });
        }
        let created = crate::controller::create_topic(
            &image,
            crate::controller::ControllerDefaults {
                num_partitions: 2,
                default_replication_factor: 2,
            },
            &crate::controller::NewTopic {
                name: "t".into(),
                num_partitions: -1,
                replication_factor: -1,
                ..Default::default()
            },
        )
        .unwrap();
        commit(&mut image, &mut hb, 0, |_| created.records.clone());
        let e1 = image.brokers[&1].epoch;
        assert_eq!(
            hb.on_heartbeat(1, e1, 10, true),
            HeartbeatOutcome::ControlledShutdown
        );
        commit(&mut image, &mut hb, 10, |img| {
            cluster::begin_controlled_shutdown(img, 1)
        });
        assert!(image
            .topic("t")
            .unwrap()
            .partitions
            .values()
            .all(|p| p.leader == 2 && p.isr == vec![2]));
        assert_eq!(
            hb.on_heartbeat(1, e1, 20, true),
            HeartbeatOutcome::ShutdownNow
        );
        assert!(hb.expired(1_000_000).contains(&2));
        assert!(!hb.expired(1_000_000).contains(&1));
    }

    #[test]
    fn a_silent_leader_is_fenced_and_its_partitions_move() {
        let (mut image, mut hb) = registered(3);
        for id in 1..=3 {
            commit(&mut image, &mut hb, 0, |img| {
                cluster::unfence_broker(img, id)
            });
        }
        let created = crate::controller::create_topic(
            &image,
            crate::controller::ControllerDefaults {
                num_partitions: 3,
                default_replication_factor: 3,
            },
            &crate::controller::NewTopic {
                name: "t".into(),
                num_partitions: -1,
                replication_factor: -1,
                ..Default::default()
            },
        )
        .unwrap();
        commit(&mut image, &mut hb, 0, |_| created.records.clone());
        let mut now = 0;
        while now < 3 * TIMEOUT {
            now += 2_000;
            for id in [2, 3] {
                let epoch = image.brokers[&id].epoch;
                assert_eq!(
                    hb.on_heartbeat(id, epoch, now, false),
                    HeartbeatOutcome::NoChange
                );
            }
            for id in hb.expired(now) {
                commit(&mut image, &mut hb, now, |img| {
                    cluster::fence_broker(img, id, |_| false)
                });
            }
        }
        assert!(image.brokers[&1].fenced);
        let t = image.topic("t").unwrap();
        assert!(t
            .partitions
            .values()
            .all(|p| p.leader != 1 && !p.isr.contains(&1)));
        // It comes back: a fresh registration, unfenced on its first heartbeat, then a preferred
        // election once the leaders let it back into the ISR.
        commit(&mut image, &mut hb, now, |img| {
            cluster::register_broker(img, 1, "h", 9092, None)
        });
        let e1 = image.brokers[&1].epoch;
        assert_eq!(
            hb.on_heartbeat(1, e1, now, false),
            HeartbeatOutcome::Unfence
        );
        commit(&mut image, &mut hb, now, |img| {
            cluster::unfence_broker(img, 1)
        });
        assert!(hb.expired(now + TIMEOUT).is_empty());
        assert_eq!(image.live_brokers(), vec![1, 2, 3]);
        let topic_id = image.topic("t").unwrap().topic_id;
        for p in 0..3 {
            let part = image.topic("t").unwrap().partitions[&p].clone();
            let mut new_isr = part.isr.clone();
            new_isr.push(1);
            let req = cluster::AlterPartitionRequest {
                broker_id: part.leader,
                broker_epoch: image.brokers[&part.leader].epoch,
                topic_id,
                partition: p,
                leader_epoch: part.leader_epoch,
                partition_epoch: part.partition_epoch,
                new_isr,
            };
            let (recs, _) = cluster::alter_partition(&image, &req).unwrap();
            commit(&mut image, &mut hb, now, |_| recs);
        }
        commit(&mut image, &mut hb, now, cluster::auto_rebalance);
        let leaders: Vec<i32> = image
            .topic("t")
            .unwrap()
            .partitions
            .values()
            .map(|p| p.leader)
            .collect();
        assert_eq!(leaders, vec![1, 2, 3]);
    }
}
