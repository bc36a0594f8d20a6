"""A real multi-node Brook cluster for the integration tests: n `brook broker <node-i.properties>`
processes on 127.0.0.1, each with its own client and controller port and data directory. Every
node is `process.roles=broker,controller` and a voter of the controller quorum, except the first
`controller_only` ones (`process.roles=controller`: voters without a client listener, never
brokers) and the last `broker_only` ones (`process.roles=broker`: observers of the quorum without a
controller listener).

    cluster = cluster_factory(3, replica_lag_time_max_ms=2000)   # or Cluster(3, tmp_path, ...)
    cluster.bootstrap                  # "127.0.0.1:B1,127.0.0.1:B2,127.0.0.1:B3"
    cluster.node(2).kill9(); cluster.node(2).start()
    cluster.wait_for_leader(topic, 0, exclude={2})
    cluster.describe(topic)            # {partition: PartitionState(leader, replicas, isr)}

Overrides use Kafka's names, with `_` for `.` as keyword arguments; they go into every node's file.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from conftest import BROOK_BIN, LISTENING, wait_for

# What a dedicated controller prints once it serves (it has no PLAINTEXT listener).
CONTROLLER_LISTENING = re.compile(r"listening on CONTROLLER://")

# Fast failure detection on loopback, as `brook dev-cluster` writes them (see its --help).
DEV_DEFAULTS = {
    "broker.session.timeout.ms": "2000",
    "broker.heartbeat.interval.ms": "250",
    "controller.quorum.election.timeout.ms": "1000",
    "replica.lag.time.max.ms": "10000",
    "group.initial.rebalance.delay.ms": "0",
    "num.partitions": "1",
}


def free_ports(count):
    """`count` distinct free ports on 127.0.0.1 (all held open together while picking)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class PartitionState:
    leader: int  # -1 when there is none
    replicas: list
    isr: list


class Node:
    """One node of the cluster. `start()` again after `kill9()` / `stop()` reuses its data,
    ports and properties file."""

    def __init__(self, cluster, node_id, client_port, controller_port):
        self.cluster = cluster
        self.id = node_id
        self.port = client_port
        self.controller_port = controller_port
        self.data_dir = cluster.dir / f"node-{node_id}"
        self.properties = cluster.dir / f"node-{node_id}.properties"
        self.log_path = cluster.dir / f"node-{node_id}.log"
        self.proc = None
        self.stopped = False  # SIGSTOPped
        self._ready = None
        self.is_broker = True
        self.is_voter = True

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def running(self):
        """Started and not exited (a SIGSTOPped node counts as running)."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def spawn(self):
        """Starts the process without waiting for it; `wait_started()` waits."""
        assert not self.running, f"node {self.id} is already running"
        log = open(self.log_path, "ab")
        log.write(f"\n=== start node {self.id} at {time.strftime('%H:%M:%S')} ===\n".encode())
        log.flush()
        env = dict(os.environ, NO_COLOR="1")
        self.proc = subprocess.Popen([BROOK_BIN, "broker", str(self.properties)],
                                     stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                     env=env)
        self.stopped = False
        ready = threading.Event()
        self._ready = ready

        def pump(stream, sink):
            # Keep draining stdout so the broker never blocks on a full pipe.
            for line in iter(stream.readline, b""):
                sink.write(line)
                sink.flush()
                started = LISTENING if self.is_broker else CONTROLLER_LISTENING
                if started.search(line.decode(errors="replace")):
                    ready.set()
            sink.close()

        threading.Thread(target=pump, args=(self.proc.stdout, log), daemon=True).start()
        return self

    def wait_started(self, timeout=30.0):
        """Waits for the broker's "listening on" line."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"node {self.id} did not start (exit {self.proc.poll()}):\n"
                                     f"{self.log()}")
        return self

    def start(self, timeout=30.0):
        """Starts the node from its data directory and waits until it listens."""
        return self.spawn().wait_started(timeout)

    def stop(self, timeout=30.0):
        """Clean shutdown (SIGTERM); asserts exit status 0."""
        if self.running:
            self.sigcont()
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout)
            assert code == 0, f"node {self.id} exited with {code}:\n{self.log()}"
        self.proc = None

    def kill9(self):
        """kill -9: nothing flushed, nothing closed, no goodbye to the controller."""
        if self.running:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        self.stopped = False

    def sigstop(self):
        """Freezes the process (it keeps its sockets but answers nothing)."""
        assert self.running, f"node {self.id} is not running"
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        if self.running and self.stopped:
            self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def log(self, chars=6000):
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __repr__(self):
        state = "stopped" if self.stopped else ("running" if self.running else "down")
        return f"<node {self.id} {self.bootstrap} {state}>"


