"""``parallel=True``: threads share each loop nest's outer axis, and results equal the serial
kernel's to rounding (reductions combine per-thread partial results in chunk order).

The thresholds that keep small calls serial are lowered here (``small_grain``), so arrays of a
few dozen elements are split into two chunks (CI has two cores, Numba two threads); each case
compares a parallel transform with the serial one, and with the closed form where there is one.
"""

from __future__ import annotations

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.backend.numba_cpu import codegen, runner
from adjit.config import config
from adjit.errors import AdjitTypeError, AdjitValueError


@pytest.fixture(autouse=True)
def small_grain(monkeypatch):
    monkeypatch.setattr(codegen, "GRAIN", 1)
    monkeypatch.setattr(runner, "PARALLEL_MIN_ELEMENTS", 0)


rng = np.random.default_rng(0)
X = rng.normal(size=(37, 23))
W = rng.normal(size=23)
V = rng.normal(size=301)


def both(transform, fun, *args, **options):
    """The results of ``transform(fun)`` serial and parallel at ``args``."""
    serial = transform(fun, **options)(*args)
    parallel = transform(fun, parallel=True, **options)(*args)
    return serial, parallel


def loss(X, w):
    """Reductions over every axis and each axis, a product, elementwise math, max/min."""
    h = anp.tanh(X @ w)
    return (anp.sum(h ** 2) + anp.sum(anp.max(X, axis=0) * anp.exp(-w))
            + anp.sum(anp.min(X, axis=1) ** 2) + anp.mean(anp.sin(X) * X))


@pytest.mark.slow
def test_value_and_grad_of_reductions_over_each_axis():
    (v, (gx, gw)), (pv, (pgx, pgw)) = both(adjit.value_and_grad, loss, X, W, argnums=(0, 1))
    np.testing.assert_allclose(pv, v, rtol=1e-12)
    np.testing.assert_allclose(pgx, gx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pgw, gw, rtol=1e-12, atol=1e-14)
    # and the derivative itself, in the second mode
    tangent = rng.normal(size=X.shape)
    _, jv = adjit.jvp(lambda x: loss(x, W), (X,), (tangent,), parallel=True)
    np.testing.assert_allclose(jv, np.sum(gx * tangent), rtol=1e-10)


def test_elementwise_closed_form_and_vmap():
    g = adjit.grad(lambda x: anp.sum(x ** 2 + anp.sin(x)), parallel=True)(V)
    np.testing.assert_allclose(g, 2 * V + np.cos(V), rtol=1e-14)
    xs = rng.normal(size=(40, 5))
    vg = adjit.vmap(adjit.grad(lambda x: anp.sum(x * anp.exp(x))), parallel=True)(xs)
    np.testing.assert_allclose(vg, (1 + xs) * np.exp(xs), rtol=1e-13)


def test_sum_of_one_chunk_and_of_every_thread_count():
    f = adjit.jit(lambda x: anp.sum(x * x), parallel=True)
    expected = np.sum(V * V)
    try:
        for threads in (1, 2, 64):  # 64: more than Numba's pool, which is the most used
            config.update("num_threads", threads)
            np.testing.assert_allclose(f(V), expected, rtol=1e-13)
    finally:
        config.reset("num_threads")


def test_nan_in_one_chunk_wins_the_max_and_the_min():
    x = V.copy()
    x[250] = np.nan  # in the second chunk
    f = adjit.jit(lambda x: (anp.max(x), anp.min(x), anp.sum(x)), parallel=True)
    assert all(np.isnan(r) for r in f(x))
    y = X.copy()
    y[30, 4] = np.nan
    m = adjit.jit(lambda x: anp.max(x, axis=0), parallel=True)(y)
    np.testing.assert_array_equal(np.isnan(m), np.isnan(np.max(y, axis=0)))
    np.testing.assert_allclose(m[~np.isnan(m)], np.max(y, axis=0)[~np.isnan(m)])


def test_sine_beyond_the_fast_range_in_one_chunk_reruns_with_libm():
    x = np.linspace(0.0, 3.0, 301)
    x[280] = 1e9  # only the second chunk meets it
    out = adjit.jit(lambda x: anp.sin(x) * 2.0, parallel=True)(x)
    np.testing.assert_array_equal(out, 2.0 * np.sin(x))


def test_gather_and_its_scatter_add_transpose():
    idx = np.array([3, 3, 0, 7, 3, 1] * 10)

    def f(x):
        return anp.sum(anp.take(x, idx) ** 2)

    grad = adjit.grad(f, parallel=True)
    g = grad(V[:9])
    expected = np.zeros(9)
    np.add.at(expected, idx, 2 * V[:9][idx])
    np.testing.assert_allclose(g, expected, rtol=1e-13)
    (exe,) = [e for entries in grad.staged._cache.values() for e in entries]
    assert "copies" in exe.run.parallel.source.text  # each thread adds into its own copy

    def rows(x):  # gathered along axis 1 of a matrix: the updates' first axis is split
        return anp.sum(anp.take(x, idx[:7], axis=1) * W[:7])

    g = adjit.grad(rows, parallel=True)(X[:, :9])
    expected = np.zeros((37, 9))
    np.add.at(expected.T, idx[:7], np.broadcast_to(W[:7], (37, 7)).T)
    np.testing.assert_allclose(g, expected, rtol=1e-13)


