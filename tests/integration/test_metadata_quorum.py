"""kafka-metadata-quorum (DescribeQuorum) on real clusters: the controller quorum's leader, epoch,
high watermark, voters and observers, as Kafka's MetadataQuorumCommand prints them."""

import re

import pytest
from kafka import KafkaAdminClient

from cluster import cluster_factory  # noqa: F401 - the fixture
from conftest import kafka_tool, wait_for
import test_cluster as tc

pytestmark = pytest.mark.slow

LABELS = ["ClusterId", "LeaderId", "LeaderEpoch", "HighWatermark", "MaxFollowerLag",
          "MaxFollowerLagTimeMs", "CurrentVoters", "CurrentObservers"]


def status(bootstrap):
    out = kafka_tool("metadata-quorum", "--bootstrap-server", bootstrap, "describe", "--status",
                     check=True).stdout.splitlines()
    # Kafka pads every label to 24 characters.
    assert [line[:24].rstrip() for line in out] == [f"{label}:" for label in LABELS], out
    return {label: line[24:] for label, line in zip(LABELS, out)}


def replication(bootstrap, *more):
    out = kafka_tool("metadata-quorum", "--bootstrap-server", bootstrap, "describe",
                     "--replication", *more, check=True).stdout.splitlines()
    rows = [[cell.strip() for cell in line.split("\t")] for line in out]
    # Every cell ends with a tab, so each line ends with one.
    assert all(line.endswith("\t") for line in out) and all(r[-1] == "" for r in rows), out
    assert rows[0][:-1] == ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp",
                            "LastCaughtUpTimestamp", "Status"]
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def test_kafka_metadata_quorum_describes_voters_and_observers(cluster_factory):
    cluster = cluster_factory(4, broker_only=1)
    controller = wait_for(cluster.controller_id, what="an active controller")
    s = status(cluster.bootstrap)
    assert s["ClusterId"] == "QnJvb2staXQtY2x1c3Rlcg"
    assert int(s["LeaderId"]) == controller and int(s["LeaderEpoch"]) >= 1
    hw = int(s["HighWatermark"])
    assert hw > 0
    # DescribeQuorum v2 names the voters' endpoints (their controller listener).
    assert s["CurrentVoters"] == "[" + ", ".join(
        f'{{"id": {nd.id}, "endpoints": ["CONTROLLER://127.0.0.1:{nd.controller_port}"]}}'
        for nd in cluster.nodes[:3]) + "]"
    assert s["CurrentObservers"] == '[{"id": 4}]'
    # A client nobody here wrote reads the same (kafka-python asks for DescribeQuorum v2).
    a = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        q = a.describe_metadata_quorum()
    finally:
        a.close()
    [t] = q["topics"]
    [p] = t["partitions"]
    assert (t["topic_name"], p["partition_index"], p["error"]) == ("__cluster_metadata", 0, None)
    assert p["leader_id"] == controller and p["high_watermark"] >= hw, q
    assert sorted(v["replica_id"] for v in p["current_voters"]) == [1, 2, 3], q
    assert [o["replica_id"] for o in p["observers"]] == [4], q
    assert sorted(n["node_id"] for n in q["nodes"]) == [1, 2, 3], q

    # Every metadata change moves the high watermark; the voters and the observer catch up.
    tc.create(cluster, "quorum-t", 1, 3)
    wait_for(lambda: int(status(cluster.bootstrap)["HighWatermark"]) > hw,
             what="the high watermark to move after a topic was created")

    def caught_up():
        rows = replication(cluster.bootstrap)
        return rows if all(r["Lag"] == "0" for r in rows) else None

    rows = wait_for(caught_up, what="every replica of the metadata log to catch up")
    assert [(int(r["NodeId"]), r["Status"]) for r in rows][0] == (controller, "Leader")
    assert sorted((int(r["NodeId"]), r["Status"]) for r in rows[1:]) == sorted(
        [(i, "Follower") for i in (1, 2, 3) if i != controller] + [(4, "Observer")])
    assert len({r["LogEndOffset"] for r in rows}) == 1
    assert all(r["DirectoryId"] == "AAAAAAAAAAAAAAAAAAAAAA" for r in rows)
    assert all(int(r["LastFetchTimestamp"]) > 0 for r in rows)
    human = replication(cluster.bootstrap, "--human-readable")
    assert all(re.fullmatch(r"\d+ ms ago", r["LastCaughtUpTimestamp"]) for r in human), human

    # A stopped observer falls behind while the metadata moves on.
    cluster.node(4).kill9()
    tc.create(cluster, "quorum-u", 1, 3)
    rows = replication(cluster.bootstrap)
    observer = next(r for r in rows if r["Status"] == "Observer")
    assert int(observer["Lag"]) > 0, rows

    # Kafka's argument checks.
    p = kafka_tool("metadata-quorum", "--bootstrap-server", cluster.bootstrap, "describe")
    assert p.returncode == 1 and p.stderr.strip() == (
        "One of --status or --replication must be specified with describe sub-command")


def test_a_single_node_broker_has_no_quorum_to_describe(broker):
    p = kafka_tool("metadata-quorum", "--bootstrap-server", broker.bootstrap, "describe",
                   "--status")
    assert p.returncode == 1 and "single-node mode" in p.stderr, p