class Cluster:
    """n nodes: combined broker+controller ones, then `broker_only` broker-only ones.
    Construction writes the properties files and starts every node, then waits until all of them
    are registered (Metadata lists n brokers)."""

    def __init__(self, n, tmp_path, start=True, broker_only=0, controller_only=0, **overrides):
        assert n >= 1 and 0 <= broker_only and 0 <= controller_only
        assert broker_only < n and controller_only < n and broker_only + controller_only <= n
        self.dir = Path(tmp_path) / "cluster"
        self.dir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * n)
        self.nodes = [Node(self, i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(n)]
        self.voters = self.nodes[:n - broker_only]
        for nd in self.nodes[:controller_only]:
            nd.is_broker = False
        for nd in self.nodes[n - broker_only:]:
            nd.is_voter = False
        voters = ",".join(f"{nd.id}@127.0.0.1:{nd.controller_port}" for nd in self.voters)
        props = dict(DEV_DEFAULTS)
        props.update({k if "." in k else k.replace("_", "."): str(v)
                      for k, v in overrides.items()})
        self.overrides = props
        for nd in self.nodes:
            if not nd.is_broker:
                roles = {"process.roles": "controller",
                         "listeners": f"CONTROLLER://127.0.0.1:{nd.controller_port}"}
            elif nd.is_voter:
                roles = {"process.roles": "broker,controller",
                         "listeners": f"PLAINTEXT://127.0.0.1:{nd.port},"
                                      f"CONTROLLER://127.0.0.1:{nd.controller_port}"}
            else:
                roles = {"process.roles": "broker",
                         "listeners": f"PLAINTEXT://127.0.0.1:{nd.port}"}
            lines = {
                **roles,
                "node.id": nd.id,
                "cluster.id": "QnJvb2staXQtY2x1c3Rlcg",  # 16 bytes in Kafka's base64 form
                "controller.quorum.voters": voters,
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{nd.port}",
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "log.dirs": nd.data_dir,
                **props,
            }
            nd.properties.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        if start:
            self.start()

    # --- the whole cluster ------------------------------------------------------------------

    def start(self, timeout=60.0):
        for nd in self.nodes:
            if not nd.running:
                nd.spawn()
        for nd in self.nodes:
            nd.wait_started(timeout)
        self.wait_registered()
        return self

    def close(self):
        """Kills every node (SIGCONT first, so that a frozen one dies too)."""
        for nd in self.nodes:
            if nd.running:
                nd.sigcont()
                nd.kill9()

    def node(self, node_id):
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self):
        return ",".join(nd.bootstrap for nd in self.nodes if nd.is_broker)

    def live(self):
        """Nodes running and not frozen."""
        return [nd for nd in self.nodes if nd.running and not nd.stopped]

    def live_brokers(self):
        return [nd for nd in self.live() if nd.is_broker]

    @property
    def live_bootstrap(self):
        return ",".join(nd.bootstrap for nd in self.live_brokers())

    def admin(self, bootstrap=None):
        return AdminClient({"bootstrap.servers": bootstrap or self.live_bootstrap,
                            "socket.connection.setup.timeout.ms": 3000})

    def check_alive(self):
        """Fails naming every node that should be running but has exited (a crash)."""
        dead = [nd for nd in self.nodes if nd.proc is not None and nd.proc.poll() is not None]
        assert not dead, "\n".join(
            f"node {nd.id} exited with {nd.proc.returncode}:\n{nd.log()}" for nd in dead)

    # --- metadata ---------------------------------------------------------------------------

    def brokers(self, via=None):
        """Broker ids in a Metadata response from `via` (a node; default any live node)."""
        bootstrap = via.bootstrap if via is not None else self.live_bootstrap
        md = self.admin(bootstrap).list_topics(timeout=5)
        return sorted(md.brokers)

    def wait_registered(self, ids=None, timeout=45.0):
        """Waits until every live node answers Metadata listing exactly the brokers `ids`
        (default: the live nodes), i.e. each registered and learned about the others."""
        want = sorted(ids if ids is not None else (nd.id for nd in self.live_brokers()))

        def ok():
            return all(self.brokers(via=nd) == want for nd in self.live_brokers())

        try:
            wait_for(ok, timeout=timeout, interval=0.2,
                     what=f"every live node to list brokers {want}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last seen: {self._brokers_seen()}") from None

    def _brokers_seen(self):
        seen = {}
        for nd in self.live_brokers():
            try:
                seen[nd.id] = self.brokers(via=nd)
            except Exception as e:  # noqa: BLE001 - for the message only
                seen[nd.id] = repr(e)
        return seen

    def controller_id(self, via=None, attempts=3):
        """The active controller's id as DescribeCluster reports it; None when no answer came
        (librdkafka sends DescribeCluster to the controller Metadata names, which may be in the
        middle of an election or just thawed from SIGSTOP: ask a few times)."""
        for _ in range(attempts):
            a = self.admin(via.bootstrap if via is not None else None)
            try:
                desc = a.describe_cluster(request_timeout=5).result(10)
            except Exception:  # noqa: BLE001 - retried, then reported as unknown
                continue
            return desc.controller.id if desc.controller is not None else None
        return None

    def describe(self, topic, via=None):
        """{partition: PartitionState} from a Metadata request through confluent-kafka (to any
        live node, or to `via`). Not DescribeTopics: librdkafka sends that to the controller
        named in Metadata, which may be the very node a test has frozen."""
        a = self.admin(via.bootstrap if via is not None else None)
        t = a.list_topics(topic, timeout=5).topics[topic]
        if t.error is not None:
            raise RuntimeError(f"Metadata for {topic}: {t.error}")
        return {p.id: PartitionState(p.leader, list(p.replicas), list(p.isrs))
                for p in t.partitions.values()}

    def wait_for_leader(self, topic, partition, exclude=(), timeout=30.0):
        """Waits until the partition has a leader that is a live node and not in `exclude`;
        returns its id."""
        live_ids = lambda: {nd.id for nd in self.live()}  # noqa: E731

        def leader():
            p = self.describe(topic)[partition]
            return p.leader if p.leader in live_ids() and p.leader not in exclude else None

        return wait_for(leader, timeout=timeout, interval=0.1,
                        what=f"a live leader of {topic}-{partition} not in {set(exclude)}")

    def wait_for_isr(self, topic, partition, isr, timeout=30.0):
        """Waits until the partition's ISR is exactly the set `isr` (as the live nodes report
        it); returns the state."""
        want = set(isr)
        last = {}

        def ok():
            last["state"] = self.describe(topic)[partition]
            return last["state"] if set(last["state"].isr) == want else None

        try:
            return wait_for(ok, timeout=timeout, interval=0.1,
                            what=f"ISR of {topic}-{partition} == {sorted(want)}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last seen: {last.get('state')}; live nodes "
                                 f"{[nd.id for nd in self.live()]}") from None

    def logs(self):
        return "".join(f"\n--- node {nd.id} log {nd.log_path} (last 6000 chars) ---\n{nd.log()}\n"
                       for nd in self.nodes)


@pytest.fixture
def cluster_factory(request, tmp_path):
    """Builds clusters on demand; every node of every one is killed at the end. When the test
    failed, each node's log tail is printed (pytest shows it under the failure)."""
    clusters = []

    def make(n=3, broker_only=0, controller_only=0, **overrides):
        c = Cluster(n, tmp_path / f"c{len(clusters)}", start=False, broker_only=broker_only,
                    controller_only=controller_only, **overrides)
        clusters.append(c)
        return c.start()

    def finalize():
        for c in clusters:
            c.close()
        failed = any(getattr(getattr(request.node, "rep_" + when, None), "failed", False)
                     for when in ("setup", "call"))
        if failed:
            for c in clusters:
                sys.stderr.write(c.logs())
        else:
            for c in clusters:
                shutil.rmtree(c.dir, ignore_errors=True)

    request.addfinalizer(finalize)
    return make
