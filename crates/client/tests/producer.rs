//! The producer against a real Brook broker; what it wrote is read back with kcat (librdkafka),
//! a client nobody here wrote.

mod common;

use std::process::Command;
use std::time::Duration;

use brook_client::admin::NewTopic;
use brook_client::partitioner::partition_for_key;
use brook_client::producer::{Acks, ProducerConfig};
use brook_client::{Producer, ProducerRecord};
use brook_protocol::kafka::records::Compression;
use common::TestBroker;

fn kcat_consume(bootstrap: &str, topic: &str) -> Vec<(String, String, i32, i64, String, i64)> {
    let out = Command::new("kcat")
        .args([
            "-b",
            bootstrap,
            "-C",
            "-t",
            topic,
            "-e",
            "-q",
            "-f",
            "%k\t%s\t%p\t%o\t%h\t%T\n",
        ])
        .output()
        .expect("kcat is installed by .ci/run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].into(),
                f[1].into(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].into(),
                f[5].parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_with_each_codec_are_read_back_by_librdkafka() {
    let b = TestBroker::start().await;
    let admin = b.admin();
    for (name, codec) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let topic = format!("p-{name}");
        admin
            .create_topics(&[NewTopic::new(&topic, 3, 1)], false)
            .await
            .unwrap();
        let mut config = ProducerConfig::new(&b.bootstrap);
        config.compression = codec;
        let producer = Producer::new(config).unwrap();
        let mut futures = Vec::new();
        for i in 0..1000 {
            let mut r = ProducerRecord::new(&topic, Some(format!("k{i}")), Some(format!("v{i}")));
            r.headers = vec![("n".into(), Some(i.to_string().into()))];
            r.timestamp = Some(1_700_000_000_000 + i);
            futures.push(producer.send(r).await.unwrap());
        }
        producer.flush().await.unwrap();
        let mut next = [0i64; 3];
        for (i, f) in futures.into_iter().enumerate() {
            let md = f.await.unwrap();
            assert_eq!(
                md.partition,
                partition_for_key(format!("k{i}").as_bytes(), 3)
            );
            // Offsets are contiguous per partition, in send order.
            assert_eq!(md.offset, next[md.partition as usize]);
            next[md.partition as usize] += 1;
        }
        let read = kcat_consume(&b.bootstrap, &topic);
        assert_eq!(read.len(), 1000, "{name}");
        for (k, v, p, _o, h, ts) in read {
            let i: i64 = k[1..].parse().unwrap();
            assert_eq!(v, format!("v{i}"));
            assert_eq!(p, partition_for_key(k.as_bytes(), 3));
            assert_eq!(h, format!("n={i}"));
            assert_eq!(ts, 1_700_000_000_000 + i);
        }
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_and_idempotence_settings() {
    let b = TestBroker::start().await;
    b.admin()
        .create_topics(&[NewTopic::new("a", 1, 1)], false)
        .await
        .unwrap();
    // Kafka refuses idempotence without acks=all.
    let mut bad = ProducerConfig::new(&b.bootstrap);
    bad.acks = Acks::Leader;
    assert!(Producer::new(bad).is_err());
    let mut zero = ProducerConfig::new(&b.bootstrap);
    zero.acks = Acks::None;
    zero.enable_idempotence = false;
    let p = Producer::new(zero).unwrap();
    let f = p
        .send(ProducerRecord::new("a", None::<String>, Some("fire")))
        .await
        .unwrap();
    p.flush().await.unwrap();
    assert_eq!(f.await.unwrap().offset, -1);
    let p = Producer::new(ProducerConfig::new(&b.bootstrap)).unwrap();
    let f = p
        .send(ProducerRecord::new("a", None::<String>, Some("kept")))
        .await
        .unwrap();
    p.flush().await.unwrap();
    // acks=0 leaves no answer, but the record is there: the next one is at offset 1.
    assert_eq!(f.await.unwrap().offset, 1);
    let read = kcat_consume(&b.bootstrap, "a");
    assert_eq!(
        read.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        vec!["fire", "kept"]
    );
    // Like Kafka's producer, it lets the broker auto-create an unknown topic.
    let f = p
        .send(ProducerRecord::new("brand-new", Some("k"), Some("v")))
        .await
        .unwrap();
    p.flush().await.unwrap();
    assert_eq!(f.await.unwrap().offset, 0);
    assert!(b
        .admin()
        .list_topics(false)
        .await
        .unwrap()
        .contains(&"brand-new".to_string()));
    b.stop().await;
}

/// A TCP proxy between the client and the broker (which advertises the proxy's address, so every
/// connection goes through it). It sees each Produce request's record batch, can damage one,
/// cut the connection after one, or hold requests back; and it counts Produce requests sent
/// and not yet answered.
mod proxy {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[derive(Default)]
    pub struct State {
        /// Produce requests seen so far.
        pub produces: AtomicUsize,
        /// Damage the batch of this Produce request (0-based; usize::MAX: none).
        pub corrupt: AtomicUsize,
        /// Close the connection right after forwarding this Produce request.
        pub cut_after: AtomicUsize,
        /// While set, requests are held back.
        pub stalled: AtomicBool,
        outstanding: AtomicUsize,
        /// The most Produce requests in flight on one connection at once.
        pub max_outstanding: AtomicUsize,
        /// (base sequence, record count) of every Produce request's batch, in wire order.
        pub batches: Mutex<Vec<(i32, i32)>>,
    }

    pub struct Proxy {
        pub addr: String,
        pub state: Arc<State>,
    }

    impl Proxy {
        /// Listens on a free port; `start(upstream)` then forwards there.
        pub async fn bind() -> (TcpListener, String) {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap().to_string();
            (l, addr)
        }

        pub fn start(listener: TcpListener, upstream: String) -> Proxy {
            let state = Arc::new(State {
                corrupt: AtomicUsize::new(usize::MAX),
                cut_after: AtomicUsize::new(usize::MAX),
                ..Default::default()
            });
            let addr = listener.local_addr().unwrap().to_string();
            let s = state.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let broker = TcpStream::connect(&upstream).await.unwrap();
                    tokio::spawn(connection(client, broker, s.clone()));
                }
            });
            Proxy { addr, state }
        }
    }

    async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize + 4];
        buf[..4].copy_from_slice(&len);
        r.read_exact(&mut buf[4..]).await.ok()?;
        Some(buf)
    }

    /// Where the frame's one record batch starts: its length field reaches the frame's end
    /// (give or take the trailing tagged fields) and its magic byte is 2.
    fn batch_start(frame: &[u8]) -> Option<usize> {
        (4..frame.len().saturating_sub(61)).find(|&p| {
            let len = i32::from_be_bytes(frame[p + 8..p + 12].try_into().unwrap());
            frame[p + 16] == 2
                && len > 49
                && (0..=3).any(|trailing| p + 12 + len as usize + trailing == frame.len())
        })
    }

    async fn connection(client: TcpStream, broker: TcpStream, s: Arc<State>) {
        let (mut cr, mut cw) = client.into_split();
        let (mut br, mut bw) = broker.into_split();
        let produces: Arc<Mutex<VecDeque<bool>>> = Default::default();
        let here = Arc::new(AtomicUsize::new(0));
        let (p2, s2, h2) = (produces.clone(), s.clone(), here.clone());
        let back = tokio::spawn(async move {
            while let Some(frame) = read_frame(&mut br).await {
                if p2.lock().unwrap().pop_front() == Some(true) {
                    h2.fetch_sub(1, Ordering::SeqCst);
                    s2.outstanding.fetch_sub(1, Ordering::SeqCst);
                }
                if cw.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        while let Some(mut frame) = read_frame(&mut cr).await {
            while s.stalled.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let produce = frame.len() > 6 && frame[4..6] == [0, 0];
            let mut cut = false;
            if produce {
                let n = s.produces.fetch_add(1, Ordering::SeqCst);
                if let Some(p) = batch_start(&frame) {
                    let seq = i32::from_be_bytes(frame[p + 53..p + 57].try_into().unwrap());
                    let count = i32::from_be_bytes(frame[p + 57..p + 61].try_into().unwrap());
                    s.batches.lock().unwrap().push((seq, count));
                    if n == s.corrupt.load(Ordering::SeqCst) {
                        frame[p + 70] ^= 0xff; // inside the first record: the CRC no longer holds
                                               // Held back a moment, so that the client has written the batches after
                                               // it by the time it reaches the broker (they follow it in order).
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
                cut = n == s.cut_after.load(Ordering::SeqCst);
                let now = here.fetch_add(1, Ordering::SeqCst) + 1;
                s.max_outstanding.fetch_max(now, Ordering::SeqCst);
                s.outstanding.fetch_add(1, Ordering::SeqCst);
            }
            produces.lock().unwrap().push_back(produce);
            if bw.write_all(&frame).await.is_err() || cut {
                break;
            }
        }
        back.abort();
        s.outstanding
            .fetch_sub(here.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// A broker reached only through a [`proxy::Proxy`].
async fn broker_behind_proxy() -> (TestBroker, proxy::Proxy) {
    let (listener, addr) = proxy::Proxy::bind().await;
    let b = TestBroker::start_with(&[&format!("advertised.listeners=PLAINTEXT://{addr}")]).await;
    let p = proxy::Proxy::start(listener, b.bootstrap.clone());
    (b, p)
}

/// Sends `n` records `v0`, `v1`, ... to partition 0 and returns each one's offset.
async fn send_numbered(producer: &Producer, topic: &str, n: usize) -> Vec<i64> {
    let mut futures = Vec::new();
    for i in 0..n {
        let mut r = ProducerRecord::new(
            topic,
            None::<String>,
            Some(format!("v{i}-{}", "x".repeat(90))),
        );
        r.partition = Some(0);
        futures.push(producer.send(r).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut offsets = Vec::new();
    for f in futures {
        offsets.push(f.await.unwrap().offset);
    }
    offsets
}

/// What kcat reads from the topic: the record numbers, in log order.
fn numbers_in_log(bootstrap: &str, topic: &str) -> Vec<usize> {
    kcat_consume(bootstrap, topic)
        .into_iter()
        .map(|r| r.1[1..r.1.find('-').unwrap()].parse().unwrap())
        .collect()
}

fn small_batches(bootstrap: &str) -> ProducerConfig {
    let mut c = ProducerConfig::new(bootstrap);
    c.batch_size = 1000; // about eight records a batch
    c.linger = std::time::Duration::from_millis(1);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_to_five_batches_in_flight_and_a_refused_one_keeps_the_order() {
    let (b, proxy) = broker_behind_proxy().await;
    b.admin()
        .create_topics(&[NewTopic::new("inflight", 1, 1)], false)
        .await
        .unwrap();
    // The broker refuses the 6th batch as corrupt (a retriable error); the batches sent after
    // it are refused as out of order and must be resent behind it.
    proxy
        .state
        .corrupt
        .store(5, std::sync::atomic::Ordering::SeqCst);
    let producer = Producer::new(small_batches(&proxy.addr)).unwrap();
    let n = 3000;
    let offsets = send_numbered(&producer, "inflight", n).await;
    assert_eq!(offsets, (0..n as i64).collect::<Vec<_>>());
    assert_eq!(
        numbers_in_log(&b.bootstrap, "inflight"),
        (0..n).collect::<Vec<_>>()
    );

    let max = proxy
        .state
        .max_outstanding
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=5).contains(&max),
        "{max} Produce requests were in flight at once"
    );
    let batches = proxy.state.batches.lock().unwrap().clone();
    let corrupted = batches[5];
    // The damaged batch went again, and so did at least one batch sent after it (refused as out
    // of order while the damaged one was missing).
    let sent_twice = |b: &(i32, i32)| batches.iter().filter(|x| *x == b).count() > 1;
    assert!(sent_twice(&corrupted), "{batches:?}");
    assert!(
        batches.iter().any(|x| x.0 > corrupted.0 && sent_twice(x)),
        "{batches:?}"
    );
    // First sends went out in sequence order, each batch starting where the previous ended.
    let mut next = 0;
    for (seq, count) in &batches {
        if *seq < next {
            continue; // a resend
        }
        assert_eq!(*seq, next, "{batches:?}");
        next = seq + count;
    }
    assert_eq!(next as usize, n);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_with_batches_in_flight_loses_and_duplicates_nothing() {
    let (b, proxy) = broker_behind_proxy().await;
    b.admin()
        .create_topics(&[NewTopic::new("cut", 1, 1)], false)
        .await
        .unwrap();
    // After forwarding the 4th Produce request the proxy closes the connection: the broker may
    // have appended what was in flight, but the answers are lost. The producer reconnects and
    // resends; idempotence makes the broker drop the copies.
    proxy
        .state
        .cut_after
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let producer = Producer::new(small_batches(&proxy.addr)).unwrap();
    let n = 2000;
    let offsets = send_numbered(&producer, "cut", n).await;
    assert_eq!(offsets, (0..n as i64).collect::<Vec<_>>());
    assert_eq!(
        numbers_in_log(&b.bootstrap, "cut"),
        (0..n).collect::<Vec<_>>()
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_one_sends_one_batch_at_a_time() {
    let (b, proxy) = broker_behind_proxy().await;
    b.admin()
        .create_topics(&[NewTopic::new("one", 1, 1)], false)
        .await
        .unwrap();
    let mut config = small_batches(&proxy.addr);
    config.max_in_flight = 1;
    let producer = Producer::new(config).unwrap();
    let offsets = send_numbered(&producer, "one", 500).await;
    assert_eq!(offsets, (0..500).collect::<Vec<_>>());
    assert_eq!(
        proxy
            .state
            .max_outstanding
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // Kafka's rule: idempotence allows at most 5.
    let mut config = ProducerConfig::new(&proxy.addr);
    config.max_in_flight = 6;
    assert!(Producer::new(config).is_err());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_memory_makes_send_wait_then_fail_after_max_block() {
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::{Duration, Instant};
    let (b, proxy) = broker_behind_proxy().await;
    b.admin()
        .create_topics(&[NewTopic::new("mem", 1, 1)], false)
        .await
        .unwrap();
    let mut config = ProducerConfig::new(&proxy.addr);
    config.buffer_memory = 10_000;
    config.max_block = Duration::from_millis(300);
    config.linger = Duration::ZERO;
    let producer = Producer::new(config).unwrap();
    // A first record through, so the producer id and metadata are there.
    assert_eq!(send_numbered(&producer, "mem", 1).await, vec![0]);
    let record = |i: usize| {
        let mut r = ProducerRecord::new(
            "mem",
            None::<String>,
            Some(vec![b'a' + (i % 26) as u8; 1000]),
        );
        r.partition = Some(0);
        r
    };
    // The broker is out of reach: each record holds its ~1 KB of the 10,000 bytes.
    proxy.state.stalled.store(true, SeqCst);
    let mut accepted = Vec::new();
    let started = Instant::now();
    let failed = loop {
        let f = producer.send(record(accepted.len())).await.unwrap();
        // The future of a record refused for lack of memory is already failed.
        match tokio::time::timeout(Duration::from_millis(1), &mut Box::pin(f)).await {
            Ok(Err(e)) => break e,
            Ok(Ok(md)) => panic!("delivered while the broker is out of reach: {md:?}"),
            Err(_) => {}
        }
        accepted.push(());
        assert!(accepted.len() <= 10, "buffer.memory does not hold");
    };
    assert!(
        matches!(failed, brook_client::ClientError::BufferExhausted(_)),
        "{failed}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!((8..=10).contains(&accepted.len()), "{}", accepted.len());
    // Room comes back when the broker answers: a send waiting then goes through.
    let waiting = tokio::spawn({
        let state = proxy.state.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            state.stalled.store(false, SeqCst);
        }
    });
    let f = producer.send(record(99)).await.unwrap();
    waiting.await.unwrap();
    assert!(f.await.unwrap().offset > 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_max_request_size_fails_before_anything_is_sent() {
    // No broker at all: the check happens before the producer needs one.
    let mut config = ProducerConfig::new("127.0.0.1:1");
    config.enable_idempotence = false;
    config.acks = Acks::Leader;
    let producer = Producer::new(config).unwrap();
    let mut r = ProducerRecord::new("t", None::<String>, Some(vec![0u8; 1_048_576]));
    r.partition = Some(0);
    let e = producer.send(r).await.unwrap().await.unwrap_err();
    assert_eq!(e.code(), Some(10), "{e}");
    assert!(e.to_string().contains("max.request.size"), "{e}");
    // Under the limit it is buffer.memory that refuses a record larger than itself.
    let mut config = ProducerConfig::new("127.0.0.1:1");
    config.buffer_memory = 1000;
    let producer = Producer::new(config).unwrap();
    let mut r = ProducerRecord::new("t", None::<String>, Some(vec![0u8; 2000]));
    r.partition = Some(0);
    let e = producer.send(r).await.unwrap().await.unwrap_err();
    assert_eq!(e.code(), Some(10), "{e}");
    assert!(e.to_string().contains("buffer.memory"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_partition_must_exist_and_a_new_topic_is_created() {
    let b = TestBroker::start().await;
    let producer = Producer::new(ProducerConfig::new(&b.bootstrap)).unwrap();
    // An explicit partition of an unknown topic: the metadata request auto-creates it.
    let mut r = ProducerRecord::new("fresh", None::<String>, Some("v"));
    r.partition = Some(0);
    let f = producer.send(r).await.unwrap();
    producer.flush().await.unwrap();
    assert_eq!(f.await.unwrap().offset, 0);
    let mut r = ProducerRecord::new("fresh", None::<String>, Some("v"));
    r.partition = Some(5);
    let e = producer.send(r).await.unwrap().await.unwrap_err();
    assert!(
        e.to_string()
            .contains("Invalid partition given with record: 5 is not in the range [0...1)"),
        "{e}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_header_names_and_nulls_reach_librdkafka_as_sent() {
    let b = TestBroker::start().await;
    for codec in [Compression::None, Compression::Zstd] {
        let topic = format!("headers-{codec:?}");
        let mut config = ProducerConfig::new(&b.bootstrap);
        config.compression = codec;
        let producer = Producer::new(config).unwrap();
        let mut r = ProducerRecord::new(&topic, Some("k"), None::<String>);
        r.headers = vec![
            ("a".into(), Some("x".into())),
            ("a".into(), Some("y".into())),
            ("b".into(), Some("".into())),
        ];
        r.timestamp = Some(-1_000); // before 1970: a negative timestamp delta is fine too
        let mut r2 = ProducerRecord::new(&topic, None::<String>, Some("v"));
        r2.timestamp = Some(1_700_000_000_000);
        let f = producer.send(r).await.unwrap();
        let f2 = producer.send(r2).await.unwrap();
        producer.flush().await.unwrap();
        f.await.unwrap();
        f2.await.unwrap();
        let read = kcat_consume(&b.bootstrap, &topic);
        assert_eq!(read[0].0, "k");
        assert_eq!(read[0].4, "a=x,a=y,b=", "{codec:?}");
        assert_eq!(read[1].5, 1_700_000_000_000);
    }
    b.stop().await;
}

#[test]
fn memory_in_flight_and_request_size_come_from_kafkas_property_names() {
    let props = [
        ("bootstrap.servers", "a:1"),
        ("buffer.memory", "1000"),
        ("max.block.ms", "5"),
        ("max.request.size", "2000"),
        ("max.in.flight.requests.per.connection", "3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let c = ProducerConfig::from_properties(props).unwrap();
    assert_eq!(c.buffer_memory, 1000);
    assert_eq!(c.max_block, std::time::Duration::from_millis(5));
    assert_eq!(c.max_request_size, 2000);
    assert_eq!(c.max_in_flight, 3);
    let d = ProducerConfig::new("a:1");
    assert_eq!(
        (
            d.buffer_memory,
            d.max_block.as_millis(),
            d.max_request_size,
            d.max_in_flight
        ),
        (33_554_432, 60_000, 1_048_576, 5)
    );
}

#[test]
fn producer_futures_can_be_spawned() {
    fn send_future<T: Send>(_: &T) {}
    fn shared<T: Send + Sync>() {}
    shared::<Producer>();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = Producer::new(ProducerConfig::new("127.0.0.1:1")).unwrap();
        let f = p.send(ProducerRecord::new("t", None::<String>, Some("v")));
        send_future(&f);
        let flush = p.flush();
        send_future(&flush);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_waited_for_up_to_max_block() {
    let b = TestBroker::start_with(&["auto.create.topics.enable=false"]).await;
    let mut config = ProducerConfig::new(&b.bootstrap);
    config.max_block = Duration::from_millis(600);
    let producer = Producer::new(config).unwrap();

    // Nobody creates it: the send fails after max.block.ms, with Kafka's message.
    let started = std::time::Instant::now();
    let e = producer
        .send(ProducerRecord::new("never", None::<String>, Some("v")))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        e.to_string()
            .contains("Topic never not present in metadata after 600 ms."),
        "{e}"
    );

    // Created while the producer waits: the record goes through.
    let admin = b.admin();
    let send = producer.send(ProducerRecord::new("later", None::<String>, Some("v")));
    let create = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        admin
            .create_topics(&[NewTopic::new("later", 1, 1)], false)
            .await
            .unwrap();
    };
    let (sent, ()) = tokio::join!(send, create);
    producer.flush().await.unwrap();
    assert_eq!(sent.unwrap().await.unwrap().offset, 0);
    b.stop().await;
}
