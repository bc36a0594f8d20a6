"""Cluster mode (issue #6) with real processes on 127.0.0.1: replicated topics through Kafka's
tools, leader and controller failover under an idempotent acks=all confluent-kafka producer, ISR
shrink and expand around a frozen follower, min.insync.replicas, and a randomized kill/restart
test that checks Kafka's replication invariants."""

import os
import random
import socket
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from cluster import cluster_factory  # noqa: F401 - the fixture
from conftest import kafka_tool, unique, wait_for
import wire

pytestmark = pytest.mark.slow


# --- load and checks ----------------------------------------------------------------------------

class SequenceProducer:
    """confluent-kafka with acks=all and idempotence, sending value b"<seq>" to partition
    seq % partitions at about `rate` records/s from its own thread until `stop()`. Every
    acknowledgement is kept: `acked[seq] = (partition, offset)`."""

    def __init__(self, bootstrap, topic, partitions, rate=400, **conf):
        self.topic = topic
        self.partitions = partitions
        self.rate = rate
        self.conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                     "linger.ms": 5, "message.timeout.ms": 60000, **conf}
        self.acked = {}
        self.ack_times = {}
        self.errors = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.fatal = None

    def _on_delivery(self, seq):
        def cb(err, msg):
            if err is not None:
                self.errors.append((seq, err))
            else:
                self.acked[seq] = (msg.partition(), msg.offset())
                self.ack_times[seq] = time.monotonic()
        return cb

    def _run(self):
        p = Producer(self.conf)
        tick = 0.05
        per_tick = max(1, int(self.rate * tick))
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                for _ in range(per_tick):
                    seq = self.sent
                    while True:
                        try:
                            p.produce(self.topic, value=str(seq).encode(),
                                      partition=seq % self.partitions,
                                      on_delivery=self._on_delivery(seq))
                            break
                        except BufferError:
                            p.poll(0.05)
                    self.sent += 1
                p.poll(0)
                time.sleep(max(0.0, tick - (time.monotonic() - t0)))
            self.remaining = p.flush(90)
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self.fatal = e

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the producer did not finish flushing"
        assert self.fatal is None, f"producer failed: {self.fatal!r}"
        assert self.remaining == 0, f"{self.remaining} records neither acknowledged nor failed"
        return self

    def acked_after(self, t):
        return sum(1 for at in list(self.ack_times.values()) if at > t)


