"""Topic administration and configs through admin clients nobody here wrote."""

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic)
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic
from kafka.errors import TopicAlreadyExistsError

from conftest import unique
from helpers import admin, create_topic, produce


def error_code(future):
    with pytest.raises(KafkaException) as e:
        future.result(15)
    return e.value.args[0].code()


def test_create_describe_and_delete_a_topic_with_confluent_kafka(broker):
    a = admin(broker)
    name = unique("admin")
    a.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])[name].result(15)
    md = a.list_topics(timeout=10)
    assert len(md.topics[name].partitions) == 3
    for p in md.topics[name].partitions.values():
        assert p.leader == 1 and p.replicas == [1] and p.isrs == [1]
    again = a.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])[name]
    assert error_code(again) == KafkaError.TOPIC_ALREADY_EXISTS
    a.delete_topics([name])[name].result(15)
    assert name not in a.list_topics(timeout=10).topics


def test_validate_only_creates_nothing(broker):
    a = admin(broker)
    name = unique("validate")
    a.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)],
                    validate_only=True)[name].result(15)
    assert name not in a.list_topics(timeout=10).topics


def test_invalid_requests_get_kafka_error_codes(broker):
    a = admin(broker)
    bad_rf = unique("rf")
    f = a.create_topics([NewTopic(bad_rf, num_partitions=1, replication_factor=3)])[bad_rf]
    assert error_code(f) == KafkaError.INVALID_REPLICATION_FACTOR
    bad_cfg = unique("cfg")
    f = a.create_topics([NewTopic(bad_cfg, num_partitions=1, replication_factor=1,
                                  config={"retention.ms": "soon"})])[bad_cfg]
    assert error_code(f) == KafkaError.INVALID_CONFIG
    f = a.create_topics([NewTopic("bad name!", num_partitions=1, replication_factor=1)])["bad name!"]
    assert error_code(f) == KafkaError.TOPIC_EXCEPTION
    f = a.delete_topics([unique("missing")])
    assert error_code(list(f.values())[0]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_partitions_can_only_increase(broker):
    a = admin(broker)
    name = unique("parts")
    create_topic(broker, name, partitions=3)
    f = a.create_partitions([NewPartitions(name, 2)])[name]
    assert error_code(f) == KafkaError.INVALID_PARTITIONS
    a.create_partitions([NewPartitions(name, 5)])[name].result(15)
    assert len(a.list_topics(timeout=10).topics[name].partitions) == 5


def test_alter_and_describe_topic_configs(broker):
    a = admin(broker)
    name = unique("configs")
    create_topic(broker, name, config={"retention.ms": "172800000"})
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = a.describe_configs([res])[res].result(15)
    assert configs["retention.ms"].value == "172800000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value

    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    a.incremental_alter_configs([res])[res].result(15)
    configs = a.describe_configs([ConfigResource("topic", name)])
    configs = list(configs.values())[0].result(15)
    assert configs["retention.ms"].value == "1000"
    assert configs["cleanup.policy"].value == "delete,compact"

    bad = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
    assert error_code(a.incremental_alter_configs([bad])[bad]) == KafkaError.INVALID_CONFIG


def test_describe_broker_configs(broker):
    a = admin(broker)
    res = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = a.describe_configs([res])[res].result(15)
    assert configs["node.id"].value == "1"
    assert configs["log.dirs"].value.endswith("broker0")


def test_kafka_python_admin_creates_and_lists_topics(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        name = unique("kp")
        a.create_topics([KpNewTopic(name, num_partitions=3, replication_factor=1)])
        assert name in a.list_topics()
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([KpNewTopic(name, num_partitions=3, replication_factor=1)])
        described = a.describe_topics([name])
        assert len(described[0]["partitions"]) == 3
        cluster = a.describe_cluster()
        assert [b["broker_id"] for b in cluster["brokers"]] == [1]
    finally:
        a.close()


def test_auto_topic_creation_follows_the_broker_setting(broker_factory):
    on = broker_factory(num_partitions="4")
    a = admin(on)
    name = unique("auto")
    md = on_metadata = a.list_topics(topic=name, timeout=10)
    assert len(md.topics[name].partitions) == 4
    off = broker_factory(auto_create_topics_enable="false")
    md = admin(off).list_topics(topic=name, timeout=10)
    assert md.topics[name].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    del on_metadata


def test_incremental_alter_makes_a_dynamic_topic_config_and_delete_reverts_it(broker):
    """A topic created without configs: an incremental SET shows up as DYNAMIC_TOPIC_CONFIG, a
    DELETE brings back the default; unknown names and bad values are INVALID_CONFIG."""
    a = admin(broker)
    name = unique("incr")
    create_topic(broker, name)
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    before = a.describe_configs([res])[res].result(15)
    assert before["retention.ms"].value == "604800000"  # Kafka's default week
    assert before["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    def alter(*entries):
        r = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=list(entries))
        return a.incremental_alter_configs([r])[r]

    alter(ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)).result(15)
    after = a.describe_configs([res])[res].result(15)
    assert after["retention.ms"].value == "3600000"
    assert after["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not after["retention.ms"].is_default

    # Unknown name, malformed value: INVALID_CONFIG, and nothing changes.
    assert error_code(alter(ConfigEntry("retention.msx", "1", incremental_operation=AlterConfigOpType.SET))) \
        == KafkaError.INVALID_CONFIG
    assert error_code(alter(ConfigEntry("retention.ms", "an hour", incremental_operation=AlterConfigOpType.SET))) \
        == KafkaError.INVALID_CONFIG
    assert a.describe_configs([res])[res].result(15)["retention.ms"].value == "3600000"

    alter(ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)).result(15)
    reverted = a.describe_configs([res])[res].result(15)
    assert reverted["retention.ms"].value == "604800000"
    assert reverted["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value


def test_legacy_alter_configs_replaces_the_whole_dynamic_set(broker):
    """AlterConfigs (not incremental) sets exactly the given configs: dynamic configs that are
    not named go back to their defaults, as in Kafka."""
    a = admin(broker)
    name = unique("legacy")
    create_topic(broker, name, config={"retention.ms": "86400000", "max.message.bytes": "2000000"})
    r = ConfigResource(ConfigResource.Type.TOPIC, name, set_config={"retention.ms": "5000"})
    a.alter_configs([r])[r].result(15)
    configs = a.describe_configs([ConfigResource("topic", name)])
    configs = list(configs.values())[0].result(15)
    assert configs["retention.ms"].value == "5000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["max.message.bytes"].value != "2000000"


def test_configs_of_an_unknown_topic_are_unknown_topic_or_partition(broker):
    a = admin(broker)
    res = ConfigResource(ConfigResource.Type.TOPIC, unique("nope"))
    assert error_code(a.describe_configs([res])[res]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_broker_configs_lists_kafka_property_names(broker_factory):
    b = broker_factory(num_partitions="3", log_retention_ms="7200000")
    a = admin(b)
    res = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = a.describe_configs([res])[res].result(15)
    assert configs["num.partitions"].value == "3"
    assert configs["log.retention.ms"].value == "7200000"
    # Set on the command line: a static broker config, as in Kafka.
    assert configs["num.partitions"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    # Topics created now inherit the broker's defaults.
    topic = unique("inherit")
    create_topic(b, topic)
    t = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert a.describe_configs([t])[t].result(15)["retention.ms"].value == "7200000"
    # Kafka describes every broker config, defaults included (source DEFAULT_CONFIG), so that
    # `kafka-configs.sh --describe --all` and admin UIs see the effective values.
    missing = [n for n in ["auto.create.topics.enable", "message.max.bytes", "log.segment.bytes",
                           "log.retention.check.interval.ms", "socket.request.max.bytes"]
               if n not in configs]
    assert not missing, f"broker configs not described: {missing}; described: {sorted(configs)}"
    assert configs["message.max.bytes"].source == ConfigSource.DEFAULT_CONFIG.value


def test_kafka_python_admin_topic_lifecycle_partitions_and_configs(broker):
    from kafka.admin import ConfigResource as KpConfigResource
    from kafka.admin import ConfigResourceType
    from kafka.admin import NewPartitions as KpNewPartitions
    from kafka.errors import InvalidConfigurationError, InvalidPartitionsError, UnknownTopicOrPartitionError

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        name = unique("kp-life")
        # validate_only creates nothing.
        a.create_topics([KpNewTopic(name, num_partitions=3, replication_factor=1)], validate_only=True)
        assert name not in a.list_topics()
        a.create_topics([KpNewTopic(name, num_partitions=3, replication_factor=1,
                                    topic_configs={"retention.ms": "86400000"})])
        assert name in a.list_topics()

        # Partitions: more is fine, fewer is INVALID_PARTITIONS.
        a.create_partitions({name: KpNewPartitions(total_count=4)})
        assert len(a.describe_topics([name])[0]["partitions"]) == 4
        with pytest.raises(InvalidPartitionsError):
            a.create_partitions({name: KpNewPartitions(total_count=2)})
        assert len(a.describe_topics([name])[0]["partitions"]) == 4

        # Configs: describe what was set at creation, change it, see the change.
        described = a.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, name)])
        entry = described["topic"][name]["retention.ms"]
        assert entry["value"] == "86400000"
        assert entry["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        result = a.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, name,
                                                   configs={"retention.ms": "1234567"})], incremental=True)
        assert result["topic"][name] == "OK"
        described = a.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, name)])
        assert described["topic"][name]["retention.ms"]["value"] == "1234567"
        # The legacy AlterConfigs path works as well.
        result = a.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, name,
                                                   configs={"retention.ms": "7654321"})], incremental=False)
        assert result["topic"][name] == "OK"
        described = a.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, name)])
        assert described["topic"][name]["retention.ms"]["value"] == "7654321"
        result = a.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, name,
                                                   configs={"retention.ms": "never"})],
                                 incremental=True, raise_on_unknown=False)
        assert "InvalidConfigurationError" in result["topic"][name] or \
            InvalidConfigurationError.__name__ in result["topic"][name], result

        a.delete_topics([name])
        assert name not in a.list_topics()
        with pytest.raises(UnknownTopicOrPartitionError):
            a.delete_topics([name])
    finally:
        a.close()


