"""Idempotent producers: retries never duplicate, gaps are refused, state survives restarts."""

import pytest

from conftest import unique
from wire import Wire, record_batch
from helpers import consume_all, create_topic, produce

def test_a_retried_batch_is_acknowledged_with_its_original_offset(broker):
    topic = unique("dup")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    pid, epoch = w.init_producer_id()
    assert w.produce(topic, 0, record_batch(pid, epoch, 0, [b"a", b"b"])) == (0, 0)
    assert w.produce(topic, 0, record_batch(pid, epoch, 2, [b"c"])) == (0, 2)
    # The client did not see the answer and sends the same batch again.
    assert w.produce(topic, 0, record_batch(pid, epoch, 2, [b"c"])) == (0, 2)
    # A gap in sequence numbers is OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    assert w.produce(topic, 0, record_batch(pid, epoch, 9, [b"x"]))[0] == 45
    got = consume_all(broker, topic, [0], 3)
    assert [m.value() for m in got] == [b"a", b"b", b"c"]


def test_producer_state_survives_kill_9(broker):
    topic = unique("dup-kill")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    pid, epoch = w.init_producer_id()
    assert w.produce(topic, 0, record_batch(pid, epoch, 0, [b"a"])) == (0, 0)
    broker.kill()
    broker.start()
    w = Wire(broker.bootstrap)
    assert w.produce(topic, 0, record_batch(pid, epoch, 0, [b"a"])) == (0, 0)
    assert w.produce(topic, 0, record_batch(pid, epoch, 1, [b"b"])) == (0, 1)
    # Producer ids are never handed out twice, even across restarts.
    assert w.init_producer_id()[0] != pid


def test_bad_crc_is_corrupt_message(broker):
    topic = unique("crc")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    batch = bytearray(record_batch(-1, -1, -1, [b"hello"]))
    batch[-1] ^= 0xFF
    assert w.produce(topic, 0, bytes(batch))[0] == 2  # CORRUPT_MESSAGE
    assert w.produce(topic, 5, record_batch(-1, -1, -1, [b"x"]))[0] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"ok"])) == (0, 0)


def test_oversized_batch_is_message_too_large(broker_factory):
    b = broker_factory(message_max_bytes="1000")
    topic = unique("big")
    create_topic(b, topic)
    w = Wire(b.bootstrap)
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"x" * 2000]))[0] == 10
    assert w.produce(topic, 0, record_batch(-1, -1, -1, [b"x" * 10])) == (0, 0)


@pytest.mark.slow
def test_idempotent_librdkafka_producer_writes_each_record_once(broker):
    topic = unique("idem")
    create_topic(broker, topic, partitions=3)
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(20_000)]
    produce(broker, topic, records, **{"enable.idempotence": True, "acks": "all",
                                       "max.in.flight.requests.per.connection": 5,
                                       "compression.type": "zstd"})
    got = consume_all(broker, topic, [0, 1, 2], len(records))
    values = [m.value() for m in got]
    assert len(values) == len(set(values)) == len(records)


@pytest.mark.parametrize("produce_version,init_version", [(3, 0), (4, 0), (5, 1), (6, 1), (7, 0), (8, 1)])
def test_duplicates_and_gaps_on_every_non_flexible_produce_version(broker, produce_version, init_version):
    """Same wire bytes, each non-flexible Produce version (3..8) and InitProducerId v0/v1."""
    topic = unique(f"dupv{produce_version}")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    pid, epoch = w.init_producer_id(version=init_version)
    assert pid >= 0 and epoch == 0

    def send(seq, values):
        return w.produce(topic, 0, record_batch(pid, epoch, seq, values), version=produce_version)

    assert send(0, [b"a", b"b", b"c"]) == (0, 0)
    assert send(3, [b"d"]) == (0, 3)
    assert send(4, [b"e", b"f"]) == (0, 4)
    # The retry of the last batch and of an older one still in the last five: original offsets.
    assert send(4, [b"e", b"f"]) == (0, 4)
    assert send(0, [b"a", b"b", b"c"]) == (0, 0)
    # A gap is OUT_OF_ORDER_SEQUENCE_NUMBER (45); nothing is appended.
    assert send(7, [b"x"])[0] == 45
    assert send(6, [b"g"]) == (0, 6)
    got = consume_all(broker, topic, [0], 7)
    assert [m.value() for m in got] == [b"a", b"b", b"c", b"d", b"e", b"f", b"g"]
    assert [m.offset() for m in got] == list(range(7))


def test_sequences_are_tracked_per_producer_id(broker):
    topic = unique("perpid")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    pid, epoch = w.init_producer_id()
    other, other_epoch = w.init_producer_id()
    assert other != pid
    assert w.produce(topic, 0, record_batch(other, other_epoch, 0, [b"first"])) == (0, 0)
    assert w.produce(topic, 0, record_batch(pid, epoch, 0, [b"second"])) == (0, 1)
    # Each producer's retry maps to its own batch; each one's gap is its own.
    assert w.produce(topic, 0, record_batch(other, other_epoch, 0, [b"first"])) == (0, 0)
    assert w.produce(topic, 0, record_batch(pid, epoch, 0, [b"second"])) == (0, 1)
    assert w.produce(topic, 0, record_batch(pid, epoch, 2, [b"gap"]))[0] == 45
    assert w.produce(topic, 0, record_batch(other, other_epoch, 1, [b"third"])) == (0, 2)
    assert [m.value() for m in consume_all(broker, topic, [0], 3)] == [b"first", b"second", b"third"]


def test_producer_epochs_fence_older_ones(broker):
    """Kafka's ProducerAppendInfo: a newer epoch must start at sequence 0; once it is in use, the
    older epoch is INVALID_PRODUCER_EPOCH (47)."""
    topic = unique("epoch")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    pid, epoch = w.init_producer_id()
    assert w.produce(topic, 0, record_batch(pid, epoch, 0, [b"e0-0"])) == (0, 0)
    assert w.produce(topic, 0, record_batch(pid, epoch + 1, 3, [b"bad"]))[0] == 45
    assert w.produce(topic, 0, record_batch(pid, epoch + 1, 0, [b"e1-0"])) == (0, 1)
    assert w.produce(topic, 0, record_batch(pid, epoch, 1, [b"old"]))[0] == 47
    assert w.produce(topic, 0, record_batch(pid, epoch + 1, 1, [b"e1-1"])) == (0, 2)
    assert [m.value() for m in consume_all(broker, topic, [0], 3)] == [b"e0-0", b"e1-0", b"e1-1"]


def test_a_retry_older_than_the_last_five_batches_is_out_of_order(broker):
    """Kafka remembers a producer's last five batches per partition; an older retry cannot be
    matched and is refused, not appended again."""
    topic = unique("old-retry")
    create_topic(broker, topic)
    w = Wire(broker.bootstrap)
    pid, epoch = w.init_producer_id()
    for seq in range(7):
        assert w.produce(topic, 0, record_batch(pid, epoch, seq, [b"%d" % seq])) == (0, seq)
    assert w.produce(topic, 0, record_batch(pid, epoch, 2, [b"2"])) == (0, 2)  # within the five
    assert w.produce(topic, 0, record_batch(pid, epoch, 0, [b"0"]))[0] == 45
    assert w.produce(topic, 0, record_batch(pid, epoch, 7, [b"7"])) == (0, 7)
    assert [m.value() for m in consume_all(broker, topic, [0], 8)] == [b"%d" % i for i in range(8)]
