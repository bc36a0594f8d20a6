"""kafka-producer-perf-test and kafka-consumer-perf-test through the bin/ wrappers against a real
broker; what they produce and count is checked with confluent-kafka (librdkafka)."""

import re
import socket
import time

from confluent_kafka import Consumer, TopicPartition

from conftest import kafka_tool, unique
from helpers import consume_all, create_topic, produce

# Kafka's ProducerPerformance final line, every number in its format.
FINAL = re.compile(
    r"^(\d+) records sent, (\d+\.\d{6}) records/sec \((\d+\.\d{2}) MB/sec\), "
    r"(\d+\.\d{2}) ms avg latency, (\d+\.\d{2}) ms max latency, (\d+) ms 50th, (\d+) ms 95th, "
    r"(\d+) ms 99th, (\d+) ms 99\.9th\.$")
HEADER = ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
          "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}"
DATA = re.compile(rf"^({DATE}), ({DATE}), (\d+\.\d{{4}}), (\d+\.\d{{4}}), (\d+), (\d+\.\d{{4}}), "
                  rf"(\d+), (-?\d+), (\d+\.\d{{4}}), (\d+\.\d{{4}})$")


def end_offsets(broker, topic, partitions):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "perf-offsets-check"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)]
    finally:
        c.close()


def final_line(stdout):
    lines = [l for l in stdout.splitlines() if l.strip()]
    m = FINAL.match(lines[-1])
    assert m, f"final line not in Kafka's format: {lines[-1]!r}\n{stdout}"
    return m


def test_producer_perf_prints_kafkas_final_line_and_sends_exactly_num_records(broker):
    topic = unique("perf")
    create_topic(broker, topic, partitions=3)
    r = kafka_tool("producer-perf-test", "--topic", topic, "--num-records", 2000,
                   "--record-size", 100, "--throughput", -1, "--bootstrap-server", broker.bootstrap,
                   "--producer-props", "acks=1", "linger.ms=0", check=True)
    m = final_line(r.stdout)
    assert int(m.group(1)) == 2000
    p50, p95, p99, p999 = (int(m.group(i)) for i in range(6, 10))
    assert p50 <= p95 <= p99 <= p999 <= float(m.group(5))
    # confluent-kafka sees exactly 2,000 records, spread by the partitioner over the partitions
    offsets = end_offsets(broker, topic, 3)
    assert sum(offsets) == 2000, offsets
    # Kafka's payload: random uppercase letters of --record-size bytes, no key
    msgs = consume_all(broker, topic, [0, 1, 2], 2000)
    assert all(m.key() is None and len(m.value()) == 100 and re.fullmatch(rb"[A-Z]{100}", m.value())
               for m in msgs)


def test_producer_perf_throughput_throttles_the_send_rate(broker):
    topic = unique("perf")
    started = time.monotonic()
    r = kafka_tool("producer-perf-test", "--topic", topic, "--num-records", 1000,
                   "--record-size", 10, "--throughput", 500, "--bootstrap-server", broker.bootstrap,
                   check=True)
    elapsed = time.monotonic() - started
    assert elapsed >= 1.8, f"1000 records at 500/s took only {elapsed:.2f}s"
    m = final_line(r.stdout)
    assert int(m.group(1)) == 1000
    assert float(m.group(2)) <= 560, m.group(0)


def test_producer_perf_payload_file_and_producer_config(broker, tmp_path):
    topic = unique("perf")
    payloads = tmp_path / "payloads.txt"
    payloads.write_text("alpha,beta,gamma")
    config = tmp_path / "producer.properties"
    config.write_text(f"bootstrap.servers={broker.bootstrap}\nacks=all\n")
    r = kafka_tool("producer-perf-test", "--topic", topic, "--num-records", 300,
                   "--payload-file", payloads, "--payload-delimiter", ",", "--throughput", -1,
                   "--producer.config", config, "--print-metrics", check=True)
    assert "Number of messages read: 3" in r.stdout
    assert re.search(r"producer-metrics:record-send-total:\{client-id=perf-producer-client\}\s+: 300\.000",
                     r.stdout), r.stdout
    msgs = consume_all(broker, topic, [0], 300)
    assert {m.value() for m in msgs} <= {b"alpha", b"beta", b"gamma"}


def test_producer_perf_refuses_unknown_properties_and_transactions(broker):
    base = ["--topic", unique("perf"), "--num-records", 10, "--record-size", 10,
            "--throughput", -1, "--bootstrap-server", broker.bootstrap]
    r = kafka_tool("producer-perf-test", *base, "--producer-props", "acks=1", "no.such.property=1")
    assert r.returncode != 0
    assert "no.such.property" in r.stderr and "Traceback" not in r.stderr
    assert "panicked" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = kafka_tool("producer-perf-test", *base, "--transactional-id", "tx-1")
    assert r.returncode != 0 and "Transactions are not supported" in r.stderr, r.stderr
    r = kafka_tool("producer-perf-test", *base, "--record-size", 5, "--payload-file", "/dev/null")
    assert r.returncode != 0


