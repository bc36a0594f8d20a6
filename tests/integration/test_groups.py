"""Consumer groups through clients nobody here wrote: assignment, hand-over, eviction,
cooperative rebalancing, committed offsets across kill -9, and Kafka's error codes."""

import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient

from conftest import unique, wait_for
from helpers import admin, create_topic, produce


def consumer(broker, group, **conf):
    return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **conf})


def assignment(c):
    return sorted(tp.partition for tp in c.assignment())


def poll_until(consumers, condition, timeout=30, sink=None):
    """Polls every consumer (driving their group protocol) until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            m = c.poll(0.05)
            if m is not None and not m.error() and sink is not None:
                sink(c, m)
        if condition():
            return
    raise AssertionError("condition not reached; assignments: "
                         + str([assignment(c) for c in consumers]))


@pytest.mark.slow
def test_three_consumers_share_six_partitions_and_a_leaver_is_taken_over_without_loss(broker):
    topic, group = unique("g6"), unique("grp")
    create_topic(broker, topic, partitions=6)
    total = 1200
    produce(broker, topic, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(total)],
            partitioner="murmur2_random")
    cs = [consumer(broker, group, **{"client.id": f"c{i}"}) for i in range(3)]
    for c in cs:
        c.subscribe([topic])
    seen = []

    def take(c, m):
        seen.append((m.partition(), m.offset()))
        c.commit(message=m, asynchronous=False)

    # Each gets two partitions; consume about half of everything.
    poll_until(cs, lambda: all(len(assignment(c)) == 2 for c in cs) and len(seen) >= total // 2, sink=take)
    assert sorted(p for c in cs for p in assignment(c)) == list(range(6))
    leaver = cs.pop()
    leaver.close()  # LeaveGroup: the other two take over its partitions
    poll_until(cs, lambda: sorted(p for c in cs for p in assignment(c)) == list(range(6))
               and len(seen) >= total, sink=take)
    assert len(seen) == total, "a record was read twice"
    assert sorted(seen) == sorted(set(seen))
    for c in cs:
        c.close()
    # Committed offsets are the ends of the partitions: no lag.
    a = admin(broker)
    r = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(15)
    committed = sum(tp.offset for tp in r.topic_partitions)
    assert committed == total


SILENT_MEMBER = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "session.timeout.ms": 6000,
              "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest"})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.1)
    if c.assignment():
        print("assigned", flush=True)
"""


@pytest.mark.slow
def test_a_member_that_stops_heartbeating_is_evicted_and_its_partitions_reassigned(broker):
    topic, group = unique("evict"), unique("grp")
    create_topic(broker, topic, partitions=4)
    a = consumer(broker, group)
    a.subscribe([topic])
    poll_until([a], lambda: len(assignment(a)) == 4)
    # b runs in its own process, so it can die without a LeaveGroup (kill -9).
    b = subprocess.Popen([sys.executable, "-c", SILENT_MEMBER, broker.bootstrap, group, topic],
                         stdout=subprocess.PIPE)
    try:
        poll_until([a], lambda: len(assignment(a)) == 2)
        assert b.stdout.readline().strip() == b"assigned"
        b.kill()
        b.wait(10)
        killed = time.monotonic()
        poll_until([a], lambda: len(assignment(a)) == 4, timeout=30)
        waited = time.monotonic() - killed
        # session.timeout.ms is 6 s: the broker waited for it, then evicted b.
        assert 4.0 <= waited <= 20.0, f"reassigned {waited:.1f}s after the kill"
    finally:
        b.kill()
        a.close()


def test_cooperative_sticky_keeps_unaffected_partitions(broker):
    topic, group = unique("coop"), unique("grp")
    create_topic(broker, topic, partitions=6)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    a = consumer(broker, group, **conf)
    a.subscribe([topic])
    poll_until([a], lambda: len(assignment(a)) == 6)
    revoked = []

    def on_revoke(c, partitions):
        revoked.extend(tp.partition for tp in partitions)

    a.unsubscribe()
    a.subscribe([topic], on_revoke=on_revoke)
    poll_until([a], lambda: len(assignment(a)) == 6)
    revoked.clear()
    before = assignment(a)
    b = consumer(broker, group, **conf)
    b.subscribe([topic])
    poll_until([a, b], lambda: len(assignment(a)) == 3 and len(assignment(b)) == 3)
    # Incremental: a only gave up what b got, and kept the rest throughout.
    assert sorted(revoked) == assignment(b)
    assert set(assignment(a)) <= set(before)
    a.close()
    b.close()


def test_committed_offsets_and_lag_survive_kill_9(broker):
    topic, group = unique("durable"), unique("grp")
    create_topic(broker, topic, partitions=2)
    delivered = produce(broker, topic, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(100)],
                        partitioner="murmur2_random")
    ends = [sum(1 for p, _ in delivered if p == part) for part in (0, 1)]
    assert min(ends) > 30, ends
    c = consumer(broker, group)
    c.commit(offsets=[TopicPartition(topic, 0, 17), TopicPartition(topic, 1, 29)], asynchronous=False)
    c.close()
    broker.kill()
    broker.start()
    c = consumer(broker, group)
    committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=15)
    assert [tp.offset for tp in committed] == [17, 29]
    # Lag = log end offset - committed, as kafka-consumer-groups computes it.
    lag = sum(c.get_watermark_offsets(tp, timeout=10)[1] - tp.offset for tp in committed)
    c.close()
    assert lag == 100 - 17 - 29
    # A subscribed consumer resumes from the committed offsets.
    c = consumer(broker, group)
    c.subscribe([topic])
    got = []
    poll_until([c], lambda: len(got) >= lag, sink=lambda _, m: got.append((m.partition(), m.offset())))
    assert sorted(got) == [(0, o) for o in range(17, ends[0])] + [(1, o) for o in range(29, ends[1])]
    c.close()


