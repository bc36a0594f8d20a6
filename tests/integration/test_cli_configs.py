"""kafka-configs.sh against a real broker: the seed's retention change (with its typo), describe
output in Kafka's layout with synonyms, alter/delete round trips and errors, each checked with
confluent-kafka's describe_configs."""

import time

from confluent_kafka.admin import ConfigResource, ConfigSource

from conftest import kafka_tool, unique
from helpers import admin, create_topic
from test_cli_topics import assert_clean_failure, closed_port


def described(broker, kind, name):
    """confluent-kafka's view of a resource's configs (with synonyms)."""
    a = admin(broker)
    res = ConfigResource(kind, name)
    return a.describe_configs([res])[res].result(15)


def synonyms_text(entry):
    """A confluent-kafka ConfigEntry's synonyms in kafka-configs' `SOURCE:name=value` form."""
    return ", ".join(f"{ConfigSource(s.source).name}:{s.name}={s.value}"
                     for s in entry.synonyms.values())


def configs(*args):
    return kafka_tool("configs", *args)


def test_seed_retention_change_with_its_typo_suggests_add_config(broker):
    name = unique("seed-cfg")
    create_topic(broker, name)
    # The seed's command verbatim: "-- all-config" with a space.
    p = configs("--bootstrap-server", broker.bootstrap, "--entity-type", "topics",
                "--entity-name", name, "--alter", "--", "all-config", "retention.ms=86400000")
    assert_clean_failure(p)
    assert p.returncode == 1
    assert "did you mean '--add-config'" in p.stderr, p.stderr
    assert described(broker, "topic", name)["retention.ms"].source == \
        ConfigSource.DEFAULT_CONFIG.value

    # The corrected command works and is what confluent-kafka then sees.
    p = configs("--bootstrap-server", broker.bootstrap, "--entity-type", "topics",
                "--entity-name", name, "--alter", "--add-config", "retention.ms=86400000")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"Completed updating config for topic {name}.\n"
    entry = described(broker, "topic", name)["retention.ms"]
    assert entry.value == "86400000"
    assert entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def test_describe_alter_delete_round_trip(broker):
    name = unique("cfg")
    create_topic(broker, name)
    base = ["--bootstrap-server", broker.bootstrap, "--entity-type", "topics",
            "--entity-name", name]
    p = configs(*base, "--describe")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"Dynamic configs for topic {name} are:\n"

    # Two configs at once, one value grouped in brackets because it holds a comma.
    p = configs(*base, "--alter", "--add-config",
                "retention.ms=3600000,cleanup.policy=[compact,delete]")
    assert p.returncode == 0, p.stderr
    theirs = described(broker, "topic", name)
    assert theirs["retention.ms"].value == "3600000"
    assert theirs["cleanup.policy"].value == "compact,delete"
    p = configs(*base, "--describe")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        f"Dynamic configs for topic {name} are:",
        f"  cleanup.policy=compact,delete sensitive=false "
        f"synonyms={{{synonyms_text(theirs['cleanup.policy'])}}}",
        f"  retention.ms=3600000 sensitive=false "
        f"synonyms={{{synonyms_text(theirs['retention.ms'])}}}",
    ]
    assert "synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000" in p.stdout

    # --all lists every config confluent-kafka sees, with the same values.
    p = configs(*base, "--describe", "--all")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"All configs for topic {name} are:"
    listed = {l.strip().split("=", 1)[0]: l.strip().split("=", 1)[1].split(" sensitive=")[0]
              for l in lines[1:]}
    assert listed == {k: v.value for k, v in theirs.items()}

    p = configs(*base, "--alter", "--delete-config", "cleanup.policy,retention.ms")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"Completed updating config for topic {name}.\n"
    theirs = described(broker, "topic", name)
    assert theirs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert theirs["cleanup.policy"].value == "delete"
    assert configs(*base, "--describe").stdout == f"Dynamic configs for topic {name} are:\n"

    # Deleting what is not set is Kafka's "Invalid config(s)".
    p = configs(*base, "--alter", "--delete-config", "retention.ms")
    assert_clean_failure(p)
    assert p.stderr.strip() == "Invalid config(s): retention.ms"


def test_add_config_file(broker, tmp_path):
    name = unique("cfgfile")
    create_topic(broker, name)
    props = tmp_path / "topic.properties"
    props.write_text("# overrides\nretention.ms=7200000\nmax.message.bytes = 2097152\n")
    p = configs("--bootstrap-server", broker.bootstrap, "--topic", name, "--alter",
                "--add-config-file", props)
    assert p.returncode == 0, p.stderr
    theirs = described(broker, "topic", name)
    assert theirs["retention.ms"].value == "7200000"
    assert theirs["max.message.bytes"].value == "2097152"
    p = configs("--bootstrap-server", broker.bootstrap, "--topic", name, "--alter",
                "--add-config-file", props, "--add-config", "retention.ms=1")
    assert_clean_failure(p)
    assert "Only one of --add-config or --add-config-file" in p.stderr


