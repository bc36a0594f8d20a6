"""README's quick start must stay true: its kcat commands and its Python example run as written
(against a test broker instead of localhost:9092)."""

import re
import subprocess
import sys

from conftest import ROOT

README = (ROOT / "README.md").read_text()
QUICK_START = README[README.index("## Quick start"):README.index("## Supported APIs")]


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", QUICK_START, re.S)


def test_readme_quick_start_runs_as_written(broker):
    kcat_lines = [l.split("#")[0].strip() for b in blocks("sh") for l in b.splitlines()
                  if "kcat" in l]
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
