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
