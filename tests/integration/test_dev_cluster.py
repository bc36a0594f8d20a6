"""`brook dev-cluster`: the one-command local cluster. Its process handling (bootstrap line,
properties files, Ctrl-C, a dying node, bad flags) and that the nodes form one cluster."""

import os
import re
import signal
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BROOK_BIN, unique, wait_for

BOOTSTRAP = re.compile(r"^bootstrap\.servers=(\S+)$")


class DevCluster:
    def __init__(self, *args):
        self.proc = subprocess.Popen([BROOK_BIN, "dev-cluster", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        self.lines = []
        self.err = []
        found = threading.Event()

        def pump_out():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if BOOTSTRAP.match(line.strip()):
                    found.set()

        def pump_err():
            for line in self.proc.stderr:
                self.err.append(line.rstrip("\n"))

        threading.Thread(target=pump_out, daemon=True).start()
        threading.Thread(target=pump_err, daemon=True).start()
        deadline = time.monotonic() + 90
        while not found.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"dev-cluster printed no bootstrap.servers line (exit "
                                     f"{self.proc.poll()}):\n" + "\n".join(self.lines + self.err))
        self.bootstrap = BOOTSTRAP.match(self.lines[-1]).group(1)
        self.pids = [int(m.group(1)) for line in self.lines
                     for m in [re.search(r"pid=(\d+)", line)] if m]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in getattr(self, "pids", []):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def dev_cluster(request):
    started = []

    def make(*args):
        d = DevCluster(*args)
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive: its parent just has not reaped it yet.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_dev_cluster_starts_nodes_and_stops_them_on_ctrl_c(dev_cluster, tmp_path):
    d = dev_cluster("--brokers", "3", "--data-dir", tmp_path)
    # The last line is exactly the bootstrap list, one 127.0.0.1 address per node.
    addrs = d.bootstrap.split(",")
    assert len(addrs) == 3 and all(re.fullmatch(r"127\.0\.0\.1:\d+", a) for a in addrs), d.lines
    assert len(d.pids) == 3 and all(alive(p) for p in d.pids), d.lines
    for i in (1, 2, 3):
        text = (tmp_path / f"node-{i}.properties").read_text()
        assert f"node.id={i}\n" in text
        assert "process.roles=broker,controller\n" in text
        assert "default.replication.factor=3\n" in text and "min.insync.replicas=2\n" in text
        assert f"advertised.listeners=PLAINTEXT://{addrs[i - 1]}\n" in text
        assert re.search(r"^controller\.quorum\.voters=1@127\.0\.0\.1:\d+,2@127\.0\.0\.1:\d+,"
                         r"3@127\.0\.0\.1:\d+$", text, re.M), text
    # Every node answers a client.
    for a in addrs:
        md = AdminClient({"bootstrap.servers": a}).list_topics(timeout=10)
        assert md.brokers, a

    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(30) == 0, "\n".join(d.lines + d.err)
    wait_for(lambda: not any(alive(p) for p in d.pids), timeout=5, what="every node to exit")


def test_dev_cluster_reports_a_dead_node_and_exits_non_zero(dev_cluster, tmp_path):
    d = dev_cluster("--brokers", "2", "--data-dir", tmp_path)
    os.kill(d.pids[1], signal.SIGKILL)
    assert d.proc.wait(30) == 1
    assert any("node 2" in line and "signal 9" in line for line in d.err), d.err
    wait_for(lambda: not alive(d.pids[0]), timeout=20, what="node 1 to be stopped")


def test_dev_cluster_bad_flags_are_one_line_errors(tmp_path):
    for args, expect in [
        (["--broker", "3"], "did you mean '--brokers'"),
        (["--brokers", "0"], "--brokers must be at least 1"),
        (["--brokers", "three"], "'three'"),
        (["--override", "log.retention.msx=1"], "did you mean 'log.retention.ms'"),
        (["--override", "nonsense"], "key=value"),
        (["--override", "listeners=PLAINTEXT://:1"], "listeners"),
    ]:
        p = subprocess.run([BROOK_BIN, "dev-cluster", "--data-dir", str(tmp_path / "x"), *args],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0, (args, p)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and expect in lines[0], (args, p.stderr)
        assert not (tmp_path / "x").exists(), "a refused command line must not create files"


def test_dev_cluster_nodes_form_one_replicated_cluster(dev_cluster, tmp_path):
    d = dev_cluster("--brokers", "3", "--data-dir", tmp_path)
    admin = AdminClient({"bootstrap.servers": d.bootstrap})
    wait_for(lambda: sorted(admin.list_topics(timeout=5).brokers) == [1, 2, 3], timeout=30,
             what="Metadata to list brokers 1, 2, 3")
    topic = unique("dev")
    # No replication factor given: the dev cluster's default.replication.factor=3 applies.
    admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(20)
    md = wait_for(lambda: admin.list_topics(topic, timeout=5).topics[topic], what=topic)
    assert all(sorted(p.replicas) == [1, 2, 3] for p in md.partitions.values()), md.partitions
    p = Producer({"bootstrap.servers": d.bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(30):
        p.produce(topic, value=str(i).encode(), partition=i % 3)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": d.bootstrap, "group.id": unique("g"),
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, i, 0) for i in range(3)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 30 and time.monotonic() < deadline:
        got += [m.value() for m in c.consume(100, 0.5) if not m.error()]
    c.close()
    assert sorted(int(v) for v in got) == list(range(30))
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(30) == 0
