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
