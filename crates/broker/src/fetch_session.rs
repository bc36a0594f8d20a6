//! Incremental fetch sessions (KIP-227): the broker remembers, per session, which partitions a
//! fetcher reads and what it last told it about each, so that a consumer of many partitions
//! sends only the partitions whose fetch position changed, and hears only about partitions with
//! news (records, a moved high watermark or log start offset, an error).
//!
//! Sans-io: [`FetchSessionCache::plan`] turns a request into the partitions to read (validating the
//! session id and epoch), the caller reads them, and [`FetchSessionCache::complete`] decides which
//! partitions the response carries and remembers what was said. Time is an input.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use brook_protocol::kafka::indexmap::IndexMap;
use uuid::Uuid;

/// `session_epoch` of a request that closes its session (or asks for none).
pub const FINAL_EPOCH: i32 = -1;
/// `session_epoch` of a full request that opens a session.
pub const INITIAL_EPOCH: i32 = 0;

/// Kafka's minimum idle time before a session may be evicted for a new one.
const EVICTION_AGE: Duration = Duration::from_secs(120);

/// A partition as the fetcher names it: topic name (before Fetch v13) or topic id, and index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// What the fetcher asks of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchParams {
    pub fetch_offset: i64,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
    pub partition_max_bytes: i32,
}

/// What a read of one partition produced, as far as the session cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOutcome {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
    pub error_code: i16,
    pub record_bytes: usize,
}

/// The session-related parts of a Fetch request.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub session_id: i32,
    pub session_epoch: i32,
    /// Partitions listed in the request, in request order.
    pub partitions: Vec<(PartitionKey, FetchParams)>,
    /// `forgotten_topics_data`: partitions to drop from the session.
    pub forgotten: Vec<PartitionKey>,
}

/// How a request relates to the session cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Context {
    /// No session: answer every partition of the request.
    Sessionless,
    /// A full request opening a session: answer every partition, then create the session.
    Full,
    /// An incremental request on session `id`.
    Incremental { id: i32 },
}

/// The partitions a request reads.
#[derive(Debug)]
pub struct Plan {
    pub context: Context,
    pub partitions: Vec<(PartitionKey, FetchParams)>,
}

/// Why an incremental request cannot be served (top-level error of the response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// FETCH_SESSION_ID_NOT_FOUND (70).
    NotFound,
    /// INVALID_FETCH_SESSION_EPOCH (71).
    InvalidEpoch,
}

impl SessionError {
    /// Kafka's error code.
    pub fn code(self) -> i16 {
        match self {
            SessionError::NotFound => 70,
            SessionError::InvalidEpoch => 71,
        }
    }
}

#[derive(Debug, Clone)]
struct Cached {
    params: FetchParams,
    /// What the fetcher was last told; -1 until it was told anything.
    high_watermark: i64,
    log_start_offset: i64,
    last_stable_offset: i64,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    epoch: i32,
    partitions: IndexMap<PartitionKey, Cached>,
    last_used: Instant,
}

