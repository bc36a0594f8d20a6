"""Connection-level protocol rules over exact wire bytes: responses in request order on a
pipelined connection, no response for acks=0, per-partition results in one Produce."""

import struct

from conftest import unique
from helpers import consume_all, create_topic
from wire import Wire, _str, record_batch


def send_frame(w, api_key, version, body, correlation):
    header = struct.pack(">hhi", api_key, version, correlation) + _str("pipeline")
    frame = header + body
    w.sock.sendall(struct.pack(">i", len(frame)) + frame)


def read_frame(w):
    (size,) = struct.unpack(">i", w._read(4))
    resp = w._read(size)
    return struct.unpack(">i", resp[:4])[0], resp[4:]


def produce_body(topic, partition, batch, acks=-1):
    return (_str(None) + struct.pack(">hii", acks, 10000, 1) + _str(topic)
            + struct.pack(">ii", 1, partition) + struct.pack(">i", len(batch)) + batch)


def fetch_body(topic, partition, offset, max_wait_ms):
    return (struct.pack(">iiiib", -1, max_wait_ms, 1, 1 << 20, 0) + struct.pack(">i", 1) + _str(topic)
            + struct.pack(">iiqi", 1, partition, offset, 1 << 20))


def test_pipelined_requests_are_answered_in_order(broker):
    """Kafka answers one connection's requests in the order they were sent, even when an early
    one (a long-poll Fetch) takes longer than the ones behind it. kafka-python relies on it."""
    topic = unique("pipe")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    send_frame(w, 1, 4, fetch_body(topic, 0, 0, max_wait_ms=700), 100)  # parks: log is empty
    send_frame(w, 18, 0, b"", 101)
    for i in range(20):
        send_frame(w, 0, 7, produce_body(topic, 0, record_batch(-1, -1, -1, [b"%d" % i])), 102 + i)
    send_frame(w, 18, 0, b"", 122)
    order = [read_frame(w)[0] for _ in range(23)]
    assert order == list(range(100, 123))
    got = consume_all(broker, topic, [0], 20)
    assert [m.value() for m in got] == [b"%d" % i for i in range(20)]


def test_acks_0_gets_no_response_but_is_written(broker):
    topic = unique("acks0")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    for i in range(5):
        send_frame(w, 0, 7, produce_body(topic, 0, record_batch(-1, -1, -1, [b"fire-%d" % i]), acks=0), 10 + i)
    send_frame(w, 18, 0, b"", 99)
    # The first answer on the connection is the ApiVersions one: nothing was sent for acks=0.
    correlation, _ = read_frame(w)
    assert correlation == 99
    got = consume_all(broker, topic, [0], 5)
    assert [m.value() for m in got] == [b"fire-%d" % i for i in range(5)]


def test_one_produce_request_gets_a_result_per_partition(broker):
    """Good and bad partitions in one request: each gets its own error code and offset, and
    the bad ones do not stop the good ones."""
    topic = unique("multi")
    create_topic(broker, topic, partitions=2)
    good = record_batch(-1, -1, -1, [b"ok"])
    corrupt = bytearray(record_batch(-1, -1, -1, [b"bad"]))
    corrupt[-1] ^= 1
    parts = [(0, good), (1, bytes(corrupt)), (7, good)]
    body = _str(None) + struct.pack(">hii", -1, 10000, 2) + _str(topic) + struct.pack(">i", len(parts))
    for p, batch in parts:
        body += struct.pack(">ii", p, len(batch)) + batch
    missing = unique("missing-topic")
    body += _str(missing) + struct.pack(">i", 1) + struct.pack(">ii", 0, len(good)) + good
    w = Wire(broker.bootstrap)
    r = w.call(0, 7, body)
    pos = 0
    results = {}
    (n_topics,) = struct.unpack(">i", r[pos:pos + 4])
    pos += 4
    for _ in range(n_topics):
        (n,) = struct.unpack(">h", r[pos:pos + 2])
        name = r[pos + 2:pos + 2 + n].decode()
        pos += 2 + n
        (n_parts,) = struct.unpack(">i", r[pos:pos + 4])
        pos += 4
        for _ in range(n_parts):
            index, error, base, _append_time, _log_start = struct.unpack(">ihqqq", r[pos:pos + 30])
            pos += 30
            results.setdefault((name, index), []).append((error, base))
    assert results[(topic, 0)] == [(0, 0)]
    assert results[(topic, 7)][0][0] == 3
    assert results[(missing, 0)][0][0] == 3
    assert results[(topic, 1)][0][0] == 2  # CORRUPT_MESSAGE
    assert consume_all(broker, topic, [0], 1)[0].value() == b"ok"
    # Nothing reached partition 1: the next good batch there is offset 0.
    assert w.produce(topic, 1, good) == (0, 0)


def test_acks_other_than_minus_one_zero_or_one_is_invalid_required_acks(broker):
    topic = unique("acks2")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"x"]), acks=2)[0] == 21  # INVALID_REQUIRED_ACKS
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"y"]), acks=1) == (0, 0)
    assert [m.value() for m in consume_all(broker, topic, [0], 1)] == [b"y"]
