//! The producer: asynchronous `send` returning the record's partition and offset, batching per
//! partition by `batch.size` and `linger.ms`, compression, acks, retries with backoff within
//! `delivery.timeout.ms`, and idempotence on by default (InitProducerId and per-partition
//! sequence numbers; one batch in flight per partition, so retries keep the order).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brook_protocol::kafka::indexmap::IndexMap;
use brook_protocol::kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
use brook_protocol::kafka::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, ProducerId, RequestKind, ResponseKind, TopicName,
};
use brook_protocol::kafka::protocol::StrBytes;
use brook_protocol::kafka::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};

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
    /// Records waiting to be sent before `send` waits (stands in for buffer.memory).
    pub max_queued_records: usize,
    /// partitioner.class
    pub partitioner: Arc<dyn Partitioner>,
}

impl ProducerConfig {
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
            max_queued_records: 100_000,
            partitioner: Arc::new(DefaultPartitioner::default()),
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    pub topic: String,
    /// None: the partitioner chooses.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// None: the time of `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
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
    pub topic: String,
    pub partition: i32,
    /// -1 with acks=0.
    pub offset: i64,
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

enum Command {
    Send(ProducerRecord, Reply),
    Flush(oneshot::Sender<()>),
}

/// Kafka's producer.
pub struct Producer {
    tx: mpsc::Sender<Command>,
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
        let cluster = Arc::new(Cluster::new(config.client.clone())?);
        let (tx, rx) = mpsc::channel(config.max_queued_records.max(1));
        tokio::spawn(Sender::new(config, cluster).run(rx));
        Ok(Producer { tx })
    }

    /// Queues a record; the returned future resolves when it is acknowledged. Waits while
    /// `max_queued_records` are already queued (back-pressure).
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Send(record, reply))
            .await
            .map_err(|_| ClientError::Config("producer is closed".into()))?;
        Ok(DeliveryFuture(rx))
    }

    /// Sends everything queued and waits until each record is acknowledged or has failed.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(tx))
            .await
            .map_err(|_| ClientError::Config("producer is closed".into()))?;
        rx.await
            .map_err(|_| ClientError::Config("producer is closed".into()))
    }
}

struct Pending {
    record: ProducerRecord,
    timestamp: i64,
    reply: Reply,
    enqueued: Instant,
}

#[derive(Default)]
struct PartitionQueue {
    records: VecDeque<Pending>,
    bytes: usize,
    in_flight: bool,
    next_sequence: i32,
}

struct Done {
    topic: String,
    partition: i32,
}

struct Sender {
    config: ProducerConfig,
    cluster: Arc<Cluster>,
    queues: HashMap<(String, i32), PartitionQueue>,
    partitions: HashMap<String, i32>,
    producer_id: Option<(i64, i16)>,
    flushes: Vec<oneshot::Sender<()>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn record_size(r: &ProducerRecord) -> usize {
    r.key.as_ref().map_or(0, |k| k.len())
        + r.value.as_ref().map_or(0, |v| v.len())
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum::<usize>()
        + 16
}

impl Sender {
    fn new(config: ProducerConfig, cluster: Arc<Cluster>) -> Sender {
        Sender {
            config,
            cluster,
            queues: HashMap::new(),
            partitions: HashMap::new(),
            producer_id: None,
            flushes: Vec::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut open = true;
        loop {
            self.dispatch(&done_tx).await;
            if !open
                && self
                    .queues
                    .values()
                    .all(|q| q.records.is_empty() && !q.in_flight)
            {
                return;
            }
            let linger = self.next_linger_deadline();
            tokio::select! {
                cmd = rx.recv(), if open => match cmd {
                    Some(Command::Send(record, reply)) => self.enqueue(record, reply).await,
                    Some(Command::Flush(tx)) => self.flushes.push(tx),
                    None => open = false,
                },
                Some(done) = done_rx.recv() => {
                    if let Some(q) = self.queues.get_mut(&(done.topic, done.partition)) {
                        q.in_flight = false;
                    }
                }
                _ = sleep_until(linger) => {}
            }
            if !self.flushes.is_empty()
                && self
                    .queues
                    .values()
                    .all(|q| q.records.is_empty() && !q.in_flight)
            {
                for f in self.flushes.drain(..) {
                    let _ = f.send(());
                }
            }
        }
    }

    fn next_linger_deadline(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter(|q| !q.in_flight)
            .filter_map(|q| q.records.front().map(|p| p.enqueued + self.config.linger))
            .min()
    }

    async fn partition_count(&mut self, topic: &str) -> Result<i32, ClientError> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let md = self
            .cluster
            .refresh_allowing_creation(Some(&[topic.to_string()]), true)
            .await?;
        let t = md.topics.get(topic).ok_or_else(|| {
            ClientError::kafka(3, Some(format!("Topic {topic} not present in metadata")))
        })?;
        crate::error::check(t.error_code, None)?;
        let n = t.partitions.len() as i32;
        if n == 0 {
            return Err(ClientError::kafka(5, None));
        }
        self.partitions.insert(topic.to_string(), n);
        Ok(n)
    }

