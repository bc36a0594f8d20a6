"""kafka-consumer-groups.sh against a real broker: the seed's two commands, a cross-check of the
tool's view of a live group against confluent-kafka's AdminClient, lag, offset resets, deletion,
and the errors Kafka's ConsumerGroupCommand prints."""

import socket
import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import kafka_tool, unique, wait_for
from helpers import create_topic, produce

HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
          "CONSUMER-ID", "HOST", "CLIENT-ID"]


def groups_tool(*args, **kw):
    return kafka_tool("consumer-groups", *args, **kw)


def table(stdout):
    """The non-blank lines of a table, split on whitespace."""
    return [line.split() for line in stdout.splitlines() if line.strip()]


def commit_half(broker, group, topic, partitions, per_partition):
    """Reads exactly half of each partition in `group` and commits what it read, then leaves."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    half = per_partition // 2
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = {p: 0 for p in range(partitions)}
    deadline = time.monotonic() + 30
    while any(n < half for n in seen.values()) and time.monotonic() < deadline:
        for m in c.consume(100, 0.5):
            assert not m.error(), m.error()
            p = m.partition()
            if seen[p] < half:
                seen[p] += 1
                if seen[p] == half:
                    c.pause([TopicPartition(topic, p)])
    assert all(n == half for n in seen.values()), seen
    c.commit(offsets=[TopicPartition(topic, p, half) for p in range(partitions)],
             asynchronous=False)
    c.close()


def produce_keyed_evenly(broker, topic, partitions, per_partition):
    """`per_partition` records in each partition, placed explicitly."""
    create_topic(broker, topic, partitions=partitions)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for part in range(partitions):
        for i in range(per_partition):
            p.produce(topic, value=f"{part}-{i}".encode(), partition=part)
    assert p.flush(30) == 0


def test_the_seeds_list_and_describe_commands(broker, tmp_path):
    topic, group = unique("seed-t"), unique("seed-g")
    produce_keyed_evenly(broker, topic, 2, 4)
    commit_half(broker, group, topic, 2, 4)

    # bin/kafka-consumer-groups.sh --bootstrap-server <kafka1 ip:port> --list
    out = groups_tool("--bootstrap-server", broker.bootstrap, "--list", check=True)
    assert group in out.stdout.splitlines()
    # The same through --command-config admin properties.
    config = tmp_path / "admin.properties"
    config.write_text("client.id=groups-tool\nrequest.timeout.ms=10000\n")
    out = groups_tool("--bootstrap-server", broker.bootstrap, "--list", "--command-config",
                      config, check=True)
    assert group in out.stdout.splitlines()

    # bin/kafka-consumer-groups.sh --bootstrap-server <ip:port> --group <group> --describe
    out = groups_tool("--bootstrap-server", broker.bootstrap, "--group", group, "--describe",
                      check=True)
    rows = table(out.stdout)
    assert rows[0] == HEADER
    assert [r[:6] for r in rows[1:]] == [[group, topic, "0", "2", "4", "2"],
                                        [group, topic, "1", "2", "4", "2"]]
    assert all(r[6:] == ["-", "-", "-"] for r in rows[1:])
    assert f"Consumer group '{group}' has no active members." in out.stderr
    # Kafka's column layout: each column padded to its width (at least 15), one space apart.
    header_line = [l for l in out.stdout.splitlines() if l.startswith("GROUP")][0]
    width = max(15, len(group))
    assert header_line.startswith("GROUP".ljust(width) + " " + "TOPIC".ljust(max(15, len(topic)))
                                  + " " + "PARTITION".ljust(10) + " " + "CURRENT-OFFSET".ljust(15))


def test_a_live_group_looks_the_same_as_confluent_kafkas_admin_sees_it(broker):
    topic, group = unique("live-t"), unique("live-g")
    produce_keyed_evenly(broker, topic, 4, 3)
    consumers = [Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                           "client.id": f"client-{i}", "auto.offset.reset": "earliest",
                           "enable.auto.commit": False, "session.timeout.ms": 10000,
                           "heartbeat.interval.ms": 200})
                 for i in range(2)]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    try:
        for c in consumers:
            c.subscribe([topic])

        def stable_with_all_assigned():
            for c in consumers:
                for m in c.consume(10, 0.1):
                    assert not m.error(), m.error()
            d = admin.describe_consumer_groups([group])[group].result(5)
            parts = [tp.partition for m in d.members for tp in m.assignment.topic_partitions]
            local = sorted(tp.partition for c in consumers for tp in c.assignment())
            if (d.state.name == "STABLE" and len(d.members) == 2
                    and sorted(parts) == [0, 1, 2, 3] and local == [0, 1, 2, 3]):
                return d
            return None

        desc = wait_for(stable_with_all_assigned, timeout=30, what="a stable group of two")
        # Commit on one partition so the offsets view has a current offset to show.
        owner = next(c for c in consumers if TopicPartition(topic, 0) in
                     [TopicPartition(tp.topic, tp.partition) for tp in c.assignment()])
        owner.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        expected_members = {
            m.member_id: (m.client_id, m.host,
                          sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions))
            for m in desc.members}
        listed = admin.list_consumer_groups().result(5)
        assert group in [g.group_id for g in listed.valid]

        # --describe --members --verbose: one row per member with its assignment.
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--describe", "--group", group,
                          "--members", "--verbose", check=True)
        rows = table(out.stdout)
        assert rows[0] == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS",
                           "CURRENT-EPOCH", "CURRENT-ASSIGNMENT", "TARGET-EPOCH",
                           "TARGET-ASSIGNMENT"]
        seen = {}
        for r in rows[1:]:
            assert r[0] == group
            member, host, client, n, _, assignment = r[1], r[2], r[3], int(r[4]), r[5], r[6]
            parts = sorted((assignment.split(":")[0], int(p))
                           for p in assignment.split(":")[1].split(","))
            assert n == len(parts)
            seen[member] = (client, host, parts)
        assert seen == expected_members

        # --describe (offsets): every partition with its owner as confluent-kafka sees it.
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--describe", "--group", group,
                          check=True)
        rows = table(out.stdout)
        assert rows[0] == HEADER
        owners = {p: (mid, host, client) for mid, (client, host, parts) in expected_members.items()
                  for (_, p) in parts}
        got = {int(r[2]): (r[6], r[7], r[8]) for r in rows[1:]}
        assert got == owners
        offsets = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)])[group].result(5)
        committed = {tp.partition: tp.offset for tp in offsets.topic_partitions if tp.offset >= 0}
        assert committed == {0: 1}
        for r in rows[1:]:
            p = int(r[2])
            assert r[4] == "3"
            if p in committed:
                assert (r[3], r[5]) == (str(committed[p]), str(3 - committed[p]))
            else:
                assert (r[3], r[5]) == ("-", "-")

        # --describe --state: coordinator, assignor, state and member count.
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--describe", "--group", group,
                          "--state", check=True)
        lines = [l for l in out.stdout.splitlines() if l.strip()]
        assert lines[0].split() == ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY",
                                    "STATE", "#MEMBERS"]
        row = lines[1].split()
        coordinator = desc.coordinator
        assert row == [group, f"{coordinator.host}:{coordinator.port}", f"({coordinator.id})",
                       desc.partition_assignor, "Stable", "2"]

        # --list --state Stable lists it; --list --state Empty does not.
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--list", "--state", "Stable",
                          check=True)
        rows = table(out.stdout)
        assert rows[0] == ["GROUP", "STATE"] and [group, "Stable"] in rows
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--list", "--state", "empty",
                          check=True)
        assert group not in out.stdout

        # An active group refuses resets and deletion, with Kafka's messages.
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--reset-offsets", "--group",
                          group, "--topic", topic, "--to-earliest", "--execute")
        assert (f"Error: Assignments can only be reset if the group '{group}' is inactive, "
                f"but the current state is Stable.") in out.stdout
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--delete", "--group", group)
        assert "Error: Deletion of some consumer groups failed:" in out.stdout
        assert (f"* Group '{group}' could not be deleted due to: "
                "org.apache.kafka.common.errors.GroupNotEmptyException: The group is not empty."
                ) in out.stdout
        offsets = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)])[group].result(5)
        assert {tp.partition: tp.offset for tp in offsets.topic_partitions
                if tp.offset >= 0} == {0: 1}
    finally:
        for c in consumers:
            c.close()


def test_lag_is_the_unconsumed_half_and_resets_move_the_committed_offsets(broker):
    topic, group = unique("lag-t"), unique("lag-g")
    produce_keyed_evenly(broker, topic, 3, 10)
    commit_half(broker, group, topic, 3, 10)
    b = broker.bootstrap

    rows = table(groups_tool("--bootstrap-server", b, "--describe", "--group", group,
                             check=True).stdout)
    assert {int(r[2]): (r[3], r[4], r[5]) for r in rows[1:]} == {
        p: ("5", "10", "5") for p in range(3)}

    def committed():
        c = Consumer({"bootstrap.servers": b, "group.id": group})
        try:
            return {tp.partition: tp.offset for tp in
                    c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)}
        finally:
            c.close()

    # --dry-run (and no --execute at all) prints the plan and changes nothing.
    for mode in (["--dry-run"], []):
        out = groups_tool("--bootstrap-server", b, "--reset-offsets", "--group", group,
                          "--topic", topic, "--to-earliest", *mode, check=True)
        rows = table(out.stdout)
        assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
        assert rows[1:] == [[group, topic, str(p), "0"] for p in range(3)]
        assert committed() == {0: 5, 1: 5, 2: 5}

    # --shift-by and --to-offset on chosen partitions, clamped to the log as Kafka clamps.
    out = groups_tool("--bootstrap-server", b, "--reset-offsets", "--group", group,
                      "--topic", f"{topic}:0,1", "--shift-by", "-2", "--execute", check=True)
    assert table(out.stdout)[1:] == [[group, topic, "0", "3"], [group, topic, "1", "3"]]
    assert committed() == {0: 3, 1: 3, 2: 5}
    out = groups_tool("--bootstrap-server", b, "--reset-offsets", "--group", group,
                      "--topic", f"{topic}:2", "--to-offset", "7", "--execute", check=True)
    assert table(out.stdout)[1:] == [[group, topic, "2", "7"]]
    out = groups_tool("--bootstrap-server", b, "--reset-offsets", "--group", group,
                      "--topic", f"{topic}:1", "--shift-by", "100", "--execute", check=True)
    assert table(out.stdout)[1:] == [[group, topic, "1", "10"]]
    assert committed() == {0: 3, 1: 10, 2: 7}
    rows = table(groups_tool("--bootstrap-server", b, "--describe", "--group", group,
                             check=True).stdout)
    assert {int(r[2]): r[5] for r in rows[1:]} == {0: "7", 1: "0", 2: "3"}

    # --to-latest by duration / datetime: a day ago is before every record, so offset 0.
    out = groups_tool("--bootstrap-server", b, "--reset-offsets", "--group", group,
                      "--all-topics", "--by-duration", "P1D", check=True)
    assert table(out.stdout)[1:] == [[group, topic, str(p), "0"] for p in range(3)]
    out = groups_tool("--bootstrap-server", b, "--reset-offsets", "--group", group,
                      "--all-topics", "--to-datetime", "2999-01-01T00:00:00.000Z", check=True)
    assert table(out.stdout)[-3:] == [[group, topic, str(p), "10"] for p in range(3)]

    # --to-earliest --execute, then a consumer of the group reads everything again from 0.
    groups_tool("--bootstrap-server", b, "--reset-offsets", "--group", group, "--all-topics",
                "--to-earliest", "--execute", check=True)
    assert committed() == {0: 0, 1: 0, 2: 0}
    c = Consumer({"bootstrap.servers": b, "group.id": group, "auto.offset.reset": "latest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    first = {}
    count = 0
    deadline = time.monotonic() + 30
    try:
        while count < 30 and time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                assert not m.error(), m.error()
                first.setdefault(m.partition(), m.offset())
                count += 1
    finally:
        c.close()
    assert count == 30 and first == {0: 0, 1: 0, 2: 0}


def test_delete_groups_and_offsets(broker):
    topic, group = unique("del-t"), unique("del-g")
    produce_keyed_evenly(broker, topic, 2, 4)
    commit_half(broker, group, topic, 2, 4)
    b = broker.bootstrap

    out = groups_tool("--bootstrap-server", b, "--delete-offsets", "--group", group,
                      "--topic", f"{topic}:1", check=True)
    assert f"Request succeeded for deleting offsets from group {group}." in out.stdout
    assert table(out.stdout)[1:] == [["TOPIC", "PARTITION", "STATUS"], [topic, "1", "Successful"]]
    rows = table(groups_tool("--bootstrap-server", b, "--describe", "--group", group,
                             check=True).stdout)
    assert [r[2] for r in rows[1:]] == ["0"]

    # --all-groups describes every group, this one included.
    rows = table(groups_tool("--bootstrap-server", b, "--describe", "--all-groups",
                             check=True).stdout)
    assert [group, topic, "0", "2", "4", "2", "-", "-", "-"] in rows

    out = groups_tool("--bootstrap-server", b, "--delete", "--group", group, check=True)
    assert out.stdout.strip() == f"Deletion of requested consumer groups ('{group}') was successful."
    assert group not in groups_tool("--bootstrap-server", b, "--list", check=True).stdout.split()

    # Deleting it again: Kafka's per-group failure, naming the exception.
    out = groups_tool("--bootstrap-server", b, "--delete", "--group", group)
    assert (f"* Group '{group}' could not be deleted due to: "
            "org.apache.kafka.common.errors.GroupIdNotFoundException: The group id does not exist."
            ) in out.stdout


def test_an_unknown_group_gets_kafkas_error(broker):
    group = unique("missing")
    for view in ([], ["--members"], ["--state"], ["--offsets"]):
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--describe", "--group", group,
                          *view)
        # Kafka prints the error on stdout and, like Kafka's ConsumerGroupCommand, exits 0.
        assert out.stdout.strip() == f"Error: Consumer group '{group}' does not exist.", out
        assert out.returncode == 0
        assert "GROUP" not in out.stdout


def test_bad_arguments_and_an_unreachable_server_fail_clearly(broker):
    out = groups_tool("--bootstrap-server", broker.bootstrap, "--describe")
    assert out.returncode == 1
    assert "Option [describe] takes one of these options: [all-groups], [group]" in out.stderr
    out = groups_tool("--bootstrap-server", broker.bootstrap, "--list", "--describe")
    assert out.returncode == 1 and "exactly one action" in out.stderr
    out = groups_tool("--bootstrap-server", broker.bootstrap, "--reset-offsets", "--group", "g",
                      "--all-topics")
    assert out.returncode == 1 and "scenarios" in out.stderr

    start = time.monotonic()
    out = groups_tool("--bootstrap-server", "127.0.0.1:1", "--list", "--timeout", "2000",
                      timeout=30)
    elapsed = time.monotonic() - start
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "panicked" not in out.stderr
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0], out.stderr
    assert elapsed < 15


def test_a_server_that_never_answers_fails_within_the_timeout():
    # A socket that accepts connections (in the backlog) but never answers a request.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        out = groups_tool("--bootstrap-server", addr, "--describe", "--group", "g",
                          "--timeout", "1000", timeout=30)
        elapsed = time.monotonic() - start
    assert out.returncode != 0
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "timed out" in lines[0], out.stderr
    assert elapsed < 8, elapsed


def test_a_kip_848_consumer_group_is_described_too(broker):
    topic, group = unique("kip848-t"), unique("kip848-g")
    produce_keyed_evenly(broker, topic, 2, 2)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "group.protocol": "consumer", "client.id": "new-protocol",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    try:
        c.subscribe([topic])

        def assigned():
            for m in c.consume(10, 0.1):
                assert not m.error(), m.error()
            d = admin.describe_consumer_groups([group])[group].result(5)
            if (str(d.state).endswith("STABLE") and len(d.members) == 1
                    and len(d.members[0].assignment.topic_partitions) == 2):
                return d
            return None

        d = wait_for(assigned, timeout=30, what="the KIP-848 member to own both partitions")
        member = d.members[0]
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--describe", "--group", group,
                          "--members", "--verbose", check=True)
        rows = table(out.stdout)
        assert rows[1][:5] == [group, member.member_id, member.host, "new-protocol", "2"]
        assert rows[1][6] == f"{topic}:0,1" and rows[1][8] == f"{topic}:0,1"
        assert rows[1][5] != "-" and rows[1][7] != "-"  # member and target epochs
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--describe", "--group", group,
                          check=True)
        rows = table(out.stdout)
        assert [(r[2], r[6], r[8]) for r in rows[1:]] == [
            ("0", member.member_id, "new-protocol"), ("1", member.member_id, "new-protocol")]
        out = groups_tool("--bootstrap-server", broker.bootstrap, "--describe", "--group", group,
                          "--state", check=True)
        row = table(out.stdout)[1]
        assert row[3:] == [d.partition_assignor, "Stable", "1"]
    finally:
        c.close()
