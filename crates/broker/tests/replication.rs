//! Partition replication between real in-process brokers on 127.0.0.1: a hand-built metadata image
//! is installed on three brokers, and a test "controller" commits the ISR changes the leaders
//! propose by installing the changed image everywhere. Every wait is a condition with a deadline.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_broker::{BoundServer, Broker, BrokerConfig};
use brook_metadata::image::{BrokerImage, PartitionImage, TopicImage};
use brook_metadata::record::ConfigResource;
use brook_metadata::MetadataImage;
use brook_protocol::batch::{build_batch, SimpleRecord};
use brook_protocol::frame::take_frame;
use brook_protocol::kafka::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
use brook_protocol::kafka::messages::produce_response::PartitionProduceResponse;
use brook_protocol::kafka::messages::*;
use brook_protocol::kafka::protocol::StrBytes;
use brook_protocol::request::{decode_response, encode_request};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const TOPIC: &str = "replicated";
const LAG_MS: u64 = 1500;
const WAIT: Duration = Duration::from_secs(20);

struct Node {
    id: i32,
    dir: PathBuf,
    broker: Arc<Broker>,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    async fn start(id: i32, dir: &Path) -> Node {
        Node::start_with(id, dir, &[]).await
    }

    /// [`Node::start`] with more broker properties (later ones win).
    async fn start_with(id: i32, dir: &Path, extra: &[&str]) -> Node {
        let mut overrides = vec![
            format!("node.id={id}"),
            "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
            format!("log.dirs={}", dir.display()),
            format!("replica.lag.time.max.ms={LAG_MS}"),
            "replica.fetch.wait.max.ms=200".to_string(),
            "replica.socket.timeout.ms=5000".to_string(),
        ];
        overrides.extend(extra.iter().map(|s| s.to_string()));
        let config = BrokerConfig::load(None, &overrides).unwrap();
        let server = BoundServer::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let broker = server.broker.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(brook_broker::run(server, async {
            let _ = rx.await;
        }));
        Node {
            id,
            dir: dir.to_path_buf(),
            broker,
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
            self.task.take().unwrap().await.unwrap();
        }
    }

    fn leo(&self) -> i64 {
        self.broker
            .partition(TOPIC, 0)
            .map_or(-1, |p| p.log().log_end_offset())
    }

    fn log_bytes(&self) -> Vec<u8> {
        let p = self.broker.partition(TOPIC, 0).unwrap();
        let log = p.log();
        log.read(log.log_start_offset(), usize::MAX, i64::MAX, true)
            .unwrap()
            .to_vec()
    }
}

/// The test's controller: owns the image, commits ISR changes, installs images on live brokers.
#[derive(Clone)]
struct Controller {
    image: Arc<Mutex<MetadataImage>>,
    live: Arc<Mutex<HashMap<i32, Arc<Broker>>>>,
    changes: tokio::sync::mpsc::UnboundedSender<brook_broker::IsrChange>,
}

impl Controller {
    fn new(image: MetadataImage) -> Controller {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<brook_broker::IsrChange>();
        let ctl = Controller {
            image: Arc::new(Mutex::new(image)),
            live: Arc::new(Mutex::new(HashMap::new())),
            changes: tx,
        };
        let c = ctl.clone();
        tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                let accepted = c.update(|img| {
                    let Some(pi) = partition_mut(img, change.topic_id, change.partition) else {
                        return false;
                    };
                    // AlterPartition's fencing: only the current leader epoch and partition epoch.
                    if pi.leader_epoch != change.leader_epoch
                        || pi.partition_epoch != change.partition_epoch
                    {
                        return false;
                    }
                    pi.isr = change.new_isr.clone();
                    pi.partition_epoch += 1;
                    true
                });
                if accepted {
                    c.install_all();
                }
            }
        });
        ctl
    }

    fn attach(&self, node: &Node) {
        let mut rx = node
            .broker
            .take_isr_changes()
            .expect("ISR changes taken once");
        let tx = self.changes.clone();
        tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                if tx.send(c).is_err() {
                    return;
                }
            }
        });
        self.live
            .lock()
            .unwrap()
            .insert(node.id, node.broker.clone());
    }

    fn detach(&self, id: i32) {
        self.live.lock().unwrap().remove(&id);
    }

    fn update<T>(&self, f: impl FnOnce(&mut MetadataImage) -> T) -> T {
        f(&mut self.image.lock().unwrap())
    }

    fn install_on(&self, ids: &[i32]) {
        let image = Arc::new(self.image.lock().unwrap().clone());
        let live: Vec<(i32, Arc<Broker>)> = self
            .live
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (id, b) in live {
            if ids.contains(&id) {
                b.install_image(image.clone());
            }
        }
    }

    fn install_all(&self) {
        self.install_on(&[0, 1, 2]);
    }

    fn partition(&self) -> PartitionImage {
        self.image.lock().unwrap().topics[TOPIC].partitions[&0].clone()
    }
}

