"""kafkajs (npm): admin, producer and a consumer group."""

import json
import subprocess
from pathlib import Path

from conftest import unique
from helpers import consume_all, kafka_partition

JS = Path(__file__).parent / "js"


def test_kafkajs_admin_producer_and_group_consumer(broker):
    topic, group = unique("kjs"), unique("kjs-group")
    r = subprocess.run(["node", str(JS / "roundtrip.js"), broker.bootstrap, topic, group],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["created"] is True
    assert sum(int(p["offset"]) for p in out["offsets"]) == 300
    received = out["received"]
    assert sorted(m["value"] for m in received) == sorted(f"v{i}" for i in range(300))
    for m in received:
        # kafkajs' default partitioner is Java's murmur2.
        assert m["partition"] == kafka_partition(m["key"].encode(), 3)
        assert m["header"] == m["key"][1:]
    committed = {int(p["partition"]): int(p["offset"]) for p in out["committed"][0]["partitions"]}
    ends = {int(p["partition"]): int(p["offset"]) for p in out["offsets"]}
    assert committed == ends
    assert any(g["groupId"] == group for g in out["groups"]["groups"])
    # A client nobody here wrote reads the same records kafkajs wrote.
    got = consume_all(broker, topic, [0, 1, 2], 300)
    assert sorted(m.value() for m in got) == sorted(f"v{i}".encode() for i in range(300))


def test_kafkajs_producer_and_admin_api(broker):
    """kafkajs without a consumer: producer (GZIP, timestamps, headers; idempotent) and the admin
    API; the records it wrote are read back with confluent-kafka."""
    topic = unique("kjs-admin")
    r = subprocess.run(["node", str(JS / "admin.js"), broker.bootstrap, topic],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["created"] is True
    assert out["createdAgain"] is False  # TOPIC_ALREADY_EXISTS, which kafkajs reports as false
    assert out["listed"] is True

    base = 1_700_000_000_000
    sent = {int(s["partition"]): s for s in out["sent"]}
    assert all(s["errorCode"] == 0 for s in sent.values())
    # Java-compatible murmur2 partitioner: the key decides the partition.
    counts = {p: 0 for p in range(3)}
    for i in range(600):
        counts[kafka_partition(f"key-{i}".encode(), 3)] += 1
    offsets = {int(p["partition"]): (int(p["low"]), int(p["high"])) for p in out["offsets"]}
    assert offsets == {p: (0, counts[p]) for p in range(3)}

    # By timestamp: the first record at or after BASE+300s, per partition.
    expected_by_ts = {}
    for p in range(3):
        on_p = [i for i in range(600) if kafka_partition(f"key-{i}".encode(), 3) == p]
        expected_by_ts[p] = next(n for n, i in enumerate(on_p) if i >= 300)
    assert {int(p["partition"]): int(p["offset"]) for p in out["byTimestamp"]} == expected_by_ts
    # Past the last timestamp there is nothing: kafkajs maps that to the high watermark.
    assert {int(p["partition"]): int(p["offset"]) for p in out["byFutureTimestamp"]} == \
        {p: counts[p] for p in range(3)}

    after = {int(p["partition"]): (int(p["low"]), int(p["high"])) for p in out["offsetsAfterDelete"]}
    assert after[0] == (5, counts[0]) and after[1] == (0, counts[1])
    assert out["deleteBeyondHigh"] == "OFFSET_OUT_OF_RANGE"

    def config(described, name):
        (resource,) = described["resources"]
        assert resource["errorCode"] == 0
        return next(e["configValue"] for e in resource["configEntries"] if e["configName"] == name)

    assert config(out["configsBefore"], "retention.ms") == "86400000"
    assert config(out["configsAfter"], "retention.ms") == "3600000"
    assert out["alterUnknown"] == "INVALID_CONFIG"

    assert len(out["metadataBefore"]["topics"][0]["partitions"]) == 3
    assert out["shrink"] == "INVALID_PARTITIONS"
    assert len(out["metadataAfter"]["topics"][0]["partitions"]) == 5
    assert [b["nodeId"] for b in out["cluster"]["brokers"]] == [1]
    assert out["cluster"]["controller"] == 1

    assert [(int(p["low"]), int(p["high"])) for p in out["idempotentOffsets"]] == [(0, 500)]
    assert f"{topic}-idem" not in out["topicsAfterDelete"]

    # confluent-kafka reads what kafkajs wrote: keys, values, headers, timestamps, placement.
    got = consume_all(broker, topic, [0, 1, 2], 600 - 5, **{"auto.offset.reset": "earliest"})
    seen = {}
    for m in got:
        i = int(m.key().decode().split("-")[1])
        assert m.value() == f"value-{i}".encode()
        assert m.headers() == [("n", str(i).encode())]
        assert m.timestamp()[1] == base + i * 1000
        assert m.partition() == kafka_partition(m.key(), 3)
        seen[i] = m
    on_p0 = [i for i in range(600) if kafka_partition(f"key-{i}".encode(), 3) == 0]
    assert set(seen) == set(range(600)) - set(on_p0[:5])
