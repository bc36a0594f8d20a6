"""kafka-leader-election.sh against a real broker: Kafka's output lines, exit codes and flag
checks (LeaderElectionCommand's messages)."""

import json

from conftest import kafka_tool, unique


def elect(broker, *args):
    return kafka_tool("leader-election", "--bootstrap-server", broker.bootstrap, *args)


def create(broker, partitions=2):
    topic = unique("elect")
    kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", topic,
               "--partitions", partitions, check=True)
    return topic


def test_preferred_election_on_a_fresh_topic_is_not_needed(broker):
    topic = create(broker)
    r = elect(broker, "--election-type", "preferred", "--topic", topic, "--partition", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Valid replica already elected for partitions {topic}-1\n"
    # Every partition: the broker leaves out those that need no election, so nothing to say.
    r = elect(broker, "--election-type", "PREFERRED", "--all-topic-partitions")
    assert r.returncode == 0, r.stderr
    assert "Error" not in r.stdout


def test_an_unknown_partition_is_an_error_line_and_exit_1(broker):
    topic = create(broker)
    r = elect(broker, "--election-type", "Preferred", "--topic", topic, "--partition", "7")
    assert r.returncode == 1
    assert r.stdout == (f"Error completing leader election (PREFERRED) for partition: {topic}-7: "
                        "org.apache.kafka.common.errors.UnknownTopicOrPartitionException: "
                        "This server does not host this topic-partition.\n")
    assert "1 replica(s) could not be elected" in r.stderr


def test_a_json_file_names_the_partitions(broker, tmp_path):
    topic = create(broker, partitions=3)
    path = tmp_path / "election.json"
    path.write_text(json.dumps({"partitions": [{"topic": topic, "partition": 2},
                                               {"topic": topic, "partition": 0},
                                               {"topic": unique("missing"), "partition": 0}]}))
    r = elect(broker, "--election-type", "unclean", "--path-to-json-file", path)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0] == f"Valid replica already elected for partitions {topic}-0, {topic}-2"
    assert len(lines) == 2 and lines[1].startswith("Error completing leader election (UNCLEAN)")
    assert "UnknownTopicOrPartitionException" in lines[1]
    path.write_text(json.dumps({"partitions": [{"topic": topic, "partition": 1}]}))
    r = elect(broker, "--election-type", "preferred", "--path-to-json-file", path)
    assert r.returncode == 0 and r.stdout == f"Valid replica already elected for partitions {topic}-1\n"
    path.write_text(json.dumps({"partitions": [{"topic": topic, "partition": 1}] * 2}))
    r = elect(broker, "--election-type", "preferred", "--path-to-json-file", path)
    assert r.returncode == 1
    assert f"Replica election data contains duplicate partitions: [{topic}-1]" in r.stderr


def test_bad_flags_get_kafkas_messages_and_exit_1(broker):
    cases = [
        (["--all-topic-partitions"], "Missing required option(s): election-type"),
        (["--election-type", "preferred", "--all-topic-partitions", "--topic", "t",
          "--partition", "0"],
         "One and only one of the following options is required: topic, all-topic-partitions, "
         "path-to-json-file"),
        (["--election-type", "preferred"],
         "One and only one of the following options is required"),
        (["--election-type", "preferred", "--topic", "t"], "Missing required option(s): partition"),
        (["--election-type", "preferred", "--all-topic-partitions", "--partition", "0"],
         "Option partition is only allowed if topic is used"),
        (["--election-type", "fastest", "--all-topic-partitions"],
         "Cannot parse argument 'fastest' of option election-type"),
    ]
    for args, message in cases:
        r = elect(broker, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert r.stdout == "" and "panicked" not in r.stderr
    r = kafka_tool("leader-election", "--election-type", "preferred", "--all-topic-partitions")
    assert r.returncode == 1
    assert "Missing required option(s): bootstrap-server" in r.stderr