def test_admin_edge_cases_follow_kafka(broker_factory):
    from confluent_kafka import Consumer, TopicPartition

    b = broker_factory(num_partitions="2")
    a = admin(b)
    # -1 partitions and replication factor mean the broker's defaults (KIP-464).
    dflt = unique("dflt")
    a.create_topics([NewTopic(dflt, num_partitions=-1, replication_factor=-1)])[dflt].result(15)
    assert len(a.list_topics(timeout=10).topics[dflt].partitions) == 2
    zero = unique("zero")
    f = a.create_topics([NewTopic(zero, num_partitions=0, replication_factor=1)])[zero]
    assert error_code(f) == KafkaError.INVALID_PARTITIONS
    long_name = "x" * 250
    f = a.create_topics([NewTopic(long_name, num_partitions=1, replication_factor=1)])[long_name]
    assert error_code(f) == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION (17)
    f = a.create_partitions([NewPartitions(unique("none"), 3)])
    assert error_code(list(f.values())[0]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    # validate_only on partitions and configs changes nothing.
    a.create_partitions([NewPartitions(dflt, 6)], validate_only=True)[dflt].result(15)
    assert len(a.list_topics(timeout=10).topics[dflt].partitions) == 2
    res = ConfigResource(ConfigResource.Type.TOPIC, dflt, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res], validate_only=True)[res].result(15)
    r = ConfigResource(ConfigResource.Type.TOPIC, dflt)
    assert a.describe_configs([r])[r].result(15)["retention.ms"].value == "604800000"
    # DeleteRecords to offset -1 means "up to the high watermark".
    create_topic(b, "dr-" + dflt)
    produce(b, "dr-" + dflt, [(None, b"v")] * 7)
    res = a.delete_records([TopicPartition("dr-" + dflt, 0, -1)])
    assert list(res.values())[0].result(15).low_watermark == 7
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "x"})
    try:
        assert c.get_watermark_offsets(TopicPartition("dr-" + dflt, 0), timeout=10) == (7, 7)
    finally:
        c.close()


def test_preferred_leader_election_on_one_node_is_not_needed(broker):
    # ElectLeaders goes to the controller like any metadata change; on a single node every
    # partition is already led by its preferred replica, so Kafka answers ELECTION_NOT_NEEDED.
    from confluent_kafka import ElectionType, TopicPartition
    a = admin(broker)
    name = unique("elect")
    create_topic(broker, name, partitions=2)
    wanted = [TopicPartition(name, 0), TopicPartition(name, 1), TopicPartition(name, 7)]
    results = a.elect_leaders(ElectionType.PREFERRED, wanted).result(15)
    codes = {tp.partition: err.code() for tp, err in results.items()}
    assert codes == {0: KafkaError.ELECTION_NOT_NEEDED, 1: KafkaError.ELECTION_NOT_NEEDED,
                     7: KafkaError.UNKNOWN_TOPIC_OR_PART}
