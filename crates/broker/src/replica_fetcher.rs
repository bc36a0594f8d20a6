//! Replica fetchers: one task per source broker (`num.replica.fetchers`=1) copying the partitions
//! this broker follows from their leader, as Kafka's `ReplicaFetcherThread`.
//!
//! A partition joins its leader's fetcher when the image makes this broker its follower. It first
//! truncates (KIP-101/279: OffsetForLeaderEpoch with the local latest epoch, see
//! [`brook_replication::truncation_offset`]), then fetches from its log end offset with
//! `replica_id` = this node, appends with `append_as_follower` and keeps its high watermark at
//! min(leader's, own log end offset). A partition that joins while the fetcher waits in a long
//! poll for the others does not wait it out: the request is given up (with its connection) and
//! the next one names it. Errors (fenced or unknown epoch, not the leader) park the partition for
//! a backoff from 10 ms doubling to Kafka's 1 s: a new partition's first request often reaches a
//! leader that has not applied the same image yet. The next image re-adds it. Every log change is
//! applied only while the partition's role generation is the one the fetcher started with;
//! appends run on the fetcher's task, as the leader's produce path appends, and truncations and
//! appends that roll a segment (both create or delete files and fsync) on the blocking pool.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use brook_protocol::kafka::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::kafka::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use brook_protocol::kafka::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use brook_protocol::kafka::messages::{
    ApiKey, BrokerId, FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest, RequestKind,
    ResponseKind, TopicName,
};
use brook_protocol::kafka::protocol::StrBytes;
use brook_protocol::ResponseError;
use brook_replication::{follower_high_watermark, truncation_offset};
use bytes::Bytes;
use tokio::sync::futures::Notified;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::peer::{PeerClient, PeerError};
use crate::state::{Broker, Partition};

/// Kafka's `replica.fetch.backoff.ms` default: the pause after an error.
const BACKOFF: Duration = Duration::from_millis(1000);

/// The first pause after a partition's error, doubled on each further one up to [`BACKOFF`]. A
/// partition that just started following usually fails because its leader has not applied the
/// same image yet (a few milliseconds); a whole second there would hold up acks=all produces.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 7;

type Key = (String, i32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Truncating,
    Fetching { offset: i64 },
}

#[derive(Clone)]
struct Entry {
    partition: Arc<Partition>,
    leader_epoch: i32,
    generation: u64,
    phase: Phase,
    delayed_until: Option<Instant>,
    /// Errors in a row, for the backoff.
    failures: u32,
}

impl Entry {
    fn ready(&self, now: Instant) -> bool {
        self.delayed_until.is_none_or(|t| t <= now)
    }
}

#[derive(Default)]
struct Shared {
    parts: Mutex<HashMap<Key, Entry>>,
    /// Notified when a partition is added or its backoff ends.
    wake: Arc<Notify>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Partitions ready to work on, and when the next delayed one will be.
    fn ready(&self, now: Instant) -> (Vec<(Key, Entry)>, Option<Instant>) {
        let parts = self.lock();
        let mut next = None::<Instant>;
        let mut out = Vec::new();
        for (k, e) in parts.iter() {
            match e.delayed_until {
                Some(t) if t > now => next = Some(next.map_or(t, |n| n.min(t))),
                _ => out.push((k.clone(), e.clone())),
            }
        }
        (out, next)
    }

    /// Changes an entry if it is still the one the fetcher worked on.
    fn update(&self, key: &Key, generation: u64, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.lock().get_mut(key) {
            if e.generation == generation {
                f(e);
            }
        }
    }

    /// Moves a partition on after a success (which ends its backoff).
    fn advance(&self, key: &Key, generation: u64, phase: Phase) {
        self.update(key, generation, |e| {
            e.phase = phase;
            e.failures = 0;
        });
    }

    /// Whether a partition is ready to be truncated or fetched that `working` (what the fetcher
    /// is waiting on) does not cover.
    fn has_new_work(&self, working: &[(Key, Entry)]) -> bool {
        let now = Instant::now();
        self.lock().iter().any(|(k, e)| {
            e.ready(now)
                && !working
                    .iter()
                    .any(|(wk, we)| wk == k && we.generation == e.generation)
        })
    }

