"""Group coordinator benchmark (issue: consumer groups): rebalance time of a 50-member group on a
100-partition topic, and offset commits per second. Run: python3 bench/groups.py (after
`cargo build --release`); prints a Markdown table. Uses confluent-kafka (librdkafka)."""

import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import Broker  # noqa: E402  (the test harness starts and stops the broker)

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

MEMBERS, PARTITIONS = 50, 100


def rebalance(initial_delay_ms):
    with tempfile.TemporaryDirectory() as d:
        b = Broker(Path(d) / "data", {"group.initial.rebalance.delay.ms": str(initial_delay_ms)}).start()
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("bench-rebalance", PARTITIONS, 1)])["bench-rebalance"].result(30)
            cs = [Consumer({"bootstrap.servers": b.bootstrap, "group.id": "bench", "client.id": f"m{i}",
                            "session.timeout.ms": 30000, "heartbeat.interval.ms": 1000,
                            "enable.auto.commit": False}) for i in range(MEMBERS)]
            for c in cs:
                c.subscribe(["bench-rebalance"])
                c.poll(0)
            last_join = time.monotonic()
            deadline = last_join + 120
            while time.monotonic() < deadline:
                for c in cs:
                    c.poll(0)
                sizes = [len(c.assignment()) for c in cs]
                if sum(sizes) == PARTITIONS and min(sizes) == PARTITIONS // MEMBERS:
                    break
                time.sleep(0.005)
            done = time.monotonic()
            for c in cs:
                c.close()
            return done - last_join
        finally:
            b.stop()


def commits_per_second(seconds=5.0, clients=4):
    with tempfile.TemporaryDirectory() as d:
        b = Broker(Path(d) / "data", {}).start()
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("bench-commit", 8, 1)])["bench-commit"].result(30)
            acked = [0] * clients
            stop = time.monotonic() + seconds

            def run(i):
                def on_commit(err, _partitions):
                    if err is None:
                        acked[i] += 1
                c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"bench-commit-{i}",
                              "enable.auto.commit": False, "on_commit": on_commit})
                offset = 0
                while time.monotonic() < stop:
                    offset += 1
                    c.commit(offsets=[TopicPartition("bench-commit", i % 8, offset)], asynchronous=True)
                    if offset % 100 == 0:
                        c.poll(0)
                c.poll(1)
                c.close()

            start = time.monotonic()
            threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return sum(acked) / (time.monotonic() - start)
        finally:
            b.stop()


if __name__ == "__main__":
    with_delay = rebalance(3000)
    without = rebalance(0)
    rate = commits_per_second()
    print("| group benchmark | result |")
    print("|---|---|")
    print(f"| {MEMBERS} members, {PARTITIONS} partitions: last join to full assignment, "
          f"initial delay 3000 ms | {with_delay:.2f} s ({with_delay - 3.0:.2f} s beyond the delay) |")
    print(f"| same, initial delay 0 | {without:.2f} s |")
    print(f"| offset commits acknowledged per second (4 clients, async) | {rate:,.0f} |")
