"""Restarts: a clean stop (SIGTERM) and kill -9 lose nothing that was acknowledged."""

import os
import signal

from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource

from conftest import unique
from helpers import admin, consume_all, create_topic, produce


def test_records_topics_and_configs_survive_a_clean_restart(broker):
    topic = unique("restart")
    create_topic(broker, topic, partitions=3, config={"retention.ms": "86400000"})
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(3000)]
    produce(broker, topic, records, **{"compression.type": "lz4", "partitioner": "murmur2_random"})
    broker.restart()
    a = admin(broker)
    assert len(a.list_topics(timeout=10).topics[topic].partitions) == 3
    res = ConfigResource("topic", topic)
    assert a.describe_configs([res])[res].result(15)["retention.ms"].value == "86400000"
    got = consume_all(broker, topic, [0, 1, 2], len(records))
    assert sorted(m.value() for m in got) == sorted(v for _, v in records)
    # Appends continue after the last offset.
    before = {p: max(m.offset() for m in got if m.partition() == p) for p in range(3)}
    delivered = produce(broker, topic, [(b"k0", b"after")], partitioner="murmur2_random")
    p, off = delivered[0]
    assert off == before[p] + 1


def test_acknowledged_records_survive_kill_9(broker):
    topic = unique("kill9")
    create_topic(broker, topic)
    acked = produce(broker, topic, [(None, f"v{i}".encode()) for i in range(5000)], acks="all")
    assert len(acked) == 5000
    broker.kill()
    broker.start()
    got = consume_all(broker, topic, [0], 5000)
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(5000)]
    assert [m.offset() for m in got] == list(range(5000))


def test_kill_9_while_producing_keeps_every_acknowledged_record(broker):
    """The broker dies in the middle of a stream of writes: whatever was acknowledged before
    the kill is there afterwards, contiguous from offset 0, with no corrupt tail."""
    topic = unique("midflight")
    create_topic(broker, topic)
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 1,
                  "message.timeout.ms": 3000, "retries": 0})
    acked = []

    def cb(err, msg):
        if err is None:
            acked.append(msg.offset())

    i = 0
    while len(acked) < 2000:
        p.produce(topic, value=f"v{i}".encode(), on_delivery=cb)
        i += 1
        p.poll(0)
    os.kill(broker.proc.pid, signal.SIGKILL)
    broker.proc.wait(10)
    broker.proc = None
    p.flush(10)
    broker.start()
    c_offsets = max(acked) + 1
    got = consume_all(broker, topic, [0], c_offsets)
    assert [m.offset() for m in got] == list(range(c_offsets))
    values = [m.value() for m in got]
    assert values == [f"v{n}".encode() for n in range(c_offsets)]
    # The log is writable again at the recovered end.
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.close()
    assert low == 0 and high >= c_offsets
    assert produce(broker, topic, [(None, b"after")])[0][1] == high
