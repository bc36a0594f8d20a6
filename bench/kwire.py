#!/usr/bin/env python3
"""Small raw-Kafka-wire helpers for bench/run.sh (standard library only).

  kwire.py startup --runs N -- CMD...     exec a broker N times; per run print
        "<ms to 'listening on' line or -1> <ms to first Metadata response>"
        (CMD may contain {dir}, a fresh temporary directory per run, and {port}: a free port is chosen and substituted; otherwise the port is
        read from the "listening on PLAINTEXT://host:port" line)
  kwire.py wait HOST:PORT [TIMEOUT_S]     wait until a Metadata request is answered
  kwire.py rawfetch HOST:PORT TOPIC COUNT SIZE
        read partition 0 of TOPIC from offset 0 until COUNT records were returned, with Fetch v4
        (1 MiB per partition, as librdkafka's default; env RAWFETCH_PARTITION_BYTES), one request
        at a time, without decoding records: measures what the broker can serve,
        independent of a client's record parsing. Prints "<records/s> <payload MB/s> <wire MB/s>".
"""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def header(api_key, version, corr, client=b"brook-bench"):
    return struct.pack(">hhih", api_key, version, corr, len(client)) + client


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock, n, buf=None):
    buf = buf if buf is not None and len(buf) >= n else bytearray(n)
    view = memoryview(buf)[:n]
    got = 0
    while got < n:
        r = sock.recv_into(view[got:], n - got)
        if r == 0:
            raise ConnectionError("connection closed")
        got += r
    return buf


def metadata_ok(host, port, timeout=0.5):
    """One Metadata v1 request (all topics); True when a well-formed answer arrives."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(frame(header(3, 1, 7) + struct.pack(">i", -1)))
            size = struct.unpack(">i", recv_exact(s, 4))[0]
            body = recv_exact(s, size)
            return struct.unpack(">i", body[:4])[0] == 7
    except OSError:
        return False


def cmd_startup(argv):
    runs = 1
    if argv[:1] == ["--runs"]:
        runs, argv = int(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    for _ in range(runs):
        port = free_port() if any("{port}" in a for a in argv) else None
        tmp = tempfile.mkdtemp(prefix="brook-bench-start-")
        cmd = [a.replace("{port}", str(port)).replace("{dir}", tmp) for a in argv]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        t_listen = -1.0
        try:
            if port is None:
                for line in p.stdout:
                    m = re.search(r"listening on \w+://([\d.]+):(\d+)", line)
                    if m:
                        t_listen = (time.perf_counter() - t0) * 1000
                        port = int(m.group(2))
                        break
                else:
                    raise SystemExit("broker exited before listening")
            deadline = t0 + 30
            while not metadata_ok("127.0.0.1", port):
                if time.perf_counter() > deadline or p.poll() is not None:
                    raise SystemExit("no Metadata answer within 30 s")
                time.sleep(0.001)
            t_meta = (time.perf_counter() - t0) * 1000
            print(f"{t_listen:.1f} {t_meta:.1f}", flush=True)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            shutil.rmtree(tmp, ignore_errors=True)


def cmd_wait(argv):
    host, port = argv[0].rsplit(":", 1)
    deadline = time.time() + float(argv[1] if len(argv) > 1 else 30)
    while not metadata_ok(host, int(port)):
        if time.time() > deadline:
            raise SystemExit(f"{argv[0]}: no Metadata answer")
        time.sleep(0.01)


def cmd_rawfetch(argv):
    host, port = argv[0].rsplit(":", 1)
    topic, count, size = argv[1].encode(), int(argv[2]), int(argv[3])
    max_bytes = 50 * 1024 * 1024  # per response, as librdkafka's fetch.max.bytes default
    part_bytes = int(os.environ.get("RAWFETCH_PARTITION_BYTES", 1024 * 1024))
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    buf = bytearray(max_bytes + (1 << 20))
    offset, records, wire, corr = 0, 0, 0, 0
    t0 = time.perf_counter()
    deadline = t0 + 120
    while records < count:
        corr += 1
        body = struct.pack(">iiiib", -1, 500, 1, max_bytes, 0)
        body += struct.pack(">ih", 1, len(topic)) + topic
        body += struct.pack(">iiqi", 1, 0, offset, part_bytes)
        s.sendall(frame(header(1, 4, corr) + body))
        n = struct.unpack(">i", recv_exact(s, 4))[0]
        if n > len(buf):
            buf = bytearray(n)
        recv_exact(s, n, buf)
        wire += n + 4
        mv = memoryview(buf)[:n]
        # corr, throttle, [topic [partition error hw lso aborted records]]
        pos = 4 + 4 + 4
        tlen = struct.unpack_from(">h", mv, pos)[0]
        pos += 2 + tlen + 4
        _part, err, _hw, _lso, naborted = struct.unpack_from(">ihqqi", mv, pos)
        if err:
            raise SystemExit(f"fetch error code {err} at offset {offset}")
        pos += 4 + 2 + 8 + 8 + 4 + max(naborted, 0) * 16
        rlen = struct.unpack_from(">i", mv, pos)[0]
        pos += 4
        end = pos + max(rlen, 0)
        while pos + 61 <= end:  # walk batch headers: baseOffset, length, ..., lastOffsetDelta
            base, blen = struct.unpack_from(">qi", mv, pos)
            if pos + 12 + blen > end:
                break  # a partial batch at the end of the response
            last_delta = struct.unpack_from(">i", mv, pos + 23)[0]
            nxt = base + last_delta + 1
            if nxt > offset:
                records += nxt - max(base, offset)
                offset = nxt
            pos += 12 + blen
        if time.perf_counter() > deadline:
            raise SystemExit(f"rawfetch: timed out after {records} records")
    t = time.perf_counter() - t0
    print(f"{records / t:.0f} {records * size / t / 1e6:.2f} {wire / t / 1e6:.2f}")


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    {"startup": cmd_startup, "wait": cmd_wait, "rawfetch": cmd_rawfetch}[cmd](rest)
