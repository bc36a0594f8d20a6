"""Bad input gets Kafka's answer or a closed connection, and everyone else keeps being served."""

import socket
import struct

import pytest

from conftest import unique
from helpers import consume_all, create_topic, produce


def send_and_read(bootstrap, payload):
    """Sends raw bytes; returns the first response frame, or None if the broker closed."""
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        head = b""
        while len(head) < 4:
            chunk = s.recv(4 - len(head))
            if not chunk:
                return None
            head += chunk
        size = struct.unpack(">i", head)[0]
        body = b""
        while len(body) < size:
            chunk = s.recv(size - len(body))
            if not chunk:
                return None
            body += chunk
        return body


def still_serving(broker):
    topic = unique("alive")
    create_topic(broker, topic)
    produce(broker, topic, [(None, b"ok")])
    assert consume_all(broker, topic, [0], 1)[0].value() == b"ok"


def test_unknown_api_key_closes_the_connection(broker):
    frame = struct.pack(">hhi", 999, 0, 1) + struct.pack(">h", -1)
    assert send_and_read(broker.bootstrap, struct.pack(">i", len(frame)) + frame) is None
    still_serving(broker)


def test_unsupported_api_versions_version_gets_error_35_and_the_version_list(broker):
    frame = struct.pack(">hhi", 18, 99, 42) + struct.pack(">h", -1) + b"\x00"
    resp = send_and_read(broker.bootstrap, struct.pack(">i", len(frame)) + frame)
    correlation, error, count = struct.unpack(">ihi", resp[:10])
    assert (correlation, error) == (42, 35)
    keys = {struct.unpack(">hhh", resp[10 + 6 * i:16 + 6 * i])[0] for i in range(count)}
    assert {0, 1, 3, 18} <= keys


def test_oversized_frame_is_refused(broker_factory):
    b = broker_factory(socket_request_max_bytes="10000")
    assert send_and_read(b.bootstrap, struct.pack(">i", 50_000) + b"\x00" * 100) is None
    still_serving(b)


def test_garbage_and_truncated_frames_are_refused(broker):
    assert send_and_read(broker.bootstrap, b"\xff\xff\xff\xff garbage") is None
    frame = struct.pack(">hhi", 3, 12, 7)  # Metadata v12 header cut short
    assert send_and_read(broker.bootstrap, struct.pack(">i", len(frame)) + frame) is None
    still_serving(broker)


def test_produce_v2_is_advertised_but_refused(broker):
    request = struct.pack(">hhi", 18, 0, 1) + struct.pack(">h", -1)
    resp = send_and_read(broker.bootstrap, struct.pack(">i", len(request)) + request)
    # ApiVersions v0 lists Produce from version 0 (Kafka's quirk, kept for librdkafka) ...
    _corr, error, count = struct.unpack(">ihi", resp[:10])
    produce_range = [struct.unpack(">hhh", resp[10 + 6 * i:16 + 6 * i]) for i in range(count)][0]
    assert error == 0 and produce_range[0] == 0 and produce_range[1] == 0
    # ... but a v2 produce request is not served.
    frame = struct.pack(">hhi", 0, 2, 1) + struct.pack(">h", -1) + struct.pack(">hii", 1, 1000, 0)
    assert send_and_read(broker.bootstrap, struct.pack(">i", len(frame)) + frame) is None
    still_serving(broker)


def api_versions_v0(wire):
    """ApiVersions v0 on an open connection: {api_key: (min, max)}."""
    r = wire.call(18, 0, b"")
    error, count = struct.unpack(">hi", r[:6])
    assert error == 0
    return {k: (lo, hi) for k, lo, hi in (struct.unpack(">hhh", r[6 + 6 * i:12 + 6 * i]) for i in range(count))}


def test_connections_already_open_keep_working_while_others_misbehave(broker_factory):
    from wire import Wire

    b = broker_factory(socket_request_max_bytes="100000")
    bystander = Wire(b.bootstrap)
    before = api_versions_v0(bystander)
    bad_frames = [
        struct.pack(">i", 10) + struct.pack(">hhih", 999, 0, 1, -1),  # unknown api key
        b"\xff\xff\xff\xfe\x00\x00",                          # negative size
        struct.pack(">i", 500_000) + b"\x00" * 64,            # over socket.request.max.bytes
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                 # another protocol altogether
    ]
    for payload in bad_frames:
        assert send_and_read(b.bootstrap, payload) is None, payload
        assert api_versions_v0(bystander) == before
    still_serving(b)


def test_a_stalled_half_frame_does_not_hold_up_anyone_else(broker):
    """A client that sends half a request and stops must not block other connections."""
    host, port = broker.bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as stalled:
        stalled.sendall(struct.pack(">i", 1000) + b"\x00\x12\x00\x00")  # 8 of 1000 bytes
        still_serving(broker)


