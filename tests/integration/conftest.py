"""Fixtures that run the real `brook` binary on 127.0.0.1 with a free port and a temporary data
directory, and clean up after themselves."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROOK_BIN = os.environ.get("BROOK_BIN", str(ROOT / "target" / "release" / "brook"))
LISTENING = re.compile(r"listening on PLAINTEXT://([^:\s]+):(\d+)")


def wait_for(condition, timeout=20.0, interval=0.05, what="condition"):
    """Polls `condition` until it returns a truthy value, which is returned; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # the condition may fail until the system is ready
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}")


class Broker:
    """One broker process. `start()` may be called again after `stop()`/`kill()` on the same data."""

    def __init__(self, data_dir, overrides=None):
        self.data_dir = Path(data_dir)
        self.overrides = dict(overrides or {})
        self.proc = None
        self.port = None
        self.log_path = self.data_dir.parent / (self.data_dir.name + ".log")
        self._reader = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=20.0, port=0):
        """Starts the broker; `port=0` lets it pick a free one. A client that cannot follow a
        new port (librdkafka keeps its bootstrap list) needs `start(port=old_port)`."""
        args = [BROOK_BIN, "broker",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                "--override", f"log.dirs={self.data_dir}"]
        for k, v in self.overrides.items():
            args += ["--override", f"{k}={v}"]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        found = {}
        ready = threading.Event()

        def pump(stream, sink):
            # Keep draining stdout so the broker never blocks on a full pipe.
            for line in iter(stream.readline, b""):
                sink.write(line)
                sink.flush()
                m = LISTENING.search(line.decode(errors="replace"))
                if m and not ready.is_set():
                    found["port"] = int(m.group(2))
                    ready.set()
            sink.close()

        self._reader = threading.Thread(target=pump, args=(self.proc.stdout, log), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"broker did not start (exit {self.proc.poll()}):\n{self.log()}")
        self.port = found["port"]
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self, timeout=20.0):
        """Clean shutdown (SIGTERM); asserts the broker exits with status 0."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout)
            assert code == 0, f"broker exited with {code}:\n{self.log()}"
        self.proc = None

    def kill(self):
        """kill -9: no chance to flush or close anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self, port=0):
        self.stop()
        return self.start(port=port)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item, so fixtures can tell that the test failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def broker_factory(request):
    """Starts brokers on demand; every one is stopped and its data removed at the end. When the
    test failed, each broker's output is printed (pytest shows it under the failure)."""
    tmp = Path(tempfile.mkdtemp(prefix="brook-it-"))
    brokers = []

    def make(**overrides):
        b = Broker(tmp / f"broker{len(brokers)}", {k.replace("_", "."): v for k, v in overrides.items()})
        brokers.append(b)
        return b.start()

    yield make
    for b in brokers:
        b.kill()
    failed = any(getattr(getattr(request.node, "rep_" + when, None), "failed", False)
                 for when in ("setup", "call"))
    if failed:
        for b in brokers:
            sys.stderr.write(f"\n--- broker log {b.log_path.name} (last 5000 chars) ---\n{b.log()}\n")
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def broker(broker_factory):
    # No initial rebalance delay, so group tests need not wait 3 s for the first assignment.
    return broker_factory(**{"group_initial_rebalance_delay_ms": "0"})


def unique(prefix="t"):
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


BIN_DIR = ROOT / "bin"


def kafka_tool(tool, *args, input=None, timeout=60, check=False):
    """Runs bin/kafka-<tool>.sh (the wrapper a user types) against BROOK_BIN; returns the
    CompletedProcess with text stdout/stderr."""
    env = dict(os.environ, BROOK_BIN=BROOK_BIN)
    proc = subprocess.run([str(BIN_DIR / f"kafka-{tool}.sh"), *map(str, args)], input=input,
                          capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"kafka-{tool}.sh {' '.join(map(str, args))} exited "
                             f"{proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc
