"""What every tool shares: the bin/ wrappers, --help, "did you mean" for mistyped tools and flags,
and kafka-server-start.sh / kafka-server-stop.sh running and stopping a broker."""

import re
import subprocess
import time

import pytest

from conftest import BIN_DIR, BROOK_BIN, kafka_tool, unique, wait_for

TOOLS = ["topics", "configs", "console-producer", "console-consumer", "consumer-groups",
         "verifiable-producer", "verifiable-consumer", "delete-records", "leader-election",
         "producer-perf-test", "consumer-perf-test"]


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_has_a_wrapper_and_help(tool):
    r = kafka_tool(tool, "--help")
    assert r.returncode == 0, r.stderr
    assert "--bootstrap-server" in r.stdout or "--broker-list" in r.stdout, r.stdout


@pytest.mark.parametrize("tool", TOOLS)
def test_a_mistyped_flag_names_the_flag_and_exits_non_zero(tool):
    r = kafka_tool(tool, "--bootstrap-servers", "localhost:1")
    assert r.returncode != 0
    assert "did you mean '--bootstrap-server'?" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "panicked" not in r.stderr


def test_a_mistyped_tool_name_gets_suggestions():
    # The seed's notes write kafka-console-consumer-groups.sh for kafka-consumer-groups.sh.
    r = subprocess.run([BROOK_BIN, "kafka-console-consumer-groups", "--list"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "kafka-consumer-groups" in r.stderr and "did you mean" in r.stderr, r.stderr
    r = subprocess.run([BROOK_BIN, "topics.sh", "--help"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and "--create" in r.stdout, "short names and .sh suffixes work"


def test_kafka_server_start_and_stop_run_a_broker_from_a_properties_file(tmp_path):
    node_id = 7000 + int(time.time()) % 1000
    props = tmp_path / "server.properties"
    props.write_text(f"node.id={node_id}\nlisteners=PLAINTEXT://127.0.0.1:0\n"
                     f"log.dirs={tmp_path / 'data'}\n")
    start = subprocess.Popen([str(BIN_DIR / "kafka-server-start.sh"), str(props)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env={"BROOK_BIN": BROOK_BIN, "PATH": "/usr/bin:/bin"})
    try:
        line = start.stdout.readline()
        m = re.search(r"listening on PLAINTEXT://([^ ]+)", line)
        assert m and f"node.id={node_id}" in line, line
        topic = unique("started")
        kafka_tool("topics", "--bootstrap-server", m.group(1), "--create", "--topic", topic,
                   check=True)
        # Only the broker with this node id is asked to stop (other brokers may be running).
        missing = subprocess.run([str(BIN_DIR / "kafka-server-stop.sh"), f"--node.id={node_id + 1}"],
                                 capture_output=True, text=True, timeout=30)
        assert missing.returncode == 1 and "No kafka server to stop" in missing.stdout
        assert start.poll() is None
        stop = subprocess.run([str(BIN_DIR / "kafka-server-stop.sh"), f"--node.id={node_id}"],
                              capture_output=True, text=True, timeout=30)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert start.wait(timeout=30) == 0
        assert "[brook] stopped" in start.stdout.read()
        assert (tmp_path / "data" / f"{topic}-0").is_dir()
    finally:
        if start.poll() is None:
            start.kill()
            start.wait()