fn partition_mut(img: &mut MetadataImage, id: Uuid, p: i32) -> Option<&mut PartitionImage> {
    let name = img.topic_names.get(&id)?.clone();
    img.topics.get_mut(&name)?.partitions.get_mut(&p)
}

struct Cluster {
    nodes: Vec<Node>,
    ctl: Controller,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// Stops broker `i` cleanly; the controller no longer installs images on it.
    async fn stop(&mut self, i: usize) {
        self.nodes[i].stop().await;
        self.ctl.detach(i as i32);
    }

    /// Starts stopped broker `i` again from its data (on a new port) and hands it to the
    /// controller; the caller installs the image when it is ready.
    async fn restart(&mut self, i: usize) {
        let dir = self.nodes[i].dir.clone();
        self.nodes[i] = Node::start(i as i32, &dir).await;
        let n = &self.nodes[i];
        self.ctl.update(|img| register(img, n));
        self.ctl.attach(n);
    }
}

/// Three brokers, a topic of one partition on all three (leader 0, min.insync.replicas=2).
async fn cluster() -> Cluster {
    cluster_with(&[]).await
}

/// [`cluster`] with more topic configs.
async fn cluster_with(topic_configs: &[(&str, &str)]) -> Cluster {
    cluster_of(&[], topic_configs).await
}

/// [`cluster`] with more broker properties and topic configs.
async fn cluster_of(broker_props: &[&str], topic_configs: &[(&str, &str)]) -> Cluster {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(Node::start_with(i as i32, d.path(), broker_props).await);
    }
    let mut image = MetadataImage::default();
    for n in &nodes {
        register(&mut image, n);
    }
    let topic_id = Uuid::new_v4();
    image.topic_names.insert(topic_id, TOPIC.into());
    image.topics.insert(
        TOPIC.into(),
        TopicImage {
            name: TOPIC.into(),
            topic_id,
            partitions: BTreeMap::from([(
                0,
                PartitionImage {
                    partition: 0,
                    replicas: vec![0, 1, 2],
                    isr: vec![0, 1, 2],
                    leader: 0,
                    leader_epoch: 0,
                    partition_epoch: 0,
                },
            )]),
        },
    );
    let mut configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    for (k, v) in topic_configs {
        configs.insert(k.to_string(), v.to_string());
    }
    image
        .configs
        .insert(ConfigResource::Topic(TOPIC.into()), configs);
    let ctl = Controller::new(image);
    for n in &nodes {
        ctl.attach(n);
    }
    ctl.install_all();
    Cluster {
        nodes,
        ctl,
        _dirs: dirs,
    }
}

