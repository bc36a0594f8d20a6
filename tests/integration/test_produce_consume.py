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


@pytest.mark.slow
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
    seen = {m.key: (m.value, m.partition, m.timestamp) for m in kp_consume(broker, topic, [0, 1], 100)}
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


def kp_consume(broker, topic, partitions, expected, timeout=60, start=0, **conf):
    """Reads `expected` records with kafka-python (manual assignment, no group) from `start`."""
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      **conf)
    tps = [KpTopicPartition(topic, p) for p in partitions]
    c.assign(tps)
    for tp in tps:
        c.seek(tp, start)
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500, max_records=5000).values():
                out.extend(records)
    finally:
        c.close()
    assert len(out) == expected, f"kafka-python consumed {len(out)} of {expected}"
    return out


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["snappy", "zstd"])
def test_kafka_python_consumes_ten_thousand_compressed_records(broker, codec):
    """The same 10,000-record round trip, read back by a second, independent client."""
    topic = unique("kp-" + codec)
    create_topic(broker, topic, partitions=3)
    records = [(f"key-{i}".encode(), f"value-{i}".encode(), [("n", str(i).encode())]) for i in range(N)]
    delivered = produce(broker, topic, records, **{"compression.type": codec, "partitioner": "murmur2_random"})
    got = kp_consume(broker, topic, [0, 1, 2], N)
    by_key = {m.key: m for m in got}
    assert len(by_key) == N
    for i, (key, value, headers) in enumerate(records):
        m = by_key[key]
        assert m.value == value
        assert list(m.headers) == headers
        assert (m.partition, m.offset) == delivered[i]
    for p in range(3):
        offsets = [m.offset for m in got if m.partition == p]
        assert offsets == list(range(len(offsets)))
        seq = [int(dict(m.headers)["n"]) for m in got if m.partition == p]
        assert seq == sorted(seq)


def test_list_offsets_through_the_admin_api_and_kafka_python(broker):
    """ListOffsets from two more clients: confluent-kafka's AdminClient (earliest, latest,
    by timestamp, max timestamp) and kafka-python's consumer."""
    from confluent_kafka.admin import OffsetSpec

    topic = unique("lo")
    create_topic(broker, topic)
    base = 1_650_000_000_000
    # Timestamps are not monotonic: the maximum is at offset 7.
    stamps = [base + i * 1000 for i in range(10)]
    stamps[7] = base + 60_000
    produce(broker, topic, [(None, f"v{i}".encode(), None, ts) for i, ts in enumerate(stamps)])
    a = admin(broker)
    tp = TopicPartition(topic, 0)

    def lo(spec):
        return a.list_offsets({tp: spec})[tp].result(15)

    assert lo(OffsetSpec.earliest()).offset == 0
    assert lo(OffsetSpec.latest()).offset == 10
    r = lo(OffsetSpec.for_timestamp(base + 2_500))
    assert (r.offset, r.timestamp) == (3, base + 3000)
    r = lo(OffsetSpec.max_timestamp())
    assert (r.offset, r.timestamp) == (7, base + 60_000)

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        ktp = KpTopicPartition(topic, 0)
        assert c.beginning_offsets([ktp]) == {ktp: 0}
        assert c.end_offsets([ktp]) == {ktp: 10}
        found = c.offsets_for_times({ktp: base + 4_000})[ktp]
        assert (found.offset, found.timestamp) == (4, base + 4000)
        assert c.offsets_for_times({ktp: base + 61_000})[ktp] is None
    finally:
        c.close()


def test_kafka_python_delete_records_and_reading_below_the_log_start(broker):
    from kafka.admin import KafkaAdminClient
    from kafka.errors import OffsetOutOfRangeError

    topic = unique("kp-del")
    create_topic(broker, topic, partitions=2)
    # Keyed, so that both partitions get records (murmur2 puts 29 and 21 of these keys there);
    # keyless records may all stick to one partition.
    produce(broker, topic, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)],
            partitioner="murmur2")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    try:
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1)}
        assert min(highs.values()) >= 4
    finally:
        c.close()
    assert sum(highs.values()) == 50
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        tp0 = KpTopicPartition(topic, 0)
        result = a.delete_records({tp0: 3})
        assert result[tp0]["low_watermark"] == 3
        tp1 = KpTopicPartition(topic, 1)
        with pytest.raises(OffsetOutOfRangeError):
            a.delete_records({tp1: highs[1] + 1})
        # Deleting up to the high watermark empties the partition: that is allowed.
        assert a.delete_records({tp1: highs[1]})[tp1]["low_watermark"] == highs[1]
    finally:
        a.close()
    # kafka-python asked for offset 0, which is gone: it resets to the earliest offset (3).
    got = kp_consume(broker, topic, [0], highs[0] - 3, auto_offset_reset="earliest")
    assert [m.offset for m in got] == list(range(3, highs[0]))


def test_producing_to_an_unknown_topic_creates_it_with_num_partitions(broker_factory):
    b = broker_factory(num_partitions="3")
    topic = unique("auto-produce")
    delivered = produce(b, topic, [(f"k{i}".encode(), b"v") for i in range(30)], partitioner="murmur2_random")
    md = admin(b).list_topics(timeout=10)
    assert len(md.topics[topic].partitions) == 3
    for i, (partition, _) in enumerate(delivered):
        assert partition == kafka_partition(f"k{i}".encode(), 3)
    assert len(consume_all(b, topic, [0, 1, 2], 30)) == 30
    # kafka-python's producer triggers auto-creation as well.
    other = unique("auto-kp")
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all")
    meta = p.send(other, key=b"k", value=b"v").get(timeout=30)
    p.close()
    assert meta.offset == 0
    assert len(admin(b).list_topics(timeout=10).topics[other].partitions) == 3


def test_producing_to_an_unknown_topic_fails_when_auto_creation_is_off(broker_factory):
    from confluent_kafka import Producer

    b = broker_factory(auto_create_topics_enable="false")
    topic = unique("no-auto")
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 3000})
    errors = []
    p.produce(topic, value=b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                                KafkaError._MSG_TIMED_OUT), errors[0]
    assert topic not in admin(b).list_topics(timeout=10).topics


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_producer_batches_with_each_codec_are_stored_as_sent(broker, codec):
    """Batches encoded by another client library (kafka-python's own record batch writer):
    accepted, and librdkafka decodes them."""
    topic = unique("kp-prod-" + codec)
    create_topic(broker, topic, partitions=3)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, acks="all",
                      linger_ms=5, batch_size=64 * 1024)
    futures = [p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode() * 10,
                      headers=[("i", str(i).encode())]) for i in range(2000)]
    p.flush()
    metas = [f.get(timeout=30) for f in futures]
    p.close()
    got = consume_all(broker, topic, [0, 1, 2], 2000)
    by_key = {m.key(): m for m in got}
    for i, meta in enumerate(metas):
        m = by_key[f"k{i}".encode()]
        assert (m.partition(), m.offset()) == (meta.partition, meta.offset)
        assert m.partition() == kafka_partition(f"k{i}".encode(), 3)
        assert m.value() == f"v{i}".encode() * 10
        assert m.headers() == [("i", str(i).encode())]
