"""Restarts: a clean stop (SIGTERM) and kill -9 lose nothing that was acknowledged."""

import os
import signal
import time

import pytest
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


@pytest.mark.slow
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


def test_every_awaited_acks_all_produce_survives_an_immediate_kill_9(broker):
    """Each record is produced alone and its acknowledgement awaited before the next; the broker
    is killed the moment the last one is acknowledged."""
    from confluent_kafka import Producer

    topic = unique("awaited")
    create_topic(broker, topic, partitions=3)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0,
                  "partitioner": "murmur2_random", "compression.type": "gzip"})
    acked = {}
    for i in range(300):
        result = []
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(),
                  on_delivery=lambda err, msg: result.append((err, msg.partition(), msg.offset())))
        assert p.flush(10) == 0
        err, partition, offset = result[0]
        assert err is None, err
        acked[(partition, offset)] = f"v{i}".encode()
    os.kill(broker.proc.pid, signal.SIGKILL)
    broker.proc.wait(10)
    broker.proc = None
    broker.start()  # a new port: the new bootstrap address is used from here on
    got = consume_all(broker, topic, [0, 1, 2], len(acked))
    assert {(m.partition(), m.offset()): m.value() for m in got} == acked


def test_deletes_configs_and_topic_ids_survive_a_clean_restart(broker):
    """Everything the admin API changed is durable: a deleted topic stays deleted, the log start
    offset moved by DeleteRecords stays, a dynamic config stays, topic ids do not change."""
    from confluent_kafka import Consumer, TopicCollection
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, NewPartitions

    kept, gone = unique("kept"), unique("gone")
    create_topic(broker, kept, partitions=2)
    create_topic(broker, gone)
    produce(broker, kept, [(None, f"v{i}".encode()) for i in range(40)], partitioner="murmur2_random")
    a = admin(broker)
    a.delete_topics([gone])[gone].result(15)
    list(a.delete_records([TopicPartition(kept, 0, 5)]).values())[0].result(15)
    a.create_partitions([NewPartitions(kept, 4)])[kept].result(15)
    res = ConfigResource(ConfigResource.Type.TOPIC, kept, incremental_configs=[
        ConfigEntry("retention.ms", "999999", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(15)
    topic_id = str(a.describe_topics(TopicCollection([kept]))[kept].result(15).topic_id)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    marks = {p: c.get_watermark_offsets(TopicPartition(kept, p), timeout=10) for p in range(4)}
    c.close()
    assert marks[0][0] == 5

    broker.restart()
    a = admin(broker)
    topics = a.list_topics(timeout=10).topics
    assert gone not in topics
    assert len(topics[kept].partitions) == 4
    assert str(a.describe_topics(TopicCollection([kept]))[kept].result(15).topic_id) == topic_id
    r = ConfigResource("topic", kept)
    assert a.describe_configs([r])[r].result(15)["retention.ms"].value == "999999"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    try:
        assert {p: c.get_watermark_offsets(TopicPartition(kept, p), timeout=10) for p in range(4)} == marks
    finally:
        c.close()
    # A topic of the same name as the deleted one starts afresh.
    create_topic(broker, gone)
    assert produce(broker, gone, [(None, b"new")])[0] == (0, 0)


def test_many_small_segments_recover_after_kill_9(broker_factory):
    """With tiny segments the log rolls often; after kill -9 every segment is found again and
    indexes serve reads and timestamp look-ups from the middle."""
    from confluent_kafka import Consumer

    b = broker_factory(log_segment_bytes="16384")
    topic = unique("segments")
    create_topic(b, topic)
    base = 1_700_000_000_000
    produce(b, topic, [(f"k{i}".encode(), b"x" * 100, None, base + i) for i in range(3000)],
            **{"linger.ms": 0, "batch.num.messages": 10})
    segments = sorted(p.name for p in b.data_dir.glob(f"{topic}-0/*.log"))
    assert len(segments) > 5, segments
    assert all(len(s) == len("00000000000000000000.log") for s in segments)
    b.kill()
    b.start()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "x"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 3000)
        for want in (0, 1234, 2999):
            r = c.offsets_for_times([TopicPartition(topic, 0, base + want)], timeout=10)[0]
            assert r.offset == want
    finally:
        c.close()
    got = consume_all(b, topic, [0], 3000)
    assert [m.key() for m in got] == [f"k{i}".encode() for i in range(3000)]
    assert [m.timestamp()[1] for m in got] == [base + i for i in range(3000)]
    assert produce(b, topic, [(None, b"after")])[0] == (0, 3000)


@pytest.mark.slow
def test_idempotent_producer_retries_across_a_kill_9_without_duplicates(broker):
    """The broker dies under an idempotent producer (acks=all, 5 in flight); it comes back on the
    same port, librdkafka retries what was in flight, and every record is there exactly once, in
    send order per partition. Needs producer state (sequence numbers) to survive the crash."""
    from confluent_kafka import Producer

    from conftest import wait_for

    topic = unique("idem-kill")
    create_topic(broker, topic, partitions=2)
    port = broker.port
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "acks": "all",
                  "max.in.flight.requests.per.connection": 5, "linger.ms": 2,
                  "batch.num.messages": 200, "message.timeout.ms": 60000,
                  "retry.backoff.ms": 100, "partitioner": "murmur2_random"})
    errors, delivered = [], []

    def cb(err, msg):
        if err:
            errors.append(err)
        else:
            delivered.append(msg.offset())

    total = 20_000
    for i in range(total):
        while True:
            try:
                p.produce(topic, key=f"k{i % 64}".encode(), value=str(i).encode(), on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        if i % 500 == 0:
            p.poll(0)
        if i == total // 2:
            wait_for(lambda: (p.poll(0.01), len(delivered) > 1000)[1],
                     what="some acknowledgements before the kill")
            in_flight = len(delivered)
            os.kill(broker.proc.pid, signal.SIGKILL)
            broker.proc.wait(10)
            broker.proc = None
            # Keep producing into librdkafka's queue while the broker is down.
    wait_for(lambda: _start_on(broker, port), timeout=30, what="the broker back on its old port")
    assert p.flush(90) == 0
    assert not errors, errors[:3]
    assert in_flight < total, "nothing was left to retry: the kill came too late"
    got = consume_all(broker, topic, [0, 1], total)
    values = [int(m.value()) for m in got]
    assert len(values) == len(set(values)) == total, "duplicates or losses"
    for part in (0, 1):
        seq = [int(m.value()) for m in got if m.partition() == part]
        assert seq == sorted(seq), "send order within a partition broken"


def _start_on(broker, port):
    try:
        broker.start(port=port)
        return True
    except AssertionError:  # the port may still be held for a moment
        broker.proc = None
        return False


def test_a_torn_tail_is_truncated_and_indexes_rebuilt_after_kill_9(broker):
    """What a crash mid-write leaves: the last batch cut short, garbage after it, index files
    gone. The broker recovers to the last whole batch and appends after it."""
    from confluent_kafka import Consumer

    topic = unique("torn-tail")
    create_topic(broker, topic)
    base = 1_700_000_000_000
    produce(broker, topic, [(None, f"v{i}".encode(), None, base + i) for i in range(100)],
            **{"linger.ms": 0, "batch.num.messages": 1})
    broker.kill()
    part = broker.data_dir / f"{topic}-0"
    (log,) = sorted(part.glob("*.log"))
    data = log.read_bytes()
    log.write_bytes(data[:-7] + b"\x00" * 64)  # the last batch torn, zeros after it
    for index in list(part.glob("*.index")) + list(part.glob("*.timeindex")):
        index.unlink()
    broker.start()
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 99)
        r = c.offsets_for_times([TopicPartition(topic, 0, base + 50)], timeout=10)[0]
        assert r.offset == 50
    finally:
        c.close()
    got = consume_all(broker, topic, [0], 99)
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(99)]
    assert produce(broker, topic, [(None, b"after")])[0] == (0, 99)
    assert consume_all(broker, topic, [0], 100)[99].value() == b"after"


def test_sigint_is_a_clean_shutdown_too(broker):
    topic = unique("sigint")
    create_topic(broker, topic, partitions=2)
    produce(broker, topic, [(f"k{i}".encode(), b"v") for i in range(500)], partitioner="murmur2_random")
    broker.proc.send_signal(signal.SIGINT)
    assert broker.proc.wait(20) == 0, broker.log()
    broker.proc = None
    broker.start()
    assert len(consume_all(broker, topic, [0, 1], 500)) == 500


def test_segments_roll_by_segment_ms(broker):
    """segment.ms rolls the active segment once it is older than that, even when small."""
    topic = unique("segms")
    create_topic(broker, topic, config={"segment.ms": "1000"})
    part = broker.data_dir / f"{topic}-0"
    produce(broker, topic, [(None, b"first")])
    assert len(list(part.glob("*.log"))) == 1
    time.sleep(1.5)  # the condition under test is the passing of time itself
    produce(broker, topic, [(None, b"second")])
    logs = sorted(p.name for p in part.glob("*.log"))
    assert logs == ["00000000000000000000.log", "00000000000000000001.log"], logs
    assert [m.value() for m in consume_all(broker, topic, [0], 2)] == [b"first", b"second"]