def test_float32_integer_and_complex_reductions():
    x32 = V.astype(np.float32)
    r32 = adjit.jit(lambda x: anp.sum(x * np.float32(2)), parallel=True)(x32)
    assert r32.dtype == np.float32
    np.testing.assert_allclose(r32, 2 * np.sum(x32, dtype=np.float64), rtol=1e-5)
    ints = np.arange(301)
    assert adjit.jit(lambda i: anp.sum(i * i), parallel=True)(ints) == np.sum(ints * ints)
    z = V + 1j * V[::-1]
    np.testing.assert_allclose(adjit.jit(lambda z: anp.sum(z * z), parallel=True)(z),
                               np.sum(z * z), rtol=1e-12)


def test_loop_bodies_run_serially_inside_a_parallel_kernel():
    def f(x):
        return anp.sum(adjit.fori_loop(0, 5, lambda i, c: c * 0.9 + anp.sin(c), x))

    s, p = both(adjit.grad, f, V)
    np.testing.assert_allclose(p, s, rtol=1e-12)


def test_small_calls_run_the_serial_kernel(monkeypatch):
    monkeypatch.setattr(runner, "PARALLEL_MIN_ELEMENTS", 1000)
    f = adjit.grad(lambda x: anp.sum(anp.cos(x)), parallel=True)
    np.testing.assert_allclose(f(V[:10]), -np.sin(V[:10]), rtol=1e-14)
    compiled = f.staged._cache
    (exe,) = [e for entries in compiled.values() for e in entries]
    assert exe.run.kernel is not None and exe.run.parallel.kernel is None
    np.testing.assert_allclose(f(np.tile(V, 4)), -np.sin(np.tile(V, 4)), rtol=1e-14)
    assert exe.run.parallel.kernel is not None


def test_parallel_and_serial_transforms_do_not_share_cached_functions():
    def f(x):
        return x * x

    x, t = V[:50], np.ones(50)
    _, serial = adjit.jvp(f, (x,), (t,))
    _, parallel = adjit.jvp(f, (x,), (t,), parallel=True)
    np.testing.assert_allclose(parallel, serial)
    key_serial = ("jvp", "cpu", False)
    key_parallel = ("jvp", "cpu", True)
    from adjit.dispatch import call_cache
    assert call_cache[f][key_parallel].parallel and not call_cache[f][key_serial].parallel
    assert "prange" in next(iter(call_cache[f][key_parallel]._cache.values()))[0] \
        .run.parallel.source.text


def test_parallel_source_splits_the_outer_loop_and_keeps_partials_per_chunk():
    f = adjit.jit(lambda x: anp.sum(x, axis=0) + anp.sum(x * x), parallel=True)
    f(X)
    (exe,) = [e for entries in f.staged._cache.values() for e in entries]
    text = exe.run.parallel.source.text
    assert "numba.prange(chunks" in text and "parallel=True" in text
    assert "partial" in text  # both reductions run over the split axis
    # never an accumulation into a shared element from inside the parallel loop
    body = text.split("numba.prange")[1].split("\n    for chunk")[0]
    assert "+= " not in "".join(line for line in body.splitlines()
                                if "partial" not in line and "acc" not in line)


def test_bad_options_are_adjit_errors(monkeypatch):
    with pytest.raises(AdjitTypeError, match="parallel= takes True or False"):
        adjit.jit(lambda x: x, parallel="yes")
    with pytest.raises(AdjitValueError, match="option of the 'cpu' target"):
        adjit.grad(lambda x: x, target="cuda", parallel=True)
    monkeypatch.setenv("ADJIT_NUM_THREADS", "0")
    with pytest.raises(AdjitValueError, match="ADJIT_NUM_THREADS"):
        config.num_threads  # noqa: B018
    monkeypatch.setenv("ADJIT_NUM_THREADS", "1")
    assert config.num_threads == 1


def test_per_example_loop_is_shared_among_threads():
    """vmap's per-example nests run in one loop over the examples (test_passes), split among
    the threads: each keeps its own per-example buffers, and the total over the examples adds
    per-thread partial results."""
    from test_passes import per_example_jacobians

    x, y = rng.normal(size=(41, 3)), rng.normal(size=(41, 2))
    f = adjit.jit(per_example_jacobians, parallel=True)
    for s, p in zip(adjit.jit(per_example_jacobians)(x, y), f(x, y)):
        np.testing.assert_allclose(p, s, rtol=1e-13, atol=1e-13)
    (exe,) = [e for entries in f.staged._cache.values() for e in entries]
    text = exe.run.parallel.source.text
    assert "numba.prange(" in text and "partial" in text, text
