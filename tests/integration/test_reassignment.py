"""Partition reassignment (KIP-455: AlterPartitionReassignments, ListPartitionReassignments) on real
clusters: a partition moves to brokers that did not host it and keeps every record, the brokers
it left delete their copy, a stuck reassignment is listed and cancelled; driven by kafka-python's
admin client, confluent-kafka for the data, and Kafka's kafka-reassign-partitions tool."""

import json
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from kafka import KafkaAdminClient, TopicPartition
from kafka import errors as kerrors

import test_cluster as tc
from cluster import cluster_factory  # noqa: F401 - the fixture
from conftest import kafka_tool, wait_for

pytestmark = pytest.mark.slow

JS = Path(__file__).parent / "js"


def produce(bootstrap, topic, values):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for v in values:
        p.produce(topic, value=v.encode(), partition=0,
                  on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(60) == 0 and not errors, errors


def admin(cluster):
    return KafkaAdminClient(bootstrap_servers=cluster.live_bootstrap, request_timeout_ms=20000)


def settled(cluster, topic, replicas):
    """The partition's replicas are `replicas`, its ISR holds exactly them, nothing is moving."""
    a = admin(cluster)
    try:
        moving = a.list_partition_reassignments()
    finally:
        a.close()
    p = cluster.describe(topic)[0]
    return not moving and p.replicas == replicas and sorted(p.isr) == sorted(replicas)


def test_a_partition_moves_to_other_brokers_with_its_records(cluster_factory):
    # Node 4 is a broker only, as one added to grow the cluster would be.
    cluster = cluster_factory(4, broker_only=1)
    tc.create(cluster, "moved", 1, None, assignment=[[1, 2]])
    values = [f"v{i}" for i in range(2000)]
    produce(cluster.bootstrap, "moved", values)
    tp = TopicPartition("moved", 0)
    a = admin(cluster)
    try:
        assert a.alter_partition_reassignments({tp: [4, 3]}) == {tp: None}
    finally:
        a.close()
    wait_for(lambda: settled(cluster, "moved", [4, 3]), timeout=60,
             what="moved-0 to settle on brokers 4 and 3")
    # The first target replica leads once it is in the ISR; the old leader handed over.
    assert cluster.describe("moved")[0].leader == 4
    log, hw = tc.read_all(cluster.bootstrap, "moved", 1)
    assert [v for _, v in log[0]] == values and hw[0] == len(values)
    # Brokers 1 and 2 no longer host it: their copies are deleted.
    for nd in (cluster.node(1), cluster.node(2)):
        wait_for(lambda nd=nd: not (nd.data_dir / "moved-0").exists(),
                 what=f"node {nd.id} to delete its copy of moved-0")
    assert (cluster.node(4).data_dir / "moved-0").is_dir()
    # The moved partition takes writes with acks=all from its new ISR.
    produce(cluster.bootstrap, "moved", ["after"])
    log, _ = tc.read_all(cluster.bootstrap, "moved", 1)
    assert log[0][-1] == (len(values), "after")



def test_writes_go_on_while_partitions_move_and_lose_nothing(cluster_factory):
    """An idempotent acks=all producer (confluent-kafka) writes throughout a move that takes
    each partition's leader away: every acknowledged record is kept once, in order."""
    cluster = cluster_factory(4, broker_only=1, min_insync_replicas=2)
    tc.create(cluster, "busy", 2, None, assignment=[[1, 2], [2, 3]])
    producer = tc.SequenceProducer(cluster.bootstrap, "busy", 2, rate=400).start()
    try:
        wait_for(lambda: len(producer.acked) > 300, what="300 records acknowledged")
        a = admin(cluster)
        try:
            moves = {TopicPartition("busy", 0): [3, 4], TopicPartition("busy", 1): [4, 1]}
            assert a.alter_partition_reassignments(moves) == {tp: None for tp in moves}
        finally:
            a.close()
        wait_for(lambda: settled(cluster, "busy", [3, 4]) and
                 cluster.describe("busy")[1].replicas == [4, 1], timeout=60,
                 what="both partitions to settle on their new brokers")
        t_moved = time.monotonic()
        wait_for(lambda: producer.acked_after(t_moved) > 300,
                 what="300 acknowledgements after the move")
    finally:
        producer.stop()
    assert not producer.errors, producer.errors[:3]
    assert [cluster.describe("busy")[p].leader for p in (0, 1)] == [3, 4]
    log, hw = tc.read_all(cluster.bootstrap, "busy", 2)
    tc.check_log(log, hw, producer.acked, what="after moving both partitions: ")

def test_a_stuck_reassignment_is_listed_and_cancelled(cluster_factory):
    cluster = cluster_factory(3)
    tc.create(cluster, "stuck", 1, None, assignment=[[1]])
    produce(cluster.bootstrap, "stuck", ["a", "b"])
    # A broker that is down (not the controller, which kafka-python asks) cannot catch up.
    controller = wait_for(cluster.controller_id, what="an active controller")
    down = next(i for i in (2, 3) if i != controller)
    cluster.node(down).kill9()
    # Fenced, it leaves Metadata's broker list, so kafka-python does not try to reach it.
    cluster.wait_registered()
    tp = TopicPartition("stuck", 0)
    a = admin(cluster)
    try:
        assert a.alter_partition_reassignments({tp: [1, down]}) == {tp: None}
        assert a.list_partition_reassignments() == {
            tp: {"replicas": [1, down], "adding_replicas": [down], "removing_replicas": []}}
        assert cluster.describe("stuck")[0].replicas == [1, down]
        # kafka-topics --describe shows the move as Kafka's does; the replication factor is the
        # original one, so the partition is not under-replicated.
        out = kafka_tool("topics", "--bootstrap-server", cluster.live_bootstrap, "--describe",
                         "--topic", "stuck", check=True).stdout.splitlines()
        assert "\tReplicationFactor: 1\t" in out[0], out
        assert out[1] == (f"\tTopic: stuck\tPartition: 0\tLeader: 1\tReplicas: 1,{down}\tIsr: 1"
                          f"\tAdding Replicas: {down}\tRemoving Replicas: \tElr: "
                          "\tLastKnownElr: "), out
        assert kafka_tool("topics", "--bootstrap-server", cluster.live_bootstrap, "--describe",
                          "--under-replicated-partitions", check=True).stdout == ""
        # Kafka's per-partition errors.
        res = a.alter_partition_reassignments({tp: [1, 9], TopicPartition("stuck", 5): [1]})
        assert res == {tp: kerrors.InvalidReplicationAssignmentError,
                       TopicPartition("stuck", 5): kerrors.UnknownTopicOrPartitionError}
        assert a.alter_partition_reassignments({tp: None}) == {tp: None}
        assert a.list_partition_reassignments() == {}
        assert a.alter_partition_reassignments({tp: None}) == {
            tp: kerrors.NoReassignmentInProgressError}
    finally:
        a.close()
    wait_for(lambda: cluster.describe("stuck")[0].replicas == [1],
             what="stuck-0 back on broker 1 alone")
    log, _ = tc.read_all(cluster.live_bootstrap, "stuck", 1)
    assert [v for _, v in log[0]] == ["a", "b"]


def tool(*args, check=True):
    return kafka_tool("reassign-partitions", *args, check=check)


def test_kafka_reassign_partitions_generates_executes_verifies_lists_and_cancels(
        cluster_factory, tmp_path):
    cluster = cluster_factory(3)
    bs = ["--bootstrap-server", cluster.bootstrap]
    tc.create(cluster, "tool", 2, None, assignment=[[1], [2]])
    produce(cluster.bootstrap, "tool", [f"r{i}" for i in range(100)])
    current = ('{"version":1,"partitions":['
               '{"topic":"tool","partition":0,"replicas":[1],"log_dirs":["any"]},'
               '{"topic":"tool","partition":1,"replicas":[2],"log_dirs":["any"]}]}')

    # --generate: the current assignment, then a proposal over brokers 2 and 3.
    topics = tmp_path / "topics.json"
    topics.write_text('{"topics":[{"topic":"tool"}],"version":1}')
    out = tool(*bs, "--generate", "--topics-to-move-json-file", topics,
               "--broker-list", "2,3").stdout.split("\n")
    assert out[:3] == ["Current partition replica assignment", current, ""]
    assert out[3] == "Proposed partition reassignment configuration" and out[5:] == [""]
    proposed = json.loads(out[4])
    assert [(p["topic"], p["partition"], p["log_dirs"]) for p in proposed["partitions"]] == [
        ("tool", 0, ["any"]), ("tool", 1, ["any"])]
    assert all(len(p["replicas"]) == 1 and p["replicas"][0] in (2, 3)
               for p in proposed["partitions"])

    # --execute a move of both partitions to broker 3.
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": "tool", "partition": 0, "replicas": [3]},
        {"topic": "tool", "partition": 1, "replicas": [3]}]}))
    assert tool(*bs, "--execute", "--reassignment-json-file", plan).stdout == (
        f"Current partition replica assignment\n\n{current}\n\n"
        "Save this to use as the --reassignment-json-file option during rollback\n"
        "Successfully started partition reassignments for tool-0,tool-1\n")
    done = ("Status of partition reassignment:\n"
            "Reassignment of partition tool-0 is completed.\n"
            "Reassignment of partition tool-1 is completed.\n\n"
            "Clearing broker-level throttles on brokers 1,2,3\n"
            "Clearing topic-level throttles on topic tool\n")
    wait_for(lambda: tool(*bs, "--verify", "--reassignment-json-file", plan).stdout == done,
             timeout=60, what="--verify to report both partitions completed")
    lines, _ = tc.describe_lines(cluster.bootstrap, "tool")
    assert {p: (v["Leader"], v["Replicas"], v["Isr"]) for p, v in lines.items()} == {
        0: (3, [3], [3]), 1: (3, [3], [3])}
    log, _ = tc.read_all(cluster.bootstrap, "tool", 2)
    assert sorted(v for p in log for _, v in log[p]) == sorted(f"r{i}" for i in range(100))
    assert tool(*bs, "--list").stdout == "No partition reassignments found.\n"

    # A move that cannot finish (its new replica's broker is down): listed, in progress,
    # blocking another --execute, then cancelled.
    controller = wait_for(cluster.controller_id, what="an active controller")
    down = next(i for i in (1, 2) if i != controller)
    cluster.node(down).kill9()
    cluster.wait_registered()
    bs = ["--bootstrap-server", cluster.live_bootstrap]
    stuck = tmp_path / "stuck.json"
    stuck.write_text(json.dumps({"partitions": [
        {"topic": "tool", "partition": 0, "replicas": [3, down]}]}))
    # As Kafka's tool, --execute checks the brokers against DescribeCluster, which leaves
    # fenced brokers out; the admin API takes any registered broker.
    p = tool(*bs, "--execute", "--reassignment-json-file", stuck, check=False)
    assert (p.returncode, p.stdout) == (1, f"Error: Unknown broker id {down}\n"), p
    a = admin(cluster)
    try:
        tp = TopicPartition("tool", 0)
        assert a.alter_partition_reassignments({tp: [3, down]}) == {tp: None}
    finally:
        a.close()
    assert tool(*bs, "--list").stdout == (
        f"Current partition reassignments:\ntool-0: replicas: 3,{down}. adding: {down}.\n")
    assert tool(*bs, "--verify", "--reassignment-json-file", stuck).stdout == (
        "Status of partition reassignment:\n"
        "Reassignment of partition tool-0 is still in progress.\n\n")
    p = tool(*bs, "--execute", "--reassignment-json-file", plan, check=False)
    assert p.returncode == 1 and p.stdout.startswith(
        "Cannot execute because there is an existing partition assignment.  Use --additional"), p
    assert tool(*bs, "--cancel", "--reassignment-json-file", stuck).stdout == (
        "Successfully cancelled partition reassignment for: tool-0\n"
        "None of the specified partition moves are active."
        f"Clearing broker-level throttles on brokers {','.join(map(str, sorted({3, down, *[n.id for n in cluster.live_brokers()]})))}\n"
        "Clearing topic-level throttles on topic tool\n")
    assert tool(*bs, "--list").stdout == "No partition reassignments found.\n"
    assert cluster.describe("tool")[0].replicas == [3]

    # Kafka's usage errors.
    p = tool(*bs, "--verify", check=False)
    assert p.returncode == 1 and 'Missing required argument "[reassignment-json-file]"' in p.stderr


def test_kafkajs_moves_a_partition(cluster_factory):
    cluster = cluster_factory(3)
    tc.create(cluster, "kjs-moved", 1, None, assignment=[[1]])
    values = [f"k{i}" for i in range(500)]
    produce(cluster.bootstrap, "kjs-moved", values)
    r = subprocess.run(["node", str(JS / "reassign.js"), cluster.bootstrap, "kjs-moved", "2"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    p = out["partition"]
    assert (p["leader"], p["replicas"], p["isr"]) == (2, [2], [2]), out
    log, _ = tc.read_all(cluster.bootstrap, "kjs-moved", 1)
    assert [v for _, v in log[0]] == values