def read_all(bootstrap, topic, partitions, timeout=60):
    """Every record of the partitions from offset 0 up to the high watermark, with
    confluent-kafka (default isolation, read_committed): {partition: [(offset, value)]}."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cluster-reader",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    try:
        hw = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
              for p in range(partitions)}
        out = {p: [] for p in range(partitions)}
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions) if hw[p] > 0])
        deadline = time.monotonic() + timeout
        done = lambda: all((out[p][-1][0] if out[p] else -1) >= hw[p] - 1  # noqa: E731
                           for p in range(partitions))
        while not done():
            assert time.monotonic() < deadline, (
                f"read only {[len(out[p]) for p in range(partitions)]} of {hw} records")
            for m in c.consume(1000, 0.5):
                if m.error():
                    continue
                out[m.partition()].append((m.offset(), m.value().decode()))
        return out, hw
    finally:
        c.close()


def check_log(log, hw, acked, what=""):
    """Kafka's guarantees for an idempotent acks=all producer: offsets contiguous from 0 to the
    high watermark, no value twice, each partition in send order, and every acknowledged record
    at exactly the offset its acknowledgement gave."""
    seen = Counter()
    for p, records in log.items():
        offsets = [o for o, _ in records]
        assert offsets == list(range(hw[p])), (
            f"{what}partition {p}: offsets not contiguous from 0 to the high watermark {hw[p]}: "
            f"first gaps/repeats at {[(i, o) for i, o in enumerate(offsets) if o != i][:5]}")
        values = [int(v) for _, v in records]
        assert values == sorted(values), (
            f"{what}partition {p}: records out of send order: "
            f"{[(o, v) for (o, v), w in zip(records[1:], values) if int(v) < w][:5]}")
        seen.update(values)
    dups = [v for v, n in seen.items() if n > 1]
    assert not dups, f"{what}records stored twice: {sorted(dups)[:10]}"
    by_offset = {p: dict(records) for p, records in log.items()}
    lost = [(seq, po) for seq, po in sorted(acked.items())
            if by_offset[po[0]].get(po[1]) != str(seq)]
    assert not lost, (f"{what}{len(lost)} of {len(acked)} acknowledged records are not at their "
                      f"acknowledged offset: first {[(s, po, by_offset[po[0]].get(po[1])) for s, po in lost[:5]]}")


class GroupMember:
    """A confluent-kafka consumer in a group, polling in its own thread; keeps
    (receive time, partition, offset, value) of every record."""

    def __init__(self, bootstrap, group, topic, name):
        self.name = name
        self.records = []
        self.assigned = []
        self.errors = []
        self._stop = threading.Event()
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                           "client.id": name, "auto.offset.reset": "earliest",
                           "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                           "auto.commit.interval.ms": 500})
        self.topic = topic
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        def on_assign(_c, parts):
            self.assigned = [tp.partition for tp in parts]

        self.c.subscribe([self.topic], on_assign=on_assign)
        while not self._stop.is_set():
            for m in self.c.consume(500, 0.2):
                if m.error():
                    self.errors.append(m.error())
                else:
                    self.records.append((time.monotonic(), m.partition(), m.offset(),
                                         m.value().decode()))
        self.c.close()

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(30)

    def received_after(self, t):
        return sum(1 for at, *_ in list(self.records) if at > t)


def create(cluster, topic, partitions, rf, config=None, assignment=None):
    a = cluster.admin()
    if assignment is not None:
        # librdkafka wants the partition count with an explicit assignment (and no factor).
        nt = NewTopic(topic, num_partitions=len(assignment), replica_assignment=assignment,
                      config=config or {})
    else:
        nt = NewTopic(topic, num_partitions=partitions, replication_factor=rf,
                      config=config or {})
    a.create_topics([nt])[topic].result(20)
    n = len(assignment) if assignment is not None else partitions
    wait_for(lambda: len(cluster.describe(topic)) == n and all(
        p.leader >= 0 for p in cluster.describe(topic).values()), what=f"{topic} to have leaders")


def produce_one(bootstrap, topic, partition, **conf):
    """One record with acks=all; returns the delivery error (None on success)."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, **conf})
    result = {}
    p.produce(topic, value=b"x", partition=partition,
              on_delivery=lambda err, msg: result.setdefault("err", err))
    assert p.flush(60) == 0, "no delivery report within 60 s"
    return result["err"]


def create_with_tool(bootstrap, topic, partitions, replication_factor):
    """kafka-topics --create, checking Kafka's one-line answer."""
    p = kafka_tool("topics", "--create", "--bootstrap-server", bootstrap, "--topic", topic,
                   "--partitions", str(partitions), "--replication-factor",
                   str(replication_factor), check=True)
    assert p.stdout == f"Created topic {topic}.\n"


def describe_lines(bootstrap, topic):
    """kafka-topics --describe partition lines as {partition: {Leader, Replicas, Isr}}."""
    p = kafka_tool("topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic,
                   check=True)
    out = {}
    for line in p.stdout.splitlines()[1:]:
        fields = dict(f.split(": ", 1) for f in line.strip().split("\t") if ": " in f)
        out[int(fields["Partition"])] = {
            "Leader": int(fields["Leader"]),
            "Replicas": [int(x) for x in fields["Replicas"].split(",") if x],
            "Isr": [int(x) for x in fields["Isr"].split(",") if x]}
    return out, p.stdout


