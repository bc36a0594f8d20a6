//! In-process tests of the broker over real sockets, speaking the wire protocol with the codec.
//! Third-party clients are exercised by tests/integration (Python, Node, kcat); these cover the
//! server's own edges: framing, versions, bad input, long-poll.

use std::time::{Duration, Instant};

use brook_broker::{BoundServer, BrokerConfig};
use brook_protocol::batch::{build_batch, build_batch_with, SimpleRecord};
use brook_protocol::kafka::messages::create_topics_request::CreatableTopic;
use brook_protocol::kafka::messages::create_topics_response::CreatableTopicResult;
use brook_protocol::kafka::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::kafka::messages::fetch_response::PartitionData;
use brook_protocol::kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
use brook_protocol::kafka::messages::produce_response::PartitionProduceResponse;
use brook_protocol::kafka::messages::*;
use brook_protocol::kafka::protocol::StrBytes;
use brook_protocol::request::{decode_response, encode_request};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct TestBroker {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

async fn start(extra: &[&str]) -> TestBroker {
    let dir = tempfile::tempdir().unwrap();
    let mut overrides = vec![
        "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
        format!("log.dirs={}", dir.path().display()),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    let config = BrokerConfig::load(None, &overrides).unwrap();
    let server = BoundServer::bind(config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(brook_broker::run(server, async {
        let _ = rx.await;
    }));
    TestBroker {
        addr,
        stop: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}

impl TestBroker {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

struct Client {
    sock: TcpStream,
    correlation: i32,
}

impl Client {
    async fn connect(b: &TestBroker) -> Client {
        Client {
            sock: TcpStream::connect(b.addr).await.unwrap(),
            correlation: 0,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).await.unwrap();
    }

    /// Reads one response frame, or None when the broker closed the connection.
    async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        if self.sock.read_exact(&mut len).await.is_err() {
            return None;
        }
        let mut buf = BytesMut::zeroed(i32::from_be_bytes(len) as usize);
        self.sock.read_exact(&mut buf).await.ok()?;
        Some(buf.freeze())
    }

    async fn call(&mut self, key: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("wire-test")));
        let frame = encode_request(&header, &body).unwrap();
        self.send_raw(&frame).await;
        let resp = self.read_frame().await.expect("connection closed");
        let (corr, body) = decode_response(key, version, resp).unwrap();
        assert_eq!(corr, self.correlation);
        body
    }
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

async fn create_topic(c: &mut Client, name: &str, partitions: i32) -> CreatableTopicResult {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    match c
        .call(ApiKey::CreateTopics, 7, RequestKind::CreateTopics(req))
        .await
    {
        ResponseKind::CreateTopics(r) => r.topics.into_iter().next().unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn produce(
    c: &mut Client,
    name: &str,
    partition: i32,
    records: Vec<u8>,
) -> PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])]);
    match c.call(ApiKey::Produce, 9, RequestKind::Produce(req)).await {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].clone(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn fetch(
    c: &mut Client,
    name: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> PartitionData {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    match c.call(ApiKey::Fetch, 11, RequestKind::Fetch(req)).await {
        ResponseKind::Fetch(r) => r.responses[0].partitions[0].clone(),
        other => panic!("unexpected {other:?}"),
    }
}

fn rec<'a>(k: &'a [u8], v: &'a [u8]) -> SimpleRecord<'a> {
    SimpleRecord {
        key: Some(k),
        value: Some(v),
        headers: &[],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_fetch_returns_the_batch_with_assigned_offsets() {
    let b = start(&[]).await;
    let mut c = Client::connect(&b).await;
    assert_eq!(create_topic(&mut c, "t", 1).await.error_code, 0);
    let r1 = produce(
        &mut c,
        "t",
        0,
        build_batch(0, 1000, &[rec(b"a", b"1"), rec(b"b", b"2")]),
    )
    .await;
    assert_eq!((r1.error_code, r1.base_offset), (0, 0));
    let r2 = produce(&mut c, "t", 0, build_batch(0, 1000, &[rec(b"c", b"3")])).await;
    assert_eq!((r2.error_code, r2.base_offset), (0, 2));
    let data = fetch(&mut c, "t", 0, 0, 1).await;
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 3);
    let mut records = data.records.unwrap();
    let sets =
        brook_protocol::kafka::records::RecordBatchDecoder::decode_all(&mut records).unwrap();
    let offsets: Vec<i64> = sets
        .iter()
        .flat_map(|s| s.records.iter().map(|r| r.offset))
        .collect();
    assert_eq!(offsets, vec![0, 1, 2]);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_fetch_wakes_when_data_arrives() {
    let b = start(&[]).await;
    let mut c = Client::connect(&b).await;
    create_topic(&mut c, "lp", 1).await;
    let mut producer = Client::connect(&b).await;
    let started = Instant::now();
    let waiter = tokio::spawn(async move {
        let d = fetch(&mut c, "lp", 0, 10_000, 1).await;
        (d, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    produce(
        &mut producer,
        "lp",
        0,
        build_batch(0, 1, &[rec(b"k", b"v")]),
    )
    .await;
    let (data, waited) = waiter.await.unwrap();
    assert_eq!(data.high_watermark, 1);
    assert!(!data.records.unwrap().is_empty());
    assert!(
        waited < Duration::from_secs(5),
        "fetch waited {waited:?}; it should wake on produce"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_without_data_waits_max_wait_ms() {
    let b = start(&[]).await;
    let mut c = Client::connect(&b).await;
    create_topic(&mut c, "empty", 1).await;
    let started = Instant::now();
    let d = fetch(&mut c, "empty", 0, 300, 1).await;
    let waited = started.elapsed();
    assert_eq!(d.error_code, 0);
    assert!(
        waited >= Duration::from_millis(290),
        "returned after {waited:?}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_crc_is_corrupt_message_and_nothing_is_appended() {
    let b = start(&[]).await;
    let mut c = Client::connect(&b).await;
    create_topic(&mut c, "crc", 1).await;
    let mut batch = build_batch(0, 1, &[rec(b"k", b"v")]);
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let r = produce(&mut c, "crc", 0, batch).await;
    assert_eq!(
        r.error_code,
        brook_protocol::ResponseError::CorruptMessage.code()
    );
    assert_eq!(fetch(&mut c, "crc", 0, 0, 1).await.high_watermark, 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_gets_the_original_offset_and_a_gap_is_refused() {
    let b = start(&[]).await;
    let mut c = Client::connect(&b).await;
    create_topic(&mut c, "idem", 1).await;
    let pid = match c
        .call(
            ApiKey::InitProducerId,
            4,
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_timeout_ms(60000),
            ),
        )
        .await
    {
        ResponseKind::InitProducerId(r) => {
            assert_eq!(r.error_code, 0);
            r.producer_id.0
        }
        other => panic!("{other:?}"),
    };
    let batch = |seq: i32| build_batch_with(0, 1, pid, 0, seq, 0, &[rec(b"k", b"v")]);
    assert_eq!(produce(&mut c, "idem", 0, batch(0)).await.base_offset, 0);
    assert_eq!(produce(&mut c, "idem", 0, batch(1)).await.base_offset, 1);
    let retry = produce(&mut c, "idem", 0, batch(1)).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 1));
    let gap = produce(&mut c, "idem", 0, batch(5)).await;
    assert_eq!(
        gap.error_code,
        brook_protocol::ResponseError::OutOfOrderSequenceNumber.code()
    );
    assert_eq!(fetch(&mut c, "idem", 0, 0, 1).await.high_watermark, 2);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_key_closes_only_that_connection() {
    let b = start(&[]).await;
    let mut bad = Client::connect(&b).await;
    // size 8: api key 999, version 0, correlation id 1
    bad.send_raw(&[0, 0, 0, 8, 0x03, 0xe7, 0, 0, 0, 0, 0, 1])
        .await;
    assert!(bad.read_frame().await.is_none());
    let mut good = Client::connect(&b).await;
    assert_eq!(create_topic(&mut good, "still-ok", 1).await.error_code, 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_the_connection() {
    let b = start(&["socket.request.max.bytes=1000"]).await;
    let mut bad = Client::connect(&b).await;
    bad.send_raw(&2000i32.to_be_bytes()).await;
    assert!(bad.read_frame().await.is_none());
    let mut good = Client::connect(&b).await;
    assert_eq!(create_topic(&mut good, "fine", 1).await.error_code, 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_with_an_unknown_version_answers_unsupported_version_in_v0() {
    let b = start(&[]).await;
    let mut c = Client::connect(&b).await;
    // ApiVersions v99 with a v2 header: key 18, version 99, correlation 7, client id null, no tags.
    c.send_raw(&[0, 0, 0, 11, 0, 18, 0, 99, 0, 0, 0, 7, 0xff, 0xff, 0])
        .await;
    let frame = c.read_frame().await.unwrap();
    let (corr, body) = decode_response(ApiKey::ApiVersions, 0, frame).unwrap();
    assert_eq!(corr, 7);
    match body {
        ResponseKind::ApiVersions(r) => {
            assert_eq!(r.error_code, 35);
            assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Fetch as i16));
        }
        other => panic!("{other:?}"),
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_v2_is_refused() {
    let b = start(&[]).await;
    let mut c = Client::connect(&b).await;
    // Produce v2 header (key 0, version 2, correlation 1, null client id) plus a minimal body.
    c.send_raw(&[
        0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 0, 0, 0x13, 0x88, 0, 0, 0, 0,
    ])
    .await;
    assert!(c.read_frame().await.is_none());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = vec![
        "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
        format!("log.dirs={}", dir.path().display()),
    ];
    for round in 0..2 {
        let config = BrokerConfig::load(None, &overrides).unwrap();
        let server = BoundServer::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(brook_broker::run(server, async {
            let _ = rx.await;
        }));
        let tb = TestBroker {
            addr,
            stop: None,
            task: None,
            _dir: tempfile::tempdir().unwrap(),
        };
        let mut c = Client::connect(&tb).await;
        if round == 0 {
            create_topic(&mut c, "keep", 1).await;
            produce(&mut c, "keep", 0, build_batch(0, 1, &[rec(b"k", b"v")])).await;
        } else {
            let d = fetch(&mut c, "keep", 0, 0, 1).await;
            assert_eq!((d.error_code, d.high_watermark), (0, 1));
        }
        tx.send(()).unwrap();
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions_pages_with_a_cursor() {
    let b = start(&[]).await;
    let mut c = Client::connect(&b).await;
    create_topic(&mut c, "a", 3).await;
    create_topic(&mut c, "b", 2).await;
    let req = |cursor: Option<(String, i32)>| {
        use brook_protocol::kafka::messages::describe_topic_partitions_request::Cursor;
        DescribeTopicPartitionsRequest::default()
            .with_response_partition_limit(2)
            .with_cursor(cursor.map(|(t, p)| {
                Cursor::default()
                    .with_topic_name(topic(&t))
                    .with_partition_index(p)
            }))
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let ResponseKind::DescribeTopicPartitions(r) = c
            .call(
                ApiKey::DescribeTopicPartitions,
                0,
                RequestKind::DescribeTopicPartitions(req(cursor.clone())),
            )
            .await
        else {
            panic!()
        };
        for t in &r.topics {
            for p in &t.partitions {
                seen.push((
                    t.name.as_ref().unwrap().to_string(),
                    p.partition_index,
                    p.leader_id.0,
                ));
            }
        }
        match r.next_cursor {
            Some(next) => cursor = Some((next.topic_name.to_string(), next.partition_index)),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec![
            ("a".into(), 0, 1),
            ("a".into(), 1, 1),
            ("a".into(), 2, 1),
            ("b".into(), 0, 1),
            ("b".into(), 1, 1)
        ]
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch_and_describe_cluster() {
    use brook_protocol::kafka::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let b = start(&[]).await;
    let mut c = Client::connect(&b).await;
    create_topic(&mut c, "e", 1).await;
    produce(
        &mut c,
        "e",
        0,
        build_batch(0, 1, &[rec(b"k", b"v"), rec(b"k", b"w")]),
    )
    .await;
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic("e"))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(0)
                .with_leader_epoch(0)])]);
    let ResponseKind::OffsetForLeaderEpoch(r) = c
        .call(
            ApiKey::OffsetForLeaderEpoch,
            4,
            RequestKind::OffsetForLeaderEpoch(req),
        )
        .await
    else {
        panic!()
    };
    let p = &r.topics[0].partitions[0];
    // Epoch 0 is the current epoch: it ends at the log end offset.
    assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, 0, 2));
    let ResponseKind::DescribeCluster(r) = c
        .call(
            ApiKey::DescribeCluster,
            1,
            RequestKind::DescribeCluster(DescribeClusterRequest::default().with_endpoint_type(1)),
        )
        .await
    else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
    assert_eq!(r.controller_id.0, 1);
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(r.brokers[0].port, b.addr.port() as i32);
    b.stop().await;
}
