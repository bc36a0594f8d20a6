"""Start-up: embedded defaults, Kafka's property names, and clear errors for bad configuration."""

import subprocess

from conftest import BROOK_BIN, ROOT


def run_broker(*args, timeout=10):
    return subprocess.run([BROOK_BIN, "broker", *args], capture_output=True, timeout=timeout)


def test_an_unknown_property_is_a_clear_start_up_error(tmp_path):
    r = run_broker("--override", "log.retention.msx=1000", "--override", f"log.dirs={tmp_path}")
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "unknown configuration property 'log.retention.msx'" in err
    assert "did you mean 'log.retention.ms'" in err


def test_a_malformed_value_is_a_clear_start_up_error(tmp_path):
    r = run_broker("--override", "num.partitions=three", "--override", f"log.dirs={tmp_path}")
    assert r.returncode != 0
    assert "invalid value 'three' for configuration property 'num.partitions'" in r.stderr.decode()


def test_a_malformed_properties_file_is_a_clear_start_up_error(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("node.id=1\nthis line has no separator\n")
    r = run_broker(str(props))
    assert r.returncode != 0
    assert "malformed line 2" in r.stderr.decode()


def test_the_shipped_server_properties_start_a_broker(broker_factory, tmp_path):
    # The example file names port 9092; a free port is overridden on top, as a user would.
    props = ROOT / "config" / "server.properties"
    proc = subprocess.Popen([BROOK_BIN, "broker", str(props), "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                             "--override", "advertised.listeners=PLAINTEXT://127.0.0.1:0",
                             "--override", f"log.dirs={tmp_path}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert "node.id=1 listening on PLAINTEXT://127.0.0.1:" in line
        assert (tmp_path / "meta.properties").exists()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
