"""adjit.dask on a real dask.distributed cluster (two worker processes, one thread each),
against the single-process results: map_blocks of compiled derivatives, the data-parallel
value_and_grad over a pytree of parameters, kernels built on the workers from shipped graphs,
and the errors for bad inputs (checked on the client, before anything runs)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import types

import numpy as np
import pytest

import adjit
import adjit.numpy as anp

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
import dask  # noqa: E402  (after the skip)

import adjit.dask as adask  # noqa: E402

RNG = np.random.default_rng(0)
N, D = 1000, 3
X = RNG.normal(size=(N, D))
Y = (RNG.random(N) < 0.5).astype(float)
PARAMS = {"w": np.array([0.3, -0.2, 0.5]), "b": 0.1}


def loss(p, X, y):
    """Logistic regression's negative log-likelihood: a sum over the rows."""
    z = anp.sum(X * p["w"], axis=1) + p["b"]
    return anp.sum(anp.logaddexp(0.0, z) - y * z)


def row_loss(p, x, y):
    return loss(p, x[None], y[None])


per_row_grad = adjit.vmap(adjit.grad(row_loss), in_axes=(None, 0, 0))


def reference(p, X, y):
    """The value, gradient and per-row gradients of ``loss`` by NumPy, in this process."""
    z = X @ p["w"] + p["b"]
    residual = 1.0 / (1.0 + np.exp(-z)) - y
    value = np.sum(np.logaddexp(0.0, z) - y * z)
    return value, {"w": X.T @ residual, "b": residual.sum()}, \
        {"w": residual[:, None] * X, "b": residual}


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def data(client):
    # Row chunks that differ between the arrays (y is rechunked to X's) and a shorter last
    # block; persisted, so the blocks live on the workers.
    Xd = da.from_array(X, chunks=(300, D)).persist()
    yd = da.from_array(Y, chunks=250).persist()
    distributed.wait([Xd, yd])
    return Xd, yd


def _per_worker(client, fun):
    return client.run(fun)


def _deltas(before, after):
    return {w: {k: after[w][k] - before[w][k] for k in ("kernels", "blocks")} for w in after}


def test_value_and_grad_matches_the_single_process_result(client, data):
    Xd, yd = data
    vg = adask.value_and_grad(loss)
    before = _per_worker(client, adask.worker_info)
    compiles_before = _per_worker(client, adjit.cache_info)
    p = PARAMS
    for _ in range(2):  # a gradient step, then the next: the workers reuse their kernels
        value, grads, _ = reference(p, X, Y)
        v, g = vg(p, Xd, yd)
        assert set(g) == {"w", "b"} and np.shape(g["b"]) == () and g["w"].shape == (D,)
        np.testing.assert_allclose(v, value, rtol=1e-12)
        np.testing.assert_allclose(g["w"], grads["w"], rtol=1e-12)
        np.testing.assert_allclose(g["b"], grads["b"], rtol=1e-12)
        p = {"w": p["w"] - 1e-3 * g["w"], "b": p["b"] - 1e-3 * g["b"]}
    deltas = _deltas(before, _per_worker(client, adask.worker_info))
    assert sum(d["blocks"] for d in deltas.values()) == 2 * Xd.numblocks[0]
    # Built once per worker that ran blocks (the blocks live on both), from the shipped graph
    # and through adjit's kernel cache there (compiled by one, loaded from disk by the other).
    assert sum(1 for d in deltas.values() if d["blocks"]) == 2, deltas
    assert all(d["kernels"] == (1 if d["blocks"] else 0) for d in deltas.values()), deltas
    after = _per_worker(client, adjit.cache_info)
    for w, d in deltas.items():
        made = sum(after[w][k] - compiles_before[w][k] for k in ("compiles", "disk_hits"))
        assert made == d["kernels"], (after[w], compiles_before[w])


def test_value_and_grad_takes_a_tree_of_data_and_a_deeper_tree_of_sums(client, data):
    Xd, yd = data
    v, g = adask.value_and_grad(lambda p, d: loss(p, d["X"], d["y"]), split_every=2)(
        PARAMS, {"X": Xd, "y": yd})
    value, grads, _ = reference(PARAMS, X, Y)
    np.testing.assert_allclose(v, value, rtol=1e-12)
    np.testing.assert_allclose(g["w"], grads["w"], rtol=1e-12)


def test_closed_over_values_travel_with_the_kernel_and_changes_are_seen(interpreted, client,
                                                                         data):
    # An array the loss reads from its closure is a constant of the graph, shipped with it;
    # a number is a literal of the graph: rebound, the next call traces again. (The workers
    # interpret: config.jit is off on the client.)
    Xd, yd = data
    scale, shift = np.array([1.0, 2.0, 0.5]), 0.0
    vg = adask.value_and_grad(lambda p, X, y: loss(p, X * scale + shift, y))
    for _ in range(2):
        value, grads, _ = reference(PARAMS, X * scale + shift, Y)
        v, g = vg(PARAMS, Xd, yd)
        np.testing.assert_allclose(v, value, rtol=1e-12)
        np.testing.assert_allclose(g["w"], grads["w"], rtol=1e-12)
        scale[:], shift = [0.5, 1.0, 3.0], 0.25


