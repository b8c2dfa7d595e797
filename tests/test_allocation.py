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
import json, resource, sys
import numpy as np
import adjit

# New arrays per call, freed by the caller: one of 2 MB, or three of 24 MB (72 MB in all).
n, outputs = int(sys.argv[1]), int(sys.argv[2])
f = adjit.jit(lambda x: tuple(x * float(k) + 1.0 for k in range(outputs)))
x = np.ones(n)
f(x)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    y = f(x)
    del y
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def _faults(env_extra: dict, n: int = 1 << 18, outputs: int = 1) -> int:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.update(env_extra)
    run = subprocess.run([sys.executable, "-c", _SCRIPT, str(n), str(outputs)],
                         capture_output=True, text=True,
                         env=env, timeout=300, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_kernels_arrays_reuse_freed_memory():
    pages = (1 << 18) * 8 // 4096  # 512 pages per output array
    reused = _faults({})
    # The user's own threshold is kept: 128 KiB, glibc's default, maps every array anew.
    mapped = _faults({"MALLOC_MMAP_THRESHOLD_": str(128 << 10)})
    assert mapped >= 40 * pages // 2, mapped  # the control: a fresh mapping faults per call
    assert reused < 4 * pages, (reused, mapped)


def test_large_arrays_are_reused_too():
    # Three 24 MB results per call: under glibc's highest dynamic thresholds (mmap from 32
    # MiB, trim above 64 MiB) freeing them trims the heap, and the next call faults again.
    # They ask for huge pages (runtime.py): a fault may map 2 MiB, so count in those.
    n, huge_pages = 3 << 20, 3 * ((3 << 20) * 8 >> 21)
    reused = _faults({}, n, 3)
    trimmed = _faults({"MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                       "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}, n, 3)
    assert trimmed >= 40 * huge_pages, trimmed  # the control: the old thresholds fault
    assert reused < 2 * huge_pages, (reused, trimmed)


def test_user_settings_are_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert compat.reuse_freed_memory() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000")
    assert compat.reuse_freed_memory() is False
