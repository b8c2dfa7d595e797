"""benchmarks/adbench/run.py --smoke runs (GMM and BA at one small size each), checks every
derivative against JAX's before timing it, and writes its report and plots."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_adbench_smoke(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("matplotlib")
    out = tmp_path / "RESULTS.md"
    env = dict(os.environ, PYTHONPATH="")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "adbench", "run.py"),
                          "--smoke", "--only", "gmm,ba", "--output", str(out),
                          "--plots-dir", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    text = out.read_text()
    assert "check failed" not in text and "error:" not in text, text
    for workload in ("gmm", "ba"):
        with open(tmp_path / f"{workload}.png", "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        assert f"![{workload}.png]({workload}.png)" in text
    # Every goal line has a measured ratio: adjit's and JAX's derivatives were both checked
    # (against each other) and timed.
    goals = [line for line in text.splitlines() if "at every size" in line]
    assert len(goals) == 4, goals
    for line in goals:
        assert re.search(r"(met|missed): \d+\.\d\d–\d+\.\d\d \|$", line), line
