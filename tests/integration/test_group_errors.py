"""Group protocol errors with exact bytes on the wire: Kafka's error codes, the group intact."""

from conftest import unique
from helpers import create_topic
from wire import Wire

NONE, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL = 0, 22, 23
UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, MEMBER_ID_REQUIRED = 25, 27, 79


def stable_member(w, group):
    error, _, _, member = w.join_group(group)
    assert error == MEMBER_ID_REQUIRED and member  # KIP-394: first join hands out the id
    error, generation, leader, member = w.join_group(group, member)
    assert (error, leader) == (NONE, member)
    error, assignment = w.sync_group(group, generation, member, [(member, b"assignment")])
    assert (error, assignment) == (NONE, b"assignment")
    return generation, member


def test_stale_generation_unknown_member_and_inconsistent_protocol(broker):
    topic, group = unique("ge"), unique("grp")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    generation, member = stable_member(w, group)
    assert w.offset_commit(group, generation, member, topic, 0, 5) == NONE
    assert w.offset_commit(group, generation - 1, member, topic, 0, 6) == ILLEGAL_GENERATION
    assert w.offset_commit(group, generation, "not-a-member", topic, 0, 6) == UNKNOWN_MEMBER_ID
    assert w.heartbeat(group, generation, "not-a-member") == UNKNOWN_MEMBER_ID
    assert w.heartbeat(group, generation + 1, member) == ILLEGAL_GENERATION
    # A member of another protocol type cannot join this consumer group.
    other = Wire(broker.bootstrap)
    error, *_ = other.join_group(group, protocol_type="connect")
    assert error == INCONSISTENT_GROUP_PROTOCOL
    error, *_ = other.join_group(group, protocols=(("no-such-assignor", b""),))
    assert error == INCONSISTENT_GROUP_PROTOCOL
    # The group is intact: the member still heartbeats, and the good commit is there.
    assert w.heartbeat(group, generation, member) == NONE
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        assert c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 5
    finally:
        c.close()
