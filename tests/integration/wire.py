"""A minimal Kafka wire client written from the protocol specification, independent of Brook's
codec, for tests that must send exactly the bytes they mean (retries, stale generations)."""

import socket
import struct

import crc32c

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

    def init_producer_id(self, version=1):
        # InitProducerId v0/v1 (same layout): transactional_id (null), transaction_timeout_ms
        assert version in (0, 1)
        r = self.call(22, version, _str(None) + struct.pack(">i", 60000))
        _throttle, error, pid, epoch = struct.unpack(">ihqh", r[:16])
        assert error == 0
        return pid, epoch

    def produce(self, topic, partition, batch, version=7, acks=-1):
        """Produce v3..v8 (non-flexible, one request layout); returns (error_code, base_offset)."""
        assert 3 <= version <= 8
        body = (_str(None) + struct.pack(">hii", acks, 10000, 1) + _str(topic)
                + struct.pack(">ii", 1, partition) + struct.pack(">i", len(batch)) + batch)
        r = self.call(0, version, body)
        # responses: [topic: name, [partition, error, base_offset, log_append_time, log_start]]
        n_topics = struct.unpack(">i", r[:4])[0]
        assert n_topics == 1
        name_len = struct.unpack(">h", r[4:6])[0]
        pos = 6 + name_len
        _n_parts, _index, error, base_offset = struct.unpack(">iihq", r[pos:pos + 18])
        return error, base_offset


    def join_group(self, group, member_id="", protocol_type="consumer", protocols=(("range", b"m"),),
                   session_timeout_ms=10000):
        """JoinGroup v5; returns (error, generation, leader, member_id)."""
        body = (_str(group) + struct.pack(">ii", session_timeout_ms, 30000) + _str(member_id)
                + _str(None) + _str(protocol_type) + struct.pack(">i", len(protocols)))
        for name, meta in protocols:
            body += _str(name) + struct.pack(">i", len(meta)) + meta
        r = self.call(11, 5, body)
        _throttle, error, generation = struct.unpack(">ihi", r[:10])
        pos = 10
        strings = []
        for _ in range(3):  # protocol name, leader, member id
            n = struct.unpack(">h", r[pos:pos + 2])[0]
            pos += 2
            strings.append(r[pos:pos + max(n, 0)].decode())
            pos += max(n, 0)
        return error, generation, strings[1], strings[2]

    def sync_group(self, group, generation, member_id, assignments=()):
        """SyncGroup v3; returns (error, assignment)."""
        body = (_str(group) + struct.pack(">i", generation) + _str(member_id) + _str(None)
                + struct.pack(">i", len(assignments)))
        for member, data in assignments:
            body += _str(member) + struct.pack(">i", len(data)) + data
        r = self.call(14, 3, body)
        _throttle, error, n = struct.unpack(">ihi", r[:10])
        return error, r[10:10 + max(n, 0)]

    def heartbeat(self, group, generation, member_id):
        """Heartbeat v3; returns the error code."""
        r = self.call(12, 3, _str(group) + struct.pack(">i", generation) + _str(member_id) + _str(None))
        return struct.unpack(">ih", r[:6])[1]

    def offset_commit(self, group, generation, member_id, topic, partition, offset):
        """OffsetCommit v7 for one partition; returns its error code."""
        body = (_str(group) + struct.pack(">i", generation) + _str(member_id) + _str(None)
                + struct.pack(">i", 1) + _str(topic) + struct.pack(">iiqi", 1, partition, offset, -1)
                + _str(""))
        r = self.call(8, 7, body)
        pos = 4 + 4  # throttle, topics count
        n = struct.unpack(">h", r[pos:pos + 2])[0]
        pos += 2 + n + 4  # topic name, partitions count
        return struct.unpack(">ih", r[pos:pos + 6])[1]