# --- (a) replicated topic through kafka-topics --------------------------------------------------

def test_create_rf3_spreads_leaders_and_fills_isr(cluster_factory):
    cluster = cluster_factory(3)
    topic = unique("rf3")
    create_with_tool(cluster.bootstrap, topic, 6, 3)

    state = {}

    def described():
        parts, text = describe_lines(cluster.bootstrap, topic)
        state["text"] = text
        return parts if len(parts) == 6 and all(
            sorted(v["Isr"]) == [1, 2, 3] for v in parts.values()) else None

    parts = wait_for(described, timeout=20, interval=0.2,
                     what=f"6 partitions with Isr 1,2,3 (last --describe:\n{state.get('text')})")
    first = state["text"].splitlines()[0]
    assert "\tPartitionCount: 6\t" in first and "\tReplicationFactor: 3\t" in first, first
    for i, v in parts.items():
        assert sorted(v["Replicas"]) == [1, 2, 3], state["text"]
        # The leader is the preferred (first) replica, and is in the ISR.
        assert v["Leader"] == v["Replicas"][0], state["text"]
    # Kafka's placement: with 6 partitions on 3 brokers every broker leads 2.
    assert Counter(v["Leader"] for v in parts.values()) == {1: 2, 2: 2, 3: 2}, state["text"]
    # confluent-kafka sees the same through any single node.
    for nd in cluster.nodes:
        theirs = cluster.describe(topic, via=nd)
        assert {i: (s.leader, s.replicas, sorted(s.isr)) for i, s in theirs.items()} == {
            i: (v["Leader"], v["Replicas"], [1, 2, 3]) for i, v in parts.items()}, nd
    cluster.check_alive()


# --- (b) leader kill -9 under an idempotent acks=all producer ------------------------------------

def test_leader_kill9_loses_no_acknowledged_record_and_group_continues(cluster_factory):
    cluster = cluster_factory(3, min_insync_replicas=2)
    topic = unique("failover")
    create(cluster, topic, partitions=3, rf=3)
    producer = SequenceProducer(cluster.bootstrap, topic, 3, rate=400).start()
    group = unique("g")
    members = [GroupMember(cluster.bootstrap, group, topic, f"m{i}").start() for i in range(2)]
    try:
        wait_for(lambda: all(m.assigned for m in members) and all(m.records for m in members)
                 and len(producer.acked) > 300, timeout=30,
                 what="both group members assigned and receiving, 300 records acknowledged")
        victim = cluster.describe(topic)[0].leader
        acked_before = len(producer.acked)
        t_kill = time.monotonic()
        cluster.node(victim).kill9()
        new_leader = cluster.wait_for_leader(topic, 0, exclude={victim}, timeout=20)
        elected_after = time.monotonic() - t_kill
        # Keep producing until writes to every partition are acknowledged again, and a while more.
        wait_for(lambda: producer.acked_after(t_kill) > 3 * 400, timeout=30,
                 what=f"acknowledgements after the kill of node {victim} "
                      f"(acked before: {acked_before}, after: {producer.acked_after(t_kill)})")
        # The group goes on: with the producer still running, each member receives records sent
        # after the kill (once the coordinator moved and the group rebalanced there).
        wait_for(lambda: all(m.received_after(t_kill) > 0 for m in members), timeout=45,
                 what="every group member to receive records after the kill: " + ", ".join(
                     f"{m.name} {m.assigned} errors {m.errors[-2:]}" for m in members))
        producer.stop()
        assert not producer.errors, (
            f"{len(producer.errors)} records failed after the kill of leader {victim}: "
            f"{producer.errors[:3]}")

        # Everything acknowledged is readable, once, in order (partition 0 from its new leader).
        log, hw = read_all(cluster.live_bootstrap, topic, 3)
        check_log(log, hw, producer.acked, what=f"after killing leader {victim}: ")
        assert cluster.describe(topic)[0].leader == new_leader

        # Together the members see every acknowledged record.
        t_after = time.monotonic()
        wait_for(lambda: {int(v) for m in members for *_, v in list(m.records)} >= set(producer.acked),
                 timeout=45, what="the group to receive every acknowledged record")
        print(f"leader {victim} killed: new leader {new_leader} after {elected_after:.1f}s; "
              f"{len(producer.acked)} acked; group caught up {time.monotonic() - t_after:.1f}s "
              "after the producer stopped")
    finally:
        for m in members:
            m.stop()
    cluster.check_alive()


