"""Producing and consuming with librdkafka (confluent-kafka) and kafka-python."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.partitioner.default import murmur2 as kp_murmur2

from conftest import unique
from helpers import admin, consume_all, create_topic, kafka_partition, murmur2, produce

N = 10_000


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_ten_thousand_keyed_records_round_trip_with_each_codec(broker, codec):
    topic = unique(codec)
    create_topic(broker, topic, partitions=3)
    records = [(f"key-{i}".encode(), f"value-{i}-{codec}".encode(), [("n", str(i).encode())])
               for i in range(N)]
    delivered = produce(broker, topic, records, **{"compression.type": codec,
                                                   "partitioner": "murmur2_random"})
    got = consume_all(broker, topic, [0, 1, 2], N)
    by_key = {}
    last_offset = {}
    for m in got:
        # Order within a partition: offsets strictly increase as read.
        assert m.offset() > last_offset.get(m.partition(), -1)
        last_offset[m.partition()] = m.offset()
        by_key[m.key()] = m
    assert len(by_key) == N
    for i, (key, value, headers) in enumerate(records):
        m = by_key[key]
        assert m.value() == value
        assert m.headers() == headers
        assert (m.partition(), m.offset()) == delivered[i]
    # Per partition, the values appear in the order they were produced.
    for p in range(3):
        seq = [int(m.headers()[0][1]) for m in got if m.partition() == p]
        assert seq == sorted(seq)


def test_keyed_records_land_where_murmur2_puts_them(broker):
    topic = unique("murmur")
    create_topic(broker, topic, partitions=7)
    keys = [f"user-{i}".encode() for i in range(500)]
    delivered = produce(broker, topic, [(k, b"v") for k in keys], partitioner="murmur2_random")
    for key, (partition, _) in zip(keys, delivered):
        assert murmur2(key) & 0xFFFFFFFF == kp_murmur2(key) & 0xFFFFFFFF  # kafka-python returns it unsigned
        assert partition == kafka_partition(key, 7), key
    got = consume_all(broker, topic, range(7), len(keys))
    assert {m.key(): m.partition() for m in got} == {k: kafka_partition(k, 7) for k in keys}


def test_kafka_python_reads_what_librdkafka_wrote_and_vice_versa(broker):
    topic = unique("xclient")
    create_topic(broker, topic, partitions=2)
    produce(broker, topic, [(f"k{i}".encode(), f"v{i}".encode(), None, 1_600_000_000_000 + i)
                            for i in range(100)], partitioner="murmur2_random")
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                      enable_auto_commit=False, consumer_timeout_ms=5000)
    c.assign([KpTopicPartition(topic, 0), KpTopicPartition(topic, 1)])
    c.seek_to_beginning()
    seen = {m.key: (m.value, m.partition, m.timestamp) for m in c}
    c.close()
    assert len(seen) == 100
    for i in range(100):
        value, partition, ts = seen[f"k{i}".encode()]
        assert value == f"v{i}".encode()
        assert ts == 1_600_000_000_000 + i
        assert partition == kafka_partition(f"k{i}".encode(), 2)

    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip", acks="all")
    for i in range(100):
        p.send(topic, key=f"kp{i}".encode(), value=f"kv{i}".encode(),
               headers=[("h", b"1")], timestamp_ms=1_700_000_000_000 + i)
    p.flush()
    p.close()
    got = consume_all(broker, topic, [0, 1], 200)
    mine = {m.key(): m for m in got if m.key().startswith(b"kp")}
    assert len(mine) == 100
    for i in range(100):
        m = mine[f"kp{i}".encode()]
        assert m.value() == f"kv{i}".encode()
        assert m.headers() == [("h", b"1")]
        assert m.timestamp()[1] == 1_700_000_000_000 + i
        # kafka-python's default partitioner is murmur2 too.
        assert m.partition() == kafka_partition(f"kp{i}".encode(), 2)


def test_list_offsets_earliest_latest_and_by_timestamp(broker):
    topic = unique("times")
    create_topic(broker, topic)
    base = 1_650_000_000_000
    produce(broker, topic, [(None, f"v{i}".encode(), None, base + i * 1000) for i in range(20)])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 20)
        for ts, want in [(base, 0), (base + 5_500, 6), (base + 19_000, 19), (base + 20_000, -1), (0, 0)]:
            r = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)[0]
            assert r.error is None
            assert r.offset == want, (ts, r.offset)
    finally:
        c.close()


def test_delete_records_moves_the_log_start_offset(broker):
    topic = unique("delete")
    create_topic(broker, topic)
    produce(broker, topic, [(None, f"v{i}".encode()) for i in range(100)])
    a = admin(broker)
    res = a.delete_records([TopicPartition(topic, 0, 30)])
    deleted = list(res.values())[0].result(15)
    assert deleted.low_watermark == 30
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (30, 100)
    finally:
        c.close()
    # Beyond the high watermark is out of range; the log is untouched.
    f = list(a.delete_records([TopicPartition(topic, 0, 500)]).values())[0]
    with pytest.raises(Exception) as e:
        f.result(15)
    assert e.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    # A consumer asking for a deleted offset gets OFFSET_OUT_OF_RANGE and resets (earliest here).
    got = consume_all(broker, topic, [0], 70, **{"auto.offset.reset": "earliest"})
    assert [m.offset() for m in got] == list(range(30, 100))


def test_consumer_with_reset_none_sees_offset_out_of_range(broker):
    topic = unique("oor")
    create_topic(broker, topic)
    produce(broker, topic, [(None, b"v")] * 10)
    a = admin(broker)
    list(a.delete_records([TopicPartition(topic, 0, 5)]).values())[0].result(15)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x",
                  "auto.offset.reset": "error", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 2)])
    try:
        deadline = time.monotonic() + 15
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error():
                err = m.error()
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET
    finally:
        c.close()