def test_perf_tools_refuse_bad_flags():
    r = kafka_tool("producer-perf-test", "--topic", "t", "--num-record", 5, "--record-size", 1,
                   "--throughput", -1, "--bootstrap-server", "127.0.0.1:9")
    assert r.returncode == 1 and "did you mean '--num-records'" in r.stderr, r.stderr
    r = kafka_tool("producer-perf-test", "--topic", "t", "--num-records", 5, "--record-size", 1,
                   "--bootstrap-server", "127.0.0.1:9")  # --throughput is required, as in Kafka
    assert r.returncode == 1 and "--throughput" in r.stderr, r.stderr
    r = kafka_tool("consumer-perf-test", "--bootstrap-server", "127.0.0.1:9", "--topic", "t")
    assert r.returncode == 1 and "--messages" in r.stderr, r.stderr
    r = kafka_tool("consumer-perf-test", "--bootstrap-server", "127.0.0.1:9", "--topic", "t",
                   "--messages", 1, "--show-detailed-stat")
    assert r.returncode == 1 and "did you mean '--show-detailed-stats'" in r.stderr, r.stderr


def test_perf_tools_fail_fast_on_an_unreachable_bootstrap_server():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    for tool, args in [("producer-perf-test", ["--topic", "t", "--num-records", 5,
                                               "--record-size", 1, "--throughput", -1,
                                               "--bootstrap-server", f"127.0.0.1:{port}"]),
                       ("consumer-perf-test", ["--topic", "t", "--messages", 5,
                                               "--bootstrap-server", f"127.0.0.1:{port}"])]:
        started = time.monotonic()
        r = kafka_tool(tool, *args, timeout=30)
        assert r.returncode != 0, (tool, r.stdout)
        assert "Cannot reach the cluster" in r.stderr and "panicked" not in r.stderr, r.stderr
        assert time.monotonic() - started < 10


def test_consumer_perf_reads_the_requested_messages(broker):
    topic = unique("perf")
    create_topic(broker, topic, partitions=2)
    produce(broker, topic, [(None, b"v" * 512)] * 2000)
    r = kafka_tool("consumer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--messages", 2000, "--group", unique("perf-group"), "--timeout", 20000,
                   check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == HEADER, r.stdout
    m = DATA.match(lines[1])
    assert m, f"data line not in Kafka's format: {lines[1]!r}"
    assert int(m.group(5)) == 2000
    assert m.group(3) == f"{2000 * 512 / (1024 * 1024):.4f}"  # 0.9766 MB
    assert int(m.group(7)) + int(m.group(8)) >= 0
    assert "WARNING" not in r.stdout
    # --hide-header prints only the data line
    r = kafka_tool("consumer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--messages", 2000, "--hide-header", "--timeout", 20000, check=True)
    out = [l for l in r.stdout.splitlines() if l.strip()]
    assert len(out) == 1 and DATA.match(out[0]) and int(DATA.match(out[0]).group(5)) == 2000, r.stdout


def test_consumer_perf_warns_when_the_topic_has_fewer_messages(broker):
    topic = unique("perf")
    create_topic(broker, topic)
    produce(broker, topic, [(None, b"x" * 100)] * 10)
    started = time.monotonic()
    r = kafka_tool("consumer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--messages", 20, "--timeout", 1000, check=True)
    assert time.monotonic() - started < 15
    assert ("WARNING: Exiting before consuming the expected number of messages: timeout (1000 ms) "
            "exceeded. You can use the --timeout option to increase the timeout.") in r.stdout, r.stdout
    data = [DATA.match(l) for l in r.stdout.splitlines() if DATA.match(l)]
    assert len(data) == 1 and int(data[0].group(5)) == 10, r.stdout


def test_producer_perf_prints_a_progress_line_every_five_seconds(broker):
    topic = unique("perf")
    r = kafka_tool("producer-perf-test", "--topic", topic, "--num-records", 1400,
                   "--record-size", 10, "--throughput", 250, "--bootstrap-server", broker.bootstrap,
                   check=True)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    progress = re.compile(r"^(\d+) records sent, \d+\.\d records/sec \(\d+\.\d\d MB/sec\), "
                          r"\d+\.\d ms avg latency, \d+\.\d ms max latency\.$")
    windows = [progress.match(l) for l in lines[:-1]]
    assert len(windows) == 1 and windows[0], r.stdout
    assert 1000 <= int(windows[0].group(1)) <= 1400, r.stdout
    assert int(final_line(r.stdout).group(1)) == 1400


def test_consumer_perf_detailed_stats_and_from_latest(broker):
    topic = unique("perf")
    create_topic(broker, topic)
    produce(broker, topic, [(None, b"d" * 100)] * 2000)
    r = kafka_tool("consumer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--messages", 2000, "--show-detailed-stats", "--reporting-interval", 1,
                   "--timeout", 20000, check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == ("time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, "
                        "nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
    detail = re.compile(rf"^{DATE}, 0, \d+\.\d{{4}}, \d+\.\d{{4}}, (\d+), \d+\.\d{{4}}, \d+, -?\d+, "
                        rf"\d+\.\d{{4}}, \d+\.\d{{4}}$")
    counts = [int(detail.match(l).group(1)) for l in lines[1:] if l.strip()]
    assert counts and counts == sorted(counts) and counts[-1] <= 2000, r.stdout
    # --from-latest with a new group: nothing new arrives, so the timeout warning and 0 messages
    r = kafka_tool("consumer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--messages", 10, "--from-latest", "--timeout", 1000, "--hide-header", check=True)
    assert "WARNING: Exiting before consuming the expected number of messages" in r.stdout
    data = [DATA.match(l) for l in r.stdout.splitlines() if DATA.match(l)]
    assert len(data) == 1 and int(data[0].group(5)) == 0, r.stdout
