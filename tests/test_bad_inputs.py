"""The bad-input matrix (issue 5): every row expects a clear AdjitError or a correct result.

Rows run in child processes (two, side by side, each importing Numba once), so a row that
crashes the interpreter fails its own test instead of killing the run: the child prints a line
when a row starts and one when it ends; a row that started and never ended crashed, and the rows
after it run in a fresh child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
import warnings

import numpy as np
import pytest

import adjit
import adjit.numpy as anp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS: dict = {}


def row(fun):
    ROWS[fun.__name__] = fun
    return fun


def raises(kind, fun, *args, match=None):
    try:
        fun(*args)
    except kind as exc:
        assert isinstance(exc, adjit.AdjitError), f"{type(exc).__name__} is not an AdjitError"
        if match:
            assert match in str(exc), f"{match!r} not in {exc}"
        return exc
    raise AssertionError(f"expected {kind.__name__}")


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=1e-10, atol=1e-12, equal_nan=True)


# --------------------------------------------------------------------------- arguments


@row
def wrong_number_of_arguments():
    f2 = lambda x, y: anp.sum(x * y)  # noqa: E731
    raises(adjit.AdjitTypeError, adjit.jit(f2), 1.0, match="missing a required argument")
    raises(adjit.AdjitTypeError, adjit.grad(f2), 1.0, 2.0, 3.0, match="too many")
    raises(adjit.AdjitTypeError, adjit.vmap(f2), np.ones(3))
    raises(adjit.AdjitTypeError, adjit.jvp, f2, (1.0,), (1.0,))
    close(adjit.jit(f2)(2.0, 3.0), 6.0)  # and the right call still works


@row
def string_none_object_for_an_array():
    for bad in ("1.0", None, object(), {1, 2}):
        raises(adjit.AdjitTypeError, adjit.jit(anp.sin), bad)
        raises(adjit.AdjitTypeError, adjit.grad(anp.sin), bad)
    raises(adjit.AdjitTypeError, adjit.jit(anp.sin), np.array([1.0, None]), match="object")
    # a list of numbers is an array, as in NumPy
    close(adjit.jit(anp.sin)([1.0, 2.0]), np.sin([1.0, 2.0]))


@row
def integer_and_boolean_inputs_to_grad():
    g = adjit.grad(lambda x: anp.sum(x * 2.0))
    for bad in (1, True, np.arange(3), np.array([True, False]), np.int32(4)):
        raises(adjit.AdjitTypeError, g, bad, match="floating-point")
    # integers elsewhere keep NumPy's result
    close(adjit.jit(lambda x: x * 2)(np.arange(3)), [0, 2, 4])
    close(adjit.grad(lambda x, n: x * n)(1.5, 3), 3.0)


@row
def complex_inputs():
    # complex64 and complex128 work (tests/test_complex.py); a complex output needs
    # holomorphic=True, and wider complex types are refused
    raises(adjit.AdjitTypeError, adjit.grad(anp.sin), 1j, match="holomorphic=True")
    raises(adjit.AdjitTypeError, adjit.jit(anp.sin), np.ones(2, np.clongdouble),
           match="complex")
    raises(adjit.AdjitTypeError, adjit.grad(anp.sin, holomorphic=True), 1.0, match="complex")


@row
def shape_mismatches():
    raises(adjit.AdjitValueError, adjit.jit(anp.add), np.ones(3), np.ones(4), match="broadcast")
    raises(adjit.AdjitValueError, adjit.jit(anp.matmul), np.ones((2, 3)), np.ones((2, 3)),
           match="align")
    raises(adjit.AdjitValueError, adjit.jit(lambda x: anp.reshape(x, (4, 4))), np.ones(6))
    add = adjit.jit(lambda a, b: a + b)
    close(add(np.ones(3), np.ones(3)), 2 * np.ones(3))
    # after compiling for equal lengths, unequal ones are rejected, never read out of bounds
    raises(adjit.AdjitValueError, add, np.ones(3), np.ones(5))
    raises(adjit.AdjitValueError, add, np.ones((3, 2)), np.ones((2, 3)))
    raises(adjit.AdjitValueError, adjit.grad(lambda x: anp.sum(x[5])), np.ones(3),
           match="out of bounds")


@row
def zero_size_arrays():
    close(adjit.grad(lambda x: anp.sum(anp.sin(x)))(np.ones(0)), np.ones(0))
    out = adjit.jit(lambda x: x * 2.0 + 1.0)(np.ones((0, 3)))
    assert out.shape == (0, 3)
    close(adjit.jit(lambda x: anp.sum(x, axis=0))(np.ones((0, 3))), np.zeros(3))
    # NumPy has no maximum of nothing either
    raises(adjit.AdjitValueError, adjit.jit(anp.max), np.ones(0), match="zero-size")
    raises(adjit.AdjitValueError, adjit.jit(lambda x: anp.min(x, axis=0)), np.ones((0, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        close(adjit.jit(anp.mean)(np.ones(0)), np.mean(np.ones(0)))  # nan, as NumPy


@row
def nan_and_inf_propagate():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, 2.0])
    with np.errstate(all="ignore"):
        close(adjit.jit(lambda x: anp.exp(x) + anp.sin(x))(x), np.exp(x) + np.sin(x))
        close(adjit.jit(anp.log)(x), np.log(x))
        close(adjit.jit(anp.sqrt)(x), np.sqrt(x))
        close(adjit.jit(anp.max)(x), np.max(x))
        close(adjit.jit(anp.maximum)(x, x[::-1].copy()), np.maximum(x, x[::-1]))
        close(adjit.jit(anp.sum)(x), np.sum(x))
        g = adjit.grad(lambda x: anp.sum(anp.sin(x)))(x)
        close(g, np.cos(x))
        close(adjit.grad(lambda x: anp.sum(anp.sqrt(x)))(np.array([0.0, 4.0])), [np.inf, 0.25])


def _layout_check(x):
    f = lambda x: anp.sin(x) * 2.0 + anp.sum(x, axis=0)  # noqa: E731
    close(adjit.jit(f)(x), np.sin(x) * 2.0 + np.sum(x, axis=0))
    close(adjit.grad(lambda x: anp.sum(x * x * anp.cos(x[::-1])))(x),
          2 * x * np.cos(x[::-1]) - (x * x)[::-1] * np.sin(x))


@row
def noncontiguous_negative_stride_fortran_readonly():
    base = np.arange(24.0).reshape(4, 6) / 7.0
    _layout_check(base[:, ::2])                 # non-contiguous
    _layout_check(base[::-1])                   # negative stride
    _layout_check(base[::-2, ::-3])             # both
    _layout_check(np.asfortranarray(base))      # Fortran order
    ro = base.copy()
    ro.flags.writeable = False
    _layout_check(ro)                           # read-only
    _layout_check(base)                         # and the plain one after them all


@row
def zero_d_arrays():
    close(adjit.grad(anp.sin)(np.array(0.5)), np.cos(0.5))
    close(adjit.jit(lambda x: x * 2.0)(np.array(0.5)), 1.0)
    close(adjit.jit(lambda x, y: x * y)(np.array(0.5), np.ones(3)), 0.5 * np.ones(3))
    assert adjit.grad(anp.sin)(np.float32(0.5)).dtype == np.float32


@row
def very_large_rank():
    x = np.full((1,) * 31 + (2,), 0.5)
    close(adjit.grad(lambda x: anp.sum(anp.sin(x)))(x), np.cos(x))
    y = np.ones((2,) + (1,) * 31)
    close(adjit.jit(lambda x, y: anp.sum(x * y, axis=-1))(x, y),
          np.sum(x * y, axis=-1))


@row
def in_place_mutation_of_a_traced_array():
    def assign(x):
        x[0] = 1.0
        return x

    raises(adjit.AdjitTypeError, adjit.jit(assign), np.ones(3), match=".at[idx].set")
    raises(adjit.AdjitTypeError, adjit.grad(lambda x: anp.sum(assign(x))), np.ones(3))

    def augmented(x):
        x += 1.0  # rebinds x to x + 1.0, as on any immutable array: the caller's is unchanged
        return anp.sum(x * x)

    x = np.ones(3)
    close(adjit.grad(augmented)(x), 4 * np.ones(3))
    close(x, np.ones(3))


@row
def function_returning_nothing_or_a_non_array():
    raises(adjit.AdjitTypeError, adjit.grad(lambda x: None), 1.0, match="NoneType")
    raises(adjit.AdjitTypeError, adjit.grad(lambda x: "a"), 1.0)
    raises(adjit.AdjitTypeError, adjit.jit(lambda x: "a"), 1.0, match="str")
    raises(adjit.AdjitTypeError, adjit.jit(lambda x: object()), 1.0)
    raises(adjit.AdjitTypeError, adjit.grad(lambda x: [x, x]), 1.0, match="scalar")
    raises(adjit.AdjitTypeError, adjit.grad(lambda x: x * np.ones(2)), 1.0, match="scalar")
    # None is an empty pytree (as in JAX): jit of a function returning None returns None
    assert adjit.jit(lambda x: None)(1.0) is None
    # numbers and containers of arrays are results
    close(adjit.jit(lambda x: 3.0)(1.0), 3.0)
    out = adjit.jit(lambda x: {"a": x, "b": [x * 2.0]})(1.5)
    close(out["b"][0], 3.0)


def _recursive(x, depth):
    return x if depth == 0 else anp.sin(_recursive(x, depth - 1))


def _forever(x):
    return _forever(anp.sin(x))


@row
def recursion():
    expected = 0.3
    slope = 1.0
    for _ in range(30):
        slope *= np.cos(expected)
        expected = np.sin(expected)
    close(adjit.jit(lambda x: _recursive(x, 30))(0.3), expected)
    np.testing.assert_allclose(adjit.grad(lambda x: _recursive(x, 30))(0.3), slope, rtol=1e-12)
    raises(adjit.AdjitError, adjit.grad(_forever), 0.3, match="recursion limit")
    raises(adjit.AdjitError, adjit.jit(_forever), np.ones(3), match="recursion limit")
    # and nothing is left behind: tracing still works
    close(adjit.grad(anp.sin)(0.25), np.cos(0.25))


SCALE = 2.0


def _global_scale(x):
    return x * SCALE


def _helper(x):
    return x * 2.0


@row
def closure_that_changes_between_calls():
    global SCALE, _helper
    # a closed-over array changed in place: seen, also where the trace computed with it
    a = np.ones(3)
    f = adjit.jit(lambda x: x * a + np.sin(a))
    close(f(np.ones(3)), 1 + np.sin(1.0))
    a[:] = 5.0
    close(f(np.ones(3)), 5 + np.sin(5.0))
    g = adjit.grad(lambda x: anp.sum(x * a[0]))
    close(g(np.ones(2)), 5 * np.ones(2))
    a[0] = -1.0
    close(g(np.ones(2)), -np.ones(2))

    # a closed-over 0-d array (traced as a literal) changed in place
    z = np.array(2.0)
    h = adjit.jit(lambda x: x * z)
    close(h(1.0), 2.0)
    z[()] = 3.0
    close(h(1.0), 3.0)

    # a nonlocal scalar rebound
    s = 2.0

    def scaled(x):
        return x * s

    k = adjit.jit(scaled)
    close(k(1.0), 2.0)
    s = 3.0
    close(k(1.0), 3.0)
    close(adjit.grad(scaled)(1.0), 3.0)

    # a global rebound, and a global helper function replaced
    m = adjit.jit(_global_scale)
    close(m(1.0), 2.0)
    SCALE = 4.0
    try:
        close(m(1.0), 4.0)
    finally:
        SCALE = 2.0
    close(m(1.0), 2.0)
    n = adjit.jit(lambda x: _helper(x) + 1.0)
    close(n(1.0), 3.0)
    old = _helper
    _helper = lambda x: x * 10.0  # noqa: E731
    try:
        close(n(1.0), 11.0)
    finally:
        _helper = old

    # unchanged closures keep their kernel: no retrace, no recompile
    before = adjit.cache_info()["compiles"]
    for _ in range(3):
        close(k(1.0), 3.0)
    assert adjit.cache_info()["compiles"] == before


# --------------------------------------------------------------------------- the runner

CHILD = r"""
import importlib.util, json, sys, traceback
spec = importlib.util.spec_from_file_location("bad_inputs_rows", {path!r})
rows = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rows)
for name in {names!r}:
    print("START " + name, flush=True)
    try:
        rows.ROWS[name]()
        result = "ok"
    except BaseException:
        result = traceback.format_exc()
    print("END " + json.dumps([name, result]), flush=True)