    /// Sets a partition aside after an error, for a backoff that grows with each error in a row;
    /// the fetcher is woken when it ends, even in the middle of a long poll.
    fn delay(&self, key: &Key, generation: u64) {
        let mut until = None;
        self.update(key, generation, |e| {
            let pause = FIRST_BACKOFF
                .saturating_mul(1 << e.failures.min(16))
                .min(BACKOFF);
            e.failures = e.failures.saturating_add(1);
            let t = Instant::now() + pause;
            e.delayed_until = Some(t);
            until = Some(t);
        });
        if let (Some(t), Ok(rt)) = (until, tokio::runtime::Handle::try_current()) {
            let wake = self.wake.clone();
            rt.spawn(async move {
                tokio::time::sleep_until(t).await;
                wake.notify_one();
            });
        }
    }
}

struct Fetcher {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

/// The broker's replica fetchers, by source broker.
#[derive(Default)]
pub struct FetcherManager {
    fetchers: HashMap<i32, Fetcher>,
}

impl FetcherManager {
    /// Makes `source`'s fetcher follow `partition` from scratch (truncation first).
    pub(crate) fn add(
        &mut self,
        broker: &Broker,
        source: i32,
        partition: Arc<Partition>,
        leader_epoch: i32,
        generation: u64,
    ) {
        self.remove(&partition);
        let fetcher = self.fetchers.entry(source).or_insert_with(|| {
            let shared = Arc::new(Shared::default());
            let task = broker.runtime.as_ref().map(|rt| {
                rt.spawn(run(
                    broker.me.clone(),
                    source,
                    shared.clone(),
                    broker.stopping.subscribe(),
                ))
            });
            if task.is_none() {
                tracing::error!(source, "no runtime to run a replica fetcher on");
            }
            Fetcher { shared, task }
        });
        let key = (partition.topic.clone(), partition.index);
        fetcher.shared.lock().insert(
            key,
            Entry {
                partition,
                leader_epoch,
                generation,
                phase: Phase::Truncating,
                delayed_until: None,
                failures: 0,
            },
        );
        fetcher.shared.wake.notify_one();
    }

    /// Stops fetching `partition` (whichever broker it was fetched from).
    pub(crate) fn remove(&mut self, partition: &Partition) {
        let key = (partition.topic.clone(), partition.index);
        for f in self.fetchers.values() {
            f.shared.lock().remove(&key);
        }
    }

    /// The fetcher tasks, to await on shutdown.
    pub(crate) fn take_tasks(&mut self) -> Vec<JoinHandle<()>> {
        self.fetchers
            .values_mut()
            .filter_map(|f| f.task.take())
            .collect()
    }

