"""Idempotent producers: retries never duplicate, gaps are refused, state survives restarts."""

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
