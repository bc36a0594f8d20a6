"""Fetch semantics over exact wire bytes (long poll, limits, out-of-range), record fidelity
(null vs empty, LogAppendTime, large records) and concurrent writers."""

import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import unique, wait_for
from helpers import admin, consume_all, create_topic, produce
from wire import Wire, batches, record_batch

NONE, OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC_OR_PARTITION = 0, 1, 3


def test_fetch_long_poll_waits_for_max_wait_and_wakes_up_on_new_data(broker):
    topic = unique("longpoll")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"a"])) == (NONE, 0)
    # Nothing new at the end of the log: the answer comes after max_wait_ms, empty.
    start = time.monotonic()
    error, hw, lso, data = w.fetch(topic, 0, 1, max_wait_ms=800, min_bytes=1)
    elapsed = time.monotonic() - start
    assert (error, hw, lso, data) == (NONE, 1, 1, b"")
    assert 0.6 <= elapsed < 3.0, f"long poll answered after {elapsed:.2f}s, max_wait_ms was 0.8s"
    # A waiting fetch is answered as soon as a produce makes data available.
    result = {}

    def poll():
        t0 = time.monotonic()
        result["answer"] = Wire(broker.bootstrap).fetch(topic, 0, 1, max_wait_ms=8000, min_bytes=1)
        result["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.3)  # let the fetch reach the broker and park (no condition to await from here)
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"b"])) == (NONE, 1)
    t.join(15)
    error, hw, _, data = result["answer"]
    assert error == NONE and hw == 2
    assert [b["base_offset"] for b in batches(data)] == [1]
    assert result["elapsed"] < 4.0, f"fetch waited {result['elapsed']:.2f}s after data arrived"


def test_fetch_with_min_bytes_zero_answers_at_once(broker):
    """Kafka answers at once when the bytes available (none) reach min_bytes (0): it never
    waits out max_wait_ms then."""
    topic = unique("minbytes0")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    start = time.monotonic()
    assert w.fetch(topic, 0, 0, max_wait_ms=5000, min_bytes=0)[:3] == (NONE, 0, 0)
    elapsed = time.monotonic() - start
    assert elapsed < 1.0, f"min_bytes=0 fetch waited {elapsed:.2f}s (max_wait_ms=5000)"


def test_fetch_limits_and_offsets_out_of_range(broker):
    topic = unique("limits")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    for i in range(10):
        assert w.produce(topic, 0, record_batch(-1, -1, -1, [bytes([i]) * 1000] * 5)) == (NONE, i * 5)
    error, hw, _, data = w.fetch(topic, 0, 0)
    got = batches(data)
    assert error == NONE and hw == 50
    assert [b["base_offset"] for b in got] == list(range(0, 50, 5))
    assert all(b["crc_ok"] and b["count"] == 5 for b in got)
    # A fetch from the middle of a batch returns that whole batch (the client skips ahead).
    error, _, _, data = w.fetch(topic, 0, 12)
    assert error == NONE and batches(data)[0]["base_offset"] == 10
    # partition_max_bytes smaller than one batch: still the first batch (KIP-74), nothing more.
    error, _, _, data = w.fetch(topic, 0, 0, partition_max_bytes=100)
    got = batches(data)
    assert error == NONE and len(got) >= 1 and got[0]["base_offset"] == 0
    assert len(data) < 2 * got[0]["size"]
    # max_bytes bounds the response the same way.
    error, _, _, data = w.fetch(topic, 0, 0, max_bytes=12000)
    assert error == NONE and 1 <= len(batches(data)) <= 3
    # Past the end, and below the log start after DeleteRecords: OFFSET_OUT_OF_RANGE.
    assert w.fetch(topic, 0, 51)[0] == OFFSET_OUT_OF_RANGE
    assert w.fetch(topic, 0, 50)[0] == NONE  # at the end is fine
    a = admin(broker)
    list(a.delete_records([TopicPartition(topic, 0, 20)]).values())[0].result(15)
    assert w.fetch(topic, 0, 19)[0] == OFFSET_OUT_OF_RANGE
    error, _, _, data = w.fetch(topic, 0, 20)
    assert error == NONE and batches(data)[0]["base_offset"] == 20
    assert w.fetch(topic, 1, 0)[0] == UNKNOWN_TOPIC_OR_PARTITION


