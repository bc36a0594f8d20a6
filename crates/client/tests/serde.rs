//! Serializers through a real broker: JSON values round-trip, and a record that does not
//! deserialize is named (topic, partition, offset) so that a consumer can skip it or stop.

mod common;

use std::time::{Duration, Instant};

use brook_client::consumer::{Consumer, ConsumerConfig, ConsumerRecord};
use brook_client::serde::{JsonSerde, LongSerde, RecordPart, Serializer};
use brook_client::{Producer, ProducerConfig, ProducerRecord};
use bytes::Bytes;
use common::TestBroker;

async fn produce(bootstrap: &str, topic: &str, values: Vec<Option<Bytes>>) {
    let producer = Producer::new(ProducerConfig::new(bootstrap)).unwrap();
    let mut futures = Vec::new();
    for v in values {
        let mut r = ProducerRecord::new(topic, None::<Bytes>, v);
        r.partition = Some(0);
        futures.push(producer.send(r).await.unwrap());
    }
    producer.flush().await.unwrap();
    for f in futures {
        f.await.unwrap();
    }
}

/// Polls until `n` records came.
async fn read(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records",
            out.len()
        );
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

fn consumer(bootstrap: &str, topic: &str, from: i64) -> Consumer {
    let mut c = Consumer::new(ConsumerConfig::new(bootstrap, None)).unwrap();
    c.assign(vec![(topic.to_string(), 0)]);
    c.seek((topic.to_string(), 0), from);
    c
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
    item: String,
    quantity: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_values_round_trip_through_the_broker() {
    let b = TestBroker::start().await;
    b.admin()
        .create_topics(&[brook_client::admin::NewTopic::new("orders", 1, 1)], false)
        .await
        .unwrap();
    let json = JsonSerde::<Order>::new();
    let orders: Vec<Order> = (0..5)
        .map(|i| Order {
            id: i,
            item: format!("item-{i}"),
            quantity: i as u32 * 3,
        })
        .collect();
    produce(
        &b.bootstrap,
        "orders",
        orders.iter().map(|o| json.serialize("orders", o)).collect(),
    )
    .await;
    let mut c = consumer(&b.bootstrap, "orders", 0);
    let back: Vec<Order> = read(&mut c, 5)
        .await
        .iter()
        .map(|r| r.value_as(&json).unwrap())
        .collect();
    assert_eq!(back, orders);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_is_named_and_can_be_skipped_or_stopped_at() {
    let b = TestBroker::start().await;
    let long = |n: i64| LongSerde.serialize("t", &n);
    // Offsets 0..=4: a Long, a Long, 3 bytes (not a Long), a Long, a null.
    produce(
        &b.bootstrap,
        "longs",
        vec![
            long(10),
            long(11),
            Some(Bytes::from_static(b"abc")),
            long(13),
            None,
        ],
    )
    .await;

    // Skip: the bad records are reported with where they are, the others are used.
    let mut c = consumer(&b.bootstrap, "longs", 0);
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for r in read(&mut c, 5).await {
        match r.value_as(&LongSerde) {
            Ok(v) => good.push(v),
            Err(e) => bad.push(e),
        }
    }
    assert_eq!(good, vec![10, 11, 13]);
    assert_eq!(
        bad.iter()
            .map(|e| (e.topic.as_str(), e.partition, e.offset, e.part))
            .collect::<Vec<_>>(),
        vec![
            ("longs", 0, 2, RecordPart::Value),
            ("longs", 0, 4, RecordPart::Value)
        ]
    );
    assert!(bad[0].to_string().contains("partition longs-0 at offset 2"));

    // Stop at the first bad record, then (as a restarted application would) resume past it.
    let mut c = consumer(&b.bootstrap, "longs", 0);
    let mut sum = 0;
    let mut stopped_at = None;
    for r in read(&mut c, 5).await {
        match r.value_as(&LongSerde) {
            Ok(v) => sum += v,
            Err(e) => {
                stopped_at = Some(e);
                break;
            }
        }
    }
    let stopped_at = stopped_at.expect("a bad record");
    assert_eq!((stopped_at.offset, sum), (2, 21));
    let mut c = consumer(&b.bootstrap, "longs", stopped_at.offset + 1);
    let next = read(&mut c, 1).await;
    assert_eq!(next[0].offset, 3);
    assert_eq!(next[0].value_as(&LongSerde).unwrap(), 13);
    b.stop().await;
}
