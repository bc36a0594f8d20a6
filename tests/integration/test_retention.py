"""Retention and compaction on a live broker: config changes take effect without a restart."""

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from conftest import unique, wait_for
from helpers import admin, consume_all, create_topic, produce
from wire import Wire


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


def test_dynamic_broker_configs_change_topic_defaults_at_run_time_and_persist(broker_factory):
    """kafka-configs --entity-type brokers --alter: log.retention.ms set dynamically on the broker
    becomes the default of every topic without one of its own, takes effect on the live log,
    survives a restart, and is described with Kafka's sources."""
    from confluent_kafka.admin import ConfigSource
    from confluent_kafka import KafkaError

    b = broker_factory(log_retention_check_interval_ms="200")
    topic = unique("dynbroker")
    create_topic(b, topic, config={"segment.bytes": "2000"})
    produce(b, topic, [(None, b"x" * 200) for _ in range(50)],
            **{"linger.ms": 0, "batch.num.messages": 1})
    a = admin(b)

    def alter(resource, *entries):
        res = ConfigResource(ConfigResource.Type.BROKER, resource, incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET if v is not None
                        else AlterConfigOpType.DELETE) for k, v in entries])
        return a.incremental_alter_configs([res])[res]

    def described(kind, name):
        res = ConfigResource(kind, name)
        return a.describe_configs([res])[res].result(15)

    # The cluster-wide default (--entity-default: an empty broker name, which confluent-kafka and
    # kafka-python cannot send, so it goes over the wire) and this broker's own value; the
    # broker's wins.
    BROKER, DYNAMIC_DEFAULT = 4, 3
    w = Wire(b.bootstrap)
    assert w.incremental_alter_configs(BROKER, "", [("log.retention.ms", 0, "600000")])[0] == 0
    assert w.describe_configs(BROKER, "") == (0, {"log.retention.ms": ("600000", DYNAMIC_DEFAULT)})
    alter("1", ("log.retention.ms", "1")).result(15)
    entry = described(ConfigResource.Type.BROKER, "1")["log.retention.ms"]
    assert (entry.value, entry.source) == ("1", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    assert not entry.is_read_only
    t = described(ConfigResource.Type.TOPIC, topic)["retention.ms"]
    assert (t.value, t.source) == ("1", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    low, high = wait_for(lambda: (lambda w: w if w[0] > 0 else None)(watermarks(b, topic)),
                         what="the dynamic retention to delete old segments")
    assert high == 50 and low > 0

    # Removing this broker's value falls back to the cluster default, and that survives a restart.
    alter("1", ("log.retention.ms", None)).result(15)
    b.restart()
    a = admin(b)
    t = described(ConfigResource.Type.TOPIC, topic)["retention.ms"]
    assert (t.value, t.source) == ("600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)

    # Static-only properties cannot change at run time; bad values are refused.
    err = alter("1", ("num.partitions", "3")).exception(15)
    assert err.args[0].code() == KafkaError.INVALID_REQUEST
    assert "Cannot update these configs dynamically" in err.args[0].str()
    err = alter("1", ("log.retention.ms", "soon")).exception(15)
    assert err.args[0].code() == KafkaError.INVALID_CONFIG
    assert described(ConfigResource.Type.BROKER, "1")["num.partitions"].is_read_only