    /// The partitions fetched from each source broker (for tests and diagnostics).
    pub fn assignments(&self) -> HashMap<i32, Vec<(String, i32)>> {
        self.fetchers
            .iter()
            .map(|(id, f)| (*id, f.shared.lock().keys().cloned().collect()))
            .collect()
    }
}

async fn run(me: Weak<Broker>, source: i32, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut conn: Option<PeerClient> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(broker) = me.upgrade() else { return };
        let now = Instant::now();
        let (ready, next) = shared.ready(now);
        if ready.is_empty() {
            drop(broker);
            let until = next.unwrap_or(now + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        let outcome = tokio::select! {
            r = round(&broker, source, &shared, &mut conn, ready, notified.as_mut()) => r,
            _ = stop.changed() => return,
        };
        drop(broker);
        if let Err(e) = outcome {
            tracing::warn!(source, error = %e, "replica fetcher: request to the leader failed");
            conn = None;
            tokio::select! {
                _ = tokio::time::sleep(BACKOFF) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

async fn round<'a>(
    broker: &Arc<Broker>,
    source: i32,
    shared: &'a Shared,
    conn: &mut Option<PeerClient>,
    ready: Vec<(Key, Entry)>,
    added: Pin<&mut Notified<'a>>,
) -> Result<(), PeerError> {
    if conn.as_ref().is_none() {
        let image = broker.image();
        let b = image.brokers.get(&source).ok_or_else(|| {
            PeerError::Protocol(
                format!("broker {source}"),
                "not registered in the metadata image".into(),
            )
        })?;
        let addr = crate::peer::socket_addr(&b.host, b.port);
        let timeout = Duration::from_millis(broker.config.cluster.replica_socket_timeout_ms);
        let client_id = format!("broker-{}-fetcher-0", broker.config.node_id);
        *conn = Some(PeerClient::connect(&addr, &client_id, timeout).await?);
    }
    let Some(c) = conn.as_mut() else {
        return Ok(());
    };
    let (truncating, fetching): (Vec<_>, Vec<_>) = ready
        .into_iter()
        .partition(|(_, e)| e.phase == Phase::Truncating);
    if !truncating.is_empty() {
        return truncate(broker, c, shared, truncating).await;
    }
    if fetch(broker, c, shared, fetching, added).await? == Fetched::Abandoned {
        // Its answer is still to come on this connection: the next request goes on a new one.
        *conn = None;
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Fetched {
    Done,
    /// A partition was added while the leader held the request (up to
    /// `replica.fetch.wait.max.ms`); the request was given up so that the next one includes it.
    Abandoned,
}

fn group_by_topic<T>(items: impl IntoIterator<Item = (String, T)>) -> Vec<(String, Vec<T>)> {
    let mut out: Vec<(String, Vec<T>)> = Vec::new();
    for (topic, item) in items {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, v)) => v.push(item),
            None => out.push((topic, vec![item])),
        }
    }
    out
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Runs a log change under the log lock, only while `generation` is current.
fn change_log<T>(
    p: &Partition,
    generation: u64,
    f: impl FnOnce(&Partition, &mut brook_storage::Log) -> Result<T, brook_storage::StorageError>,
) -> Option<T> {
    let mut log = p.log();
    if p.generation() != generation {
        return None;
    }
    match f(p, &mut log) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "replica log change failed");
            None
        }
    }
}

/// [`change_log`] on the blocking pool, for changes that delete files or fsync.
async fn with_log<T: Send + 'static>(
    p: &Arc<Partition>,
    generation: u64,
    f: impl FnOnce(&Partition, &mut brook_storage::Log) -> Result<T, brook_storage::StorageError>
        + Send
        + 'static,
) -> Option<T> {
    let p = p.clone();
    tokio::task::spawn_blocking(move || change_log(&p, generation, f))
        .await
        .ok()
        .flatten()
}

/// KIP-101/279 truncation of the partitions that just started following.
async fn truncate(
    broker: &Arc<Broker>,
    c: &mut PeerClient,
    shared: &Shared,
    parts: Vec<(Key, Entry)>,
) -> Result<(), PeerError> {
    let mut asked = Vec::new();
    for (key, e) in parts {
        let latest = e.partition.log().latest_epoch();
        match latest {
            Some(epoch) => asked.push((key, e, epoch)),
            None => {
                // No epochs to compare: Kafka's fallback, truncate to the high watermark.
                let offset = with_log(&e.partition, e.generation, |p, log| {
                    log.truncate_to(p.high_watermark())?;
                    Ok(log.log_end_offset())
                })
                .await;
                if let Some(offset) = offset {
                    shared.advance(&key, e.generation, Phase::Fetching { offset });
                }
            }
        }
    }
    if asked.is_empty() {
        return Ok(());
    }
    let topics = group_by_topic(asked.iter().map(|((t, i), e, epoch)| {
        (
            t.clone(),
            OffsetForLeaderPartition::default()
                .with_partition(*i)
                .with_current_leader_epoch(e.leader_epoch)
                .with_leader_epoch(*epoch),
        )
    }))
    .into_iter()
    .map(|(t, ps)| {
        OffsetForLeaderTopic::default()
            .with_topic(name(&t))
            .with_partitions(ps)
    })
    .collect();
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(broker.config.node_id))
        .with_topics(topics);
    let resp = match c
        .send(
            ApiKey::OffsetForLeaderEpoch,
            OFFSET_FOR_LEADER_EPOCH_VERSION,
            RequestKind::OffsetForLeaderEpoch(req),
        )
        .await?
    {
        ResponseKind::OffsetForLeaderEpoch(r) => r,
        _ => {
            return Err(PeerError::Protocol(
                c.addr().into(),
                "unexpected response".into(),
            ))
        }
    };
    for t in resp.topics {
        for a in t.partitions {
            let key = (t.topic.to_string(), a.partition);
            let Some((_, e, _)) = asked.iter().find(|(k, _, _)| *k == key) else {
                continue;
            };
            if a.error_code != 0 {
                tracing::info!(topic = %key.0, partition = key.1, error = a.error_code, "OffsetForLeaderEpoch refused; retrying later");
                shared.delay(&key, e.generation);
                continue;
            }
            let (answer_epoch, answer_end) = (a.leader_epoch, a.end_offset);
            let done = with_log(&e.partition, e.generation, move |p, log| {
                let leo = log.log_end_offset();
                let local = if answer_epoch >= 0 {
                    log.end_offset_for_epoch(answer_epoch)
                } else {
                    None
                };
                let t = truncation_offset(leo, p.high_watermark(), answer_epoch, answer_end, local);
                if t.offset < leo {
                    tracing::info!(topic = %p.topic, partition = p.index, from = leo, to = t.offset, "truncating follower log");
                    log.truncate_to(t.offset)?;
                }
                let leo = log.log_end_offset();
                p.set_high_watermark(p.high_watermark().min(leo));
                Ok((t.complete, leo))
            })
            .await;
            if let Some((complete, offset)) = done {
                if complete {
                    shared.advance(&key, e.generation, Phase::Fetching { offset });
                }
            }
        }
    }
    Ok(())
}