def test_bad_config_name_and_value_fail_cleanly(broker):
    name = unique("badcfg")
    create_topic(broker, name)
    base = ["--bootstrap-server", broker.bootstrap, "--topic", name, "--alter"]
    p = configs(*base, "--add-config", "no.such.config=1")
    assert_clean_failure(p)
    assert p.returncode == 1
    assert "no.such.config" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = configs(*base, "--add-config", "retention.ms=forever")
    assert_clean_failure(p)
    assert "forever" in p.stderr and "retention.ms" in p.stderr, p.stderr
    p = configs(*base, "--add-config", "retention.ms")
    assert_clean_failure(p)
    assert "key=val" in p.stderr, p.stderr
    assert described(broker, "topic", name)["retention.ms"].source == \
        ConfigSource.DEFAULT_CONFIG.value


def test_missing_topic_and_argument_errors(broker):
    missing = unique("nosuch")
    p = configs("--bootstrap-server", broker.bootstrap, "--entity-type", "topics",
                "--entity-name", missing, "--describe")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"The topic '{missing}' doesn't exist and doesn't have dynamic config.\n"
    p = configs("--bootstrap-server", broker.bootstrap, "--entity-type", "topics",
                "--entity-name", missing)
    assert_clean_failure(p)
    assert "exactly one action: --describe, --alter" in p.stderr
    p = configs("--bootstrap-server", broker.bootstrap, "--entity-type", "topics",
                "--entity-name", missing, "--alter")
    assert_clean_failure(p)
    assert "At least one of --add-config" in p.stderr
    p = configs("--bootstrap-server", broker.bootstrap, "--entity-type", "tables",
                "--entity-name", missing, "--describe")
    assert_clean_failure(p)
    assert "Invalid entity type tables" in p.stderr


def test_describe_without_a_name_covers_every_topic(broker):
    names = [unique("all-a"), unique("all-b")]
    create_topic(broker, names[0], config={"retention.ms": "1234567"})
    create_topic(broker, names[1])
    p = configs("--bootstrap-server", broker.bootstrap, "--entity-type", "topics", "--describe")
    assert p.returncode == 0, p.stderr
    headers = [l for l in p.stdout.splitlines() if l.startswith("Dynamic configs for topic ")]
    topics = set(admin(broker).list_topics(timeout=10).topics)
    assert {h[len("Dynamic configs for topic "):-len(" are:")] for h in headers} == topics
    block = p.stdout.split(f"Dynamic configs for topic {names[0]} are:\n")[1]
    assert block.startswith("  retention.ms=1234567 sensitive=false synonyms={"), p.stdout


def test_broker_configs_describe_and_alter(broker):
    base = ["--bootstrap-server", broker.bootstrap, "--entity-type", "brokers"]
    p = configs(*base, "--entity-name", "1", "--describe", "--all")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "All configs for broker 1 are:"
    theirs = described(broker, "broker", "1")
    listed = {l.strip().split("=", 1)[0]: l.strip().split("=", 1)[1].split(" sensitive=")[0]
              for l in lines[1:]}
    assert listed == {k: v.value for k, v in theirs.items()}

    p = configs(*base, "--entity-name", "1", "--alter", "--add-config", "log.retention.ms=7200000")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Completed updating config for broker 1.\n"
    entry = described(broker, "broker", "1")["log.retention.ms"]
    assert entry.value == "7200000"
    assert entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    p = configs(*base, "--entity-name", "1", "--describe")
    assert p.stdout.splitlines() == [
        "Dynamic configs for broker 1 are:",
        f"  log.retention.ms=7200000 sensitive=false synonyms={{{synonyms_text(entry)}}}"]

    p = configs(*base, "--entity-default", "--alter", "--add-config", "log.retention.ms=9000000")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Completed updating default config for brokers in the cluster.\n"
    p = configs(*base, "--entity-default", "--describe")
    assert p.stdout.splitlines()[0] == "Default configs for brokers in the cluster are:"
    assert "  log.retention.ms=9000000 sensitive=false" in p.stdout

    for target in (["--entity-name", "1"], ["--entity-default"]):
        p = configs(*base, *target, "--alter", "--delete-config", "log.retention.ms")
        assert p.returncode == 0, p.stderr
    after = described(broker, "broker", "1").get("log.retention.ms")
    assert after is None or after.source not in (ConfigSource.DYNAMIC_BROKER_CONFIG.value,
                                                 ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    assert configs(*base, "--entity-name", "1", "--describe").stdout == \
        "Dynamic configs for broker 1 are:\n"

    p = configs(*base, "--entity-name", "one", "--describe")
    assert_clean_failure(p)
    assert "valid integer broker id" in p.stderr


def test_unreachable_bootstrap_server_fails_fast(tmp_path):
    config = tmp_path / "admin.properties"
    config.write_text("request.timeout.ms=3000\n")
    started = time.monotonic()
    p = configs("--bootstrap-server", f"127.0.0.1:{closed_port()}", "--entity-type", "topics",
                "--entity-name", "t", "--describe", "--command-config", config)
    assert_clean_failure(p)
    assert "cannot connect" in p.stderr or "no broker" in p.stderr, p.stderr
    assert time.monotonic() - started < 10