# --- (c) controller kill -9 ----------------------------------------------------------------------

def test_controller_kill9_elects_a_new_one_and_create_topic_works(cluster_factory):
    cluster = cluster_factory(3)
    old = wait_for(lambda: cluster.controller_id() in (1, 2, 3) and cluster.controller_id(),
                   what="an active controller in DescribeCluster")
    # Every node names the same controller.
    wait_for(lambda: {cluster.controller_id(via=nd) for nd in cluster.nodes} == {old},
             what=f"every node to report controller {old}")
    cluster.node(old).kill9()
    survivors = [nd for nd in cluster.nodes if nd.id != old]
    new = wait_for(lambda: len({cluster.controller_id(via=nd) for nd in survivors}) == 1
                   and cluster.controller_id(via=survivors[0]) in {nd.id for nd in survivors}
                   and cluster.controller_id(via=survivors[0]),
                   timeout=20, what=f"the survivors to agree on a new controller after {old}")
    assert new != old

    topic = unique("after-controller")
    create_with_tool(cluster.live_bootstrap, topic, 3, 2)
    wait_for(lambda: all(s.leader in {nd.id for nd in survivors}
                         for s in cluster.describe(topic).values())
             and len(cluster.describe(topic)) == 3,
             what=f"{topic}'s partitions led by live brokers")
    assert produce_one(cluster.live_bootstrap, topic, 0, **{"enable.idempotence": True}) is None

    # The old controller comes back as a follower of the quorum and a broker again.
    cluster.node(old).start()
    cluster.wait_registered()
    wait_for(lambda: len({cluster.controller_id(via=nd) for nd in cluster.nodes}) == 1
             and cluster.controller_id() in (1, 2, 3),
             what="all three nodes, the old controller too, to agree on the active controller")
    cluster.check_alive()


# --- (c2) broker-only nodes (process.roles=broker) -----------------------------------------------

def test_broker_only_node_observes_the_quorum_and_serves_partitions(cluster_factory):
    """Three combined nodes and one broker-only node (Kafka's dedicated broker): it registers,
    learns metadata from the quorum without a controller listener, forwards admin requests,
    leads and follows partitions, and follows the quorum to a new active controller."""
    cluster = cluster_factory(4, broker_only=1)
    observer = cluster.node(4)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", observer.controller_port), timeout=1).close()

    # Created through the broker-only node, which forwards to the active controller. With RF 4
    # every node holds every partition, and the four leaderships are spread one per node.
    topic = unique("broker-only")
    create_with_tool(observer.bootstrap, topic, 4, 4)
    state = wait_for(lambda: (s := cluster.describe(topic, via=observer)) and len(s) == 4
                     and all(sorted(x.isr) == [1, 2, 3, 4] for x in s.values()) and s,
                     what=f"{topic} with a full ISR as the broker-only node sees it")
    assert sorted(x.leader for x in state.values()) == [1, 2, 3, 4]
    for part in range(4):
        assert produce_one(cluster.bootstrap, topic, part) is None
    c = Consumer({"bootstrap.servers": observer.bootstrap, "group.id": unique("g"),
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, part, 0) for part in range(4)])
        got = set()
        deadline = time.monotonic() + 30
        while len(got) < 4 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.add(m.partition())
        assert got == {0, 1, 2, 3}
    finally:
        c.close()

    # The active controller dies: the broker-only node follows the quorum to the new one and
    # still forwards topic creation.
    old = wait_for(lambda: cluster.controller_id(via=observer) in (1, 2, 3)
                   and cluster.controller_id(via=observer),
                   what="an active controller named by the broker-only node")
    cluster.node(old).kill9()
    new = wait_for(lambda: (x := cluster.controller_id(via=observer)) in {1, 2, 3} - {old} and x,
                   timeout=20, what=f"the broker-only node to name a controller other than {old}")
    assert new != old
    topic2 = unique("broker-only-after")
    create_with_tool(observer.bootstrap, topic2, 2, 3)
    wait_for(lambda: (s := cluster.describe(topic2, via=observer)) and len(s) == 2
             and all(x.leader in {nd.id for nd in cluster.live()} for x in s.values()),
             what=f"{topic2} led by live brokers, as the broker-only node sees it")
    cluster.check_alive()


