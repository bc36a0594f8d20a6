//! The producer: asynchronous `send` returning the record's partition and offset, batching per
//! partition by `batch.size` and `linger.ms`, compression, acks, retries with backoff within
//! `delivery.timeout.ms`, `buffer.memory` back-pressure (in bytes, waiting up to `max.block.ms`),
//! the `max.request.size` check, and idempotence on by default.
//!
//! Up to `max.in.flight.requests.per.connection` batches per partition are in flight at once.
//! Order is kept as Kafka's Java producer keeps it: with idempotence every batch carries the
//! next sequence number of its partition (under the producer id from InitProducerId), the
//! requests of a partition are written to the socket in sequence order, and when a batch fails
//! with a retriable error the batches after it (which the broker then refuses with
//! OUT_OF_ORDER_SEQUENCE_NUMBER) are re-queued behind it and resent one by one in sequence order.
//! An OUT_OF_ORDER_SEQUENCE_NUMBER for the batch right after the last acknowledged one is a real
//! gap: that batch fails, and once nothing is in flight the producer takes a new producer id and
//! numbers its partitions from 0 again (as the Java producer resets its sequences).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brook_protocol::kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
use brook_protocol::kafka::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, ProducerId, RequestKind, ResponseKind, TopicName,
};
use brook_protocol::kafka::protocol::StrBytes;
use brook_protocol::kafka::records::Compression;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use crate::cluster::{ClientConfig, Cluster};
use crate::error::{unexpected, ClientError};
use crate::partitioner::{DefaultPartitioner, Partitioner};

/// `acks`: how many replicas must have a record before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: fire and forget (no offset is returned; it is -1).
    None,
    /// acks=1: the leader has it.
    Leader,
    /// acks=all (-1): every in-sync replica has it.
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings (Kafka's names and defaults).
#[derive(Clone)]
pub struct ProducerConfig {
    /// Bootstrap servers, client id and request timeout.
    pub client: ClientConfig,
    /// acks (default all)
    pub acks: Acks,
    /// linger.ms (default 5, as in Kafka 4)
    pub linger: Duration,
    /// batch.size (default 16384)
    pub batch_size: usize,
    /// compression.type (default none)
    pub compression: Compression,
    /// enable.idempotence (default true; needs acks=all)
    pub enable_idempotence: bool,
    /// retry.backoff.ms (default 100)
    pub retry_backoff: Duration,
    /// delivery.timeout.ms (default 120000)
    pub delivery_timeout: Duration,
    /// buffer.memory (default 33554432): bytes of records sent but not yet acknowledged, or not
    /// yet sent, beyond which `send` waits.
    pub buffer_memory: usize,
    /// max.block.ms (default 60000): how long `send` waits for room in `buffer.memory`.
    pub max_block: Duration,
    /// max.in.flight.requests.per.connection (default 5; at most 5 with idempotence): batches of
    /// one partition sent and not yet answered.
    pub max_in_flight: usize,
    /// max.request.size (default 1048576): the largest record (with its batch's overhead) `send`
    /// accepts, and the most a batch holds.
    pub max_request_size: usize,
    /// partitioner.class
    pub partitioner: Arc<dyn Partitioner>,
}

impl ProducerConfig {
    /// Kafka's defaults for a cluster reached through `bootstrap` (`host:port`, comma-separated).
    pub fn new(bootstrap: &str) -> ProducerConfig {
        ProducerConfig {
            client: ClientConfig::new(bootstrap),
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16_384,
            compression: Compression::None,
            enable_idempotence: true,
            retry_backoff: Duration::from_millis(100),
            delivery_timeout: Duration::from_secs(120),
            buffer_memory: 33_554_432,
            max_block: Duration::from_secs(60),
            max_in_flight: 5,
            max_request_size: 1_048_576,
            partitioner: Arc::new(DefaultPartitioner::default()),
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// None: the partitioner chooses.
    pub partition: Option<i32>,
    /// The key (None: null).
    pub key: Option<Bytes>,
    /// The value (None: null, a tombstone on a compacted topic).
    pub value: Option<Bytes>,
    /// Headers in order; a header's value may be null.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// None: the time of `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with a key and a value (either may be null), no headers, the
    /// partition chosen by the partitioner and the timestamp of `send`.
    pub fn new(
        topic: impl Into<String>,
        key: Option<impl Into<Bytes>>,
        value: Option<impl Into<Bytes>>,
    ) -> Self {
        ProducerRecord {
            topic: topic.into(),
            key: key.map(Into::into),
            value: value.map(Into::into),
            ..Default::default()
        }
    }
}

/// Where an acknowledged record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// -1 with acks=0.
    pub offset: i64,
    /// The record's timestamp: its create time, or the broker's append time on a topic with
    /// `message.timestamp.type=LogAppendTime`.
    pub timestamp: i64,
}

type Reply = oneshot::Sender<Result<RecordMetadata, ClientError>>;

/// Resolves when the record is acknowledged (or finally fails).
pub struct DeliveryFuture(oneshot::Receiver<Result<RecordMetadata, ClientError>>);

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(ClientError::Connection {
                    addr: String::new(),
                    reason: "producer closed".into(),
                })
            })
        })
    }
}