fn register(image: &mut MetadataImage, n: &Node) {
    image.brokers.insert(
        n.id,
        BrokerImage {
            node_id: n.id,
            host: "127.0.0.1".into(),
            port: n.addr.port() as i32,
            rack: None,
            epoch: 0,
            fenced: false,
        },
    );
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn call(
    addr: std::net::SocketAddr,
    key: ApiKey,
    version: i16,
    body: RequestKind,
) -> ResponseKind {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    sock.write_all(&encode_request(&header, &body).unwrap())
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let frame = loop {
        if let Some(f) = take_frame(&mut buf, 1 << 30).unwrap() {
            break f;
        }
        assert!(
            sock.read_buf(&mut buf).await.unwrap() > 0,
            "connection closed"
        );
    };
    decode_response(key, version, frame.freeze()).unwrap().1
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

async fn produce(node: &Node, acks: i16, value: &str) -> PartitionProduceResponse {
    produce_within(node, acks, value, 10_000).await
}

async fn produce_within(
    node: &Node,
    acks: i16,
    value: &str,
    timeout_ms: i32,
) -> PartitionProduceResponse {
    produce_to(node, 0, acks, value, timeout_ms).await
}

async fn produce_to(
    node: &Node,
    partition: i32,
    acks: i16,
    value: &str,
    timeout_ms: i32,
) -> PartitionProduceResponse {
    let batch = build_batch(
        0,
        1000,
        &[SimpleRecord {
            key: None,
            value: Some(value.as_bytes()),
            headers: &[],
        }],
    );
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch)))])]);
    match call(node.addr, ApiKey::Produce, 9, RequestKind::Produce(req)).await {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].clone(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn consumer_fetch(node: &Node) -> fetch_response::PartitionData {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic())
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    match call(node.addr, ApiKey::Fetch, 12, RequestKind::Fetch(req)).await {
        ResponseKind::Fetch(r) => r.responses[0].partitions[0].clone(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn all_identical(c: &Cluster, leo: i64) {
    eventually(&format!("every replica has {leo} records"), || {
        c.nodes.iter().all(|n| n.leo() == leo)
    })
    .await;
    let leader = c.nodes[c.ctl.partition().leader as usize].log_bytes();
    for n in &c.nodes {
        assert_eq!(n.log_bytes(), leader, "log of broker {} differs", n.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_all_is_answered_only_once_every_isr_member_has_the_records() {
    let c = cluster().await;
    for i in 0..10 {
        let r = produce(&c.nodes[0], -1, &format!("v{i}")).await;
        assert_eq!((r.error_code, r.base_offset), (0, i));
        // Committed means in every ISR member's log, at the moment of the answer.
        for n in &c.nodes {
            assert!(
                n.leo() > i,
                "broker {} lacks offset {i} when it was acknowledged",
                n.id
            );
        }
        let hw = c.nodes[0]
            .broker
            .partition(TOPIC, 0)
            .unwrap()
            .high_watermark();
        assert!(hw > i);
    }
    all_identical(&c, 10).await;
    // Consumers read from the leader, up to the high watermark.
    let d = consumer_fetch(&c.nodes[0]).await;
    assert_eq!((d.error_code, d.high_watermark), (0, 10));
    // Followers learn the high watermark with their next fetch.
    eventually("followers have the high watermark", || {
        c.nodes
            .iter()
            .all(|n| n.broker.partition(TOPIC, 0).unwrap().high_watermark() == 10)
    })
    .await;
}

/// Followers append on their fetcher's task, but an append that rolls a segment goes to the
/// blocking pool: either way the replicas end up identical, and every broker's flusher fsyncs the
/// sealed segments and moves its recovery point past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_roll_segments_as_the_leader_does() {
    let c = cluster_with(&[("segment.bytes", "1024")]).await;
    let value = "x".repeat(300);
    for i in 0..20 {
        let r = produce(&c.nodes[0], -1, &value).await;
        assert_eq!((r.error_code, r.base_offset), (0, i));
    }
    all_identical(&c, 20).await;
    let segments = |n: &Node| {
        n.broker
            .partition(TOPIC, 0)
            .unwrap()
            .log()
            .segment_base_offsets()
    };
    let leader = segments(&c.nodes[0]);
    assert!(leader.len() >= 5, "the leader rolled only {leader:?}");
    for n in &c.nodes[1..] {
        // A follower rolls where its appends cross the size (its fetches may carry several
        // batches), so its boundaries need not match the leader's, but it rolls as often.
        assert!(
            segments(n).len() >= leader.len() / 2,
            "broker {} rolled only {:?} (leader {leader:?})",
            n.id,
            segments(n)
        );
    }
    eventually("every replica flushed its sealed segments", || {
        c.nodes.iter().all(|n| {
            let p = n.broker.partition(TOPIC, 0).unwrap();
            let log = p.log();
            let bases = log.segment_base_offsets();
            !log.has_pending_flush() && log.recovery_point() >= bases[bases.len() - 1]
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_refuses_consumers_and_producers() {
    let c = cluster().await;
    assert_eq!(produce(&c.nodes[0], 1, "x").await.error_code, 0);
    for n in &c.nodes[1..] {
        assert_eq!(
            consumer_fetch(n).await.error_code,
            6,
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(produce(n, 1, "y").await.error_code, 6);
    }
    // No leader at all: metadata says LEADER_NOT_AVAILABLE, the old leader refuses too.
    c.ctl.update(|img| {
        let p = img
            .topics
            .get_mut(TOPIC)
            .unwrap()
            .partitions
            .get_mut(&0)
            .unwrap();
        p.leader = -1;
        p.leader_epoch += 1;
    });
    c.ctl.install_all();
    assert_eq!(produce(&c.nodes[0], 1, "z").await.error_code, 6);
    assert_eq!(consumer_fetch(&c.nodes[0]).await.error_code, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_follower_leaves_the_isr_and_rejoins_after_catching_up() {
    let mut c = cluster().await;
    assert_eq!(produce(&c.nodes[0], -1, "a").await.error_code, 0);

    // A follower at the leader's end stays in sync however long ago it fetched (Kafka's rule;
    // broker fencing is the controller's business), so the leader's log moves on without it.
    c.stop(2).await;
    assert_eq!(produce(&c.nodes[0], 1, "b").await.error_code, 0);
    eventually("broker 2 is shrunk out of the ISR", || {
        c.ctl.partition().isr == vec![0, 1]
    })
    .await;
    // Two in sync satisfy min.insync.replicas=2.
    let r = produce(&c.nodes[0], -1, "c").await;
    assert_eq!((r.error_code, r.base_offset), (0, 2));

    c.stop(1).await;
    assert_eq!(produce(&c.nodes[0], 1, "d").await.error_code, 0);
    eventually("broker 1 is shrunk out of the ISR", || {
        c.ctl.partition().isr == vec![0]
    })
    .await;
    let r = produce(&c.nodes[0], -1, "e").await;
    assert_eq!(r.error_code, 19, "NOT_ENOUGH_REPLICAS");
    assert_eq!(c.nodes[0].leo(), 4, "nothing appended");

    // Both come back (new ports), catch up, and are let back into the ISR.
    for i in [1, 2] {
        c.restart(i).await;
    }
    c.ctl.install_all();
    eventually("the ISR is whole again", || {
        let mut isr = c.ctl.partition().isr;
        isr.sort();
        isr == vec![0, 1, 2]
    })
    .await;
    all_identical(&c, 4).await;
    let r = produce(&c.nodes[0], -1, "f").await;
    assert_eq!((r.error_code, r.base_offset), (0, 4));
    all_identical(&c, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_diverged_old_leader_truncates_to_the_new_leader() {
    let c = cluster().await;
    for i in 0..5 {
        assert_eq!(
            produce(&c.nodes[0], -1, &format!("v{i}")).await.error_code,
            0
        );
    }
    all_identical(&c, 5).await;

    // Brokers 1 and 2 hear that the leader is gone; broker 0 does not and keeps appending
    // under epoch 0 what nobody replicates.
    c.ctl.update(|img| {
        let p = img
            .topics
            .get_mut(TOPIC)
            .unwrap()
            .partitions
            .get_mut(&0)
            .unwrap();
        p.leader = -1;
        p.leader_epoch = 1;
    });
    c.ctl.install_on(&[1, 2]);
    for i in 0..3 {
        let r = produce(&c.nodes[0], 1, &format!("lost{i}")).await;
        assert_eq!((r.error_code, r.base_offset), (0, 5 + i));
    }
    assert_eq!(c.nodes[0].leo(), 8);
    assert_eq!(c.nodes[1].leo(), 5);

    // Broker 1 is elected in epoch 2 and takes new records at the same offsets.
    c.ctl.update(|img| {
        let p = img
            .topics
            .get_mut(TOPIC)
            .unwrap()
            .partitions
            .get_mut(&0)
            .unwrap();
        p.leader = 1;
        p.leader_epoch = 2;
        p.partition_epoch += 1;
    });
    c.ctl.install_all();
    for i in 0..2 {
        let r = produce(&c.nodes[1], 1, &format!("new{i}")).await;
        assert_eq!((r.error_code, r.base_offset), (0, 5 + i));
    }
    // Broker 0 cut its log at 5 (the end of epoch 0 on the new leader) and copied the rest.
    all_identical(&c, 7).await;
    let r = produce(&c.nodes[1], -1, "after").await;
    assert_eq!((r.error_code, r.base_offset), (0, 7));
    all_identical(&c, 8).await;
    assert_eq!(consumer_fetch(&c.nodes[0]).await.error_code, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_all_times_out_while_the_isr_lags() {
    let mut c = cluster().await;
    assert_eq!(produce(&c.nodes[0], -1, "a").await.error_code, 0);
    // Both followers gone but still in the ISR (the lag time has not passed): the record is
    // appended, never committed within the request's timeout.
    for i in [1, 2] {
        c.stop(i).await;
    }
    let r = produce_within(&c.nodes[0], -1, "b", 200).await;
    assert_eq!((r.error_code, r.base_offset), (7, 1), "REQUEST_TIMED_OUT");
    assert_eq!(c.nodes[0].leo(), 2);
    assert_eq!(consumer_fetch(&c.nodes[0]).await.high_watermark, 1);
}

/// Kafka's replication-offset-checkpoint: a restarted broker starts its high watermark where it
/// was, not at its log end. Records the leader appended but the ISR never had stay invisible
/// after a restart, until the followers have them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_leader_shows_consumers_only_what_was_committed() {
    let mut c = cluster().await;
    assert_eq!(produce(&c.nodes[0], -1, "committed").await.error_code, 0);
    for i in [1, 2] {
        c.stop(i).await;
    }
    // Still in the ISR (the lag time has not passed): appended, not committed.
    for v in ["only-on-the-leader-1", "only-on-the-leader-2"] {
        assert_eq!(produce(&c.nodes[0], 1, v).await.error_code, 0);
    }
    assert_eq!(c.nodes[0].leo(), 3);
    c.stop(0).await;
    let checkpoint =
        std::fs::read_to_string(c.nodes[0].dir.join("replication-offset-checkpoint")).unwrap();
    assert_eq!(checkpoint, format!("0\n1\n{TOPIC} 0 1\n"));

    // The leader comes back alone, and is the leader again (the image did not change).
    c.restart(0).await;
    c.ctl.install_all();
    eventually("broker 0 leads again", || {
        c.nodes[0]
            .broker
            .partition(TOPIC, 0)
            .is_some_and(|p| p.is_leader())
    })
    .await;
    assert_eq!(c.nodes[0].leo(), 3);
    let d = consumer_fetch(&c.nodes[0]).await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.high_watermark, 1, "records the ISR never had are exposed");

    // The followers return and copy them: now they are committed and visible.
    for i in [1, 2] {
        c.restart(i).await;
    }
    c.ctl.install_all();
    all_identical(&c, 3).await;
    eventually("the leader's high watermark reaches 3", || {
        c.nodes[0]
            .broker
            .partition(TOPIC, 0)
            .unwrap()
            .high_watermark()
            == 3
    })
    .await;
    assert_eq!(consumer_fetch(&c.nodes[0]).await.high_watermark, 3);
}

/// A partition that starts following a leader while the follower's fetcher waits in a long poll
/// for other partitions is fetched at once: acks=all there does not wait out
/// replica.fetch.wait.max.ms (a new topic, or a new leader after a failure). The first request to
/// the leader may also arrive before the leader has applied the same image; that is retried
/// within milliseconds, not after replica.fetch.backoff.ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_partition_does_not_wait_for_the_followers_long_poll() {
    let c = cluster_of(&["replica.fetch.wait.max.ms=30000"], &[]).await;
    // acks=all on partition 0: both followers have fetched it, and now wait on the leader.
    let r = produce(&c.nodes[0], -1, "p0").await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    c.ctl.update(|img| {
        let t = img.topics.get_mut(TOPIC).unwrap();
        let mut p = t.partitions[&0].clone();
        p.partition = 1;
        t.partitions.insert(1, p);
    });
    c.ctl.install_all();
    let started = std::time::Instant::now();
    let r = produce_to(&c.nodes[0], 1, -1, "p1", 5_000).await;
    assert_eq!(
        (r.error_code, r.base_offset),
        (0, 0),
        "acks=all on the new partition after {:?}",
        started.elapsed()
    );
}
