"""Concurrency through the public API: threads calling a new function together, and two
processes compiling into one disk cache (tests/test_cache.py covers the cache layer itself)."""

import json
import os
import subprocess
import sys
import threading

import numpy as np

import adjit
import adjit.numpy as anp
from adjit.backend.numba_cpu import cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _expected_grad(x):
    return np.cos(x) * np.exp(x) + np.sin(x) * np.exp(x) + 2 * x


def test_eight_threads_first_call_compile_once(tmp_path, monkeypatch):
    """Eight threads calling a new grad at once: one trace, one compilation, every result
    right (before the trace stack was per thread, a thread could stage into another's trace
    and get a Tracer back)."""
    monkeypatch.setenv("ADJIT_CACHE_DIR", str(tmp_path))
    cache._reset_for_tests()
    traces = []

    def f(x):
        traces.append(1)
        return anp.sum(anp.sin(x) * anp.exp(x) + x * x)

    g = adjit.grad(f)
    xs = [np.linspace(0.0, 1.0, 5) + i for i in range(8)]
    barrier = threading.Barrier(8)
    out, errors = [None] * 8, []

    def worker(i):
        try:
            barrier.wait()
            out[i] = g(xs[i])
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to provoke races
    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors
    for x, got in zip(xs, out):
        assert isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, _expected_grad(x), rtol=1e-12)
    assert len(traces) == 1
    assert adjit.cache_info()["compiles"] == 1


def test_threads_eager_numpy_while_another_traces():
    """Plain adjit.numpy calls on arrays in one thread are not staged into another thread's
    trace."""
    stop = threading.Event()
    bad = []

    def eager():
        while not stop.is_set():
            y = anp.sin(np.ones(2))
            if not isinstance(y, np.ndarray):
                bad.append(type(y))

    t = threading.Thread(target=eager)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    t.start()
    try:
        for i in range(20):
            adjit.make_graph(lambda x: anp.sum(anp.cos(x) * (i + 1.0)))(np.ones(3))
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    assert not bad


def test_threads_tracing_different_functions_at_once():
    """Symbolic lengths and their guards are process state: threads tracing different
    functions (with lengths that the code reads) at once must not see each other's
    (a ConcretizationError 'n0 ... has no concrete value' before the lock)."""
    errors, wrong = [], []

    def worker(k):
        try:
            for i in range(10):
                n = 2 + (i + k) % 5
                f = adjit.grad(lambda x: anp.sum(x * x[1:].sum() * float(x.shape[0])))
                x = np.linspace(0.0, 1.0, n) + k
                s, s1 = x.sum(), x[1:].sum()
                if not np.allclose(f(x), (s1 + s * (np.arange(n) >= 1)) * n):
                    wrong.append((k, n))
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    previous = adjit.config.jit
    adjit.config.update("jit", False)  # the race is in tracing; skip compiling 40 kernels
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
        adjit.config.update("jit", previous)
    assert not errors and not wrong


CHILD = """
import json, sys
import numpy as np
import adjit, adjit.numpy as anp

def f(x, y):
    return anp.sum(anp.tanh(x @ y)) + anp.sum(anp.log1p(x * x))

x = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
y = np.linspace(0.5, 2.0, 8).reshape(4, 2)
value, (gx, gy) = adjit.value_and_grad(f, argnums=(0, 1))(x, y)
print(json.dumps(dict(adjit.cache_info(), value=float(value), gx=gx.tolist(), gy=gy.tolist())))
"""


def test_two_processes_same_cache_dir_public_api(tmp_path):
    """Two processes compiling the same function into one cache folder at once: both right,
    one compilation between them (the file lock), and the entry they leave loads cleanly."""
    env = dict(os.environ, ADJIT_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    previous = adjit.config.jit
    adjit.config.update("jit", False)
    try:
        x = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
        y = np.linspace(0.5, 2.0, 8).reshape(4, 2)
        value, (gx, gy) = adjit.value_and_grad(
            lambda x, y: anp.sum(anp.tanh(x @ y)) + anp.sum(anp.log1p(x * x)), argnums=(0, 1))(x, y)
    finally:
        adjit.config.update("jit", previous)
    for r in results:
        np.testing.assert_allclose(r["value"], value, rtol=1e-12)
        np.testing.assert_allclose(r["gx"], gx, rtol=1e-12)
        np.testing.assert_allclose(r["gy"], gy, rtol=1e-12)
        assert r["corrupt_entries"] == 0
    if cache.fcntl is not None:
        assert sum(r["compiles"] for r in results) == 1
    # a third process finds the kernel on disk
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, timeout=300)
    third = json.loads(out.stdout.strip().splitlines()[-1])
    assert third["compiles"] == 0 and third["disk_hits"] >= 1