"""


def _spawn(names):
    env = dict(os.environ, PYTHONPATH=ROOT)
    code = CHILD.format(path=os.path.abspath(__file__), names=list(names))
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _collect(proc, names, results):
    """Read a child's protocol; returns the names it never started (after a crash)."""
    out, err = proc.communicate(timeout=300)
    started = None
    for line in out.splitlines():
        if line.startswith("START "):
            started = line[6:]
        elif line.startswith("END "):
            name, result = json.loads(line[4:])
            results[name] = result
            started = None
    if started is not None:
        results[started] = (f"the interpreter died (exit status {proc.returncode}) while "
                            f"running this row:\n{err[-3000:]}")
    return [n for n in names if n not in results]


@pytest.fixture(scope="module")
def results():
    results: dict = {}
    names = list(ROWS)
    batches = [names[0::2], names[1::2]]  # two children side by side
    while any(batches):
        procs = [(_spawn(b), b) for b in batches if b]
        batches = [_collect(p, b, results) for p, b in procs]
    return results


@pytest.mark.parametrize("name", list(ROWS))
def test_bad_input_row(name, results):
    result = results[name]
    assert result == "ok", result


def test_runner_survives_a_crash(tmp_path):
    """The protocol itself: a row that kills the interpreter fails alone."""
    ROWS_CRASH = tmp_path / "crash_rows.py"
    ROWS_CRASH.write_text("import os\nROWS = {'dies': lambda: os._exit(-11 & 0xff), "
                          "'fine': lambda: None}\n")
    code = CHILD.format(path=str(ROWS_CRASH), names=["dies", "fine"])
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    results: dict = {}
    left = _collect(proc, ["dies", "fine"], results)
    assert "interpreter died" in results["dies"] and left == ["fine"]


if __name__ == "__main__":  # run the rows here, in this process
    for name, fun in ROWS.items():
        try:
            fun()
            print("ok  ", name)
        except Exception:
            print("FAIL", name)
            traceback.print_exc()