def test_null_and_empty_keys_values_and_headers_are_kept_apart(broker):
    topic = unique("nulls")
    create_topic(broker, topic)
    cases = [(None, None), (b"", b""), (None, b""), (b"", None), (b"k", None), (None, b"v")]
    produce(broker, topic, [(k, v, [("h-null", None), ("h-empty", b"")]) for k, v in cases])
    got = consume_all(broker, topic, [0], len(cases))
    assert [(m.key(), m.value()) for m in got] == cases
    for m in got:
        assert m.headers() == [("h-null", None), ("h-empty", b"")]


def test_log_append_time_topics_stamp_records_with_the_broker_clock(broker):
    topic = unique("lat")
    create_topic(broker, topic, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    produce(broker, topic, [(None, b"old", None, 1_000_000_000_000)] * 3, **{"compression.type": "lz4"})
    after = int(time.time() * 1000)
    got = consume_all(broker, topic, [0], 3)
    for m in got:
        ts_type, ts = m.timestamp()
        assert ts_type == 2, "TIMESTAMP_LOG_APPEND_TIME"  # confluent_kafka.TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= ts <= after + 1000


def test_records_near_message_max_bytes_round_trip(broker_factory):
    b = broker_factory(message_max_bytes="3000000")
    topic = unique("large")
    create_topic(b, topic)
    big = [bytes([i]) * (2_500_000 - i) for i in range(3)]
    produce(b, topic, [(f"k{i}".encode(), v) for i, v in enumerate(big)],
            **{"message.max.bytes": 4_000_000, "compression.type": "none"})
    # The consumer's per-partition limit is smaller than one record: it must still progress.
    got = consume_all(b, topic, [0], 3, **{"max.partition.fetch.bytes": 1_000_000,
                                           "fetch.max.bytes": 1_000_000,
                                           "receive.message.max.bytes": 5_000_000})
    assert [m.value() for m in got] == big


@pytest.mark.slow
def test_concurrent_producers_get_unique_contiguous_offsets(broker):
    topic = unique("race")
    create_topic(broker, topic)
    per_producer, producers = 5000, 4
    errors = []

    def run(n):
        try:
            produce(broker, topic, [(None, f"{n}-{i}".encode()) for i in range(per_producer)],
                    **{"acks": "all", "linger.ms": 0, "batch.num.messages": 50,
                       "compression.type": ["none", "gzip", "zstd", "lz4"][n]})
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    total = per_producer * producers
    got = consume_all(broker, topic, [0], total)
    assert [m.offset() for m in got] == list(range(total))
    values = [m.value() for m in got]
    assert sorted(values) == sorted(f"{n}-{i}".encode() for n in range(producers) for i in range(per_producer))
    for n in range(producers):  # each producer's own order is kept
        mine = [int(v.split(b"-")[1]) for v in values if v.startswith(f"{n}-".encode())]
        assert mine == list(range(per_producer))


def test_consumers_read_while_a_producer_writes(broker):
    """A consumer tailing the log sees every record as it is written, none twice."""
    topic = unique("tail")
    create_topic(broker, topic, partitions=2)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 50})
    c.assign([TopicPartition(topic, p, 0) for p in (0, 1)])
    seen = []
    stop = threading.Event()

    def tail():
        while not stop.is_set():
            m = c.poll(0.1)
            if m is not None and not m.error():
                seen.append((m.partition(), m.offset(), m.value()))

    t = threading.Thread(target=tail)
    t.start()
    try:
        produce(broker, topic, [(f"k{i}".encode(), str(i).encode()) for i in range(3000)],
                **{"linger.ms": 1, "batch.num.messages": 20, "partitioner": "murmur2_random"})
        wait_for(lambda: len(seen) >= 3000, timeout=30, what="the tailing consumer to catch up")
    finally:
        stop.set()
        t.join(10)
        c.close()
    assert len(seen) == 3000
    assert sorted(int(v) for _, _, v in seen) == list(range(3000))
    for p in (0, 1):
        offsets = [o for part, o, _ in seen if part == p]
        assert offsets == list(range(len(offsets)))


