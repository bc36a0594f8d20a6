"""kafka-verifiable-producer and kafka-verifiable-consumer through the bin/ wrappers against a real
broker: the seed's commands, every stdout line parsed as a JSON event in Kafka's format, and what
they report checked against confluent-kafka (records read back, committed offsets)."""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import BIN_DIR, BROOK_BIN, kafka_tool, unique, wait_for
from helpers import admin, consume_all, create_topic, kafka_partition, produce

FAST = {"group.initial.rebalance.delay.ms": 0}


@pytest.fixture
def fast_broker(broker_factory):
    return broker_factory(**FAST)


def events(stdout):
    """Every stdout line as a JSON event; each has an int `timestamp` and a `name`."""
    out = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for e in out:
        assert isinstance(e["timestamp"], int) and e["timestamp"] > 1_600_000_000_000, e
        assert isinstance(e["name"], str), e
    return out


def named(evs, name):
    return [e for e in evs if e["name"] == name]


class Running:
    """A tool running in the background whose stdout lines are parsed as they arrive."""

    def __init__(self, tool, *args):
        env = dict(os.environ, BROOK_BIN=BROOK_BIN)
        self.proc = subprocess.Popen([str(BIN_DIR / f"kafka-{tool}.sh"), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, stdin=subprocess.DEVNULL)
        self.events = []
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.strip():
                self.events.append(json.loads(line))

    def named(self, name):
        return named(list(self.events), name)

    def terminate(self, timeout=20, sig=signal.SIGTERM):
        """Stops it with `sig`; returns the exit code once stdout is drained."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        self.stderr = self.proc.stderr.read()
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# ---------------------------------------------------------------- producer


def test_seed_producer_command_reports_ten_acked_sends_that_confluent_kafka_reads_back(fast_broker):
    topic = unique("vp")
    # The seed's command verbatim (the topic is auto-created).
    r = kafka_tool("verifiable-producer", "--bootstrap-server", fast_broker.bootstrap,
                   "--max-messages", "10", "--topic", topic)
    assert r.returncode == 0, r.stderr
    evs = events(r.stdout)
    assert evs[0]["name"] == "startup_complete"
    assert [e["name"] for e in evs[-2:]] == ["shutdown_complete", "tool_data"]
    sends = named(evs, "producer_send_success")
    assert len(sends) == 10 and not named(evs, "producer_send_error")
    assert [s["value"] for s in sends] == [str(i) for i in range(10)]
    assert all(s["key"] is None and s["topic"] == topic for s in sends)
    assert list(sends[0]) == ["timestamp", "name", "key", "value", "topic", "partition", "offset"]
    by_partition = {}
    for s in sends:
        by_partition.setdefault(s["partition"], []).append(s["offset"])
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets))), by_partition
    data = evs[-1]
    assert data["sent"] == 10 and data["acked"] == 10 and data["target_throughput"] == -1
    assert data["avg_throughput"] > 0

    got = consume_all(fast_broker, topic, sorted(by_partition), 10)
    assert sorted((m.partition(), m.offset(), m.value().decode()) for m in got) == \
        sorted((s["partition"], s["offset"], s["value"]) for s in sends)


def test_repeating_keys_and_value_prefix_land_where_kafkas_partitioner_puts_them(fast_broker):
    topic = unique("vpk")
    create_topic(fast_broker, topic, partitions=3)
    r = kafka_tool("verifiable-producer", "--bootstrap-server", fast_broker.bootstrap,
                   "--topic", topic, "--max-messages", "7", "--repeating-keys", "3",
                   "--value-prefix", "5")
    assert r.returncode == 0, r.stderr
    sends = named(events(r.stdout), "producer_send_success")
    assert [s["key"] for s in sends] == ["0", "1", "2", "0", "1", "2", "0"]
    assert [s["value"] for s in sends] == [f"5.{i}" for i in range(7)]
    for s in sends:
        assert s["partition"] == kafka_partition(s["key"].encode(), 3), s
    got = consume_all(fast_broker, topic, [0, 1, 2], 7)
    assert sorted((m.partition(), m.offset(), m.key().decode(), m.value().decode()) for m in got) == \
        sorted((s["partition"], s["offset"], s["key"], s["value"]) for s in sends)


def test_message_create_time_sets_the_record_timestamps(fast_broker):
    topic = unique("vpc")
    create_topic(fast_broker, topic)
    start = 1_700_000_000_000
    r = kafka_tool("verifiable-producer", "--bootstrap-server", fast_broker.bootstrap,
                   "--topic", topic, "--max-messages", "3", "--message-create-time", start)
    assert r.returncode == 0, r.stderr
    got = consume_all(fast_broker, topic, [0], 3)
    stamps = [m.timestamp()[1] for m in sorted(got, key=lambda m: m.offset())]
    # The first carries the given time; Kafka's tool then advances it by the time elapsed.
    assert stamps[0] == start and stamps == sorted(stamps) and stamps[-1] < start + 60_000, stamps


def test_throughput_paces_the_sends(fast_broker):
    topic = unique("vpt")
    create_topic(fast_broker, topic)
    n, rate = 16, 20
    started = time.monotonic()
    r = kafka_tool("verifiable-producer", "--bootstrap-server", fast_broker.bootstrap,
                   "--topic", topic, "--max-messages", n, "--throughput", rate)
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    evs = events(r.stdout)
    assert len(named(evs, "producer_send_success")) == n
    assert elapsed >= (n - 1) / rate, elapsed
    data = evs[-1]
    assert data["name"] == "tool_data" and data["target_throughput"] == rate
    assert data["avg_throughput"] <= rate * 1.2, data


def test_unbounded_producer_stops_on_sigterm_with_a_summary(fast_broker):
    topic = unique("vps")
    create_topic(fast_broker, topic, partitions=2)
    p = Running("verifiable-producer", "--bootstrap-server", fast_broker.bootstrap,
                "--topic", topic, "--throughput", 200)
    try:
        wait_for(lambda: len(p.named("producer_send_success")) >= 20, timeout=20,
                 what="20 acknowledged sends")
        assert p.terminate() == 0, p.stderr
    finally:
        p.kill()
    evs = p.events
    assert [e["name"] for e in evs[-2:]] == ["shutdown_complete", "tool_data"]
    data = evs[-1]
    acked = named(evs, "producer_send_success")
    assert data["sent"] == data["acked"] == len(acked) >= 20
    assert data["target_throughput"] == 200
    # Every acknowledged record is there, each exactly once.
    got = consume_all(fast_broker, topic, [0, 1], len(acked))
    assert sorted(m.value().decode() for m in got) == sorted(s["value"] for s in acked)


# ---------------------------------------------------------------- consumer


def end_offsets(broker, topic, partitions):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("probe")})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}
    finally:
        c.close()


def committed(broker, group, topic, partitions):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        return {tp.partition: tp.offset
                for tp in c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)}
    finally:
        c.close()


def test_consumer_with_max_messages_reports_assignment_batches_and_commits(fast_broker):
    topic, group = unique("vc"), unique("vcg")
    create_topic(fast_broker, topic, partitions=3)
    delivered = produce(fast_broker, topic, [(f"k{i}".encode(), str(i).encode()) for i in range(10)])
    # The seed's command, bounded by --max-messages; --verbose adds record_data events.
    r = kafka_tool("verifiable-consumer", "--bootstrap-server", fast_broker.bootstrap,
                   "--topic", topic, "--group-id", group, "--max-messages", "10", "--verbose",
                   timeout=60)
    assert r.returncode == 0, r.stderr
    evs = events(r.stdout)
    names = [e["name"] for e in evs]
    assert names[0] == "startup_complete" and names[-1] == "shutdown_complete"
    assigned = named(evs, "partitions_assigned")
    assert len(assigned) == 1
    assert assigned[0]["partitions"] == [{"topic": topic, "partition": p} for p in range(3)]
    assert names.index("partitions_assigned") < names.index("records_consumed")

    batches = named(evs, "records_consumed")
    summaries = [s for b in batches for s in b["partitions"]]
    assert sum(s["count"] for s in summaries) == 10
    for b in batches:
        assert b["count"] == sum(s["count"] for s in b["partitions"])
    per_partition = {}
    for part, off in delivered:
        per_partition.setdefault(part, []).append(off)
    for part, offs in per_partition.items():
        mine = [s for s in summaries if s["partition"] == part]
        assert min(s["minOffset"] for s in mine) == min(offs)
        assert max(s["maxOffset"] for s in mine) == max(offs)
        assert sum(s["count"] for s in mine) == len(offs)
    records = named(evs, "record_data")
    assert sorted((e["partition"], e["offset"], e["key"], e["value"]) for e in records) == \
        sorted((part, off, f"k{i}", str(i)) for i, (part, off) in enumerate(delivered))

    commits = named(evs, "offsets_committed")
    assert len(commits) == len(batches)  # one synchronous commit after each batch
    assert all(c["success"] is True and "error" not in c for c in commits)
    last = {}
    for c in commits:
        for o in c["offsets"]:
            assert o["topic"] == topic
            last[o["partition"]] = o["offset"]
    ends = end_offsets(fast_broker, topic, per_partition)
    assert last == ends
    assert committed(fast_broker, group, topic, per_partition) == ends


def test_seed_consumer_command_runs_until_sigterm_then_shuts_down(fast_broker):
    topic, group = unique("vcs"), unique("vcsg")
    create_topic(fast_broker, topic, partitions=2)
    produce(fast_broker, topic, [(None, str(i).encode()) for i in range(10)])
    # The seed's command verbatim: no --max-messages, so it runs until stopped.
    c = Running("verifiable-consumer", "--bootstrap-server", fast_broker.bootstrap,
                "--topic", topic, "--group-id", group)
    try:
        wait_for(lambda: sum(b["count"] for b in c.named("records_consumed")) >= 10,
                 timeout=30, what="10 records consumed")
        wait_for(lambda: len(c.named("offsets_committed")) == len(c.named("records_consumed")),
                 timeout=10, what="the last commit")
        assert c.terminate() == 0, c.stderr
    finally:
        c.kill()
    assert c.events[0]["name"] == "startup_complete"
    assert c.events[-1]["name"] == "shutdown_complete"
    assert sum(b["count"] for b in c.named("records_consumed")) == 10
    ends = end_offsets(fast_broker, topic, [0, 1])
    got = committed(fast_broker, group, topic, [0, 1])
    # The sticky partitioner may leave a partition empty; the consumer may or may not have
    # committed position 0 there (no commit reads as -1001). Every record must be committed.
    for p, end in ends.items():
        assert got[p] == end or (end == 0 and got[p] == -1001), (p, got, ends)


def test_sigterm_leaves_the_group_at_once(fast_broker):
    topic, group = unique("vcl"), unique("vclg")
    create_topic(fast_broker, topic)
    c = Running("verifiable-consumer", "--bootstrap-server", fast_broker.bootstrap,
                "--topic", topic, "--group-id", group)
    try:
        wait_for(lambda: c.named("partitions_assigned"), timeout=20, what="the assignment")
        assert c.terminate() == 0, c.stderr
    finally:
        c.kill()
    assert c.events[-1]["name"] == "shutdown_complete"
    # Closing sends LeaveGroup, so the group is empty at once, not after the session timeout.
    a = admin(fast_broker)
    desc = a.describe_consumer_groups([group])[group].result(10)
    assert len(desc.members) == 0, [m.member_id for m in desc.members]


def latest_assignment(c):
    assigned = c.named("partitions_assigned")
    if not assigned:
        return None
    return sorted(p["partition"] for p in assigned[-1]["partitions"])


def test_two_verifiable_consumers_split_a_four_partition_topic(fast_broker):
    topic, group = unique("vc2"), unique("vc2g")
    create_topic(fast_broker, topic, partitions=4)
    args = ("--bootstrap-server", fast_broker.bootstrap, "--topic", topic, "--group-id", group,
            "--session-timeout", "10000")
    a = Running("verifiable-consumer", *args)
    b = None
    try:
        wait_for(lambda: latest_assignment(a) == [0, 1, 2, 3], timeout=20, what="a owns all four")
        b = Running("verifiable-consumer", *args)

        def split():
            pa, pb = latest_assignment(a), latest_assignment(b)
            return pa and pb and len(pa) == 2 and len(pb) == 2
        wait_for(split, timeout=30, what="a 2+2 split")
        pa, pb = latest_assignment(a), latest_assignment(b)
        assert not set(pa) & set(pb) and sorted(pa + pb) == [0, 1, 2, 3]
        # a gave up all four (eager protocol) before taking its two.
        assert [sorted(p["partition"] for p in e["partitions"]) for e in a.named("partitions_revoked")] \
            == [[0, 1, 2, 3]]
        assert not b.named("partitions_revoked")

        delivered = produce(fast_broker, topic, [(f"k{i}".encode(), b"v") for i in range(40)])
        total = lambda: sum(e["count"] for c in (a, b) for e in c.named("records_consumed"))
        wait_for(lambda: total() >= 40, timeout=30, what="40 records consumed")
        assert total() == 40
        for c, mine in ((a, pa), (b, pb)):
            for e in c.named("records_consumed"):
                assert all(s["partition"] in mine for s in e["partitions"])
        assert {p for p, _ in delivered} <= {0, 1, 2, 3}
        # Ctrl-C (SIGINT) stops it as cleanly as SIGTERM.
        assert a.terminate() == 0 and b.terminate(sig=signal.SIGINT) == 0, (a.stderr, b.stderr)
        assert a.events[-1]["name"] == b.events[-1]["name"] == "shutdown_complete"
    finally:
        a.kill()
        if b:
            b.kill()


def test_reset_policy_latest_reads_only_what_comes_after_the_assignment(fast_broker):
    topic, group = unique("vcr"), unique("vcrg")
    create_topic(fast_broker, topic)
    produce(fast_broker, topic, [(None, b"old")] * 5)
    c = Running("verifiable-consumer", "--bootstrap-server", fast_broker.bootstrap,
                "--topic", topic, "--group-id", group, "--reset-policy", "latest", "--verbose")
    try:
        wait_for(lambda: c.named("partitions_assigned"), timeout=20, what="the assignment")
        # The position is taken in a poll at or after the assignment, not observable from
        # outside: keep adding a record until the consumer has read some.
        deadline = time.monotonic() + 20
        while not c.named("record_data") and time.monotonic() < deadline:
            produce(fast_broker, topic, [(None, b"new")])
            time.sleep(0.2)
        wait_for(lambda: c.named("record_data"), timeout=5, what="new records")
        assert c.terminate() == 0, c.stderr
    finally:
        c.kill()
    data = c.named("record_data")
    assert data and all(e["value"] == "new" and e["offset"] >= 5 for e in data), data
    offsets = [e["offset"] for e in data]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))


def test_enable_autocommit_prints_no_commit_events_yet_commits(fast_broker):
    topic, group = unique("vca"), unique("vcag")
    create_topic(fast_broker, topic, partitions=2)
    produce(fast_broker, topic, [(f"k{i}".encode(), b"v") for i in range(6)])
    r = kafka_tool("verifiable-consumer", "--bootstrap-server", fast_broker.bootstrap,
                   "--topic", topic, "--group-id", group, "--max-messages", "6",
                   "--enable-autocommit", timeout=60)
    assert r.returncode == 0, r.stderr
    evs = events(r.stdout)
    assert sum(b["count"] for b in named(evs, "records_consumed")) == 6
    assert not named(evs, "offsets_committed")
    # Closing an auto-committing consumer commits its positions.
    assert committed(fast_broker, group, topic, [0, 1]) == end_offsets(fast_broker, topic, [0, 1])


def test_reset_policy_none_without_a_committed_offset_is_an_error(fast_broker):
    topic, group = unique("vcn"), unique("vcng")
    create_topic(fast_broker, topic)
    produce(fast_broker, topic, [(None, b"x")])
    r = kafka_tool("verifiable-consumer", "--bootstrap-server", fast_broker.bootstrap,
                   "--topic", topic, "--group-id", group, "--reset-policy", "none", timeout=30)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "auto.offset.reset=none" in r.stderr, r.stderr
    evs = events(r.stdout)
    assert [e["name"] for e in evs] == ["startup_complete", "partitions_assigned",
                                        "shutdown_complete"]


# ---------------------------------------------------------------- errors


def test_bad_flags_fail_with_a_clear_message(fast_broker):
    cases = [
        ("verifiable-producer", ["--bootstrap-server", fast_broker.bootstrap, "--topics", "t"],
         "did you mean '--topic'"),
        ("verifiable-producer", ["--bootstrap-server", fast_broker.bootstrap, "--topic", "t",
                                 "--acks", "2"], "--acks"),
        ("verifiable-producer", ["--bootstrap-server", fast_broker.bootstrap], "--topic"),
        ("verifiable-consumer", ["--bootstrap-server", fast_broker.bootstrap, "--topic", "t"],
         "--group-id"),
        ("verifiable-consumer", ["--bootstrap-server", fast_broker.bootstrap, "--topic", "t",
                                 "--group-id", "g", "--reset-policy", "oldest"], "--reset-policy"),
        ("verifiable-consumer", ["--bootstrap-server", fast_broker.bootstrap, "--topic", "t",
                                 "--group-id", "g", "--max-message", "3"],
         "did you mean '--max-messages'"),
    ]
    for tool in ("verifiable-producer", "verifiable-consumer"):
        # Without arguments Kafka's tools print their usage and exit 0.
        r = kafka_tool(tool, timeout=20)
        assert r.returncode == 0 and "--bootstrap-server" in r.stdout, r
    for tool, args, expected in cases:
        r = kafka_tool(tool, *args, timeout=20)
        assert r.returncode != 0, (tool, args)
        assert expected in r.stderr, (tool, args, r.stderr)
        assert "panicked" not in r.stderr and "RUST_BACKTRACE" not in r.stderr
        assert r.stdout.strip() == "", r.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_fails_at_once():
    server = f"127.0.0.1:{free_port()}"
    for tool, extra in (("verifiable-producer", []), ("verifiable-consumer", ["--group-id", "g"])):
        started = time.monotonic()
        r = kafka_tool(tool, "--bootstrap-server", server, "--topic", "t", *extra, timeout=30)
        assert r.returncode == 1, (tool, r.stdout, r.stderr)
        assert time.monotonic() - started < 10
        assert "cannot connect" in r.stderr and server in r.stderr, r.stderr
        assert "panicked" not in r.stderr


def test_silent_server_fails_within_the_request_timeout(tmp_path):
    """A server that accepts connections but never answers: the configured request.timeout.ms
    (from the tools' config files) bounds the wait."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    server = "127.0.0.1:%d" % silent.getsockname()[1]
    props = tmp_path / "client.properties"
    props.write_text("request.timeout.ms=1500\n")
    try:
        for tool, extra in (("verifiable-producer", ["--command-config", props]),
                            ("verifiable-consumer", ["--group-id", "g", "--consumer.config", props])):
            started = time.monotonic()
            r = kafka_tool(tool, "--bootstrap-server", server, "--topic", "t", *extra, timeout=30)
            elapsed = time.monotonic() - started
            assert r.returncode == 1, (tool, r.stdout, r.stderr)
            assert elapsed < 8, (tool, elapsed)
            assert "timed out" in r.stderr, r.stderr
    finally:
        silent.close()
