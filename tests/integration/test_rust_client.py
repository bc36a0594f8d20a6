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
