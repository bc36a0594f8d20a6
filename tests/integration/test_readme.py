"""README's quick start must stay true: the seed's tool commands, its kcat commands and its Python
example run as written (against a test broker instead of localhost:9092)."""

import json
import re
import subprocess
import sys

from conftest import BROOK_BIN, ROOT

README = (ROOT / "README.md").read_text()
QUICK_START = README[README.index("## Quick start"):README.index("## Supported APIs")]


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", QUICK_START, re.S)


def run_line(line, broker, cwd):
    cmd = line.replace("localhost:9092", broker.bootstrap).replace("bin/", f"{ROOT}/bin/")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=60, cwd=cwd, text=True,
                       env={"BROOK_BIN": BROOK_BIN, "PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r.stdout


def test_readme_tool_commands_run_as_written(broker, tmp_path):
    tools = [l for l in blocks("sh")[0].splitlines() if l.strip()]
    assert sum("bin/kafka-" in l for l in tools) >= 12
    out = {}
    for line in tools:
        tool = re.search(r"bin/(kafka-[a-z-]+)\.sh", line)
        key = tool.group(1) if tool else line.split()[0]
        out.setdefault(key, []).append(run_line(line, broker, tmp_path))
    assert "Created topic hello." in out["kafka-topics"][0]
    assert "hello" in out["kafka-topics"][1].split()
    assert "PartitionCount: 3" in out["kafka-topics"][2]
    assert "retention.ms=172800000" in out["kafka-topics"][2]
    consumed = out["kafka-console-consumer"][0].split()
    assert sorted(consumed) == ["abc1-ppp123", "abc2-ppp456"]
    assert "hello-group" in out["kafka-consumer-groups"][0].split()
    described = out["kafka-consumer-groups"][1]
    assert "CURRENT-OFFSET" in described and "LAG" in described
    events = [json.loads(l) for l in out["kafka-verifiable-producer"][0].splitlines()]
    assert sum(e["name"] == "producer_send_success" for e in events) == 10
    events = [json.loads(l) for l in out["kafka-verifiable-consumer"][0].splitlines()]
    assert sum(e["count"] for e in events if e["name"] == "records_consumed") == 10
    assert "partition: verify-0\tlow_watermark: 5" in out["kafka-delete-records"][0]


def test_readme_quick_start_runs_as_written(broker):
    kcat_lines = [l.split("#")[0].strip() for b in blocks("sh") for l in b.splitlines()
                  if l.startswith("kcat") or l.startswith("printf") and "kcat" in l]
    assert len(kcat_lines) == 3
    for line in kcat_lines:
        cmd = line.replace("localhost:9092", broker.bootstrap)
        r = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=60)
        assert r.returncode == 0, (cmd, r.stderr.decode())
        if " -C " in cmd:
            assert "abc1 = ppp123" in r.stdout.decode()
    (python,) = blocks("python")
    r = subprocess.run([sys.executable, "-c", python.replace("localhost:9092", broker.bootstrap)],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 10
    assert {l.split()[3] for l in lines} == {f"b'v{i}'" for i in range(10)}