async fn fetch<'a>(
    broker: &Arc<Broker>,
    c: &mut PeerClient,
    shared: &'a Shared,
    parts: Vec<(Key, Entry)>,
    mut added: Pin<&mut Notified<'a>>,
) -> Result<Fetched, PeerError> {
    let cfg = &broker.config.cluster;
    let topics = group_by_topic(parts.iter().filter_map(|((t, i), e)| {
        let Phase::Fetching { offset } = e.phase else {
            return None;
        };
        let log_start = e.partition.log().log_start_offset();
        Some((
            t.clone(),
            FetchPartition::default()
                .with_partition(*i)
                .with_current_leader_epoch(e.leader_epoch)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(log_start)
                .with_partition_max_bytes(cfg.replica_fetch_max_bytes),
        ))
    }))
    .into_iter()
    .map(|(t, ps)| {
        FetchTopic::default()
            .with_topic(name(&t))
            .with_partitions(ps)
    })
    .collect();
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(broker.config.node_id))
        .with_max_wait_ms(cfg.replica_fetch_wait_max_ms)
        .with_min_bytes(cfg.replica_fetch_min_bytes)
        .with_max_bytes(cfg.replica_fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    // A partition that starts following this leader (a new topic, a new leader after a failure)
    // must not wait for the leader to answer a request that does not name it: an acks=all
    // produce there waits for this broker. Kafka's fetcher thread does wait; giving up the
    // request costs a reconnect, and nothing is lost: its fetch offsets are asked again.
    let resp = {
        let send = c.send(ApiKey::Fetch, FETCH_VERSION, RequestKind::Fetch(req));
        tokio::pin!(send);
        loop {
            tokio::select! {
                r = &mut send => break r?,
                _ = added.as_mut() => {
                    if shared.has_new_work(&parts) {
                        return Ok(Fetched::Abandoned);
                    }
                    added.set(shared.wake.notified());
                    added.as_mut().enable();
                }
            }
        }
    };
    let resp = match resp {
        ResponseKind::Fetch(r) => r,
        _ => {
            return Err(PeerError::Protocol(
                c.addr().into(),
                "unexpected response".into(),
            ))
        }
    };
    if resp.error_code != 0 {
        for (key, e) in &parts {
            shared.delay(key, e.generation);
        }
        return Ok(Fetched::Done);
    }
    for t in resp.responses {
        for d in t.partitions {
            let key = (t.topic.to_string(), d.partition_index);
            let Some((_, e)) = parts.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            let Phase::Fetching { offset } = e.phase else {
                continue;
            };
            match d.error_code {
                0 => {
                    let records = d.records.unwrap_or_default();
                    let records_len = records.len();
                    let (leader_hw, leader_start) = (d.high_watermark, d.log_start_offset);
                    let apply = move |p: &Partition, log: &mut brook_storage::Log| {
                        append(p, log, offset, &records, leader_hw, leader_start)
                    };
                    // Inline, as the leader's produce path appends: a hop to the blocking pool
                    // per fetch cost the follower about a fifth of its CPU in thread wake-ups.
                    // A roll creates files and fsyncs the directory and small state files, which
                    // can wait on the filesystem's journal: that one goes to the blocking pool.
                    let may_roll = e
                        .partition
                        .log()
                        .append_may_roll(records_len, crate::state::now_ms());
                    let leo = if may_roll {
                        with_log(&e.partition, e.generation, apply).await
                    } else {
                        change_log(&e.partition, e.generation, apply)
                    };
                    match leo {
                        Some(Some((leo, pending_flush))) => {
                            if pending_flush {
                                broker.flush_wanted.notify_one();
                            }
                            shared.advance(&key, e.generation, Phase::Fetching { offset: leo })
                        }
                        Some(None) => {}
                        None => shared.delay(&key, e.generation),
                    }
                }
                x if x == ResponseError::OffsetOutOfRange.code() => {
                    out_of_range(broker, c, shared, &key, e, offset).await?;
                }
                x => {
                    tracing::info!(topic = %key.0, partition = key.1, error = x, "replica fetch refused; retrying after a backoff or the next image");
                    shared.delay(&key, e.generation);
                }
            }
        }
    }
    Ok(Fetched::Done)
}