/// Kafka's producer.
///
/// `send` appends the record to its partition's queue (shared with the background sender, as
/// the Java producer's record accumulator is) and wakes the sender only when a queue starts or
/// fills a batch; the sender cuts batches, numbers them and sends each in its own task.
pub struct Producer {
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    config: Arc<ProducerConfig>,
    memory: Arc<Semaphore>,
    buffer_memory: usize,
    /// Partition counts by topic.
    partitions: std::sync::Mutex<HashMap<String, i32>>,
}

/// The size of a record batch's header (Kafka's `RECORD_BATCH_OVERHEAD`).
const BATCH_OVERHEAD: usize = 61;

/// Bytes of a zigzag varint.
fn varint_len(n: i64) -> usize {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut len = 1;
    while z >= 0x80 {
        z >>= 7;
        len += 1;
    }
    len
}

/// An upper bound of a record's size inside a batch (its offset and timestamp deltas at their
/// widest), as Kafka's `DefaultRecord.recordSizeUpperBound`.
fn record_size(r: &ProducerRecord) -> usize {
    fn field(b: &Option<Bytes>) -> usize {
        match b {
            Some(b) => varint_len(b.len() as i64) + b.len(),
            None => 1,
        }
    }
    let headers: usize = r
        .headers
        .iter()
        .map(|(k, v)| varint_len(k.len() as i64) + k.len() + field(v))
        .sum();
    let body = 1 // attributes
        + 10 // timestamp delta
        + 5 // offset delta
        + field(&r.key)
        + field(&r.value)
        + varint_len(r.headers.len() as i64)
        + headers;
    varint_len(body as i64) + body
}

