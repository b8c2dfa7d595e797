"""Kernels' arrays come from malloc's heap, not from a fresh mmap per call (compat.py's
``reuse_freed_memory``): counted in page faults, in fresh processes (a process that has freed
a large block has raised glibc's threshold by itself, so this one could not tell)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from adjit.backend.numba_cpu import compat

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")

_SCRIPT = r"""
import json, resource
import numpy as np
import adjit

f = adjit.jit(lambda x: x * 2.0 + 1.0)  # a new 2 MB array per call, freed by the caller
x = np.ones(1 << 18)
f(x)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    y = f(x)
    del y
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def _faults(env_extra: dict) -> int:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.update(env_extra)
    run = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                         env=env, timeout=300, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_kernels_arrays_reuse_freed_memory():
    pages = (1 << 18) * 8 // 4096  # 512 pages per output array
    reused = _faults({})
    # The user's own threshold is kept: 128 KiB, glibc's default, maps every array anew.
    mapped = _faults({"MALLOC_MMAP_THRESHOLD_": str(128 << 10)})
    assert mapped >= 40 * pages // 2, mapped  # the control: a fresh mapping faults per call
    assert reused < 4 * pages, (reused, mapped)


def test_user_settings_are_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert compat.reuse_freed_memory() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000")
    assert compat.reuse_freed_memory() is False
