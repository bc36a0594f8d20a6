"""Partition reassignment (KIP-455: AlterPartitionReassignments, ListPartitionReassignments) on real
clusters: a partition moves to brokers that did not host it and keeps every record, the brokers
it left delete their copy, a stuck reassignment is listed and cancelled; driven by kafka-python's
admin client, confluent-kafka for the data, and Kafka's kafka-reassign-partitions tool."""

import json

import pytest
from confluent_kafka import Producer
from kafka import KafkaAdminClient, TopicPartition
from kafka import errors as kerrors

import test_cluster as tc
from cluster import cluster_factory  # noqa: F401 - the fixture
from conftest import kafka_tool, wait_for

pytestmark = pytest.mark.slow


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
