"""Retention and compaction on a live broker: config changes take effect without a restart."""

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from conftest import unique, wait_for
from helpers import admin, consume_all, create_topic, produce


def watermarks(broker, topic):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def test_lowering_retention_ms_on_a_live_topic_deletes_old_segments(broker_factory):
    b = broker_factory(log_retention_check_interval_ms="200")
    topic = unique("retention")
    create_topic(b, topic, config={"segment.bytes": "2000"})
    produce(b, topic, [(None, b"x" * 200) for _ in range(100)], **{"linger.ms": 0, "batch.num.messages": 1})
    assert watermarks(b, topic) == (0, 100)
    # A week of retention keeps everything...
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    a = admin(b)
    a.incremental_alter_configs([res])[res].result(15)
    # ...one millisecond expires every segment, the active one included (it is rolled first,
    # as Kafka does), so the log start offset moves up to the end.
    low, high = wait_for(lambda: (lambda w: w if w[0] > 0 else None)(watermarks(b, topic)),
                         what="old segments to be deleted")
    assert high == 100 and 0 < low <= 100
    # Back to the default week: offsets continue where they were and new records stay.
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([res])[res].result(15)
    assert produce(b, topic, [(None, b"new")])[0] == (0, 100)
    got = consume_all(b, topic, [0], 1, **{"auto.offset.reset": "earliest"})
    assert (got[0].offset(), got[0].value()) == (100, b"new")


def test_retention_bytes_keeps_the_partition_under_its_size(broker_factory):
    b = broker_factory(log_retention_check_interval_ms="200")
    topic = unique("size")
    create_topic(b, topic, config={"segment.bytes": "2000", "retention.bytes": "5000"})
    produce(b, topic, [(None, b"y" * 200) for _ in range(100)], **{"linger.ms": 0, "batch.num.messages": 1})
    low, high = wait_for(lambda: (lambda w: w if w[0] > 0 else None)(watermarks(b, topic)),
                         what="size retention")
    # Each record is ~270 bytes on disk: at most ~5000 bytes plus one segment remain.
    assert high == 100 and high - low <= (5000 + 2000) // 250


def test_compaction_keeps_the_newest_record_per_key(broker_factory):
    b = broker_factory(log_retention_check_interval_ms="200")
    topic = unique("compact")
    create_topic(b, topic, config={"cleanup.policy": "compact", "segment.bytes": "2000",
                                   "delete.retention.ms": "0"})
    records = [(f"k{i % 10}".encode(), f"v{i}".encode()) for i in range(200)]
    records.append((b"k3", None))  # a tombstone for k3
    records += [(b"tail", b"t")] * 20  # roll past the tombstone so it can be cleaned
    produce(b, topic, records, **{"linger.ms": 0, "batch.num.messages": 1})

    def compacted():
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "x", "enable.partition.eof": True,
                      "auto.offset.reset": "earliest"})
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        try:
            while True:
                m = c.poll(5)
                if m is None or (m.error() and m.error().code() == -191):  # _PARTITION_EOF
                    break
                if not m.error():
                    out.append(m)
        finally:
            c.close()
        return out if len(out) < 100 else None

    got = wait_for(compacted, timeout=30, what="compaction")
    latest = {}
    for m in got:
        latest[m.key()] = m.value()
    for k in range(10):
        if k == 3:
            continue
        # The newest value of each key survives, at its original offset.
        newest = max(i for i in range(200) if i % 10 == k)
        assert latest[f"k{k}".encode()] == f"v{newest}".encode()
        assert any(m.offset() == newest and m.key() == f"k{k}".encode() for m in got)
    assert b"k3" not in latest or latest[b"k3"] is None
    offsets = [m.offset() for m in got]
    assert offsets == sorted(offsets)