/// The broker's fetch sessions (`max.incremental.fetch.session.cache.slots` of them).
#[derive(Debug)]
pub struct FetchSessionCache {
    sessions: HashMap<i32, Session>,
    slots: usize,
    next_id: i32,
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessionCache {
    /// A cache of at most `slots` sessions (0 disables sessions: every fetch is sessionless).
    pub fn new(slots: usize) -> FetchSessionCache {
        FetchSessionCache {
            sessions: HashMap::new(),
            slots,
            // Ids that differ across broker restarts make a stale id fail fast as NOT_FOUND.
            next_id: (Uuid::new_v4().as_u128() as i32 & 0x3fff_ffff).max(1),
        }
    }

    /// Sessions currently cached.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is cached.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Validates the request against the cache and returns the partitions to read. An
    /// incremental request updates its session (added, changed and forgotten partitions) and
    /// advances the session's epoch, as Kafka does before reading.
    pub fn plan(&mut self, req: SessionRequest, now: Instant) -> Result<Plan, SessionError> {
        let full = req.session_epoch == INITIAL_EPOCH || req.session_epoch == FINAL_EPOCH;
        if full {
            if req.session_id != 0 {
                self.sessions.remove(&req.session_id);
            }
            let context = if req.session_epoch == FINAL_EPOCH || self.slots == 0 {
                Context::Sessionless
            } else {
                Context::Full
            };
            return Ok(Plan {
                context,
                partitions: req.partitions,
            });
        }
        let session = self
            .sessions
            .get_mut(&req.session_id)
            .ok_or(SessionError::NotFound)?;
        if session.epoch != req.session_epoch {
            return Err(SessionError::InvalidEpoch);
        }
        session.epoch = next_epoch(session.epoch);
        session.last_used = now;
        for key in &req.forgotten {
            session.partitions.shift_remove(key);
        }
        for (key, params) in req.partitions {
            match session.partitions.get_mut(&key) {
                Some(cached) => cached.params = params,
                None => {
                    session.partitions.insert(
                        key,
                        Cached {
                            params,
                            high_watermark: -1,
                            log_start_offset: -1,
                            last_stable_offset: -1,
                        },
                    );
                }
            }
        }
        let partitions = session
            .partitions
            .iter()
            .map(|(k, c)| (k.clone(), c.params.clone()))
            .collect();
        Ok(Plan {
            context: Context::Incremental { id: req.session_id },
            partitions,
        })
    }

    /// After the read: which of the planned partitions the response carries (one flag each, in
    /// plan order) and the session id to answer with. A full request opens its session here (id
    /// 0 when the cache is full of sessions too young to evict); an incremental one carries only
    /// partitions with news and moves those that returned records to the back, so that under a
    /// byte limit every partition gets its turn.
    pub fn complete(
        &mut self,
        plan: &Plan,
        outcomes: &[PartitionOutcome],
        now: Instant,
    ) -> (i32, Vec<bool>) {
        match plan.context {
            Context::Sessionless => (0, vec![true; outcomes.len()]),
            Context::Full => {
                let id = self.open(plan, outcomes, now);
                (id, vec![true; outcomes.len()])
            }
            Context::Incremental { id } => {
                let Some(session) = self.sessions.get_mut(&id) else {
                    // Evicted while the fetch waited: answer everything once more.
                    return (id, vec![true; outcomes.len()]);
                };
                let mut include = Vec::with_capacity(outcomes.len());
                let mut rotate = Vec::new();
                for ((key, _), outcome) in plan.partitions.iter().zip(outcomes) {
                    let Some(cached) = session.partitions.get_mut(key) else {
                        include.push(true);
                        continue;
                    };
                    let mut respond = outcome.record_bytes > 0 || outcome.error_code != 0;
                    if cached.high_watermark != outcome.high_watermark {
                        cached.high_watermark = outcome.high_watermark;
                        respond = true;
                    }
                    if cached.log_start_offset != outcome.log_start_offset {
                        cached.log_start_offset = outcome.log_start_offset;
                        respond = true;
                    }
                    if cached.last_stable_offset != outcome.last_stable_offset {
                        cached.last_stable_offset = outcome.last_stable_offset;
                        respond = true;
                    }
                    if outcome.record_bytes > 0 {
                        rotate.push(key.clone());
                    }
                    include.push(respond);
                }
                for key in rotate {
                    if let Some(c) = session.partitions.shift_remove(&key) {
                        session.partitions.insert(key, c);
                    }
                }
                (id, include)
            }
        }
    }

    fn open(&mut self, plan: &Plan, outcomes: &[PartitionOutcome], now: Instant) -> i32 {
        if self.sessions.len() >= self.slots {
            // Evict the least recently used session, if it has been idle long enough.
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, s)| (*id, s.last_used));
            match oldest {
                Some((id, used)) if now.saturating_duration_since(used) >= EVICTION_AGE => {
                    self.sessions.remove(&id);
                }
                _ => return 0,
            }
        }
        let mut id = self.next_id;
        while id == 0 || self.sessions.contains_key(&id) {
            id = id.wrapping_add(1) & 0x7fff_ffff;
        }
        self.next_id = (id.wrapping_add(1) & 0x7fff_ffff).max(1);
        let partitions = plan
            .partitions
            .iter()
            .zip(outcomes)
            .map(|((key, params), o)| {
                (
                    key.clone(),
                    Cached {
                        params: params.clone(),
                        high_watermark: o.high_watermark,
                        log_start_offset: o.log_start_offset,
                        last_stable_offset: o.last_stable_offset,
                    },
                )
            })
            .collect();
        self.sessions.insert(
            id,
            Session {
                epoch: 1,
                partitions,
                last_used: now,
            },
        );
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        PartitionKey {
            topic: "t".into(),
            topic_id: Uuid::nil(),
            partition: p,
        }
    }

    fn params(offset: i64) -> FetchParams {
        FetchParams {
            fetch_offset: offset,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            log_start_offset: -1,
            partition_max_bytes: 1 << 20,
        }
    }

    fn outcome(hw: i64, bytes: usize) -> PartitionOutcome {
        PartitionOutcome {
            high_watermark: hw,
            log_start_offset: 0,
            last_stable_offset: hw,
            error_code: 0,
            record_bytes: bytes,
        }
    }

    fn req(id: i32, epoch: i32, parts: &[(i32, i64)], forgotten: &[i32]) -> SessionRequest {
        SessionRequest {
            session_id: id,
            session_epoch: epoch,
            partitions: parts.iter().map(|(p, o)| (key(*p), params(*o))).collect(),
            forgotten: forgotten.iter().map(|p| key(*p)).collect(),
        }
    }

    #[test]
    fn a_full_fetch_opens_a_session_and_incremental_ones_carry_only_news() {
        let mut cache = FetchSessionCache::new(10);
        let now = Instant::now();
        let plan = cache.plan(req(0, 0, &[(0, 0), (1, 0)], &[]), now).unwrap();
        assert_eq!(plan.context, Context::Full);
        let (id, include) = cache.complete(&plan, &[outcome(5, 100), outcome(0, 0)], now);
        assert_ne!(id, 0);
        assert_eq!(include, vec![true, true]);

        // Partition 0 moved on; partition 1 is not mentioned and keeps its cached position.
        let plan = cache.plan(req(id, 1, &[(0, 5)], &[]), now).unwrap();
        assert_eq!(plan.context, Context::Incremental { id });
        let offsets: Vec<_> = plan
            .partitions
            .iter()
            .map(|(k, p)| (k.partition, p.fetch_offset))
            .collect();
        assert_eq!(offsets, vec![(0, 5), (1, 0)]);
        let (_, include) = cache.complete(&plan, &[outcome(5, 0), outcome(0, 0)], now);
        assert_eq!(
            include,
            vec![false, false],
            "nothing new: an empty response"
        );

        // A record arrives on partition 1: only it is carried, and it moves to the back.
        let plan = cache.plan(req(id, 2, &[], &[]), now).unwrap();
        let (_, include) = cache.complete(&plan, &[outcome(5, 0), outcome(1, 50)], now);
        assert_eq!(include, vec![false, true]);

        // Forgetting a partition drops it; a new one is carried at once.
        let plan = cache.plan(req(id, 3, &[(2, 0)], &[0]), now).unwrap();
        let parts: Vec<_> = plan.partitions.iter().map(|(k, _)| k.partition).collect();
        assert_eq!(parts, vec![1, 2]);
        let (_, include) = cache.complete(&plan, &[outcome(1, 0), outcome(0, 0)], now);
        assert_eq!(include, vec![false, true]);
    }

    #[test]
    fn unknown_sessions_and_wrong_epochs_get_kafkas_errors() {
        let mut cache = FetchSessionCache::new(10);
        let now = Instant::now();
        assert_eq!(
            cache.plan(req(42, 1, &[], &[]), now).unwrap_err().code(),
            70
        );
        let plan = cache.plan(req(0, 0, &[(0, 0)], &[]), now).unwrap();
        let (id, _) = cache.complete(&plan, &[outcome(0, 0)], now);
        assert_eq!(
            cache.plan(req(id, 5, &[], &[]), now).unwrap_err().code(),
            71
        );
        assert!(cache.plan(req(id, 1, &[], &[]), now).is_ok());
        // A replayed epoch is refused too.
        assert_eq!(
            cache.plan(req(id, 1, &[], &[]), now).unwrap_err().code(),
            71
        );
        // Epoch -1 closes the session and is served without one.
        let plan = cache
            .plan(req(id, FINAL_EPOCH, &[(0, 0)], &[]), now)
            .unwrap();
        assert_eq!(plan.context, Context::Sessionless);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_cache_evicts_only_idle_sessions() {
        let mut cache = FetchSessionCache::new(1);
        let t0 = Instant::now();
        let plan = cache.plan(req(0, 0, &[(0, 0)], &[]), t0).unwrap();
        let (first, _) = cache.complete(&plan, &[outcome(0, 0)], t0);
        assert_ne!(first, 0);
        let plan = cache.plan(req(0, 0, &[(0, 0)], &[]), t0).unwrap();
        assert_eq!(
            cache.complete(&plan, &[outcome(0, 0)], t0).0,
            0,
            "no slot free"
        );
        let later = t0 + EVICTION_AGE;
        let (second, _) = cache.complete(&plan, &[outcome(0, 0)], later);
        assert!(second != 0 && second != first);
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.plan(req(first, 1, &[], &[]), later).unwrap_err(),
            SessionError::NotFound
        );
    }

    #[test]
    fn no_slots_means_no_sessions() {
        let mut cache = FetchSessionCache::new(0);
        let plan = cache
            .plan(req(0, 0, &[(0, 0)], &[]), Instant::now())
            .unwrap();
        assert_eq!(plan.context, Context::Sessionless);
        assert_eq!(cache.complete(&plan, &[outcome(0, 0)], Instant::now()).0, 0);
    }
}