def test_many_partitions_survive_a_restart(broker):
    topic = unique("wide")
    create_topic(broker, topic, partitions=64)
    records = [(f"key-{i}".encode(), f"v{i}".encode()) for i in range(6400)]
    produce(broker, topic, records, partitioner="murmur2_random")
    broker.restart()
    got = consume_all(broker, topic, range(64), len(records))
    assert sorted(m.value() for m in got) == sorted(v for _, v in records)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    try:
        highs = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(64)]
    finally:
        c.close()
    assert sum(highs) == 6400 and min(highs) > 0


FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH = 74, 75


def test_leader_epochs_are_stamped_reported_and_checked(broker):
    """KIP-320 as librdkafka uses it: batches carry the leader epoch, ListOffsets reports it,
    OffsetForLeaderEpoch answers the end offset of an epoch, and a request whose
    current_leader_epoch is newer than the broker's is UNKNOWN_LEADER_EPOCH (older: FENCED)."""
    topic = unique("epochs")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    for i in range(3):
        assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"x"] * 2)) == (NONE, 2 * i)
    error, _ts, offset, epoch = w.list_offsets(topic, 0, -1)
    assert (error, offset) == (NONE, 6) and epoch >= 0
    _, _, _, data = w.fetch(topic, 0, 0)
    assert [b["leader_epoch"] for b in batches(data)] == [epoch] * 3

    assert w.offset_for_leader_epoch(topic, 0, epoch) == (NONE, epoch, 6)
    assert w.offset_for_leader_epoch(topic, 0, epoch, current_leader_epoch=epoch) == (NONE, epoch, 6)
    assert w.offset_for_leader_epoch(topic, 0, epoch, current_leader_epoch=epoch + 1)[0] == UNKNOWN_LEADER_EPOCH

    assert w.list_offsets(topic, 0, -1, current_leader_epoch=epoch)[:3] == (NONE, -1, 6)
    assert w.list_offsets(topic, 0, -1, current_leader_epoch=epoch + 1)[0] == UNKNOWN_LEADER_EPOCH

    top, err, hw, log_start, data = w.fetch_v11(topic, 0, 2, current_leader_epoch=epoch)
    assert (top, err, hw, log_start) == (NONE, NONE, 6, 0)
    assert [b["base_offset"] for b in batches(data)] == [2, 4]
    assert w.fetch_v11(topic, 0, 0, current_leader_epoch=epoch + 1)[1] == UNKNOWN_LEADER_EPOCH
    if epoch > 0:
        assert w.fetch_v11(topic, 0, 0, current_leader_epoch=epoch - 1)[1] == FENCED_LEADER_EPOCH

    # After a restart the epoch may move on (Kafka bumps it when leadership changes) but never
    # back, and the old batches keep the epoch they were written in.
    broker.restart()
    w = Wire(broker.bootstrap)
    error, _ts, offset, new_epoch = w.list_offsets(topic, 0, -1)
    assert (error, offset) == (NONE, 6) and new_epoch >= epoch
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"y"])) == (NONE, 6)
    _, _, _, data = w.fetch(topic, 0, 0)
    assert [b["leader_epoch"] for b in batches(data)] == [epoch] * 3 + [new_epoch]
    # The end offset of the old epoch is where the new one started (or the log end, if the
    # epoch did not change).
    assert w.offset_for_leader_epoch(topic, 0, epoch)[2] == (6 if new_epoch > epoch else 7)
    assert w.offset_for_leader_epoch(topic, 0, new_epoch) == (NONE, new_epoch, 7)


def produce_to(broker, topic, values_partitions):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for value, partition in values_partitions:
        p.produce(topic, value=value, partition=partition)
    assert p.flush(30) == 0


