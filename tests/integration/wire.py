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


def record_batch(producer_id, epoch, base_seq, values, timestamp=1_700_000_000_000, attributes=0,
                 magic=2):
    """A v2 record batch of uncompressed records with null keys; `attributes` is written as
    given (so a codec bit can be set on uncompressed data to test validation)."""
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + _varint(0) + _varint(i) + _varint(-1) + _varint(len(v)) + v + _varint(0)
        records += _varint(len(body)) + body
    after_crc = (struct.pack(">hiqqqhii", attributes, len(values) - 1, timestamp, timestamp,
                             producer_id, epoch, base_seq, len(values)) + records)
    crc = crc32c.crc32c(after_crc)
    body = struct.pack(">ibI", 0, magic, crc) + after_crc
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

    def fetch(self, topic, partition, offset, max_wait_ms=0, min_bytes=1, max_bytes=50 << 20,
              partition_max_bytes=1 << 20, isolation_level=0):
        """Fetch v4 (non-flexible) for one partition; returns (error, high_watermark,
        last_stable_offset, records_bytes)."""
        body = (struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, isolation_level)
                + struct.pack(">i", 1) + _str(topic)
                + struct.pack(">iiqi", 1, partition, offset, partition_max_bytes))
        r = self.call(1, 4, body)
        pos = 4  # throttle
        (n_topics,) = struct.unpack(">i", r[pos:pos + 4])
        assert n_topics == 1
        pos += 4
        (name_len,) = struct.unpack(">h", r[pos:pos + 2])
        pos += 2 + name_len
        _n_parts, _index, error, hw, lso = struct.unpack(">iihqq", r[pos:pos + 26])
        pos += 26
        (n_aborted,) = struct.unpack(">i", r[pos:pos + 4])
        pos += 4 + max(n_aborted, 0) * 16
        (size,) = struct.unpack(">i", r[pos:pos + 4])
        pos += 4
        return error, hw, lso, r[pos:pos + max(size, 0)]

    def list_offsets(self, topic, partition, timestamp, current_leader_epoch=-1):
        """ListOffsets v4 (non-flexible); returns (error, timestamp, offset, leader_epoch)."""
        body = (struct.pack(">ib", -1, 0) + struct.pack(">i", 1) + _str(topic)
                + struct.pack(">iiiq", 1, partition, current_leader_epoch, timestamp))
        r = self.call(2, 4, body)
        pos = 4 + 4
        (n,) = struct.unpack(">h", r[pos:pos + 2])
        pos += 2 + n + 4
        _index, error, ts, offset, epoch = struct.unpack(">ihqqi", r[pos:pos + 26])
        return error, ts, offset, epoch

    def fetch_v11(self, topic, partition, offset, current_leader_epoch=-1, max_wait_ms=0):
        """Fetch v11 (the last non-flexible version, with current_leader_epoch); returns
        (top_error, partition_error, high_watermark, log_start_offset, records_bytes)."""
        body = (struct.pack(">iiiibii", -1, max_wait_ms, 1, 1 << 20, 0, 0, -1)
                + struct.pack(">i", 1) + _str(topic)
                + struct.pack(">iiiqqi", 1, partition, current_leader_epoch, offset, -1, 1 << 20)
                + struct.pack(">i", 0) + _str(""))
        r = self.call(1, 11, body)
        _throttle, top_error, _session = struct.unpack(">ihi", r[:10])
        pos = 10 + 4
        (n,) = struct.unpack(">h", r[pos:pos + 2])
        pos += 2 + n + 4
        _index, error, hw, _lso, log_start = struct.unpack(">ihqqq", r[pos:pos + 30])
        pos += 30
        (n_aborted,) = struct.unpack(">i", r[pos:pos + 4])
        pos += 4 + max(n_aborted, 0) * 16 + 4  # aborted transactions, preferred read replica
        (size,) = struct.unpack(">i", r[pos:pos + 4])
        pos += 4
        return top_error, error, hw, log_start, r[pos:pos + max(size, 0)]

    def fetch_session(self, topic, offsets, session_id, session_epoch, forgotten=(),
                      max_wait_ms=0, min_bytes=1):
        """Fetch v11 with a KIP-227 session: `offsets` maps partition -> fetch offset (the
        partitions sent), `forgotten` lists partitions to drop. Returns (top_error, session_id,
        {partition: (error, high_watermark, records_bytes)}) for the partitions answered."""
        body = struct.pack(">iiiibii", -1, max_wait_ms, min_bytes, 1 << 20, 0, session_id,
                           session_epoch)
        if offsets:
            body += struct.pack(">i", 1) + _str(topic) + struct.pack(">i", len(offsets))
            for p, o in offsets.items():
                body += struct.pack(">iiqqi", p, -1, o, -1, 1 << 20)
        else:
            body += struct.pack(">i", 0)
        if forgotten:
            body += struct.pack(">i", 1) + _str(topic) + struct.pack(">i", len(forgotten))
            body += b"".join(struct.pack(">i", p) for p in forgotten)
        else:
            body += struct.pack(">i", 0)
        body += _str("")
        r = self.call(1, 11, body)
        _throttle, top_error, session = struct.unpack(">ihi", r[:10])
        pos = 10
        answered = {}
        (n_topics,) = struct.unpack(">i", r[pos:pos + 4])
        pos += 4
        for _ in range(n_topics):
            (n,) = struct.unpack(">h", r[pos:pos + 2])
            pos += 2 + n
            (n_parts,) = struct.unpack(">i", r[pos:pos + 4])
            pos += 4
            for _ in range(n_parts):
                index, error, hw, _lso, _log_start = struct.unpack(">ihqqq", r[pos:pos + 30])
                pos += 30
                (n_aborted,) = struct.unpack(">i", r[pos:pos + 4])
                pos += 4 + max(n_aborted, 0) * 16 + 4
                (size,) = struct.unpack(">i", r[pos:pos + 4])
                pos += 4
                answered[index] = (error, hw, r[pos:pos + max(size, 0)])
                pos += max(size, 0)
        return top_error, session, answered

    def incremental_alter_configs(self, resource_type, name, ops):
        """IncrementalAlterConfigs v0 for one resource; ops are (name, op, value-or-None) with
        op 0 set, 1 delete. Returns (error, message)."""
        body = struct.pack(">ib", 1, resource_type) + _str(name) + struct.pack(">i", len(ops))
        for k, op, v in ops:
            body += _str(k) + struct.pack(">b", op) + (_str(v) if v is not None
                                                        else struct.pack(">h", -1))
        body += struct.pack(">b", 0)
        r = self.call(44, 0, body)
        pos = 4 + 4
        (error, n) = struct.unpack(">hh", r[pos:pos + 4])
        pos += 4
        message = r[pos:pos + n].decode() if n >= 0 else None
        return error, message

    def describe_configs(self, resource_type, name):
        """DescribeConfigs v1 for one resource; returns (error, {name: (value, source)})."""
        body = (struct.pack(">ib", 1, resource_type) + _str(name) + struct.pack(">i", -1)
                + struct.pack(">b", 0))
        r = self.call(32, 1, body)
        pos = 4 + 4

        def string():
            nonlocal pos
            (n,) = struct.unpack(">h", r[pos:pos + 2])
            pos += 2
            if n < 0:
                return None
            pos += n
            return r[pos - n:pos].decode()

        (error,) = struct.unpack(">h", r[pos:pos + 2])
        pos += 2
        string()
        pos += 1
        string()
        (n_configs,) = struct.unpack(">i", r[pos:pos + 4])
        pos += 4
        configs = {}
        for _ in range(n_configs):
            key, value = string(), string()
            _read_only, source, _sensitive = struct.unpack(">bbb", r[pos:pos + 3])
            pos += 3
            (n_syn,) = struct.unpack(">i", r[pos:pos + 4])
            pos += 4
            for _ in range(max(n_syn, 0)):
                string(), string()
                pos += 1
            configs[key] = (value, source)
        return error, configs

    def offset_for_leader_epoch(self, topic, partition, leader_epoch, current_leader_epoch=-1):
        """OffsetForLeaderEpoch v2; returns (error, leader_epoch, end_offset)."""
        body = (struct.pack(">i", 1) + _str(topic)
                + struct.pack(">iiii", 1, partition, current_leader_epoch, leader_epoch))
        r = self.call(23, 2, body)
        pos = 4 + 4
        (n,) = struct.unpack(">h", r[pos:pos + 2])
        pos += 2 + n + 4
        error, _index, epoch, end_offset = struct.unpack(">hiiq", r[pos:pos + 18])
        return error, epoch, end_offset


def batches(records_bytes):
    """Splits fetched bytes into record batch headers: dicts with base_offset, last_offset,
    count, leader_epoch, attributes, max_timestamp, crc_ok, size. A trailing partial batch (allowed in fetches) is skipped."""
    out = []
    pos = 0
    while pos + 12 <= len(records_bytes):
        base, length = struct.unpack(">qi", records_bytes[pos:pos + 12])
        if pos + 12 + length > len(records_bytes):
            break
        b = records_bytes[pos:pos + 12 + length]
        (crc,) = struct.unpack(">I", b[17:21])
        attributes, last_delta = struct.unpack(">hi", b[21:27])
        max_ts = struct.unpack(">q", b[35:43])[0]
        (count,) = struct.unpack(">i", b[57:61])
        (leader_epoch,) = struct.unpack(">i", b[12:16])
        out.append({"base_offset": base, "last_offset": base + last_delta, "count": count,
                    "leader_epoch": leader_epoch,
                    "attributes": attributes, "max_timestamp": max_ts,
                    "crc_ok": crc32c.crc32c(b[21:]) == crc, "size": len(b)})
        pos += 12 + length
    return out
