"""Timing, checking and reporting helpers shared by every benchmark row.

Method (ADBench's protocol, see ../shared/docs/BENCHMARKS.md): one-time work is never timed
here; the repeat count doubles until one batch takes at least 5 ms, then batches are collected
for a time budget (1 s, or 0.2 s with --quick) and the minimum time per call is reported.
"""

from __future__ import annotations

import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

MIN_BATCH_S = 0.005
MIN_BATCHES = 3


class CheckError(AssertionError):
    """A benchmarked derivative disagreed with the second (NumPy formula) implementation."""


def time_per_call(fn, arg, budget_s: float) -> tuple[float, int, int]:
    """Minimum seconds per call of ``fn(arg)``; returns (best, repeats per batch, batches).

    The loop calls ``fn(arg)`` directly (no wrapper) so that scalar latencies are not inflated.
    The garbage collector is off while timing, as in ``timeit``.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        reps = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(reps):
                fn(arg)
            dt = time.perf_counter() - t0
            if dt >= MIN_BATCH_S:
                break
            reps *= 2
        best = dt / reps
        batches = 1
        deadline = time.perf_counter() + budget_s
        while time.perf_counter() < deadline or batches < MIN_BATCHES:
            t0 = time.perf_counter()
            for _ in range(reps):
                fn(arg)
            dt = time.perf_counter() - t0
            best = min(best, dt / reps)
            batches += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return best, reps, batches


def check_close(what: str, got, expected, rtol: float, atol: float = 0.0) -> float:
    """Raise CheckError unless ``got`` matches ``expected``; returns the max relative error."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise CheckError(f"{what}: shape {got.shape}, expected {expected.shape}")
    if not np.all(np.isfinite(got)):
        raise CheckError(f"{what}: non-finite values")
    err = np.abs(got - expected)
    tol = atol + rtol * np.abs(expected)
    if np.any(err > tol):
        i = int(np.argmax(err - tol))
        raise CheckError(f"{what}: max abs error {float(err.flat[i]):.3g} at flat index {i} "
                         f"(got {float(got.flat[i])!r}, expected {float(expected.flat[i])!r})")
    scale = np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
    return float(np.max(err / scale)) if err.size else 0.0


def fmt_time(seconds) -> str:
    if seconds is None:
        return "—"
    if seconds < 0:
        return "-" + fmt_time(-seconds)
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(r) -> str:
    if r is None:
        return "—"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


@dataclass
class Line:
    """One line of the summary table: adjit against one peer on one workload."""

    row: str
    workload: str
    peer: str
    adjit: float | None  # seconds, or a count when unit == "count"
    other: float | None
    goal: str = ""  # the goal's text, "" when the issue sets none for this pair
    goal_ok: object = None  # callable(ratio, adjit, other) -> bool, or None
    note: str = ""
    unit: str = "s"
    override: str = ""  # a status that replaces the goal check (e.g. "not verified")

    @property
    def ratio(self):
        if (self.unit != "s" or self.adjit is None or self.other is None or self.other <= 0
                or self.adjit < 0):
            return None
        return self.adjit / self.other

    def status(self) -> str:
        if not self.goal:
            return "—"
        if self.override:
            return self.override
        if self.adjit is None or self.other is None or self.goal_ok is None:
            return "⚠️ not measured"
        return "✅ met" if self.goal_ok(self.ratio, self.adjit, self.other) else "❌ missed"

    def cells(self) -> list[str]:
        if self.unit == "count":
            a = "—" if self.adjit is None else f"{self.adjit:g}"
            o = "—" if self.other is None else f"{self.other:g}"
        else:
            a, o = fmt_time(self.adjit), fmt_time(self.other)
        goal = f"{self.goal}: {self.status()}" if self.goal else "—"
        return [self.row, self.workload, self.peer, a, o, fmt_ratio(self.ratio), goal, self.note]


@dataclass
class Report:
    """Everything a run collects: summary lines, per-row detail tables, notes."""

    lines: list[Line] = field(default_factory=list)
    details: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def detail(self, section: str, text: str) -> None:
        self.details.setdefault(section, []).append(text)


def run_json(ctx, command: list, env: dict, what: str) -> dict | None:
    """Runs a benchmark subprocess and returns the JSON object its last output line holds;
    None (and a note naming ``what``) where it fails. It runs in the adjit folder: ``python
    -c`` puts the working folder first on sys.path, so from elsewhere (a checkout) it would
    import that folder's adjit, not --adjit-path's."""
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800,
                         cwd=ctx.adjit_root)
    if run.returncode:
        log(f"  {what} failed: {run.stderr[-600:]}")
        ctx.report.notes.append(f"{what} failed: {run.stderr[-200:]}")
        return None
    return json.loads(run.stdout.strip().splitlines()[-1])


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- environment


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nproc() -> str:
    total = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = total
    return f"{usable}" if usable == total else f"{usable} usable of {total}"


def git_describe(root: str) -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "adjit"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "not a git checkout"
    return f"git {head}{' + uncommitted changes under adjit/' if dirty else ''}"
