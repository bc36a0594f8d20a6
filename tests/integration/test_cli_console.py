"""kafka-console-producer and kafka-console-consumer through the bin/ wrappers, against a real
broker, checked with clients nobody here wrote (kcat, confluent-kafka). The seed's commands
(kafka-notes.ko.txt, lines 95-145) are used verbatim apart from the placeholders."""

import os
import signal
import subprocess
import tempfile
import threading
import time

from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition

from conftest import BIN_DIR, BROOK_BIN, kafka_tool, unique, wait_for
from helpers import admin, consume_all, create_topic, kafka_partition, produce


def kcat(broker, *args, timeout=30):
    proc = subprocess.run(["kcat", "-b", broker.bootstrap, *args], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class Running:
    """A tool running in the background, its stdout collected line by line."""

    def __init__(self, tool, *args):
        env = dict(os.environ, BROOK_BIN=BROOK_BIN)
        self.proc = subprocess.Popen([str(BIN_DIR / f"kafka-{tool}.sh"), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, env=env)
        self.lines = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def interrupt(self, timeout=15):
        """SIGINT (Ctrl-C); returns (exit code, stderr)."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code, self.proc.stderr.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def committed(broker, group, topic, partitions):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def test_seed_producer_and_from_beginning_consumer(broker):
    topic = unique("seed")
    # The seed: bin/kafka-console-producer.sh --bootstrap-server <ip:port> --topic <topic>
    p = kafka_tool("console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   input="hello\nworld\n", check=True)
    assert p.stdout == "" and p.stderr == ""
    got = consume_all(broker, topic, [0], 2)
    assert [(m.key(), m.value()) for m in got] == [(None, b"hello"), (None, b"world")]
    # The seed: bin/kafka-console-consumer.sh --bootstrap-server <ip:port> --topic <topic>
    #   --from-beginning   (runs until Ctrl-C)
    c = Running("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                "--from-beginning")
    try:
        wait_for(lambda: len(c.lines) >= 2, what="the two records printed")
        code, err = c.interrupt()
    finally:
        c.kill()
    assert c.lines == ["hello", "world"]
    assert code == 0
    assert "Processed a total of 2 messages" in err


def test_seed_keyed_producer_places_records_as_kafka_and_kcat_reads_them(broker):
    topic = unique("keyed")
    create_topic(broker, topic, partitions=3)
    keys = [f"abc{i}" for i in range(12)]
    lines = "".join(f"{k}:ppp{i}\n" for i, k in enumerate(keys))
    # The seed: --property "parse.key=true" --property "key.separator=:"
    kafka_tool("console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
               "--property", "parse.key=true", "--property", "key.separator=:",
               input=lines, check=True)
    out = kcat(broker, "-C", "-t", topic, "-e", "-q", "-f", "%k|%s|%p\n")
    rows = sorted(line.split("|") for line in out.splitlines())
    expected = sorted([k, f"ppp{i}", str(kafka_partition(k.encode(), 3))]
                      for i, k in enumerate(keys))
    assert rows == expected


def test_seed_group_consumer_prints_keys_commits_and_resumes(broker):
    topic = unique("grp")
    group = unique("G")
    create_topic(broker, topic, partitions=2)
    # murmur2_random: librdkafka's name for Kafka's partitioner, so kafka_partition applies.
    produce(broker, topic, [(b"abc1", b"ppp123"), (b"abc2", b"ppp456"), (b"abc3", b"ppp789")],
            partitioner="murmur2_random")
    seed = ["--bootstrap-server", broker.bootstrap, "--topic", topic,
            "--property", "print.key=true", "--property", "key.separator=-",
            "--group", group, "--from-beginning"]
    c = Running("console-consumer", *seed)
    try:
        wait_for(lambda: len(c.lines) >= 3, what="three records printed")
        code, err = c.interrupt()
    finally:
        c.kill()
    assert sorted(c.lines) == ["abc1-ppp123", "abc2-ppp456", "abc3-ppp789"]
    assert code == 0 and "Processed a total of 3 messages" in err
    ends = {}
    for k in (b"abc1", b"abc2", b"abc3"):
        p = kafka_partition(k, 2)
        ends[p] = ends.get(p, 0) + 1
    assert committed(broker, group, topic, 2) == {p: ends.get(p, -1001) for p in range(2)}
    # A second run in the same group prints only what is new.
    produce(broker, topic, [(b"abc4", b"new1"), (b"abc5", b"new2")])
    again = kafka_tool("console-consumer", *seed, "--timeout-ms", "3000", timeout=30)
    assert again.returncode == 0, again.stderr
    assert sorted(again.stdout.splitlines()) == ["abc4-new1", "abc5-new2"]
    assert "Processed a total of 2 messages" in again.stderr


def test_a_keyless_line_with_parse_key_fails_as_kafka_does(broker):
    topic = unique("nokey")
    r = kafka_tool("console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--property", "parse.key=true", "--property", "key.separator=:",
                   input="k1:v1\nnokey\nk3:v3\n")
    assert r.returncode != 0
    assert "No key separator found on line number 2: 'nokey'" in r.stderr
    assert "Traceback" not in r.stderr and "panicked" not in r.stderr
    # The line before the bad one was sent; nothing after it.
    got = consume_all(broker, topic, [0], 1)
    assert (got[0].key(), got[0].value()) == (b"k1", b"v1")
    # ignore.error=true: the whole line becomes the value of a keyless record.
    r = kafka_tool("console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--property", "parse.key=true", "--property", "key.separator=:",
                   "--property", "ignore.error=true", input="nokey\n", check=True)
    got = consume_all(broker, topic, [0], 2)
    assert (got[1].key(), got[1].value()) == (None, b"nokey")


def test_every_print_property_on_records_from_confluent_kafka(broker):
    topic = unique("print")
    create_topic(broker, topic, partitions=1)
    ts = 1_700_000_000_123
    produce(broker, topic, [
        (b"k1", b"v1", [("h1", b"x"), ("h2", b"y")], ts),
        (None, b"v2", None, ts + 1),
        (b"k3", None, [("h3", None)], ts + 2),
    ])
    r = kafka_tool("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--from-beginning", "--max-messages", "3",
                   "--property", "print.timestamp=true", "--property", "print.partition=true",
                   "--property", "print.offset=true", "--property", "print.headers=true",
                   "--property", "print.key=true", "--property", "key.separator=|",
                   check=True)
    assert r.stdout.splitlines() == [
        f"CreateTime:{ts}|Partition:0|Offset:0|h1:x,h2:y|k1|v1",
        f"CreateTime:{ts + 1}|Partition:0|Offset:1|NO_HEADERS|null|v2",
        f"CreateTime:{ts + 2}|Partition:0|Offset:2|h3:null|k3|null",
    ]
    # Kafka 4's --formatter-property, other separators, the null literal, no value.
    r = kafka_tool("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--from-beginning", "--max-messages", "3",
                   "--formatter-property", "print.key=true",
                   "--formatter-property", "print.value=false",
                   "--formatter-property", "print.headers=true",
                   "--formatter-property", "headers.separator=;",
                   "--formatter-property", "null.literal=<none>",
                   "--formatter-property", "line.separator=#", check=True)
    assert r.stdout == "h1:x;h2:y\tk1#NO_HEADERS\t<none>#h3:<none>\tk3#"


def test_max_messages_and_timeout_stop_the_consumer(broker):
    topic = unique("stop")
    produce(broker, topic, [(None, f"m{i}".encode()) for i in range(5)])
    group = unique("max")
    r = kafka_tool("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--from-beginning", "--max-messages", "3", "--group", group, check=True)
    assert r.stdout.splitlines() == ["m0", "m1", "m2"]
    assert "Processed a total of 3 messages" in r.stderr
    # All five were fetched together; only the three printed count as consumed.
    assert committed(broker, group, topic, 1) == {0: 3}
    start = time.monotonic()
    r = kafka_tool("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--from-beginning", "--timeout-ms", "1500", timeout=30)
    took = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"m{i}" for i in range(5)]
    assert "TimeoutException" in r.stderr and "Processed a total of 5 messages" in r.stderr
    assert took < 10, took


def test_partition_and_offset(broker):
    topic = unique("part")
    create_topic(broker, topic, partitions=2)
    p = kafka_partition(b"same", 2)
    produce(broker, topic, [(b"same", f"v{i}".encode()) for i in range(5)],
            partitioner="murmur2_random")
    base = ["--bootstrap-server", broker.bootstrap, "--topic", topic, "--partition", p,
            "--property", "print.offset=true"]
    r = kafka_tool("console-consumer", *base, "--offset", "2", "--max-messages", "3", check=True)
    assert r.stdout.splitlines() == ["Offset:2\tv2", "Offset:3\tv3", "Offset:4\tv4"]
    r = kafka_tool("console-consumer", *base, "--offset", "earliest", "--max-messages", "1",
                   check=True)
    assert r.stdout.splitlines() == ["Offset:0\tv0"]
    # latest (the default): only what arrives afterwards; the other partition stays empty.
    r = kafka_tool("console-consumer", *base, "--timeout-ms", "1000", timeout=30)
    assert r.returncode == 0 and r.stdout == ""
    r = kafka_tool("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--partition", 1 - p, "--from-beginning", "--timeout-ms", "1000", timeout=30)
    assert r.returncode == 0 and r.stdout == ""
    r = kafka_tool("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--offset", "2")
    assert r.returncode == 1 and "The partition is required when offset is specified" in r.stderr


def test_include_regex_reads_every_matching_topic(broker):
    prefix = unique("inc")
    for name in ("a", "b", "other"):
        t = f"{prefix}-{name}" if name != "other" else unique("zzz")
        produce(broker, t, [(None, f"from-{name}".encode())])
    r = kafka_tool("console-consumer", "--bootstrap-server", broker.bootstrap,
                   "--include", f"{prefix}-(a|b)", "--from-beginning", "--timeout-ms", "3000",
                   timeout=30)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["from-a", "from-b"]


def test_producer_options_headers_and_config_files(broker):
    topic = unique("opts")
    with tempfile.NamedTemporaryFile("w", suffix=".properties", delete=False) as f:
        f.write("# producer settings\nacks=1\nlinger.ms=0\n")
    try:
        r = kafka_tool("console-producer", "--bootstrap-server", broker.bootstrap,
                       "--topic", topic, "--producer.config", f.name, "--compression-codec",
                       "--sync", "--producer-property", "client.id=mine",
                       "--property", "parse.headers=true", "--property", "parse.key=true",
                       "--property", "null.marker=NULL",
                       input="h1:a,h2:NULL\tk1\tv1\nNULL\tNULL\tv2\n", check=True)
    finally:
        os.unlink(f.name)
    got = consume_all(broker, topic, [0], 2)
    assert got[0].headers() == [("h1", b"a"), ("h2", None)]
    assert (got[0].key(), got[0].value()) == (b"k1", b"v1")
    assert (got[1].headers(), got[1].key(), got[1].value()) == (None, None, b"v2")
    r = kafka_tool("console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--producer-property", "no.such.setting=1", input="x\n")
    assert r.returncode != 0 and "no.such.setting" in r.stderr


def test_unknown_topic_and_unreachable_server_fail_in_bounded_time(broker_factory):
    b = broker_factory(auto_create_topics_enable="false")
    topic = unique("missing")
    start = time.monotonic()
    r = kafka_tool("console-producer", "--bootstrap-server", b.bootstrap, "--topic", topic,
                   "--max-block-ms", "1500", input="a\n", timeout=30)
    assert time.monotonic() - start < 10
    assert r.returncode != 0
    assert (f"Error when sending message to topic {topic} with key: null, value: 1 bytes "
            f"with error: Topic {topic} not present in metadata after 1500 ms.") in r.stderr
    start = time.monotonic()
    r = kafka_tool("console-consumer", "--bootstrap-server", b.bootstrap, "--topic", topic,
                   "--timeout-ms", "1500", timeout=30)
    assert time.monotonic() - start < 10
    assert r.returncode == 1 and "not present in metadata" in r.stderr
    assert "Processed a total of 0 messages" in r.stderr
    # Nothing listens on this port any more.
    port = b.port
    b.stop()
    for tool, stdin in (("console-producer", "x\n"), ("console-consumer", None)):
        start = time.monotonic()
        r = kafka_tool(tool, "--bootstrap-server", f"127.0.0.1:{port}", "--topic", topic,
                       input=stdin, timeout=30)
        assert time.monotonic() - start < 10, tool
        assert r.returncode != 0, tool
        assert f"127.0.0.1:{port}" in r.stderr, r.stderr
        assert "panicked" not in r.stderr


def test_compression_codec_and_sync_reach_the_log(broker):
    from wire import Wire, batches
    for flags, codec in ((["--compression-codec"], 1), (["--compression-codec", "zstd"], 4),
                         ([], 0)):
        topic = unique("codec")
        kafka_tool("console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   *flags, input="one\ntwo\nthree\n", check=True)
        error, _, _, data = Wire(broker.bootstrap).fetch(topic, 0, 0)
        assert error == 0
        found = batches(data)
        assert sum(b["count"] for b in found) == 3
        assert {b["attributes"] & 7 for b in found} == {codec}, flags
    # --sync: each line waits for its acknowledgement, so each is a batch of its own.
    topic = unique("sync")
    kafka_tool("console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
               "--sync", input="one\ntwo\nthree\n", check=True)
    found = batches(Wire(broker.bootstrap).fetch(topic, 0, 0)[3])
    assert [b["count"] for b in found] == [1, 1, 1]


def test_a_record_the_broker_refuses_is_reported_and_fails_the_run(broker):
    topic = unique("big")
    create_topic(broker, topic, config={"max.message.bytes": "200"})
    r = kafka_tool("console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   input="x" * 1000 + "\n", timeout=30)
    assert r.returncode == 1
    assert (f"Error when sending message to topic {topic} with key: null, value: 1000 bytes "
            "with error: ") in r.stderr
    assert "MessageTooLarge" in r.stderr or "MESSAGE_TOO_LARGE" in r.stderr, r.stderr


def test_sigterm_and_a_closed_stdout_end_the_consumer_cleanly(broker):
    topic = unique("pipe")
    produce(broker, topic, [(None, b"first")])
    c = Running("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                "--from-beginning")
    try:
        wait_for(lambda: c.lines == ["first"], what="the first record printed")
        c.proc.send_signal(signal.SIGTERM)
        assert c.proc.wait(15) == 0
        assert "Processed a total of 1 messages" in c.proc.stderr.read()
    finally:
        c.kill()
    # The reader of stdout goes away (as `| head -1` does): the next write ends the consumer.
    env = dict(os.environ, BROOK_BIN=BROOK_BIN)
    proc = subprocess.Popen([str(BIN_DIR / "kafka-console-consumer.sh"), "--bootstrap-server",
                             broker.bootstrap, "--topic", topic, "--from-beginning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline() == b"first\n"
        proc.stdout.close()
        produce(broker, topic, [(None, b"second")])
        assert proc.wait(15) == 0
        err = proc.stderr.read().decode()
        assert "Unable to write to standard out, closing consumer." in err
        assert "Processed a total of 2 messages" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_contradictory_or_bad_flags_are_refused_before_connecting():
    server = ["--bootstrap-server", "127.0.0.1:9"]
    cases = [
        ("console-consumer", ["--topic", "t", "--include", "t.*"],
         "Exactly one of the following arguments is required"),
        ("console-consumer", ["--topic", "t", "--partition", "0", "--offset", "-3"],
         "The provided offset value '-3' is incorrect"),
        ("console-consumer", ["--topic", "t", "--partition", "0", "--group", "g"],
         "Options group and partition cannot be specified together"),
        ("console-consumer", ["--topic", "t", "--from-beginning",
                              "--consumer-property", "auto.offset.reset=latest"],
         "Can't simultaneously specify --from-beginning and 'auto.offset.reset=latest'"),
        ("console-consumer", ["--topic", "t", "--isolation-level", "bogus"], "isolation.level"),
        ("console-consumer", ["--topic", "t", "--value-deserializer", "com.example.Avro"],
         "Unsupported deserializer com.example.Avro"),
        ("console-consumer", ["--include", "("], "Invalid --include regex"),
        ("console-producer", ["--topic", "t", "--property", "headers.separator=:"],
         "headers.separator and headers.key.separator may not be equal"),
        ("console-producer", ["--topic", "t", "--request-required-acks", "2"], "acks"),
    ]
    for tool, args, message in cases:
        start = time.monotonic()
        r = kafka_tool(tool, *server, *args, input="", timeout=30)
        assert r.returncode == 1, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert r.stdout == ""
        assert time.monotonic() - start < 5


def test_a_consumer_that_times_out_while_joining_leaves_the_group(broker_factory):
    # The broker's default 3 s initial rebalance delay outlasts --timeout-ms 1000.
    b = broker_factory()
    topic = unique("slowjoin")
    group = unique("G")
    produce(b, topic, [(None, b"r1"), (None, b"r2")])
    start = time.monotonic()
    r = kafka_tool("console-consumer", "--bootstrap-server", b.bootstrap, "--topic", topic,
                   "--group", group, "--from-beginning", "--timeout-ms", "1000", timeout=30)
    assert r.returncode == 0 and "TimeoutException" in r.stderr, r.stderr
    assert time.monotonic() - start < 10
    # It finished joining and then left: no member is left behind until its session expires.
    a = admin(b)  # must outlive the future
    desc = a.describe_consumer_groups([group])[group].result(10)
    assert desc.members == [] and desc.state == ConsumerGroupState.EMPTY, desc.state
    start = time.monotonic()
    r = kafka_tool("console-consumer", "--bootstrap-server", b.bootstrap, "--topic", topic,
                   "--group", group, "--from-beginning", "--max-messages", "2", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["r1", "r2"]
    assert time.monotonic() - start < 10


def test_log_append_time_topics_print_the_brokers_time_compressed_or_not(broker):
    """On a LogAppendTime topic the broker's clock replaces the producer's timestamp, for
    compressed batches as for plain ones (the client reads the batch's max timestamp)."""
    topic = unique("lat")
    create_topic(broker, topic, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    produce(broker, topic, [(b"k", b"plain", None, 1000)], **{"compression.type": "none"})
    # Compressible, so that librdkafka really sends a gzip batch.
    produce(broker, topic, [(b"k", b"zipped" * 200, None, 1000)], **{"compression.type": "gzip"})
    r = kafka_tool("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--from-beginning", "--max-messages", "2", "--property", "print.timestamp=true",
                   check=True)
    lines = r.stdout.splitlines()
    assert [l.split("\t")[1] for l in lines] == ["plain", "zipped" * 200]
    for line in lines:
        kind, ts = line.split("\t")[0].split(":")
        assert kind == "LogAppendTime" and int(ts) >= before, line
