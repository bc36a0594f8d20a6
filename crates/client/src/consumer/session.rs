//! The client half of incremental fetch sessions (KIP-227), per leader: the first request is a
//! full one (epoch 0) that asks the broker to open a session; once it answers with a session id,
//! each request carries the next epoch and lists only the partitions whose fetch position changed
//! (or that are new), plus the partitions to forget. A broker that answers session id 0 keeps
//! getting full requests; FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH or a failed
//! request start over with a full request, which (as Kafka's client does) names the old session
//! with epoch 0 so that the broker closes it and opens a new one.

use std::collections::{BTreeMap, BTreeSet};

use super::Tp;

/// `session_epoch` of a full request that opens a session.
const INITIAL_EPOCH: i32 = 0;

/// What one fetch request to a leader carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SessionRequest {
    pub session_id: i32,
    pub epoch: i32,
    /// Partitions listed, with their fetch offsets.
    pub partitions: Vec<(Tp, i64)>,
    /// Partitions the session drops.
    pub forgotten: Vec<Tp>,
}

/// One leader's fetch session, as the client sees it.
#[derive(Debug, Clone, Default)]
pub(super) struct FetchSession {
    /// 0 = none (the next request is a full one).
    pub id: i32,
    /// The epoch the next incremental request carries.
    pub epoch: i32,
    /// What the broker's session holds: each partition and the fetch offset last sent for it.
    sent: BTreeMap<Tp, i64>,
    /// The request in flight (what `sent` becomes once it succeeds).
    pending: Option<(bool, BTreeMap<Tp, i64>)>,
    /// Partitions listed in the last request (for diagnostics and tests).
    pub last_listed: usize,
    /// A session given up after an error, for the next full request to close.
    close_id: i32,
}

impl FetchSession {
    /// The request for these wanted partitions and positions.
    pub fn request(&mut self, wanted: &BTreeMap<Tp, i64>) -> SessionRequest {
        let full = self.id == 0;
        let (partitions, forgotten) = if full {
            (
                wanted.iter().map(|(tp, o)| (tp.clone(), *o)).collect(),
                Vec::new(),
            )
        } else {
            let changed: Vec<(Tp, i64)> = wanted
                .iter()
                .filter(|(tp, o)| self.sent.get(*tp) != Some(*o))
                .map(|(tp, o)| (tp.clone(), *o))
                .collect();
            let gone: BTreeSet<&Tp> = self
                .sent
                .keys()
                .filter(|tp| !wanted.contains_key(*tp))
                .collect();
            (changed, gone.into_iter().cloned().collect())
        };
        self.last_listed = partitions.len();
        self.pending = Some((full, wanted.clone()));
        SessionRequest {
            session_id: if full {
                std::mem::take(&mut self.close_id)
            } else {
                self.id
            },
            epoch: if full { INITIAL_EPOCH } else { self.epoch },
            partitions,
            forgotten,
        }
    }

    /// Records the broker's answer: its session id, or a top-level error code.
    pub fn response(&mut self, error_code: i16, session_id: i32) {
        let Some((full, sent)) = self.pending.take() else {
            return;
        };
        if error_code != 0 {
            self.reset();
            return;
        }
        if full {
            self.id = session_id;
            self.epoch = 1;
        } else {
            self.epoch = next_epoch(self.epoch);
        }
        self.sent = if self.id == 0 { BTreeMap::new() } else { sent };
    }

    /// Forgets the session: the next request is a full one.
    pub fn reset(&mut self) {
        if self.id != 0 {
            self.close_id = self.id;
        }
        self.id = 0;
        self.epoch = INITIAL_EPOCH;
        self.sent.clear();
        self.pending = None;
    }
}

/// Kafka's epoch sequence: 1, 2, ..., i32::MAX, then 1 again (0 is only for a full request).
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> Tp {
        ("t".to_string(), p)
    }

    #[test]
    fn full_then_incremental_with_only_changed_partitions() {
        let mut s = FetchSession::default();
        let mut wanted: BTreeMap<Tp, i64> = (0..3).map(|p| (tp(p), 0)).collect();
        let r = s.request(&wanted);
        assert_eq!((r.session_id, r.epoch, r.partitions.len()), (0, 0, 3));
        s.response(0, 42);
        wanted.insert(tp(1), 5);
        let r = s.request(&wanted);
        assert_eq!((r.session_id, r.epoch), (42, 1));
        assert_eq!(r.partitions, vec![(tp(1), 5)]);
        s.response(0, 42);
        wanted.remove(&tp(2));
        let r = s.request(&wanted);
        assert_eq!((r.epoch, r.partitions.len()), (2, 0));
        assert_eq!(r.forgotten, vec![tp(2)]);
        // INVALID_FETCH_SESSION_EPOCH: start over, closing the old session.
        s.response(71, 0);
        let r = s.request(&wanted);
        assert_eq!((r.session_id, r.epoch, r.partitions.len()), (42, 0, 2));
        // A broker without sessions answers 0: requests stay full.
        s.response(0, 0);
        let r = s.request(&wanted);
        assert_eq!((r.session_id, r.epoch, r.partitions.len()), (0, 0, 2));
        assert_eq!(next_epoch(i32::MAX), 1);
    }
}