def active_controller(cluster):
    """The voter that last logged taking over as the active controller (None if none did)."""
    latest = None
    for nd in cluster.voters:
        if not nd.running:
            continue
        for line in nd.log(chars=200_000).splitlines():
            if "this node is now the active controller" in line:
                stamp = line.split(" ", 1)[0]
                if latest is None or stamp > latest[0]:
                    latest = (stamp, nd.id)
    return latest and latest[1]


def test_dedicated_controllers_and_brokers(cluster_factory):
    """Kafka's production layout: three controller-only nodes (process.roles=controller, no client
    listener) and three broker-only nodes. Only the brokers are brokers, clients are never pointed
    at a controller, and the active controller's death is survived."""
    cluster = cluster_factory(6, controller_only=3, broker_only=3)
    brokers = [4, 5, 6]
    for nd in cluster.nodes[:3]:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", nd.port), timeout=1).close()
    assert cluster.brokers() == brokers
    # Metadata and DescribeCluster name a broker as the controller: a client can reach it.
    wait_for(lambda: cluster.controller_id() in brokers, what="a broker named as controller")

    topic = unique("dedicated")
    create_with_tool(cluster.bootstrap, topic, 3, 3)
    state = wait_for(lambda: (s := cluster.describe(topic)) and len(s) == 3
                     and all(sorted(x.isr) == brokers for x in s.values()) and s,
                     what=f"{topic} with a full ISR of the three brokers")
    assert sorted(x.leader for x in state.values()) == brokers
    for part in range(3):
        assert produce_one(cluster.bootstrap, topic, part) is None

    # The active controller (a dedicated one) dies; the other two elect a new one, and the
    # brokers keep registering changes through it.
    old = wait_for(lambda: active_controller(cluster), what="an active controller in the logs")
    assert old in (1, 2, 3)
    cluster.node(old).kill9()
    wait_for(lambda: active_controller(cluster) not in (None, old),
             timeout=20, what=f"a new active controller after {old}")
    topic2 = unique("dedicated-after")
    create_with_tool(cluster.bootstrap, topic2, 3, 3)
    wait_for(lambda: (s := cluster.describe(topic2)) and len(s) == 3
             and all(x.leader in brokers for x in s.values()),
             what=f"{topic2} led by the brokers")
    assert produce_one(cluster.bootstrap, topic2, 0) is None
    # A broker killed now is fenced by the new controller: its partitions move.
    victim = cluster.describe(topic2)[0].leader
    cluster.node(victim).kill9()
    cluster.wait_for_leader(topic2, 0, exclude={victim}, timeout=20)
    assert produce_one(cluster.live_bootstrap, topic2, 0) is None
    cluster.check_alive()


# --- (d) ISR shrink and expand; min.insync.replicas ----------------------------------------------

