"""kafka-topics.sh and kafka-delete-records.sh against a real broker: the seed's commands, Kafka's
output layout line by line, errors and exit codes, cross-checked with confluent-kafka."""

import json
import socket
import time

from confluent_kafka import Consumer, TopicCollection, TopicPartition

from conftest import kafka_tool, unique, wait_for
from helpers import admin, create_topic, produce


def closed_port():
    """A local port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def assert_clean_failure(proc):
    """Non-zero exit with a message on stderr and no stack trace."""
    assert proc.returncode != 0, proc
    assert proc.stderr.strip(), proc
    for marker in ("panicked", "Traceback", "stack backtrace", "RUST_BACKTRACE"):
        assert marker not in proc.stderr, proc.stderr


def describe_with_confluent(broker, name):
    a = admin(broker)
    fs = a.describe_topics(TopicCollection([name]))
    return fs[name].result(15)


def test_seed_create_with_topics_typo_gets_a_did_you_mean(broker):
    name = unique("seed-typo")
    # The seed's first command verbatim: two servers separated by a space, --topics for --topic.
    p = kafka_tool("topics", "--create", "--bootstrap-server", broker.bootstrap, broker.bootstrap,
                   "--topics", name)
    assert_clean_failure(p)
    assert p.returncode == 1
    assert "'--topics'" in p.stderr and "did you mean '--topic'" in p.stderr, p.stderr
    # The seed's second, multi-line create also ends in --topics.
    p = kafka_tool("topics", "--create", "--bootstrap-server", broker.bootstrap, broker.bootstrap,
                   "--partitions", "3", "--replication-factor", "1",
                   "--config", "retention.ms=172800000", "--topics", name)
    assert_clean_failure(p)
    assert p.returncode == 1
    assert "did you mean '--topic'" in p.stderr, p.stderr
    assert name not in admin(broker).list_topics(timeout=10).topics


def test_seed_create_list_describe_and_alter(broker):
    name = unique("seed")
    p = kafka_tool("topics", "--create", "--bootstrap-server", broker.bootstrap, broker.bootstrap,
                   "--partitions", "3", "--replication-factor", "1",
                   "--config", "retention.ms=172800000", "--topic", name, check=True)
    assert p.stdout == f"Created topic {name}.\n"

    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--list", check=True)
    listed = p.stdout.splitlines()
    assert name in listed
    assert listed == sorted(listed)

    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--describe", "--topic", name,
                   check=True)
    lines = p.stdout.splitlines()
    assert len(lines) == 4, p.stdout
    theirs = describe_with_confluent(broker, name)
    # Kafka's tools print ids in URL-safe base64 (Java's Uuid.toString); librdkafka prints the
    # same 16 bytes in standard base64, so only '+' and '/' differ.
    their_id = str(theirs.topic_id).replace("+", "-").replace("/", "_")
    assert lines[0].split("\t") == [
        f"Topic: {name}", f"TopicId: {their_id}", "PartitionCount: 3",
        "ReplicationFactor: 1", "Configs: retention.ms=172800000"]
    by_partition = {p.id: p for p in theirs.partitions}
    assert sorted(by_partition) == [0, 1, 2]
    for i, line in enumerate(lines[1:]):
        part = by_partition[i]
        replicas = ",".join(str(n.id) for n in part.replicas)
        isr = ",".join(str(n.id) for n in part.isr)
        fields = line.split("\t")
        assert fields[0] == "" and fields[1:6] == [
            f"Topic: {name}", f"Partition: {i}", f"Leader: {part.leader.id}",
            f"Replicas: {replicas}", f"Isr: {isr}"], line
        # Kafka 4's trailing fields, as the broker reports them through DescribeTopicPartitions.
        assert fields[6].startswith("Elr: ") and fields[7].startswith("LastKnownElr: "), line

    # The seed's alter, increasing: prints nothing (Kafka 3.x/4.x), confluent sees 5 partitions.
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--topic", name, "--alter",
                   "--partitions", "5", check=True)
    assert p.stdout == ""
    wait_for(lambda: len(describe_with_confluent(broker, name).partitions) == 5,
             what="5 partitions")
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--describe", "--topic", name,
                   check=True)
    assert "\tPartitionCount: 5\t" in p.stdout.splitlines()[0]
    assert len(p.stdout.splitlines()) == 6


def test_alter_to_fewer_or_equal_partitions_fails(broker):
    name = unique("shrink")
    create_topic(broker, name, partitions=3)
    for count in ("2", "3"):
        p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--topic", name,
                       "--alter", "--partitions", count)
        assert_clean_failure(p)
        assert p.returncode == 1
        assert "The number of partitions for a topic can only be increased" in p.stderr, p.stderr
    assert len(describe_with_confluent(broker, name).partitions) == 3


def test_create_existing_topic_fails_unless_if_not_exists(broker):
    name = unique("exists")
    create_topic(broker, name)
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", name)
    assert_clean_failure(p)
    assert p.returncode == 1
    assert p.stderr.strip() == f"Error while executing topic command : Topic '{name}' already exists."
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", name,
                   "--if-not-exists", check=True)
    assert p.stdout == ""


def test_create_with_replica_assignment_and_bad_config(broker):
    name = unique("assigned")
    kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", name,
               "--replica-assignment", "1,1", check=True)
    part_leaders = [p.leader.id for p in describe_with_confluent(broker, name).partitions]
    assert part_leaders == [1, 1]
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic",
                   unique("badcfg"), "--config", "retention.ms=soon")
    assert_clean_failure(p)
    assert "retention.ms" in p.stderr, p.stderr
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic",
                   unique("badcfg"), "--config", "retention.ms")
    assert_clean_failure(p)
    assert "key=val" in p.stderr, p.stderr


def test_delete_and_missing_topics(broker):
    name = unique("doomed")
    create_topic(broker, name)
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--delete", "--topic", name,
                   check=True)
    assert p.stdout == ""
    wait_for(lambda: name not in admin(broker).list_topics(timeout=10).topics, what="deletion")

    missing = unique("missing")
    for action in (["--delete"], ["--describe"], ["--alter", "--partitions", "4"]):
        p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, *action,
                       "--topic", missing)
        assert_clean_failure(p)
        assert p.returncode == 1
        assert p.stderr.strip() == f"Topic '{missing}' does not exist as expected", p.stderr
        p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, *action,
                       "--topic", missing, "--if-exists", check=True)
        assert p.stdout == ""


def test_topic_is_a_whole_name_regex(broker):
    prefix = unique("rx")
    names = [f"{prefix}-a", f"{prefix}-b", f"{prefix}-b-extra"]
    for n in names:
        create_topic(broker, n)
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--list",
                   "--topic", f"{prefix}-.*", check=True)
    assert p.stdout.splitlines() == names
    # A plain name matches only itself, not names it is a prefix of.
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--describe",
                   "--topic", f"{prefix}-b", check=True)
    topic_lines = [l for l in p.stdout.splitlines() if l.startswith("Topic: ")]
    assert [l.split("\t")[0] for l in topic_lines] == [f"Topic: {prefix}-b"]
    # Commas are alternatives, as in Kafka's topic filter.
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--describe",
                   "--topic", f"{prefix}-a,{prefix}-b-extra", check=True)
    topic_lines = [l.split("\t")[0] for l in p.stdout.splitlines() if l.startswith("Topic: ")]
    assert topic_lines == [f"Topic: {prefix}-a", f"Topic: {prefix}-b-extra"]
    # --describe without --topic describes every topic.
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--describe", check=True)
    described = {l.split("\t")[0][len("Topic: "):] for l in p.stdout.splitlines()
                 if l.startswith("Topic: ")}
    assert set(names) <= described
    assert described == set(admin(broker).list_topics(timeout=10).topics)
    # Deleting by regex removes every match.
    kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--delete",
               "--topic", f"{prefix}-b.*", check=True)
    wait_for(lambda: {n for n in admin(broker).list_topics(timeout=10).topics
                      if n.startswith(prefix)} == {f"{prefix}-a"}, what="regex deletion")


def test_partition_filters_and_internal_topics(broker):
    name = unique("healthy")
    create_topic(broker, name, partitions=2)
    base = ["--bootstrap-server", broker.bootstrap, "--describe", "--topic", name]
    for flag in ("--under-replicated-partitions", "--unavailable-partitions",
                 "--under-min-isr-partitions"):
        p = kafka_tool("topics", *base, flag, check=True)
        assert p.stdout == "", (flag, p.stdout)
    # min.insync.replicas=1 and one replica in sync: every partition is at min ISR, and the
    # report prints partition lines only.
    p = kafka_tool("topics", *base, "--at-min-isr-partitions", check=True)
    lines = p.stdout.splitlines()
    assert [l.split("\t")[2] for l in lines] == ["Partition: 0", "Partition: 1"], p.stdout

    # A committed offset makes the broker create __consumer_offsets.
    produce(broker, name, [(b"k", b"v")])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("g"),
                  "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(name, 0, 1)], asynchronous=False)
    finally:
        c.close()
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--list", check=True)
    assert "__consumer_offsets" in p.stdout.splitlines()
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--list",
                   "--exclude-internal", check=True)
    assert "__consumer_offsets" not in p.stdout.splitlines() and name in p.stdout.splitlines()


def test_exactly_one_action_and_bootstrap_required(broker):
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--topic", "x")
    assert_clean_failure(p)
    assert "exactly one action" in p.stderr
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--list", "--describe")
    assert_clean_failure(p)
    assert "exactly one action" in p.stderr
    p = kafka_tool("topics", "--list")
    assert_clean_failure(p)
    assert "--bootstrap-server must be specified" in p.stderr
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--create")
    assert_clean_failure(p)
    assert "topic" in p.stderr
    p = kafka_tool("topics", "--help")
    assert p.returncode == 0 and "--replication-factor" in p.stdout


def test_unreachable_bootstrap_server_fails_fast(tmp_path):
    config = tmp_path / "admin.properties"
    config.write_text("request.timeout.ms=3000\n")
    started = time.monotonic()
    p = kafka_tool("topics", "--bootstrap-server", f"127.0.0.1:{closed_port()}", "--list",
                   "--command-config", config, timeout=30)
    elapsed = time.monotonic() - started
    assert_clean_failure(p)
    assert "cannot connect" in p.stderr or "no broker" in p.stderr, p.stderr
    assert elapsed < 10, elapsed


def test_silent_server_times_out_within_the_request_timeout(tmp_path):
    # A socket that completes TCP handshakes but never answers a request.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    config = tmp_path / "admin.properties"
    config.write_text("request.timeout.ms=2000\n")
    try:
        started = time.monotonic()
        p = kafka_tool("topics", "--bootstrap-server", f"127.0.0.1:{silent.getsockname()[1]}",
                       "--describe", "--command-config", config, timeout=30)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert_clean_failure(p)
    assert "timed out" in p.stderr, p.stderr
    assert 1.5 < elapsed < 8, elapsed


def test_describe_by_topic_id_and_small_pages(broker):
    name = unique("byid")
    create_topic(broker, name, partitions=4)
    full = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--describe",
                      "--topic", name, check=True).stdout
    topic_id = full.split("\tTopicId: ")[1].split("\t")[0]
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--describe",
                   "--topic-id", topic_id, check=True)
    assert p.stdout == full
    # One partition per DescribeTopicPartitions response: the cursor pages through all four.
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--describe",
                   "--topic", name, "--partition-size-limit-per-response", "1", check=True)
    assert p.stdout == full
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--describe",
                   "--topic-id", "AAAAAAAAAAAAAAAAAAAAAQ")
    assert_clean_failure(p)
    assert p.stderr.strip() == "TopicId 'AAAAAAAAAAAAAAAAAAAAAQ' does not exist as expected"


def test_topics_with_overrides_lists_only_overridden_topics(broker):
    prefix = unique("ovr")
    create_topic(broker, f"{prefix}-plain")
    create_topic(broker, f"{prefix}-custom", config={"retention.ms": "3600000"})
    p = kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--describe",
                   "--topic", f"{prefix}-.*", "--topics-with-overrides", check=True)
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Topic: {prefix}-custom\t"), p.stdout
    assert lines[0].endswith("\tConfigs: retention.ms=3600000")


# --- kafka-delete-records -------------------------------------------------------------------

def test_delete_records_with_the_seeds_json(broker, tmp_path):
    name = unique("trim")
    create_topic(broker, name)
    produce(broker, name, [(None, f"v{i}".encode()) for i in range(5)])
    offsets = tmp_path / "offsets.json"
    offsets.write_text(json.dumps(
        {"partitions": [{"topic": name, "partition": 0, "offset": 3}], "version": 1}))
    p = kafka_tool("delete-records", "--bootstrap-server", broker.bootstrap,
                   "--offset-json-file", offsets, check=True)
    assert p.stdout.splitlines() == [
        "Executing records delete operation",
        "Records delete operation completed:",
        f"partition: {name}-0\tlow_watermark: 3"]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("wm")})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(name, 0), timeout=10)
    finally:
        c.close()
    assert (low, high) == (3, 5)


def test_delete_records_malformed_json(broker, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"partitions": [')
    p = kafka_tool("delete-records", "--bootstrap-server", broker.bootstrap,
                   "--offset-json-file", bad)
    assert_clean_failure(p)
    assert "not a valid JSON" in p.stderr, p.stderr
    p = kafka_tool("delete-records", "--bootstrap-server", broker.bootstrap,
                   "--offset-json-file", tmp_path / "absent.json")
    assert_clean_failure(p)


def test_delete_records_missing_topic_gets_a_partition_error(broker, tmp_path):
    missing = unique("nosuch")
    offsets = tmp_path / "offsets.json"
    offsets.write_text(json.dumps(
        {"partitions": [{"topic": missing, "partition": 0, "offset": 1}], "version": 1}))
    p = kafka_tool("delete-records", "--bootstrap-server", broker.bootstrap,
                   "--offset-json-file", offsets)
    # Kafka reports a partition's failure on its line and still exits 0.
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-1].startswith(f"partition: {missing}-0\terror: "), p.stdout
    assert "UnknownTopicOrPartition" in lines[-1] or "does not host" in lines[-1], lines[-1]
