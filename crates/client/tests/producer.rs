//! The producer against a real Brook broker; what it wrote is read back with kcat (librdkafka),
//! a client nobody here wrote.

mod common;

use std::process::Command;

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