/// Appends what the leader sent at `offset`; returns the new log end offset (None when the log
/// moved meanwhile) and whether a roll left a segment to flush.
fn append(
    p: &Partition,
    log: &mut brook_storage::Log,
    offset: i64,
    records: &Bytes,
    leader_hw: i64,
    leader_start: i64,
) -> Result<Option<(i64, bool)>, brook_storage::StorageError> {
    if !records.is_empty() {
        if log.log_end_offset() > offset {
            return Ok(None);
        }
        log.append_as_follower(records)?;
    }
    let leo = log.log_end_offset();
    // The follower's log start follows the leader's (retention, DeleteRecords).
    if leader_start > log.log_start_offset() {
        log.delete_records_before(leader_start.min(leo))?;
    }
    p.set_high_watermark(follower_high_watermark(leader_hw, leo));
    Ok(Some((leo, log.has_pending_flush())))
}

/// Kafka's `handleOutOfRangeError`: behind the leader's log start, restart there; ahead of the
/// leader's end (unclean election), truncate to it.
async fn out_of_range(
    broker: &Arc<Broker>,
    c: &mut PeerClient,
    shared: &Shared,
    key: &Key,
    e: &Entry,
    offset: i64,
) -> Result<(), PeerError> {
    let leader_end = list_offset(broker, c, key, e.leader_epoch, -1).await?;
    let leader_start = list_offset(broker, c, key, e.leader_epoch, -2).await?;
    let (Some(leader_end), Some(leader_start)) = (leader_end, leader_start) else {
        shared.delay(key, e.generation);
        return Ok(());
    };
    let next = with_log(&e.partition, e.generation, move |p, log| {
        let leo = log.log_end_offset();
        if leader_end < leo {
            tracing::warn!(topic = %p.topic, partition = p.index, leo, leader_end, "follower ahead of the leader: truncating");
            log.truncate_to(leader_end)?;
            p.set_high_watermark(p.high_watermark().min(leader_end));
            return Ok(leader_end);
        }
        if leader_start > leo {
            tracing::warn!(topic = %p.topic, partition = p.index, leo, leader_start, "follower behind the leader's log start: starting over there");
            let start = log.log_start_offset();
            log.truncate_to(start)?;
            p.set_high_watermark(log.log_end_offset());
            return Ok(leader_start);
        }
        let _ = offset;
        Ok(leo)
    })
    .await;
    match next {
        Some(offset) => shared.advance(key, e.generation, Phase::Fetching { offset }),
        None => shared.delay(key, e.generation),
    }
    Ok(())
}

async fn list_offset(
    broker: &Arc<Broker>,
    c: &mut PeerClient,
    key: &Key,
    leader_epoch: i32,
    timestamp: i64,
) -> Result<Option<i64>, PeerError> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(broker.config.node_id))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(&key.0))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(key.1)
                .with_current_leader_epoch(leader_epoch)
                .with_timestamp(timestamp)])]);
    let resp = match c
        .send(
            ApiKey::ListOffsets,
            LIST_OFFSETS_VERSION,
            RequestKind::ListOffsets(req),
        )
        .await?
    {
        ResponseKind::ListOffsets(r) => r,
        _ => {
            return Err(PeerError::Protocol(
                c.addr().into(),
                "unexpected response".into(),
            ))
        }
    };
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == key.1 && p.error_code == 0)
        .map(|p| p.offset))
}