def test_incremental_fetch_sessions_carry_only_partitions_with_news(broker):
    """KIP-227 over exact wire bytes: a full fetch opens a session, incremental fetches name only
    changed partitions and hear only about partitions with news; bad ids and epochs get 70/71."""
    topic = unique("session")
    create_topic(broker, topic, partitions=3)
    produce_to(broker, topic, [(b"v0", 0), (b"v1", 1), (b"v2", 2)])
    w = Wire(broker.bootstrap)
    err, sid, parts = w.fetch_session(topic, {0: 0, 1: 0, 2: 0}, session_id=0, session_epoch=0)
    assert err == 0 and sid != 0
    assert sorted(parts) == [0, 1, 2] and all(len(p[2]) > 0 for p in parts.values())

    # Positions moved to 1 everywhere; nothing new has arrived: the answer is empty.
    err, sid2, parts = w.fetch_session(topic, {0: 1, 1: 1, 2: 1}, sid, 1)
    assert (err, sid2, parts) == (0, sid, {})
    # Partitions not named keep their cached positions; a record on partition 1 is the only news.
    produce_to(broker, topic, [(b"new", 1)])
    err, _, parts = w.fetch_session(topic, {}, sid, 2)
    assert err == 0 and list(parts) == [1]
    assert parts[1][1] == 2 and [b["base_offset"] for b in batches(parts[1][2])] == [1]
    # Forgetting partition 1 and re-adding partition 0 from offset 0: only partition 0 answers.
    err, _, parts = w.fetch_session(topic, {0: 0}, sid, 3, forgotten=[1])
    assert err == 0 and list(parts) == [0] and len(parts[0][2]) > 0

    INVALID_FETCH_SESSION_EPOCH, FETCH_SESSION_ID_NOT_FOUND = 71, 70
    assert w.fetch_session(topic, {}, sid, 9)[0] == INVALID_FETCH_SESSION_EPOCH
    assert w.fetch_session(topic, {}, sid + 1, 1)[0] == FETCH_SESSION_ID_NOT_FOUND
    # Epoch -1 closes the session; the request is answered in full without one.
    err, closed, parts = w.fetch_session(topic, {0: 0, 2: 0}, sid, -1)
    assert (err, closed, sorted(parts)) == (0, 0, [0, 2])
    assert w.fetch_session(topic, {}, sid, 4)[0] == FETCH_SESSION_ID_NOT_FOUND


def test_kafka_python_reads_through_incremental_fetch_sessions(broker):
    """kafka-python (which implements KIP-227) consumes many partitions through one session and
    sees every record exactly once while the producer keeps writing."""
    import logging
    from kafka import KafkaConsumer

    topic = unique("kpsession")
    create_topic(broker, topic, partitions=8)
    seen_incremental = []

    class Spy(logging.Handler):
        def emit(self, record):
            if "incremental fetch response for session" in record.getMessage():
                seen_incremental.append(record)

    fetch_log = logging.getLogger("kafka.consumer.fetcher")
    spy = Spy(level=logging.DEBUG)
    fetch_log.addHandler(spy)
    old_level = fetch_log.level
    fetch_log.setLevel(logging.DEBUG)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, fetch_max_wait_ms=100)
    try:
        from kafka import TopicPartition as KTp
        consumer.assign([KTp(topic, p) for p in range(8)])
        got = []
        for round_ in range(4):
            produce_to(broker, topic, [(f"{round_}-{i}".encode(), i % 8) for i in range(40)])
            deadline = time.time() + 30
            while len(got) < 40 * (round_ + 1) and time.time() < deadline:
                for recs in consumer.poll(timeout_ms=500).values():
                    got.extend(r.value for r in recs)
        assert sorted(got) == sorted(f"{r}-{i}".encode() for r in range(4) for i in range(40))
        assert seen_incremental, "kafka-python never continued an incremental fetch session"
    finally:
        consumer.close()
        fetch_log.removeHandler(spy)
        fetch_log.setLevel(old_level)
