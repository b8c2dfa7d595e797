"""config.tiered: the reference interpreter answers a new kernel's calls while it compiles in a
background thread; then the kernel does.

No test times anything: a gate on the compilation (a patched ``runner.load_kernel`` that waits
for an event) shows that the first call returned before the kernel existed.
"""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.backend.numba_cpu import runner
from adjit.config import Config, config
from adjit.ir.interpret import interpret


def loss(x):
    return anp.sum(anp.sin(x) * x)


def loss_grad(x):  # closed form
    return np.cos(x) * x + np.sin(x)


X = np.linspace(0.1, 1.3, 7)


def the_runner(f):
    """The CompiledGraph behind the one signature ``f`` has been called with."""
    [exe] = [e for entries in f.staged._cache.values() for e in entries]
    return exe.run


@pytest.fixture
def tiered(monkeypatch):
    monkeypatch.setattr(config, "tiered", True)
    yield
    assert runner.wait_for_kernels(timeout=120)


@pytest.fixture
def gate(monkeypatch):
    """Compilations wait until ``gate.set()`` (a test that forgets is failed, not hung)."""
    opened = threading.Event()
    load = runner.load_kernel

    def gated(*args, **kwargs):
        assert opened.wait(timeout=120), "the test never opened the compile gate"
        return load(*args, **kwargs)

    monkeypatch.setattr(runner, "load_kernel", gated)
    yield opened
    opened.set()


@pytest.mark.parametrize("raw, expected", [(None, False), ("", False), ("0", False),
                                           ("off", False), ("1", True), ("yes", True)])
def test_off_by_default_and_read_from_ADJIT_TIERED(monkeypatch, raw, expected):
    assert Config.options()["tiered"] == "ADJIT_TIERED"
    if raw is None:
        monkeypatch.delenv("ADJIT_TIERED", raising=False)
    else:
        monkeypatch.setenv("ADJIT_TIERED", raw)
    assert Config().tiered is expected


def test_interpreter_answers_until_the_kernel_is_ready(tiered, gate, monkeypatch):
    f = adjit.grad(loss)
    first = f(X)  # returns although the compilation is held at the gate
    compiled = the_runner(f)
    assert compiled.kernel is None and compiled._thread.is_alive()
    interpreted = interpret(compiled.optimized, (), [X])[0]
    np.testing.assert_array_equal(first, interpreted)
    np.testing.assert_allclose(first, loss_grad(X), rtol=1e-13)
    np.testing.assert_array_equal(f(X), first)  # still the interpreter
    before = adjit.cache_info()
    gate.set()
    assert runner.wait_for_kernels(timeout=120)
    assert compiled.kernel is not None
    after = adjit.cache_info()
    assert sum(after[k] - before[k] for k in ("compiles", "disk_hits", "memory_hits")) == 1

    def no_interpreter(*args):
        raise AssertionError("the interpreter ran after the kernel was ready")

    monkeypatch.setattr(runner, "interpret", no_interpreter)
    later = f(X)
    np.testing.assert_allclose(later, loss_grad(X), rtol=1e-13)
    monkeypatch.setattr(config, "tiered", False)
    np.testing.assert_array_equal(later, adjit.grad(loss)(X))  # a tiered-off kernel's bits


def test_scalar_fast_path_takes_the_kernel_once_ready(tiered, gate):
    f = adjit.grad(lambda x: x ** 2 + anp.sin(x))
    assert f(0.5) == pytest.approx(1.0 + np.cos(0.5), rel=1e-15)
    assert not f.staged._fast_scalar  # no kernel yet
    gate.set()
    assert runner.wait_for_kernels(timeout=120)
    assert f(0.7) == pytest.approx(1.4 + np.cos(0.7), rel=1e-15)
    kernel, result_type = f.staged._fast_scalar[float]
    assert kernel is the_runner(f).kernel and result_type is np.float64


def test_float32_outputs_keep_their_dtype_in_both_tiers(tiered):
    f = adjit.value_and_grad(lambda x: anp.sum(x * x))
    x = np.arange(1.0, 4.0, dtype=np.float32)
    value, grad = f(x)
    assert value.dtype == grad.dtype == np.float32
    assert runner.wait_for_kernels(timeout=120)
    assert the_runner(f).kernel is not None
    value2, grad2 = f(x)
    assert (value2.dtype, grad2.dtype) == (np.float32, np.float32)
    assert value2 == value == 14.0
    np.testing.assert_array_equal(grad2, 2 * x)


def test_an_error_while_compiling_reaches_the_user(tiered, monkeypatch):
    class Boom(Exception):
        pass

    def failing(*args, **kwargs):
        raise Boom("no kernel today")

    monkeypatch.setattr(runner, "load_kernel", failing)
    f = adjit.grad(loss)
    np.testing.assert_allclose(f(X), loss_grad(X), rtol=1e-13)  # the interpreter answered
    assert runner.wait_for_kernels(timeout=120)
    with pytest.raises(Boom, match="no kernel today") as raised:
        f(X)
    assert any("background" in note for note in raised.value.__notes__)
    with pytest.raises(Boom):  # later calls compile in the foreground, raising each time
        f(X)
    monkeypatch.undo()
    monkeypatch.setattr(config, "tiered", True)
    np.testing.assert_allclose(f(X), loss_grad(X), rtol=1e-13)
    assert the_runner(f).kernel is not None


def test_threads_calling_at_once_start_one_compilation(tiered, gate):
    f = adjit.grad(loss)
    results, errors = [], []

    def call():
        try:
            results.append(f(X))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 4
    assert the_runner(f).kernel is None  # all four answered by the interpreter
    for r in results:
        np.testing.assert_array_equal(r, results[0])
    assert sum(t.name == "adjit-compile" for t in threading.enumerate()) == 1
    gate.set()
    assert runner.wait_for_kernels(timeout=120)
    np.testing.assert_allclose(f(X), loss_grad(X), rtol=1e-13)


def test_a_foreground_compile_meanwhile_does_not_deadlock(tiered, monkeypatch):
    f = adjit.grad(lambda x: anp.sum(anp.tanh(x) * x))
    f(X)  # compiling in the background (holding Numba's compiler lock at times)
    monkeypatch.setattr(config, "tiered", False)
    g = adjit.grad(lambda x: anp.sum(anp.exp(x) * x))
    np.testing.assert_allclose(g(X), np.exp(X) * (1 + X), rtol=1e-13)  # waits, then compiles
    assert runner.wait_for_kernels(timeout=120)
    assert the_runner(f).kernel is not None and the_runner(g).kernel is not None


def test_inspect_compiles_in_the_foreground(tiered):
    info = adjit.inspect(adjit.grad(loss), X)
    assert "define" in info.llvm


@pytest.mark.slow
def test_a_process_ending_while_compiling_waits_and_stores_the_kernel(tmp_path):
    script = ("import numpy as np, adjit, adjit.numpy as anp\n"
              "f = adjit.grad(lambda x: anp.sum(anp.cos(x) * x * x))\n"
              "print(float(f(np.ones(3))[0]))\n")
    env = dict(os.environ, ADJIT_TIERED="1", ADJIT_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(2 * np.cos(1.0) - np.sin(1.0), rel=1e-14)
    assert list(tmp_path.glob("*/k_*.py"))
    assert list(tmp_path.glob("*/__pycache__/*.nbi"))  # Numba's index, written at the end