    async fn enqueue(&mut self, mut record: ProducerRecord, reply: Reply) {
        let partition = match record.partition {
            Some(p) => p,
            None => match self.partition_count(&record.topic).await {
                Ok(n) => self
                    .config
                    .partitioner
                    .partition(&record.topic, record.key.as_deref(), n),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            },
        };
        record.partition = Some(partition);
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let q = self
            .queues
            .entry((record.topic.clone(), partition))
            .or_default();
        q.bytes += record_size(&record);
        q.records.push_back(Pending {
            record,
            timestamp,
            reply,
            enqueued: Instant::now(),
        });
    }

    /// Sends one batch for every partition that is ready and has nothing in flight.
    async fn dispatch(&mut self, done: &mpsc::UnboundedSender<Done>) {
        let flushing = !self.flushes.is_empty();
        let now = Instant::now();
        let ready: Vec<(String, i32)> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.in_flight && !q.records.is_empty())
            .filter(|(_, q)| {
                flushing
                    || q.bytes >= self.config.batch_size
                    || q.records
                        .front()
                        .is_some_and(|p| p.enqueued + self.config.linger <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        if ready.is_empty() {
            return;
        }
        if self.config.enable_idempotence && self.producer_id.is_none() {
            match self.init_producer_id().await {
                Ok(id) => self.producer_id = Some(id),
                Err(e) => {
                    // Without a producer id nothing can be sent idempotently: fail what is ready.
                    for key in ready {
                        if let Some(q) = self.queues.get_mut(&key) {
                            for p in q.records.drain(..) {
                                let _ = p.reply.send(Err(ClientError::Protocol(format!(
                                    "InitProducerId failed: {e}"
                                ))));
                            }
                            q.bytes = 0;
                        }
                    }
                    return;
                }
            }
        }
        for key in ready {
            let Some(q) = self.queues.get_mut(&key) else {
                continue;
            };
            let mut batch = Vec::new();
            let mut size = 0;
            while let Some(p) = q.records.front() {
                let s = record_size(&p.record);
                if !batch.is_empty() && size + s > self.config.batch_size {
                    break;
                }
                size += s;
                batch.push(q.records.pop_front().expect("front exists"));
            }
            q.bytes = q.bytes.saturating_sub(size);
            q.in_flight = true;
            let base_sequence = q.next_sequence;
            if self.config.enable_idempotence {
                q.next_sequence = q.next_sequence.wrapping_add(batch.len() as i32) & i32::MAX;
            }
            self.config.partitioner.on_new_batch(&key.0, key.1);
            let job = BatchJob {
                topic: key.0.clone(),
                partition: key.1,
                records: batch,
                producer: self.producer_id.filter(|_| self.config.enable_idempotence),
                base_sequence,
                config: self.config.clone(),
                cluster: self.cluster.clone(),
            };
            let done = done.clone();
            tokio::spawn(async move {
                let (topic, partition) = (job.topic.clone(), job.partition);
                job.run().await;
                let _ = done.send(Done { topic, partition });
            });
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

struct BatchJob {
    topic: String,
    partition: i32,
    records: Vec<Pending>,
    producer: Option<(i64, i16)>,
    base_sequence: i32,
    config: ProducerConfig,
    cluster: Arc<Cluster>,
}

/// Errors after which the same batch is sent again (Kafka's retriable errors that can clear up).
fn retriable(code: i16) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 13 | 14 | 15 | 19 | 20 | 56 | 74 | 75)
}

impl BatchJob {
    fn encode(&self) -> Result<Bytes, ClientError> {
        let (pid, epoch) = self.producer.unwrap_or((-1, -1));
        let records: Vec<Record> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, p)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch wherever `offset - sequence` changes, and takes
                // the batch's base sequence from the first record: -1 (none) for a producer
                // without idempotence, so the records count up from -1.
                sequence: if self.producer.is_some() {
                    self.base_sequence.wrapping_add(i as i32) & i32::MAX
                } else {
                    (i as i32).wrapping_sub(1)
                },
                timestamp: p.timestamp,
                key: p.record.key.clone(),
                value: p.record.value.clone(),
                headers: p
                    .record
                    .headers
                    .iter()
                    .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                    .collect::<IndexMap<_, _>>(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: self.config.compression,
            },
        )
        .map_err(|e| ClientError::Protocol(format!("cannot encode batch: {e}")))?;
        Ok(buf.freeze())
    }

    fn fail(self, e: ClientError) {
        let msg = e.to_string();
        let code = e.code();
        for p in self.records {
            let _ = p.reply.send(Err(match code {
                Some(c) => ClientError::kafka(c, Some(msg.clone())),
                None => ClientError::Protocol(msg.clone()),
            }));
        }
    }

    async fn run(self) {
        let batch = match self.encode() {
            Ok(b) => b,
            Err(e) => return self.fail(e),
        };
        let deadline = self
            .records
            .first()
            .map(|p| p.enqueued)
            .unwrap_or_else(Instant::now)
            + self.config.delivery_timeout;
        loop {
            match self.attempt(batch.clone()).await {
                Ok((base_offset, append_time)) => {
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
                            topic: self.topic.clone(),
                            partition: self.partition,
                            offset,
                            timestamp,
                        }));
                    }
                    return;
                }
                Err(e) => {
                    let again = match e.code() {
                        Some(c) => retriable(c),
                        None => matches!(
                            e,
                            ClientError::Connection { .. }
                                | ClientError::Timeout(_)
                                | ClientError::Connect { .. }
                                | ClientError::NoBroker(_)
                        ),
                    };
                    if !again || Instant::now() + self.config.retry_backoff >= deadline {
                        return self.fail(e);
                    }
                    tracing::debug!(topic = %self.topic, partition = self.partition, error = %e, "retrying batch");
                    tokio::time::sleep(self.config.retry_backoff).await;
                    let _ = self
                        .cluster
                        .refresh(Some(std::slice::from_ref(&self.topic)))
                        .await;
                }
            }
        }
    }

    /// One Produce request to the partition's leader: (base offset, log append time).
    async fn attempt(&self, batch: Bytes) -> Result<(i64, i64), ClientError> {
        let md = self.cluster.metadata().await;
        let leader = match md
            .topics
            .get(&self.topic)
            .and_then(|t| t.partitions.iter().find(|p| p.partition == self.partition))
        {
            Some(p) if p.leader >= 0 => p.leader,
            _ => {
                let md = self
                    .cluster
                    .refresh(Some(std::slice::from_ref(&self.topic)))
                    .await?;
                md.topics
                    .get(&self.topic)
                    .and_then(|t| t.partitions.iter().find(|p| p.partition == self.partition))
                    .filter(|p| p.leader >= 0)
                    .map(|p| p.leader)
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
            return Ok((-1, -1));
        }
        let (_, resp) = conn
            .send(RequestKind::Produce(req), ApiKey::Produce, 11)
            .await?;
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
