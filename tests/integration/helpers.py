"""Client-side helpers shared by the integration tests."""

import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name, partitions=1, config=None):
    a = admin(broker)  # must outlive the future, or the handle is destroyed under it
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                   config=config or {})])
    fs[name].result(15)


def produce(broker, topic, records, **conf):
    """Produces (key, value[, headers[, timestamp]]) tuples and waits for every acknowledgement.
    Returns the delivered messages' (partition, offset) in send order."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, **conf})
    delivered = [None] * len(records)
    errors = []

    def cb(i):
        def on_delivery(err, msg):
            if err:
                errors.append(err)
            else:
                delivered[i] = (msg.partition(), msg.offset())
        return on_delivery

    for i, r in enumerate(records):
        key, value = r[0], r[1]
        kwargs = {}
        if len(r) > 2 and r[2] is not None:
            kwargs["headers"] = r[2]
        if len(r) > 3 and r[3] is not None:
            kwargs["timestamp"] = r[3]
        while True:
            try:
                p.produce(topic, key=key, value=value, on_delivery=cb(i), **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        if i % 1000 == 0:
            p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} records not delivered"
    assert not errors, errors[:3]
    return delivered


def consume_all(broker, topic, partitions, expected, timeout=60, **conf):
    """Reads `expected` records from the given partitions from offset 0 with manual assignment."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused-manual",
                  "enable.auto.commit": False, "enable.partition.eof": False, **conf})
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(m.error())
                out.append(m)
    finally:
        c.close()
    assert len(out) == expected, f"consumed {len(out)} of {expected}"
    return out


def murmur2(data: bytes) -> int:
    """Kafka's Java murmur2 (Utils.murmur2), returning a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = length - rest
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record: toPositive(murmur2(key)) % partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