class Trickle:
    """acks=1 records to one partition every 50 ms from a thread: a follower that stops fetching
    falls behind the leader's log end, which is what takes it out of the ISR."""

    def __init__(self, bootstrap, topic, partition):
        self._stop = threading.Event()
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 0})
        self._t = threading.Thread(target=self._run, args=(topic, partition), daemon=True)

    def _run(self, topic, partition):
        while not self._stop.is_set():
            self.p.produce(topic, value=b"t", partition=partition)
            self.p.poll(0.05)
        self.p.flush(30)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(60)


def test_frozen_follower_leaves_and_rejoins_isr_and_min_isr_rejects(cluster_factory):
    # Five voters, the partition on nodes 1-3: with two of its replicas frozen, three of five
    # controllers remain, so the quorum can still record the ISR change (as in Kafka, where the
    # controller owns the ISR). A long session timeout keeps the frozen broker registered, so it
    # is the leader's lag check (replica.lag.time.max.ms) that takes it out, not fencing.
    cluster = cluster_factory(5, replica_lag_time_max_ms=2000, broker_session_timeout_ms=30000,
                              min_insync_replicas=2)
    # The second follower frozen below is the active controller whenever that is not node 1 (the
    # partition's leader): the survivors' heartbeats and the leader's ISR change must then leave
    # the frozen controller for the one the quorum elects next, within the new controller's grace.
    controller = wait_for(lambda: active_controller(cluster), what="an active controller")
    first = next(n for n in (2, 3, 4, 5) if n != controller)
    second = controller if controller != 1 else next(n for n in (3, 4, 5) if n != first)
    topic = unique("isr")
    create(cluster, topic, partitions=1, rf=3, assignment=[[1, first, second]])
    cluster.wait_for_isr(topic, 0, {1, first, second})
    assert cluster.describe(topic)[0].leader == 1
    b = cluster.live_bootstrap

    with Trickle(b, topic, 0):
        cluster.node(first).sigstop()
        t0 = time.monotonic()
        cluster.wait_for_isr(topic, 0, {1, second}, timeout=12)
        shrunk = time.monotonic() - t0
        print(f"node {first} frozen: ISR {{1, {second}}} after {shrunk:.1f}s")
        assert shrunk >= 1.5, f"node {first} left the ISR after {shrunk:.1f}s, before the 2 s lag"
        cluster.node(first).sigcont()
        cluster.wait_for_isr(topic, 0, {1, first, second}, timeout=20)
    assert produce_one(b, topic, 0) is None

    with Trickle(b, topic, 0):
        cluster.node(first).sigstop()
        cluster.node(second).sigstop()
        t0 = time.monotonic()
        # Under the 30 s session timeout, so the lag check (not fencing) shrinks the ISR; when a
        # frozen node was the active controller the quorum first elects another.
        cluster.wait_for_isr(topic, 0, {1}, timeout=25)
        print(f"nodes {first} and {second} frozen (controller was {controller}): ISR {{1}} after "
              f"{time.monotonic() - t0:.1f}s")
    # No live broker was fenced on the way: a new controller gives every broker three heartbeat
    # intervals to be heard from, so the survivors' heartbeats must have left the frozen one.
    live = {nd.id for nd in cluster.live_brokers()}
    assert live <= set(cluster.brokers(via=cluster.node(1))), "a live broker was fenced"
    err = produce_one(cluster.live_bootstrap, topic, 0, retries=0, **{"enable.idempotence": False})
    assert err is not None and err.code() == KafkaError.NOT_ENOUGH_REPLICAS, (
        f"acks=all with ISR {{1}} and min.insync.replicas=2 gave {err!r}, "
        "expected NOT_ENOUGH_REPLICAS")
    # acks=1 is still accepted by the leader.
    assert produce_one(cluster.live_bootstrap, topic, 0, acks=1) is None

    cluster.node(first).sigcont()
    cluster.wait_for_isr(topic, 0, {1, first}, timeout=20)
    assert produce_one(cluster.live_bootstrap, topic, 0, **{"enable.idempotence": True}) is None
    cluster.node(second).sigcont()
    cluster.wait_for_isr(topic, 0, {1, first, second}, timeout=20)
    cluster.check_alive()