impl Producer {
    /// Starts the producer's background sender. Fails on an invalid configuration.
    pub fn new(config: ProducerConfig) -> Result<Producer, ClientError> {
        if config.enable_idempotence && config.acks != Acks::All {
            return Err(ClientError::Config(
                "enable.idempotence=true requires acks=all (Kafka's rule)".into(),
            ));
        }
        if config.batch_size == 0 {
            return Err(ClientError::Config("batch.size must be positive".into()));
        }
        if config.max_in_flight == 0 {
            return Err(ClientError::Config(
                "max.in.flight.requests.per.connection must be at least 1".into(),
            ));
        }
        if config.enable_idempotence && config.max_in_flight > 5 {
            return Err(ClientError::Config(
                "Must set max.in.flight.requests.per.connection to at most 5 to use the idempotent producer."
                    .into(),
            ));
        }
        if config.buffer_memory == 0 || config.max_request_size == 0 {
            return Err(ClientError::Config(
                "buffer.memory and max.request.size must be positive".into(),
            ));
        }
        let cluster = Arc::new(Cluster::new(config.client.clone())?);
        let buffer_memory = config.buffer_memory.min(Semaphore::MAX_PERMITS);
        let config = Arc::new(config);
        let shared = Arc::new(Shared {
            acc: std::sync::Mutex::new(Accumulator::default()),
            wake: Notify::new(),
        });
        let sender = Sender {
            config: config.clone(),
            cluster: cluster.clone(),
            shared: shared.clone(),
        };
        tokio::spawn(sender.run());
        Ok(Producer {
            shared,
            cluster,
            config,
            memory: Arc::new(Semaphore::new(buffer_memory)),
            buffer_memory,
            partitions: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Queues a record; the returned future resolves when it is acknowledged or has failed.
    ///
    /// As in Kafka's Java producer, what goes wrong with the record itself fails the future,
    /// not `send`: MESSAGE_TOO_LARGE (Kafka's RecordTooLargeException) at once, without
    /// sending, for a record larger than `max.request.size` or `buffer.memory`;
    /// [`ClientError::BufferExhausted`] when `buffer.memory` bytes of records stayed waiting or
    /// unacknowledged for `max.block.ms` (`send` waits that long for room: the back-pressure);
    /// an unknown topic or an unreachable cluster when the partition count cannot be had. `send`
    /// itself fails only when the producer is closed.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self.append(record, reply).await {
            let (reply, rx) = oneshot::channel();
            let _ = reply.send(Err(e));
            return Ok(DeliveryFuture(rx));
        }
        Ok(DeliveryFuture(rx))
    }

    async fn append(&self, record: ProducerRecord, reply: Reply) -> Result<(), ClientError> {
        let size = record_size(&record);
        let serialized = size + BATCH_OVERHEAD;
        if serialized > self.config.max_request_size {
            return Err(too_large(format!(
                "The message is {serialized} bytes when serialized which is larger than {}, \
                 which is the value of the max.request.size configuration.",
                self.config.max_request_size
            )));
        }
        if serialized > self.buffer_memory {
            return Err(too_large(format!(
                "The message is {serialized} bytes when serialized which is larger than the total \
                 memory buffer you have configured with the buffer.memory configuration."
            )));
        }
        let permits = u32::try_from(size).map_err(|_| too_large(format!("{size} bytes")))?;
        let memory = match self.memory.clone().try_acquire_many_owned(permits) {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(
                self.config.max_block,
                self.memory.clone().acquire_many_owned(permits),
            )
            .await
            .map_err(|_| ClientError::BufferExhausted(self.config.max_block))?
            .map_err(|_| closed())?,
        };
        // As the Java producer, the topic's metadata first (the broker may auto-create it).
        let mut n = self.partition_count(&record.topic, false).await?;
        if record.partition.is_some_and(|p| p >= n) {
            // Partitions may have been added since the count was cached.
            n = self.partition_count(&record.topic, true).await?;
        }
        let partition = match record.partition {
            Some(p) if p < 0 || p >= n => {
                return Err(ClientError::Config(format!(
                    "Invalid partition given with record: {p} is not in the range [0...{n})."
                )))
            }
            Some(p) => p,
            None => self
                .config
                .partitioner
                .partition(&record.topic, record.key.as_deref(), n),
        };
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let pending = Pending {
            record,
            timestamp,
            reply,
            enqueued: Instant::now(),
            size,
            memory: Some(memory),
        };
        let wake = {
            let mut acc = self.shared.lock();
            if acc.closed {
                return Err(closed());
            }
            let i = acc.queue_index(&pending.record.topic, partition);
            let q = &mut acc.queues[i];
            q.records.push_back(pending);
            q.bytes += size;
            // The sender needs to know when a linger starts and when a batch is full.
            q.records.len() == 1
                || (q.bytes >= self.config.batch_size && q.bytes - size < self.config.batch_size)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// The topic's partition count: cached, or (`fresh`) from new metadata.
    async fn partition_count(&self, topic: &str, fresh: bool) -> Result<i32, ClientError> {
        if !fresh {
            if let Some(n) = self
                .partitions
                .lock()
                .ok()
                .and_then(|p| p.get(topic).copied())
            {
                return Ok(n);
            }
        }
        // As the Java producer: a topic that is not there yet (being auto-created, or not yet
        // created by someone else) is waited for, up to max.block.ms.
        let deadline = Instant::now() + self.config.max_block;
        loop {
            let md = self
                .cluster
                .refresh_allowing_creation(Some(&[topic.to_string()]), true)
                .await?;
            match md.topics.get(topic) {
                Some(t) if t.error_code == 0 && !t.partitions.is_empty() => {
                    let n = t.partitions.len() as i32;
                    if let Ok(mut p) = self.partitions.lock() {
                        p.insert(topic.to_string(), n);
                    }
                    return Ok(n);
                }
                // UNKNOWN_TOPIC_OR_PARTITION and LEADER_NOT_AVAILABLE pass; others do not.
                Some(t) if !matches!(t.error_code, 0 | 3 | 5) => {
                    crate::error::check(t.error_code, None)?
                }
                _ => {}
            }
            if Instant::now() + self.config.retry_backoff > deadline {
                return Err(ClientError::kafka(
                    3,
                    Some(format!(
                        "Topic {topic} not present in metadata after {} ms.",
                        self.config.max_block.as_millis()
                    )),
                ));
            }
            tokio::time::sleep(self.config.retry_backoff).await;
        }
    }

    /// Sends everything queued and waits until each record is acknowledged or has failed.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.shared.lock().flushes.push(tx);
        self.shared.wake.notify_one();
        rx.await.map_err(|_| closed())
    }
}

impl Drop for Producer {
    /// Like Kafka's `close()`: what is queued is still sent (at once, without lingering), then
    /// the sender stops.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

fn closed() -> ClientError {
    ClientError::Config("producer is closed".into())
}

/// Kafka's RecordTooLargeException (MESSAGE_TOO_LARGE).
fn too_large(message: String) -> ClientError {
    ClientError::kafka(10, Some(message))
}

/// A record waiting to be sent or acknowledged; its share of `buffer.memory` is given back
/// when it is dropped (after its reply was sent).
struct Pending {
    record: ProducerRecord,
    timestamp: i64,
    reply: Reply,
    enqueued: Instant,
    size: usize,
    /// Its share of `buffer.memory`; merged into its batch's when it is batched (one release
    /// per batch instead of one per record).
    memory: Option<OwnedSemaphorePermit>,
}

/// The producer id and epoch a batch is sent under (None without idempotence).
type ProducerIdentity = Option<(i64, i16)>;

/// Records sent together, with their partition's sequence numbers.
struct Batch {
    records: Vec<Pending>,
    /// The first record's sequence, counted without wrapping (the wire's wraps at 2^31).
    sequence: u64,
    /// When its first record was sent (`delivery.timeout.ms` counts from there).
    created: Instant,
    /// Not to be resent before this.
    retry_at: Instant,
    /// The encoded batch and the producer id, epoch and sequence it was encoded with.
    encoded: Option<(ProducerIdentity, u64, Bytes)>,
    /// Its records' share of `buffer.memory`, given back when the batch is dropped.
    _memory: Option<OwnedSemaphorePermit>,
}

impl Batch {
    fn deadline(&self, config: &ProducerConfig) -> Instant {
        self.created + config.delivery_timeout
    }

    fn fail(self, e: &ClientError) {
        for p in self.records {
            let _ = p.reply.send(Err(e.duplicate()));
        }
    }

    fn complete(self, topic: &str, partition: i32, base_offset: i64, append_time: i64) {
        for (i, p) in self.records.into_iter().enumerate() {
            let offset = if base_offset >= 0 {
                base_offset + i as i64
            } else {
                -1
            };
            let timestamp = if append_time >= 0 {
                append_time
            } else {
                p.timestamp
            };
            let _ = p.reply.send(Ok(RecordMetadata {
                topic: topic.to_string(),
                partition,
                offset,
                timestamp,
            }));
        }
    }
}

/// One partition's records, batches and sequence numbers.
struct PartitionQueue {
    topic: String,
    partition: i32,
    /// Records not yet in a batch.
    records: VecDeque<Pending>,
    /// Their bytes.
    bytes: usize,
    /// Batches sent and not answered.
    in_flight: usize,
    /// Batches to send again, in sequence order; they go before any new batch, one at a time.
    retries: VecDeque<Batch>,
    /// The sequence of the next new batch.
    next_sequence: u64,
    /// Every sequence below this is acknowledged.
    acked: u64,
    /// Resolves once the last batch sent was written to the socket (the next one waits for it).
    last_write: Option<oneshot::Receiver<()>>,
}

impl PartitionQueue {
    fn idle(&self) -> bool {
        self.records.is_empty() && self.in_flight == 0 && self.retries.is_empty()
    }
}

/// A batch's answer, back from its task.
struct Done {
    queue: usize,
    batch: Batch,
    result: Result<(i64, i64), ClientError>,
}

/// What `send` and the sender share.
struct Shared {
    acc: std::sync::Mutex<Accumulator>,
    /// Wakes the sender: a queue started or filled a batch, a flush, the producer closed.
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Accumulator> {
        // Nothing panics while holding the lock; if something did, the queues are still sound.
        self.acc.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The queues and the idempotence state.
#[derive(Default)]
struct Accumulator {
    queues: Vec<PartitionQueue>,
    /// topic -> partition -> index in `queues`
    index: HashMap<String, HashMap<i32, usize>>,
    flushes: Vec<oneshot::Sender<()>>,
    /// The producer was dropped: send what is left, then stop.
    closed: bool,
    producer_id: Option<(i64, i16)>,
    /// No InitProducerId before this (after a retriable failure).
    init_retry_at: Option<Instant>,
    /// A sequence gap was found: new producer id and sequences once nothing is in flight.
    reset_pending: bool,
    /// Batches in flight, all partitions.
    in_flight: usize,
    /// Buffers of acknowledged batches, to encode the next ones in.
    buffers: Vec<BytesMut>,
}

/// Keeps an acknowledged batch's buffer to encode a later batch in (fresh large buffers cost a
/// page fault per page).
fn recycle(buffers: &mut Vec<BytesMut>, encoded: Option<(ProducerIdentity, u64, Bytes)>) {
    if let Some((_, _, bytes)) = encoded {
        if let Ok(buf) = bytes.try_into_mut() {
            if buffers.len() < 8 && buf.capacity() <= 16 << 20 {
                buffers.push(buf);
            }
        }
    }
}

/// What the sender does next.
enum Step {
    /// Wait for a wake-up, an answer, or this time.
    Wait(Option<Instant>),
    /// Batches are due but there is no producer id yet.
    InitProducerId,
    /// Closed and nothing left.
    Exit,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Errors after which the same batch is sent again (Kafka's retriable errors that can clear up;
/// CORRUPT_MESSAGE is one, as in the Java producer: the batch may have been damaged on the way).
fn retriable(code: i16) -> bool {
    matches!(
        code,
        2 | 3 | 5 | 6 | 7 | 13 | 14 | 15 | 19 | 20 | 56 | 74 | 75
    )
}

/// Errors after which the partition's leader is looked up again.
fn stale_metadata(e: &ClientError) -> bool {
    match e.code() {
        Some(c) => matches!(c, 3 | 5 | 6 | 74 | 75),
        None => matches!(
            e,
            ClientError::Connection { .. } | ClientError::Connect { .. } | ClientError::NoBroker(_)
        ),
    }
}

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
const UNKNOWN_PRODUCER_ID: i16 = 59;

impl Accumulator {
    fn idle(&self) -> bool {
        self.queues.iter().all(PartitionQueue::idle)
    }

    fn queue_index(&mut self, topic: &str, partition: i32) -> usize {
        if let Some(i) = self.index.get(topic).and_then(|m| m.get(&partition)) {
            return *i;
        }
        let i = self.queues.len();
        self.queues.push(PartitionQueue {
            topic: topic.to_string(),
            partition,
            records: VecDeque::new(),
            bytes: 0,
            in_flight: 0,
            retries: VecDeque::new(),
            next_sequence: 0,
            acked: 0,
            last_write: None,
        });
        self.index
            .entry(topic.to_string())
            .or_default()
            .insert(partition, i);
        i
    }

    /// Whether queue `i` has a batch to send now: its next retry when nothing of it is in
    /// flight, else a new batch while fewer than `max.in.flight` are.
    fn due(&self, i: usize, config: &ProducerConfig, now: Instant) -> bool {
        let q = &self.queues[i];
        if let Some(b) = q.retries.front() {
            return q.in_flight == 0 && b.retry_at <= now;
        }
        let flushing = self.closed || !self.flushes.is_empty();
        q.in_flight < config.max_in_flight
            && q.records.front().is_some_and(|p| {
                flushing || q.bytes >= config.batch_size || p.enqueued + config.linger <= now
            })
    }

    /// Sends what is due and says what to do next.
    fn step(&mut self, sender: &Sender, done: &mpsc::UnboundedSender<Done>) -> Step {
        let config = &*sender.config;
        let now = Instant::now();
        if self.reset_pending && self.in_flight == 0 {
            self.reset_sequences(config);
        }
        for i in 0..self.queues.len() {
            self.expire(i, config, now);
        }
        let can_send = !(self.reset_pending && self.in_flight > 0);
        if can_send {
            let due: Vec<usize> = (0..self.queues.len())
                .filter(|&i| self.due(i, config, now))
                .collect();
            if !due.is_empty() && config.enable_idempotence && self.producer_id.is_none() {
                return match self.init_retry_at {
                    Some(t) if t > now => Step::Wait(Some(t)),
                    _ => Step::InitProducerId,
                };
            }
            for i in due {
                if let Some(batch) = self.queues[i].retries.pop_front() {
                    self.launch(i, batch, sender, done);
                    continue;
                }
                while self.due(i, config, now) {
                    let batch = self.next_batch(i, config, now);
                    self.launch(i, batch, sender, done);
                }
            }
        }
        if self.idle() {
            for f in self.flushes.drain(..) {
                let _ = f.send(());
            }
            if self.closed {
                return Step::Exit;
            }
        }
        if !can_send {
            // Only an answer can move things on.
            return Step::Wait(None);
        }
        Step::Wait(self.next_wake(config))
    }

    /// The next time something becomes due: a linger, a retry, an expiry.
    fn next_wake(&self, config: &ProducerConfig) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for q in &self.queues {
            if let Some(b) = q.retries.front() {
                if q.in_flight == 0 {
                    at(b.retry_at.min(b.deadline(config)));
                }
            } else if let Some(p) = q.records.front() {
                if q.in_flight < config.max_in_flight {
                    at(p.enqueued + config.linger);
                } else {
                    at(p.enqueued + config.delivery_timeout);
                }
            }
        }
        wake
    }

    /// Takes the partition's next batch off its record queue and numbers it.
    fn next_batch(&mut self, i: usize, config: &ProducerConfig, now: Instant) -> Batch {
        let limit = config.batch_size;
        let max_request = config.max_request_size - BATCH_OVERHEAD.min(config.max_request_size);
        let q = &mut self.queues[i];
        let mut records = Vec::new();
        let mut size = 0;
        let mut memory: Option<OwnedSemaphorePermit> = None;
        while let Some(p) = q.records.front() {
            if !records.is_empty() && (size + p.size > limit || size + p.size > max_request) {
                break;
            }
            size += p.size;
            if let Some(mut p) = q.records.pop_front() {
                if let Some(m) = p.memory.take() {
                    match &mut memory {
                        Some(all) => all.merge(m),
                        None => memory = Some(m),
                    }
                }
                records.push(p);
            }
        }
        q.bytes = q.bytes.saturating_sub(size);
        let sequence = q.next_sequence;
        q.next_sequence += records.len() as u64;
        let created = records.first().map_or(now, |p| p.enqueued);
        config.partitioner.on_new_batch(&q.topic, q.partition);
        Batch {
            records,
            sequence,
            created,
            retry_at: now,
            encoded: None,
            _memory: memory,
        }
    }

    /// Fails records and retries of queue `i` whose `delivery.timeout.ms` has passed.
    fn expire(&mut self, i: usize, config: &ProducerConfig, now: Instant) {
        let timeout = config.delivery_timeout;
        let q = &mut self.queues[i];
        while q
            .records
            .front()
            .is_some_and(|p| p.enqueued + timeout <= now)
        {
            if let Some(p) = q.records.pop_front() {
                q.bytes = q.bytes.saturating_sub(p.size);
                let _ = p.reply.send(Err(ClientError::Timeout(timeout)));
            }
        }
        if q.in_flight == 0 {
            while q.retries.front().is_some_and(|b| b.deadline(config) <= now) {
                if let Some(b) = q.retries.pop_front() {
                    b.fail(&ClientError::Timeout(timeout));
                    // What follows it can no longer be in sequence.
                    self.reset_pending |= config.enable_idempotence;
                }
            }
        }
    }

    /// Fails every record waiting (InitProducerId failed for good).
    fn fail_waiting(&mut self, e: &ClientError) {
        for q in &mut self.queues {
            for p in q.records.drain(..) {
                let _ = p.reply.send(Err(e.duplicate()));
            }
            q.bytes = 0;
            for b in q.retries.drain(..) {
                b.fail(e);
            }
        }
    }

    /// After a sequence gap: a new producer id, and every partition numbered from 0 again (the
    /// batches waiting to be resent first, in their order).
    fn reset_sequences(&mut self, config: &ProducerConfig) {
        self.reset_pending = false;
        if !config.enable_idempotence {
            return;
        }
        self.producer_id = None;
        for q in &mut self.queues {
            let mut sequence = 0;
            for b in q.retries.iter_mut() {
                b.sequence = sequence;
                b.encoded = None;
                sequence += b.records.len() as u64;
            }
            q.next_sequence = sequence;
            q.acked = 0;
        }
    }

    /// Sends a batch in its own task; the answer comes back as a [`Done`].
    fn launch(
        &mut self,
        i: usize,
        batch: Batch,
        sender: &Sender,
        done: &mpsc::UnboundedSender<Done>,
    ) {
        let producer = self
            .producer_id
            .filter(|_| sender.config.enable_idempotence);
        self.in_flight += 1;
        let q = &mut self.queues[i];
        q.in_flight += 1;
        let (written, next_write) = oneshot::channel();
        let after = q.last_write.replace(next_write);
        let buffer = self.buffers.pop();
        let flight = Flight {
            topic: q.topic.clone(),
            partition: q.partition,
            producer,
            config: sender.config.clone(),
            cluster: sender.cluster.clone(),
        };
        let done = done.clone();
        tokio::spawn(async move {
            let mut batch = batch;
            let result = flight.send(&mut batch, after, written, buffer).await;
            let _ = done.send(Done {
                queue: i,
                batch,
                result,
            });
        });
    }

    /// Handles a batch's answer: acknowledges it, queues it to be sent again, or fails it.
    fn answered(&mut self, done: Done, config: &ProducerConfig) {
        let Done {
            queue,
            mut batch,
            result,
        } = done;
        self.in_flight -= 1;
        let idempotent = config.enable_idempotence;
        let now = Instant::now();
        let q = &mut self.queues[queue];
        q.in_flight -= 1;
        let error = match result {
            Ok((base_offset, append_time)) => {
                q.acked = q.acked.max(batch.sequence + batch.records.len() as u64);
                recycle(&mut self.buffers, batch.encoded.take());
                batch.complete(&q.topic, q.partition, base_offset, append_time);
                return;
            }
            Err(e) => e,
        };
        let code = error.code();
        if code == Some(DUPLICATE_SEQUENCE_NUMBER) && idempotent {
            // The broker has it already (Java's producer counts this a success, offset unknown).
            q.acked = q.acked.max(batch.sequence + batch.records.len() as u64);
            recycle(&mut self.buffers, batch.encoded.take());
            batch.complete(&q.topic, q.partition, -1, -1);
            return;
        }
        let (again, backoff) = match code {
            // A batch before this one failed or is still unanswered: the broker refused this one
            // only because it came too early. Resent in order once that one went through.
            Some(OUT_OF_ORDER_SEQUENCE_NUMBER) if idempotent && batch.sequence != q.acked => {
                (true, false)
            }
            // A real gap: fail it (below); the producer starts over with a new id and sequences.
            Some(OUT_OF_ORDER_SEQUENCE_NUMBER) if idempotent => (false, false),
            // The broker forgot this producer (its records went with retention): resend under a
            // new producer id.
            Some(UNKNOWN_PRODUCER_ID) if idempotent => {
                self.reset_pending = true;
                (true, false)
            }
            Some(c) => (retriable(c), true),
            None => (
                matches!(
                    error,
                    ClientError::Connection { .. }
                        | ClientError::Timeout(_)
                        | ClientError::Connect { .. }
                        | ClientError::NoBroker(_)
                ),
                true,
            ),
        };
        let retry_at = if backoff {
            now + config.retry_backoff
        } else {
            now
        };
        if again && retry_at < batch.deadline(config) {
            tracing::debug!(topic = %q.topic, partition = q.partition, error = %error, "retrying batch");
            batch.retry_at = retry_at;
            let at = q.retries.partition_point(|b| b.sequence < batch.sequence);
            q.retries.insert(at, batch);
        } else {
            batch.fail(&error);
            // Its sequences were used and are lost: the batches after it would have a gap
            // before them.
            if idempotent {
                self.reset_pending = true;
            }
        }
    }
}

/// The background task that sends batches.
struct Sender {
    config: Arc<ProducerConfig>,
    cluster: Arc<Cluster>,
    shared: Arc<Shared>,
}

impl Sender {
    async fn run(self) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        loop {
            let step = self.shared.lock().step(&self, &done_tx);
            let wake = match step {
                Step::Exit => return,
                Step::InitProducerId => {
                    self.obtain_producer_id().await;
                    continue;
                }
                Step::Wait(wake) => wake,
            };
            tokio::select! {
                _ = self.shared.wake.notified() => {}
                Some(done) = done_rx.recv() => {
                    let mut acc = self.shared.lock();
                    acc.answered(done, &self.config);
                    // Take every answer that is there under the one lock.
                    while let Ok(done) = done_rx.try_recv() {
                        acc.answered(done, &self.config);
                    }
                }
                _ = sleep_until(wake) => {}
            }
        }
    }

    /// Runs InitProducerId and records the outcome.
    async fn obtain_producer_id(&self) {
        let result = self.init_producer_id().await;
        let mut acc = self.shared.lock();
        match result {
            Ok(id) => {
                acc.producer_id = Some(id);
                acc.init_retry_at = None;
            }
            Err(e) if e.code().is_some_and(|c| retriable(c) || c == 16) => {
                tracing::debug!(error = %e, "InitProducerId failed; retrying");
                acc.init_retry_at = Some(Instant::now() + self.config.retry_backoff);
            }
            Err(e) => {
                // Without a producer id nothing can be sent idempotently: fail what waits.
                acc.fail_waiting(&ClientError::Protocol(format!(
                    "InitProducerId failed: {e}"
                )));
            }
        }
    }

    async fn init_producer_id(&self) -> Result<(i64, i16), ClientError> {
        let conn = self.cluster.any().await?;
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let (_, resp) = conn
            .send(RequestKind::InitProducerId(req), ApiKey::InitProducerId, 4)
            .await?;
        let ResponseKind::InitProducerId(r) = resp else {
            return Err(unexpected("InitProducerId"));
        };
        crate::error::check(r.error_code, None)?;
        Ok((r.producer_id.0, r.producer_epoch))
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// What a batch's task needs to send it.
struct Flight {
    topic: String,
    partition: i32,
    producer: Option<(i64, i16)>,
    config: Arc<ProducerConfig>,
    cluster: Arc<Cluster>,
}

/// Writes a zigzag varint (Kafka's varint and varlong).
fn put_varint(out: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8(z as u8 | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// The records of a batch (magic 2): each one's length, attributes, timestamp and offset
/// deltas, key, value and headers (in order, repeats kept).
fn write_records(out: &mut BytesMut, records: &[Pending], base_ts: i64) {
    fn field_len(b: Option<&[u8]>) -> usize {
        b.map_or(1, |b| varint_len(b.len() as i64) + b.len())
    }
    fn put_field(out: &mut BytesMut, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                put_varint(out, b.len() as i64);
                out.put_slice(b);
            }
            None => put_varint(out, -1),
        }
    }
    for (i, p) in records.iter().enumerate() {
        let r = &p.record;
        let delta = p.timestamp - base_ts;
        let headers: usize = r
            .headers
            .iter()
            .map(|(k, v)| field_len(Some(k.as_bytes())) + field_len(v.as_deref()))
            .sum();
        let body = 1
            + varint_len(delta)
            + varint_len(i as i64)
            + field_len(r.key.as_deref())
            + field_len(r.value.as_deref())
            + varint_len(r.headers.len() as i64)
            + headers;
        put_varint(out, body as i64);
        out.put_i8(0); // attributes
        put_varint(out, delta);
        put_varint(out, i as i64);
        put_field(out, r.key.as_deref());
        put_field(out, r.value.as_deref());
        put_varint(out, r.headers.len() as i64);
        for (k, v) in &r.headers {
            put_field(out, Some(k.as_bytes()));
            put_field(out, v.as_deref());
        }
    }
}

/// The wire value of a sequence (Kafka's wrap past `i32::MAX` to 0).
fn wire_sequence(sequence: u64) -> i32 {
    (sequence & i32::MAX as u64) as i32
}

impl Flight {
    /// The batch in Kafka's record batch format (magic 2), written here rather than through
    /// `kafka-protocol`'s encoder, whose headers are a map: a record may repeat a header name.
    fn encode(&self, batch: &Batch, buffer: Option<BytesMut>) -> Result<Bytes, ClientError> {
        use brook_protocol::kafka::compression::{self as codec, Compressor};
        let (pid, epoch) = self.producer.unwrap_or((-1, -1));
        let base_sequence = match self.producer {
            Some(_) => wire_sequence(batch.sequence),
            None => -1,
        };
        let records = &batch.records;
        let base_ts = records.iter().map(|p| p.timestamp).min().unwrap_or(0);
        let max_ts = records.iter().map(|p| p.timestamp).max().unwrap_or(0);
        let mut buf = buffer.unwrap_or_default();
        buf.clear();
        buf.reserve(BATCH_OVERHEAD + records.iter().map(|p| p.size).sum::<usize>());
        buf.put_i64(0); // base offset
        buf.put_i32(0); // batch length, below
        buf.put_i32(-1); // partition leader epoch
        buf.put_i8(2); // magic
        buf.put_u32(0); // CRC, below
        let crc_from = buf.len();
        buf.put_i16(self.config.compression as i16); // attributes: the codec
        buf.put_i32(records.len() as i32 - 1); // last offset delta
        buf.put_i64(base_ts);
        buf.put_i64(max_ts);
        buf.put_i64(pid);
        buf.put_i16(epoch);
        buf.put_i32(base_sequence);
        buf.put_i32(records.len() as i32);
        let write = |out: &mut BytesMut| {
            write_records(out, records, base_ts);
            Ok(())
        };
        match self.config.compression {
            Compression::None => {
                write_records(&mut buf, records, base_ts);
                Ok(())
            }
            Compression::Gzip => codec::Gzip::compress(&mut buf, write),
            Compression::Snappy => codec::Snappy::compress(&mut buf, write),
            Compression::Lz4 => codec::Lz4::compress(&mut buf, write),
            Compression::Zstd => codec::Zstd::compress(&mut buf, write),
        }
        .map_err(|e| ClientError::Protocol(format!("cannot compress batch: {e}")))?;
        let length = (buf.len() - 12) as i32;
        buf[8..12].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&buf[crc_from..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(buf.freeze())
    }

    /// Encodes the batch (unless it was, with the same producer id and sequence), waits until
    /// the partition's previous batch was written, writes this one, lets the next one go, and
    /// waits for the answer: (base offset, log append time).
    async fn send(
        &self,
        batch: &mut Batch,
        after: Option<oneshot::Receiver<()>>,
        written: oneshot::Sender<()>,
        buffer: Option<BytesMut>,
    ) -> Result<(i64, i64), ClientError> {
        let bytes = match &batch.encoded {
            Some((producer, sequence, bytes))
                if *producer == self.producer && *sequence == batch.sequence =>
            {
                bytes.clone()
            }
            _ => {
                let bytes = self.encode(batch, buffer)?;
                batch.encoded = Some((self.producer, batch.sequence, bytes.clone()));
                bytes
            }
        };
        if let Some(after) = after {
            // An error only means the previous batch's task ended without writing.
            let _ = after.await;
        }
        let result = self.attempt(bytes, written).await;
        if let Err(e) = &result {
            if stale_metadata(e) {
                let _ = self
                    .cluster
                    .refresh(Some(std::slice::from_ref(&self.topic)))
                    .await;
            }
        }
        result
    }

    /// One Produce request to the partition's leader.
    async fn attempt(
        &self,
        batch: Bytes,
        written: oneshot::Sender<()>,
    ) -> Result<(i64, i64), ClientError> {
        let leader = match self.cluster.leader(&self.topic, self.partition).await {
            Some(l) => l,
            None => {
                self.cluster
                    .refresh(Some(std::slice::from_ref(&self.topic)))
                    .await?;
                self.cluster
                    .leader(&self.topic, self.partition)
                    .await
                    .ok_or_else(|| ClientError::kafka(3, None))?
            }
        };
        let conn = self.cluster.broker(leader).await?;
        let req = ProduceRequest::default()
            .with_transactional_id(None)
            .with_acks(self.config.acks.wire())
            .with_timeout_ms(
                self.config
                    .client
                    .request_timeout
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
            )
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(self.partition)
                    .with_records(Some(batch))])]);
        if self.config.acks == Acks::None {
            conn.send_without_response(RequestKind::Produce(req), ApiKey::Produce, 11)
                .await?;
            drop(written);
            return Ok((-1, -1));
        }
        let pending = conn
            .send_pipelined(RequestKind::Produce(req), ApiKey::Produce, 11)
            .await;
        drop(written);
        let (_, resp) = pending?.response().await?;
        let ResponseKind::Produce(r) = resp else {
            return Err(unexpected("Produce"));
        };
        let p = r
            .responses
            .into_iter()
            .flat_map(|t| t.partition_responses)
            .find(|p| p.index == self.partition)
            .ok_or_else(|| {
                ClientError::Protocol("Produce response without the partition".into())
            })?;
        crate::error::check(p.error_code, p.error_message.map(|m| m.to_string()))?;
        Ok((p.base_offset, p.log_append_time_ms))
    }
}
