"""Idempotent producers: retries never duplicate, gaps are refused, state survives restarts."""

import socket
import struct

import crc32c

from conftest import unique
from helpers import consume_all, create_topic, produce

# --- a minimal wire client, written from the protocol spec, independent of Brook's codec ---


def _str(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _varint(v):
    v = (v << 1) ^ (v >> 63)
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def record_batch(producer_id, epoch, base_seq, values, timestamp=1_700_000_000_000):
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + _varint(0) + _varint(i) + _varint(-1) + _varint(len(v)) + v + _varint(0)
        records += _varint(len(body)) + body
    after_crc = (struct.pack(">hiqqqhii", 0, len(values) - 1, timestamp, timestamp,
                             producer_id, epoch, base_seq, len(values)) + records)
    crc = crc32c.crc32c(after_crc)
    body = struct.pack(">ibI", 0, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(body)) + body


class Wire:
    def __init__(self, bootstrap):
        host, port = bootstrap.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.correlation = 0

    def call(self, api_key, version, body):
        self.correlation += 1
        header = struct.pack(">hhi", api_key, version, self.correlation) + _str("wire-test")
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._read(4))[0]
        resp = self._read(size)
        assert struct.unpack(">i", resp[:4])[0] == self.correlation
        return resp[4:]

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def init_producer_id(self):
        # InitProducerId v1: transactional_id (null), transaction_timeout_ms
        r = self.call(22, 1, _str(None) + struct.pack(">i", 60000))
        _throttle, error, pid, epoch = struct.unpack(">ihqh", r[:16])
        assert error == 0
        return pid, epoch

    def produce(self, topic, partition, batch):
        """Produce v7 (non-flexible); returns (error_code, base_offset)."""
        body = (_str(None) + struct.pack(">hii", -1, 10000, 1) + _str(topic)
                + struct.pack(">ii", 1, partition) + struct.pack(">i", len(batch)) + batch)
        r = self.call(0, 7, body)
        # responses: [topic: name, [partition, error, base_offset, log_append_time, log_start]]
        n_topics = struct.unpack(">i", r[:4])[0]
        assert n_topics == 1
        name_len = struct.unpack(">h", r[4:6])[0]
        pos = 6 + name_len
        _n_parts, _index, error, base_offset = struct.unpack(">iihq", r[pos:pos + 18])
        return error, base_offset


def test_a_retried_batch_is_acknowledged_with_its_original_offset(broker):
    topic = unique("dup")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    pid, epoch = w.init_producer_id()
    assert w.produce(topic, 0, record_batch(pid, epoch, 0, [b"a", b"b"])) == (0, 0)
    assert w.produce(topic, 0, record_batch(pid, epoch, 2, [b"c"])) == (0, 2)
    # The client did not see the answer and sends the same batch again.
    assert w.produce(topic, 0, record_batch(pid, epoch, 2, [b"c"])) == (0, 2)
    # A gap in sequence numbers is OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    assert w.produce(topic, 0, record_batch(pid, epoch, 9, [b"x"]))[0] == 45
    got = consume_all(broker, topic, [0], 3)
    assert [m.value() for m in got] == [b"a", b"b", b"c"]


def test_producer_state_survives_kill_9(broker):
    topic = unique("dup-kill")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    pid, epoch = w.init_producer_id()
    assert w.produce(topic, 0, record_batch(pid, epoch, 0, [b"a"])) == (0, 0)
    broker.kill()
    broker.start()
    w = Wire(broker.bootstrap)
    assert w.produce(topic, 0, record_batch(pid, epoch, 0, [b"a"])) == (0, 0)
    assert w.produce(topic, 0, record_batch(pid, epoch, 1, [b"b"])) == (0, 1)
    # Producer ids are never handed out twice, even across restarts.
    assert w.init_producer_id()[0] != pid


def test_bad_crc_is_corrupt_message(broker):
    topic = unique("crc")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    batch = bytearray(record_batch(-1, -1, -1, [b"hello"]))
    batch[-1] ^= 0xFF
    assert w.produce(topic, 0, bytes(batch))[0] == 2  # CORRUPT_MESSAGE
    assert w.produce(topic, 5, record_batch(-1, -1, -1, [b"x"]))[0] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"ok"])) == (0, 0)


def test_oversized_batch_is_message_too_large(broker_factory):
    b = broker_factory(message_max_bytes="1000")
    topic = unique("big")
    create_topic(b, topic)
    w = Wire(b.bootstrap)
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"x" * 2000]))[0] == 10
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"x" * 10])) == (0, 0)


def test_idempotent_librdkafka_producer_writes_each_record_once(broker):
    topic = unique("idem")
    create_topic(broker, topic, partitions=3)
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(20_000)]
    produce(broker, topic, records, **{"enable.idempotence": True, "acks": "all",
                                       "max.in.flight.requests.per.connection": 5,
                                       "compression.type": "zstd"})
    got = consume_all(broker, topic, [0, 1, 2], len(records))
    values = [m.value() for m in got]
    assert len(values) == len(set(values)) == len(records)