# --- (e) randomized kills and restarts under load ------------------------------------------------

class HighWatermarkChecker:
    """Fetches every partition from its leader with the raw Fetch API (as a consumer,
    replica_id -1) and records any batch returned at or above the high watermark of the same
    response: a consumer must never be shown a record that is not yet committed."""

    def __init__(self, cluster, topic, partitions):
        self.cluster = cluster
        self.topic = topic
        self.partitions = partitions
        self.cursor = {p: 0 for p in range(partitions)}
        self.violations = []
        self.batches = 0
        self.leaders = {}
        self.conns = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _conn(self, node_id):
        if node_id not in self.conns:
            self.conns[node_id] = wire.Wire(self.cluster.node(node_id).bootstrap)
            self.conns[node_id].sock.settimeout(3)
        return self.conns[node_id]

    def _refresh(self):
        try:
            self.leaders = {p: s.leader for p, s in self.cluster.describe(self.topic).items()}
        except Exception:  # noqa: BLE001 - retried on the next round
            self.leaders = {}
            time.sleep(0.2)

    def _run(self):
        while not self._stop.is_set():
            if len(self.leaders) < self.partitions:
                self._refresh()
                continue
            for p in range(self.partitions):
                leader = self.leaders.get(p, -1)
                try:
                    err, hw, _lso, data = self._conn(leader).fetch(
                        self.topic, p, self.cursor[p], max_wait_ms=50, isolation_level=0)
                except Exception:  # noqa: BLE001 - the leader died or moved
                    self.conns.pop(leader, None)
                    self.leaders = {}
                    break
                if err != 0:
                    self.leaders = {}
                    break
                for b in wire.batches(data):
                    self.batches += 1
                    if b["last_offset"] >= hw:
                        self.violations.append(
                            f"partition {p} from leader {leader}: batch {b['base_offset']}.."
                            f"{b['last_offset']} returned with high watermark {hw}")
                    self.cursor[p] = max(self.cursor[p], b["last_offset"] + 1)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(30)


class SeenConsumer:
    """A plain confluent-kafka consumer (default isolation) reading every partition from 0 in its
    own thread during the faults; what it saw must all be in the final log."""

    def __init__(self, bootstrap, topic, partitions):
        self.seen = []
        self._stop = threading.Event()
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-seen",
                           "enable.auto.commit": False})
        self.c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for m in self.c.consume(500, 0.2):
                if not m.error():
                    self.seen.append((m.partition(), m.offset(), m.value().decode()))
        self.c.close()

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(30)


def test_random_kills_and_restarts_keep_the_invariants(cluster_factory):
    seed = int(os.environ.get("BROOK_FAULT_SEED", random.randrange(1 << 31)))
    rounds = int(os.environ.get("BROOK_FAULT_ROUNDS", "6"))
    rng = random.Random(seed)
    print(f"fault test seed {seed} (rerun: BROOK_FAULT_SEED={seed})")
    history = []
    try:
        _random_faults(cluster_factory, rng, rounds, history)
    except AssertionError as e:
        raise AssertionError(f"[seed {seed}; rerun with BROOK_FAULT_SEED={seed}; "
                             f"history: {'; '.join(history)}]\n{e}") from e


