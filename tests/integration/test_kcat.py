"""kcat from Debian (librdkafka 2.0.2): an old client must work too."""

import shutil
import subprocess

import pytest

from conftest import unique
from helpers import create_topic, kafka_partition, produce

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
assert KCAT, "kcat is installed by .ci/run"


def kcat(broker, *args, input=None, timeout=60):
    r = subprocess.run([KCAT, "-b", broker.bootstrap, *args], input=input, capture_output=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def test_kcat_lists_the_broker_and_topics(broker):
    topic = unique("kcat-l")
    create_topic(broker, topic, partitions=3)
    out = kcat(broker, "-L")
    assert f"broker 1 at {broker.bootstrap}" in out
    assert f'topic "{topic}" with 3 partitions' in out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_produces_and_consumes_keyed_records(broker, codec):
    topic = unique("kcat-" + codec)
    create_topic(broker, topic, partitions=3)
    lines = [f"key{i}:value{i}" for i in range(300)]
    kcat(broker, "-P", "-t", topic, "-K:", "-z", codec, "-X", "topic.partitioner=murmur2_random",
         input=("\n".join(lines) + "\n").encode())
    out = kcat(broker, "-C", "-t", topic, "-e", "-q", "-f", "%k:%s:%p:%o\n")
    rows = [r.split(":") for r in out.strip().splitlines()]
    assert len(rows) == 300
    for key, value, partition, _offset in rows:
        assert value == key.replace("key", "value")
        assert int(partition) == kafka_partition(key.encode(), 3)
    for p in range(3):
        offsets = [int(o) for _, _, part, o in rows if int(part) == p]
        assert offsets == list(range(len(offsets)))


def test_kcat_balanced_consumer_group_reads_everything(broker):
    topic = unique("kcat-g")
    create_topic(broker, topic, partitions=2)
    kcat(broker, "-P", "-t", topic, input=b"".join(b"m%d\n" % i for i in range(50)))
    proc = subprocess.Popen([KCAT, "-b", broker.bootstrap, "-G", unique("kcat-group"), "-o", "beginning",
                             "-f", "%s\n", "-c", "50", topic], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert sorted(out.decode().split()) == sorted(f"m{i}" for i in range(50))


def test_kcat_reads_each_partition_from_the_beginning_with_headers(broker):
    topic = unique("kcat-p")
    create_topic(broker, topic, partitions=3)
    # Explicit partitions, a header on each record, lz4.
    for p in range(3):
        lines = "".join(f"p{p}k{i}:p{p}v{i}\n" for i in range(100))
        kcat(broker, "-P", "-t", topic, "-p", str(p), "-K:", "-z", "lz4", "-H", f"part={p}",
             input=lines.encode())
    out = kcat(broker, "-L", "-t", topic)
    for p in range(3):
        assert f"partition {p}, leader 1, replicas: 1, isrs: 1" in out
    for p in range(3):
        out = kcat(broker, "-C", "-t", topic, "-p", str(p), "-o", "beginning", "-e", "-q",
                   "-f", "%k:%s:%p:%o:%h\n")
        rows = [r.split(":") for r in out.strip().splitlines()]
        assert [(k, v, int(part), int(o), h) for k, v, part, o, h in rows] == \
            [(f"p{p}k{i}", f"p{p}v{i}", p, i, f"part={p}") for i in range(100)]
    # From an offset in the middle, and the last records with a negative offset.
    out = kcat(broker, "-C", "-t", topic, "-p", "1", "-o", "90", "-e", "-q", "-f", "%o\n")
    assert out.split() == [str(i) for i in range(90, 100)]
    out = kcat(broker, "-C", "-t", topic, "-p", "2", "-o", "-3", "-e", "-q", "-f", "%o\n")
    assert out.split() == ["97", "98", "99"]


def test_kcat_query_offsets_by_timestamp(broker):
    topic = unique("kcat-q")
    create_topic(broker, topic)
    base = 1_690_000_000_000
    produce(broker, topic, [(None, f"v{i}".encode(), None, base + i * 10) for i in range(50)])
    out = kcat(broker, "-Q", "-t", f"{topic}:0:{base + 125}")
    assert out.strip() == f"{topic} [0] offset 13", out