def test_api_versions_with_an_unsupported_version_answers_in_the_v0_format(broker):
    """Kafka answers an ApiVersions request it cannot parse with UNSUPPORTED_VERSION (35) and the
    full api list, encoded as v0: correlation id, error, [key, min, max], nothing more."""
    frame = struct.pack(">hhi", 18, 99, 42) + struct.pack(">h", 6) + b"client" + b"\x00\x00\x00"
    resp = send_and_read(broker.bootstrap, struct.pack(">i", len(frame)) + frame)
    assert resp is not None
    correlation, error, count = struct.unpack(">ihi", resp[:10])
    assert (correlation, error) == (42, 35)
    assert len(resp) == 10 + 6 * count, "a v0 body: no throttle time, no tagged fields"
    apis = {k: (lo, hi) for k, lo, hi in (struct.unpack(">hhh", resp[10 + 6 * i:16 + 6 * i]) for i in range(count))}
    assert apis[18][0] == 0 and apis[18][1] >= 3
    # Every API the broker contract names is listed.
    for key in (0, 1, 2, 3, 18, 19, 20, 21, 22, 23, 32, 33, 37, 44, 60, 75):
        assert key in apis, key


def test_topic_max_message_bytes_bounds_a_batch(broker):
    from wire import Wire, record_batch

    topic = unique("topic-max")
    create_topic(broker, topic, config={"max.message.bytes": "1000"})
    w = Wire(broker.bootstrap)
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"y" * 1500]))[0] == 10  # MESSAGE_TOO_LARGE
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"y" * 100])) == (0, 0)
    # librdkafka sees the same error code for an oversized record.
    from confluent_kafka import KafkaError, Producer

    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 5000})
    errs = []
    p.produce(topic, value=b"z" * 5000, on_delivery=lambda err, msg: errs.append(err))
    p.flush(10)
    assert errs and errs[0] is not None and errs[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errs


def test_produce_to_unknown_topics_and_partitions_is_unknown_topic_or_partition(broker_factory):
    from wire import Wire, record_batch

    b = broker_factory(auto_create_topics_enable="false")
    topic = unique("three")
    create_topic(b, topic, partitions=3)
    w = Wire(b.bootstrap)
    assert w.produce(topic, 3, record_batch(-1, -1, -1, [b"x"]))[0] == 3
    assert w.produce(topic, -1, record_batch(-1, -1, -1, [b"x"]))[0] == 3
    assert w.produce(unique("missing"), 0, record_batch(-1, -1, -1, [b"x"]))[0] == 3
    assert w.produce(topic, 2, record_batch(-1, -1, -1, [b"ok"])) == (0, 0)


def test_a_truncated_or_flipped_batch_appends_nothing(broker):
    from wire import Wire, record_batch

    topic = unique("torn")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    good = record_batch(-1, -1, -1, [b"one", b"two"])
    # The batch length says more bytes than the request carries.
    torn = good[:-5]
    w.produce(topic, 0, torn)
    # A flipped byte in the record data, in the attributes (both covered by the CRC) and in the
    # CRC itself (base offset 8, length 4, leader epoch 4, magic 1, then the CRC).
    for pos in (len(good) - 3, 8 + 4 + 4 + 1 + 4 + 1, 8 + 4 + 4 + 1 + 2):
        bad = bytearray(good)
        bad[pos] ^= 0x55
        assert w.produce(topic, 0, bytes(bad))[0] == 2, pos  # CORRUPT_MESSAGE
    # Nothing was appended: the next good batch gets offset 0.
    assert w.produce(topic, 0, good) == (0, 0)
    assert [m.value() for m in consume_all(broker, topic, [0], 2)] == [b"one", b"two"]


INVALID_RECORD, UNSUPPORTED_COMPRESSION_TYPE = 87, 76


def _rule_cases():
    from wire import record_batch

    one = record_batch(-1, -1, -1, [b"a"])
    return {
        "two-batches": (one + one, 7, INVALID_RECORD),
        "no-batch": (b"", 7, INVALID_RECORD),
        "magic-1": (record_batch(-1, -1, -1, [b"a"], magic=1), 7, INVALID_RECORD),
        "zstd-before-v7": (record_batch(-1, -1, -1, [b"a"], attributes=4), 6, UNSUPPORTED_COMPRESSION_TYPE),
        "codec-id-5": (record_batch(-1, -1, -1, [b"a"], attributes=5), 7, None),  # any error
    }


@pytest.mark.parametrize("case", ["two-batches", "no-batch", "magic-1", "zstd-before-v7", "codec-id-5"])
def test_produce_v3_plus_record_rules(broker, case):
    """Kafka's ProduceRequest.validateRecords for v3+: exactly one batch of magic 2 per
    partition (else INVALID_RECORD), no zstd before Produce v7 (UNSUPPORTED_COMPRESSION_TYPE).
    Nothing invalid is stored."""
    from wire import Wire, record_batch

    batch, version, expected = _rule_cases()[case]
    topic = unique("rules")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    error, _ = w.produce(topic, 0, batch, version=version)
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"good"])) == (0, 0), "the invalid batch was stored"
    if expected is None:
        assert error != 0
    else:
        assert error == expected
