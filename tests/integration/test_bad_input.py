"""Bad input gets Kafka's answer or a closed connection, and everyone else keeps being served."""

import socket
import struct

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