def test_map_blocks_of_a_vmap_of_grad_gives_per_row_gradients(client, data):
    Xd, yd = data
    _, grads, expected = reference(PARAMS, X, Y)
    out = adask.map_blocks(per_row_grad, PARAMS, Xd, yd)
    assert set(out) == {"w", "b"} and isinstance(out["w"], da.Array)
    assert out["w"].chunks == ((300, 300, 300, 100), (D,)) and out["b"].shape == (N,)
    w, b = dask.compute(out["w"], out["b"])
    np.testing.assert_allclose(w, expected["w"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b, expected["b"], rtol=1e-12, atol=1e-15)


def test_map_blocks_of_an_elementwise_jit_with_a_scalar_parameter(client, data):
    Xd, _ = data
    f = adjit.jit(lambda x, s: anp.tanh(s * x) + x ** 2)
    out = adask.map_blocks(f, Xd, 0.5)
    assert out.dtype == np.float64 and out.chunks == Xd.chunks
    np.testing.assert_allclose(out.compute(), np.tanh(0.5 * X) + X ** 2, rtol=1e-13)


def test_a_length_fixed_by_the_trace_gets_a_kernel_per_block_length(interpreted, client):
    # Python reads the length (range(x.shape[0])): each block length has its own graph. With
    # config.jit off on the client, the workers run the reference interpreter too.
    def unrolled(x):
        return anp.stack([x[i] * (i + 1.0) for i in range(x.shape[0])])

    x = np.arange(10.0)
    out = adask.map_blocks(unrolled, da.from_array(x, chunks=4))
    expected = np.concatenate([x[:4] * np.arange(1, 5), x[4:8] * np.arange(1, 5),
                               x[8:] * np.arange(1, 3)])
    np.testing.assert_array_equal(out.compute(), expected)


def test_only_the_graph_travels():
    # The task graph pickles with plain pickle and holds no function but adjit.dask's own
    # (not the user's lambda or an adjit dispatcher) and nothing of Numba.
    seen = []

    class Recorder(pickle.Pickler):
        def reducer_override(self, obj):
            seen.append(obj)
            return NotImplemented

    out = adask.map_blocks(adjit.jit(lambda x: anp.sin(x) * 2.0), da.ones(10, chunks=5))
    Recorder(open("/dev/null", "wb")).dump(dict(out.__dask_graph__()))
    functions = [o for o in seen if isinstance(o, types.FunctionType)]
    assert adask._map_block in functions
    # adjit.dask's functions and Dask's own (binding keyword arguments) only.
    assert all(f.__module__ == "adjit.dask" or f.__module__.split(".")[0] in ("dask", "toolz")
               for f in functions), [(f, f.__module__) for f in functions]
    assert not [o for o in seen if type(o).__module__.split(".")[0] in ("numba", "llvmlite")]
    assert any(isinstance(o, adask.Kernel) for o in seen)


# --------------------------------------------------------------------------- bad inputs


def test_a_function_that_is_not_row_wise_is_refused_before_anything_runs():
    Xd = da.from_array(X, chunks=(300, D))
    with pytest.raises(adjit.AdjitValueError, match="row-wise"):
        adask.map_blocks(lambda x: anp.sum(x, axis=0), Xd)
    with pytest.raises(adjit.AdjitValueError, match="row-wise"):
        adask.map_blocks(lambda x: x @ x.T, Xd)  # f64[n0,n0]: rows on both axes


def test_bad_data_are_adjit_errors():
    Xd = da.from_array(X, chunks=(300, D))
    vg = adask.value_and_grad(loss)
    with pytest.raises(adjit.AdjitValueError, match="different numbers of rows"):
        vg(PARAMS, Xd, da.from_array(Y[:-1], chunks=300))
    with pytest.raises(adjit.AdjitTypeError, match="parameters .* hold a Dask array"):
        vg({"w": da.from_array(PARAMS["w"]), "b": 0.1}, Xd, da.from_array(Y, chunks=300))
    with pytest.raises(adjit.AdjitTypeError, match="no Dask array"):
        vg(PARAMS, X, Y)
    with pytest.raises(adjit.AdjitTypeError, match="returning a float scalar"):
        adask.value_and_grad(lambda p, x: x * p)(1.0, da.from_array(Y, chunks=300))
    with pytest.raises(adjit.AdjitValueError, match="split_every"):
        adask.value_and_grad(loss, split_every=1)


def test_without_dask_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(adjit.AdjitError, match=r"pip install 'adjit\[dask\]'"):
        adask.map_blocks(anp.sin, np.ones(3))


def test_importing_adjit_does_not_import_dask():
    code = "import sys, adjit, adjit.dask; assert 'dask' not in sys.modules, 'dask imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