def _random_faults(cluster_factory, rng, rounds, history):
    partitions = 3
    cluster = cluster_factory(3, min_insync_replicas=2)
    topic = unique("faults")
    create(cluster, topic, partitions=partitions, rf=3)
    producer = SequenceProducer(cluster.bootstrap, topic, partitions, rate=300).start()
    with HighWatermarkChecker(cluster, topic, partitions) as hwc, \
            SeenConsumer(cluster.bootstrap, topic, partitions) as seen:
        wait_for(lambda: len(producer.acked) > 100, timeout=20, what="the first acknowledgements")
        for r in range(rounds):
            victim = rng.choice(cluster.nodes)
            down = rng.uniform(0.2, 2.5)
            acked = len(producer.acked)
            history.append(f"round {r}: kill -9 node {victim.id}, down {down:.1f}s "
                           f"({acked} acked)")
            victim.kill9()
            time.sleep(down)  # a random outage, not a wait for a condition
            victim.start()
            cluster.wait_registered(timeout=30)
            for p in range(partitions):
                cluster.wait_for_isr(topic, p, {1, 2, 3}, timeout=30)
            wait_for(lambda: len(producer.acked) > acked + 100, timeout=30,
                     what=f"acknowledgements after round {r}")
        producer.stop()
    history.append(f"end: {len(producer.acked)} acked of {producer.sent}")
    assert not producer.errors, (f"{len(producer.errors)} records failed: "
                                 f"{producer.errors[:3]}")
    log, hw = read_all(cluster.live_bootstrap, topic, partitions)
    check_log(log, hw, producer.acked)
    by_offset = {p: dict(records) for p, records in log.items()}
    phantom = [(p, o, v) for p, o, v in seen.seen if by_offset[p].get(o) != v]
    assert not phantom, (f"a consumer saw records that are not in the final log (read above the "
                         f"high watermark, then truncated): {phantom[:5]}")
    assert not hwc.violations, hwc.violations[:5]
    assert hwc.batches > 0, "the high-watermark checker never received a batch"
    cluster.check_alive()


# --- Brook's own client through a failover ------------------------------------------------------

def test_rust_client_producer_and_consumer_through_a_leader_kill9(cluster_factory, tmp_path):
    """kafka-verifiable-producer is Brook's Rust producer (idempotent by default, as Kafka's):
    across a kill -9 of the partition leader, every record it reports acknowledged is in the log
    at the offset it reported, once, and confluent-kafka reads them back."""
    import json
    import subprocess
    from conftest import BIN_DIR, BROOK_BIN
    cluster = cluster_factory(3, min_insync_replicas=2)
    topic = unique("rustfail")
    create(cluster, topic, partitions=1, rf=3)
    env = dict(os.environ, BROOK_BIN=BROOK_BIN)
    proc = subprocess.Popen(
        [str(BIN_DIR / "kafka-verifiable-producer.sh"), "--bootstrap-server", cluster.bootstrap,
         "--topic", topic, "--max-messages", "4000", "--throughput", "500", "--acks", "-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        stdin=subprocess.DEVNULL)
    events = []
    reader = threading.Thread(target=lambda: events.extend(
        json.loads(line) for line in proc.stdout if line.strip()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: sum(e["name"] == "producer_send_success" for e in list(events)) > 500,
                 timeout=30, what="500 acknowledged sends before the kill")
        victim = cluster.describe(topic)[0].leader
        cluster.node(victim).kill9()
        cluster.wait_for_leader(topic, 0, exclude={victim}, timeout=20)
        assert proc.wait(90) == 0, proc.stderr.read()
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    acked = {int(e["value"]): (e["partition"], e["offset"])
             for e in events if e["name"] == "producer_send_success"}
    errors = [e for e in events if e["name"] == "producer_send_error"]
    assert len(acked) + len(errors) == 4000, (len(acked), errors[:3])
    assert len(acked) > 3000, f"only {len(acked)} of 4000 acknowledged; errors: {errors[:3]}"
    log, hw = read_all(cluster.live_bootstrap, topic, 1)
    check_log(log, hw, acked, what=f"Rust producer, after killing leader {victim}: ")
    # Brook's consumer (the console consumer, in a group) reads the same log from the new leader.
    r = kafka_tool("console-consumer", "--bootstrap-server", cluster.live_bootstrap,
                   "--topic", topic, "--from-beginning", "--group", unique("rustread"),
                   "--max-messages", str(hw[0]), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [v for _, v in log[0]]
    cluster.check_alive()
