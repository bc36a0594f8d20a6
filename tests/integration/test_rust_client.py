"""Brook's Rust client against the broker, cross-checked with clients nobody here wrote."""

import subprocess

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