def test_kafka_python_group_consumer_and_admin(broker):
    topic, group = unique("kpg"), unique("kp-group")
    create_topic(broker, topic, partitions=2)
    produce(broker, topic, [(None, f"v{i}".encode()) for i in range(40)])
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=10000)
    values = []
    for m in c:
        values.append(m.value)
        if len(values) == 40:
            break
    c.commit()
    c.close()
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(40))
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert group in [g["group_id"] for g in a.list_groups()]
        offsets = a.list_group_offsets(group)[group]
        assert sum(o.offset for o in offsets.values()) == 40
        assert a.describe_groups([group])[group]["group_state"] == "Empty"
    finally:
        a.close()


def test_manual_assignment_commits_without_membership(broker):
    topic, group = unique("manual"), unique("grp")
    create_topic(broker, topic)
    c = consumer(broker, group)
    c.assign([TopicPartition(topic, 0, 0)])
    c.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    assert c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 5
    c.close()


def test_group_errors_follow_kafka(broker):
    topic = unique("errs")
    create_topic(broker, topic)
    a = admin(broker)
    # An unknown group has no committed offsets (and is not an error).
    r = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(unique("nobody"), [TopicPartition(topic, 0)])])
    tps = list(r.values())[0].result(15).topic_partitions
    assert tps[0].offset == -1001  # librdkafka's OFFSET_INVALID for "no commit"
    # Describing an unknown group: Dead with no members, or GROUP_ID_NOT_FOUND (v6+).
    d = a.describe_consumer_groups([unique("nobody")])
    try:
        desc = list(d.values())[0].result(15)
        assert str(desc.state).endswith("DEAD") and not desc.members
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND
    # Deleting a group with active members is NON_EMPTY_GROUP; once empty it can be deleted.
    group = unique("busy")
    c = consumer(broker, group)
    c.subscribe([topic])
    poll_until([c], lambda: len(assignment(c)) == 1)
    f = list(a.delete_consumer_groups([group]).values())[0]
    with pytest.raises(KafkaException) as e:
        f.result(15)
    assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    c.close()
    wait_for(lambda: list(a.delete_consumer_groups([group]).values())[0].result(15) is None,
             what="group deletion after the member left")


def test_consumers_on_the_kip_848_protocol_share_partitions_and_take_over_from_a_leaver(broker_factory):
    b = broker_factory(group_consumer_heartbeat_interval_ms="500")
    topic, group = unique("kip848"), unique("grp")
    create_topic(b, topic, partitions=6)
    total = 600
    produce(b, topic, [(f"k{i}".encode(), b"v") for i in range(total)], partitioner="murmur2_random")
    cs = []
    for i in range(2):
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "group.protocol": "consumer",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False, "client.id": f"c{i}"})
        c.subscribe([topic])
        cs.append(c)
    seen = []

    def take(c, m):
        seen.append((m.partition(), m.offset()))
        c.commit(message=m, asynchronous=False)

    poll_until(cs, lambda: all(len(assignment(c)) == 3 for c in cs) and len(seen) >= total // 2, sink=take)
    assert sorted(p for c in cs for p in assignment(c)) == list(range(6))
    a = admin(b)
    d = a.describe_consumer_groups([group])[group].result(15)
    assert str(d.type).endswith("CONSUMER") and str(d.state).endswith("STABLE")
    assert sorted(len(m.assignment.topic_partitions) for m in d.members) == [3, 3]
    cs.pop().close()
    poll_until(cs, lambda: len(assignment(cs[0])) == 6 and len(seen) >= total, sink=take)
    assert len(seen) == total and len(set(seen)) == total
    cs[0].close()


def test_a_static_member_restarting_within_its_session_keeps_its_partitions_without_a_rebalance(broker):
    topic, group = unique("static"), unique("grp")
    create_topic(broker, topic, partitions=4)
    revoked = []
    a = consumer(broker, group, **{"group.instance.id": "instance-a"})
    a.subscribe([topic], on_revoke=lambda c, ps: revoked.extend(ps))
    b = consumer(broker, group, **{"group.instance.id": "instance-b"})
    b.subscribe([topic])
    poll_until([a, b], lambda: len(assignment(a)) == 2 and len(assignment(b)) == 2)
    before_a, before_b = assignment(a), assignment(b)
    revoked.clear()
    b.close()  # a static member does not leave the group on close (KIP-345)
    b2 = consumer(broker, group, **{"group.instance.id": "instance-b"})
    b2.subscribe([topic])
    poll_until([a, b2], lambda: len(assignment(b2)) == 2)
    assert assignment(b2) == before_b
    assert assignment(a) == before_a
    assert revoked == [], "the restart of a static member must not rebalance the others"
    a.close()
    b2.close()
