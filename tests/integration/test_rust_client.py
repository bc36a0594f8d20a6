"""Brook's Rust client against the broker, cross-checked with clients nobody here wrote."""

import subprocess

import pytest

from conftest import ROOT
from helpers import consume_all, create_topic, kafka_partition

EXAMPLES = ROOT / "target" / "release" / "examples"


def test_the_produce_example_writes_what_confluent_kafka_reads(broker):
    create_topic(broker, "hello", partitions=3)
    r = subprocess.run([str(EXAMPLES / "produce"), broker.bootstrap, "hello"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    printed = [line.split() for line in r.stdout.decode().splitlines()]
    assert len(printed) == 10
    got = {m.key(): m for m in consume_all(broker, "hello", [0, 1, 2], 10)}
    for i, (_topic, _, partition, _, offset) in enumerate(printed):
        m = got[f"key-{i}".encode()]
        assert m.value() == f"value-{i}".encode()
        # The Rust client placed the key where Kafka's murmur2 partitioner puts it...
        assert int(partition) == m.partition() == kafka_partition(f"key-{i}".encode(), 3)
        # ...and reported the offset the record really has.
        assert int(offset) == m.offset()


def run_example(name, *args, timeout=60):
    r = subprocess.run([str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"{name} exited {r.returncode}: {r.stderr}"
    return r.stdout.splitlines()


def test_the_consume_group_example_reads_commits_and_exits(broker):
    from confluent_kafka import Consumer, TopicPartition
    from conftest import unique
    from helpers import produce

    topic, group = unique("cg"), unique("group")
    create_topic(broker, topic, partitions=3)
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(30)]
    placed = produce(broker, topic, records)
    lines = run_example("consume_group", broker.bootstrap, topic, group, 30)
    assert lines[-1] == "committed 30"
    printed = [line.split() for line in lines[:-1]]
    # Every record once, where confluent-kafka's producer put it...
    assert sorted((int(p), int(o), k, v) for p, o, k, v in printed) == sorted(
        (p, o, k.decode(), v.decode()) for (k, v), (p, o) in zip(records, placed))
    # ...in offset order within each partition.
    for part in range(3):
        offsets = [int(o) for p, o, _, _ in printed if int(p) == part]
        assert offsets == sorted(offsets)
    # What it printed is committed for the group: each partition's end offset.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=15)
    finally:
        c.close()
    ends = {p: sum(1 for q, _ in placed if q == p) for p in range(3)}
    assert {tp.partition: tp.offset for tp in committed} == ends


def test_the_custom_serializer_example_round_trips_its_type_through_the_broker(broker):
    import struct
    from conftest import unique

    topic = unique("readings")  # auto-created by the example's producer
    lines = run_example("custom_serializer", broker.bootstrap, topic, 6)
    assert lines[-1] == "round-tripped 6 readings"
    expected = [(f"sensor-{i % 3}", 20.0 + i * 0.25) for i in range(6)]
    assert [(int(o), s, float(c)) for o, s, c in (line.split() for line in lines[:-1])] == [
        (i, s, c) for i, (s, c) in enumerate(expected)]
    # The bytes on the broker are the documented format, as another client reads them.
    decoded = []
    for m in consume_all(broker, topic, [0], 6):
        v = m.value()
        (n,) = struct.unpack(">H", v[:2])
        (celsius,) = struct.unpack(">d", v[2 + n:])
        assert len(v) == 2 + n + 8
        decoded.append((v[2:2 + n].decode(), celsius))
    assert decoded == expected


def test_long_integer_double_and_string_from_the_rust_serializers_decode_in_kafka_python(broker):
    import struct
    import time
    from conftest import unique
    from kafka import KafkaConsumer, TopicPartition

    topic = unique("typed")
    create_topic(broker, topic)
    long_, integer, double, string = -1234567890123456789, -2147483648, 3.141592653589793, "héllo wörld ✓"
    lines = run_example("typed_values", broker.bootstrap, topic, long_, integer, double, string)
    assert [line.split()[0] for line in lines] == ["long", "integer", "double", "string"]
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = {}
    deadline = time.monotonic() + 30
    try:
        while len(got) < 4 and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got.update({r.key.decode(): r.value for r in records})
    finally:
        c.close()
    # Java's LongSerializer, IntegerSerializer, DoubleSerializer (big-endian) and StringSerializer.
    assert struct.unpack(">q", got["long"]) == (long_,)
    assert struct.unpack(">i", got["integer"]) == (integer,)
    assert struct.unpack(">d", got["double"]) == (double,)
    assert got["string"].decode("utf-8") == string


def test_records_from_confluent_kafka_are_read_by_the_rust_consumer_identically(broker):
    from conftest import unique
    from helpers import produce

    topic = unique("from-librdkafka")
    create_topic(broker, topic)
    records = [
        (b"k0", b"v0", [("h", b"1")], 1_700_000_000_000),
        (None, b"no key", None, 1_700_000_000_001),
        (b"k2", None, [("a", b"x"), ("nul", None)], 1_600_000_000_000),
        (b"\x00\xff", "ünïcode".encode(), [("é", b"\x00")], 1_700_000_000_003),
        (b"k4", b"v" * 5000, [], 1_700_000_000_004),
    ]
    produce(broker, topic, records)
    lines = run_example("print_records", broker.bootstrap, topic, len(records))

    def hx(b):
        return "-" if b is None else b.hex()

    expected = []
    for offset, (key, value, headers, ts) in enumerate(records):
        hs = ",".join(f"{k.encode().hex()}:{hx(v)}" for k, v in (headers or []))
        expected.append(f"{offset}\t{ts}\t{hx(key)}\t{hx(value)}\t{hs}")
    assert lines == expected


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_repeated_header_names_reach_the_rust_consumer(broker, codec):
    """Kafka keeps every header, repeated names included, in compressed batches as in plain ones;
    the Rust consumer hands them all back, with the value intact."""
    from conftest import unique
    from helpers import produce

    topic = unique("dup-headers")
    create_topic(broker, topic)
    value = b"compressible " * 100  # so librdkafka really compresses the batch
    produce(broker, topic, [(b"k", value, [("a", b"x"), ("a", b"y")])],
            **{"compression.type": codec})
    lines = run_example("print_records", broker.bootstrap, topic, 1)
    fields = lines[0].split("\t")
    assert fields[4] == f"{b'a'.hex()}:{b'x'.hex()},{b'a'.hex()}:{b'y'.hex()}"
    assert fields[3] == value.hex()


def test_the_perf_consumer_reads_every_record_confluent_kafka_wrote_in_order(broker):
    from conftest import unique
    from helpers import produce
    topic = unique("perfc")
    create_topic(broker, topic, partitions=1)
    produce(broker, topic, [(None, bytes([i % 256]) * 1024) for i in range(5000)])
    r = subprocess.run([str(EXAMPLES / "perf_consumer"), broker.bootstrap, topic, "5000"],
                       capture_output=True, timeout=60)
    # The example fails unless it sees offsets 0..4999 exactly once, in order.
    assert r.returncode == 0, r.stderr.decode()
    records_per_s, mb_per_s = map(float, r.stdout.decode().split())
    assert records_per_s > 0 and mb_per_s > 0


def test_a_rust_kip_848_member_shares_a_topic_with_a_confluent_kafka_one(broker_factory):
    """Both members speak group.protocol=consumer: the coordinator splits the partitions between
    them, every record is read exactly once, and when the Rust member leaves (epoch -1) the
    confluent-kafka member takes over its partitions."""
    import threading
    import time
    from confluent_kafka import Consumer
    from conftest import unique
    from helpers import produce
    b = broker_factory(group_consumer_heartbeat_interval_ms="300")
    topic, group = unique("mix848"), unique("grp")
    create_topic(b, topic, partitions=4)
    rust = subprocess.Popen([str(EXAMPLES / "group_consumer"), b.bootstrap, group, topic,
                             "group.protocol=consumer"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(rust.stdout.readline, "")), daemon=True)
    reader.start()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    seen = []

    def rust_assignment():
        last = [ln for ln in list(lines) if ln.startswith("assigned")]
        return last[-1].split()[1:] and last[-1].split()[1].split(",") if last else None

    def rust_records():
        return [tuple(map(int, ln.split()[1:])) for ln in list(lines) if ln.startswith("record")]

    def poll_until(condition, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None and not m.error():
                seen.append((m.partition(), m.offset()))
                c.commit(message=m, asynchronous=False)
            if condition():
                return
        raise AssertionError(f"timed out: rust {lines[-5:]}, confluent {c.assignment()}")

    try:
        poll_until(lambda: len(c.assignment()) == 2 and len(rust_assignment() or []) == 2)
        ours = {tp.partition for tp in c.assignment()}
        theirs = {int(tp.rsplit("-", 1)[1]) for tp in rust_assignment()}
        assert ours | theirs == {0, 1, 2, 3} and not ours & theirs
        produce(b, topic, [(f"k{i}".encode(), b"v") for i in range(400)], partitioner="murmur2_random")
        poll_until(lambda: len(seen) + len(rust_records()) >= 400)
        # The Rust member leaves; the confluent-kafka member gets its partitions and the rest.
        rust.stdin.close()
        assert rust.wait(30) == 0, rust.stderr.read()
        reader.join(5)
        poll_until(lambda: len(c.assignment()) == 4)
        produce(b, topic, [(f"late{i}".encode(), b"v") for i in range(100)], partitioner="murmur2_random")
        poll_until(lambda: len(seen) + len(rust_records()) >= 500)
        everything = seen + rust_records()
        assert len(everything) == len(set(everything)) == 500, "each record read exactly once"
        assert {p for p, _ in seen} == {0, 1, 2, 3}
    finally:
        c.close()
        if rust.poll() is None:
            rust.kill()
