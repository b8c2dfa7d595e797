"""vmap: every primitive's batching rule against a Python loop over the batch, on the case
table of test_primitives; then composition with the other transforms, compiled."""

from __future__ import annotations

import numpy as np
import pytest
from test_primitives import CASES

import adjit
import adjit.numpy as anp
from adjit import tree
from adjit.primitives import indexing as ix
from adjit.primitives.registry import abstract_rules, batching_rules

BATCH = 3


def _stack(examples):
    return tree.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *examples)


def _loop(fn, examples):
    f = adjit.jit(fn)  # traced, so x.at[...] works on concrete inputs
    return _stack([f(*args) for args in examples])


def _assert_close(actual, expected):
    for a, b in zip(tree.leaves(actual), tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def _ids(cases):
    return [c.name for c in cases]


@pytest.mark.parametrize("c", CASES, ids=_ids(CASES))
def test_batching_rule(c, interpreted):
    examples = [c.inputs(seed) for seed in range(BATCH)]
    # Every argument mapped over its leading axis.
    _assert_close(adjit.vmap(c.fn)(*_stack(examples)), _loop(c.fn, examples))
    # The first argument mapped over its last axis, the others shared by every example.
    first = [ex[0] for ex in examples]
    rest = examples[0][1:]
    axis = -1 if np.ndim(first[0]) else 0
    batched = np.moveaxis(_stack(first), 0, axis)
    actual = adjit.vmap(c.fn, in_axes=(axis,) + (None,) * len(rest))(batched, *rest)
    _assert_close(actual, _loop(c.fn, [(x, *rest) for x in first]))


def test_every_primitive_has_a_batching_rule():
    assert set(abstract_rules) - set(batching_rules) == set()


def test_every_batching_rule_is_exercised(interpreted, monkeypatch):
    called = set()
    for name, fn in list(batching_rules.items()):
        def record(args, dims, _name=name, _fn=fn, **params):
            called.add(_name)
            return _fn(args, dims, **params)

        monkeypatch.setitem(batching_rules, name, record)
    for c in CASES:
        examples = [c.inputs(seed) for seed in range(2)]
        adjit.make_graph(adjit.vmap(c.fn))(*_stack(examples))
    # iota and shape_size take no array inputs, so nothing they compute is ever batched;
    # revolve is only in the gradient of a loop (tests/test_control.py batches that).
    assert set(abstract_rules) - called == {"iota", "shape_size", "revolve"}


# --------------------------------------------------------------------------- gathers


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("batched", ["x", "idx", "both"])
def test_take_and_scatter_add_batched_indices(axis, batched, interpreted):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((BATCH, 4, 5))
    idxs = rng.integers(-5, 5, (BATCH, 2, 3))
    upd_shape = (2, 3, 5) if axis == 0 else (4, 2, 3)
    updates = rng.standard_normal((BATCH, *upd_shape))
    in_axes = {"x": (0, None, 0), "idx": (None, 0, None), "both": (0, 0, 0)}[batched]

    def f(x, idx, u):
        return ix.take(x, idx, axis) * 2.0, ix.scatter_add(x, idx, u, axis)

    args = (xs, idxs, updates)
    examples = [tuple(a[i] if ax == 0 else a[0] for a, ax in zip(args, in_axes))
                for i in range(BATCH)]
    call_args = tuple(a if ax == 0 else a[0] for a, ax in zip(args, in_axes))
    _assert_close(adjit.vmap(f, in_axes=in_axes)(*call_args), _loop(f, examples))


@pytest.mark.parametrize("shapes,in_axes", [
    (((BATCH, 1, 3), (3, 4)), (0, None)), (((2, 3), (BATCH, 3, 1)), (None, 0)),
    (((BATCH, 2, 3), (3, 4)), (0, None)), (((2, 3), (BATCH, 3, 4)), (None, 0)),
    (((BATCH, 2, 3), (BATCH, 3, 4)), (0, 0)),
])
def test_matmul_batching(shapes, in_axes, interpreted):
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(s) for s in shapes)
    examples = [(a[i] if in_axes[0] == 0 else a, b[i] if in_axes[1] == 0 else b)
                for i in range(BATCH)]
    _assert_close(adjit.vmap(anp.matmul, in_axes=in_axes)(a, b), _loop(anp.matmul, examples))


# --------------------------------------------------------------------------- the API


def test_vmap_grad_compiled():
    f = lambda x: x ** 2 + anp.sin(x)  # noqa: E731
    out = adjit.vmap(adjit.grad(f))(np.array([0.0, np.pi / 2, np.pi]))
    np.testing.assert_allclose(out, [1.0, np.pi, 2 * np.pi - 1])
    # One graph, whose every equation is elementwise over the batch: no loop in Python.
    graph = adjit.make_graph(adjit.vmap(adjit.grad(f)))(np.arange(5.0))
    assert len(graph.invars) == 1 and len(graph.outvars) == 1


def test_vmap_axes_and_pytrees(interpreted):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal(3)
    f = adjit.vmap(lambda p, v: {"dot": anp.dot(p["w"], v), "v": v * 2.0},
                   in_axes=({"w": None}, 1), out_axes={"dot": 0, "v": 1})
    out = f({"w": w}, x.T)
    np.testing.assert_allclose(out["dot"], x @ w)
    np.testing.assert_allclose(out["v"], 2.0 * x.T)
    # An output that does not depend on the mapped input is broadcast along the batch.
    np.testing.assert_allclose(adjit.vmap(lambda a, b: b, in_axes=(0, None))(x, w),
                               np.broadcast_to(w, (4, 3)))


def test_vmap_compositions():
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((5, 3))
    f = lambda x: anp.sum(anp.tanh(x) * x[::-1])  # noqa: E731
    g = adjit.grad(f)
    per_example = np.stack([g(x) for x in xs])
    np.testing.assert_allclose(adjit.vmap(g)(xs), per_example)
    np.testing.assert_allclose(adjit.jit(adjit.vmap(g))(xs), per_example)
    # grad of a vmapped function, and vmap of vmap.
    np.testing.assert_allclose(adjit.grad(lambda x: anp.sum(adjit.vmap(f)(x)))(xs), per_example)
    np.testing.assert_allclose(adjit.vmap(adjit.vmap(lambda v: v * anp.sin(v)))(xs),
                               xs * np.sin(xs))
    # A batch length the graph was not traced for reuses the kernel.
    more = rng.standard_normal((7, 3))
    np.testing.assert_allclose(adjit.vmap(g)(more), np.stack([g(x) for x in more]))


def test_vmap_errors(interpreted):
    with pytest.raises(adjit.AdjitValueError, match="different sizes"):
        adjit.vmap(anp.add)(np.ones(3), np.ones(4))
    with pytest.raises(adjit.AdjitValueError, match="scalar"):
        adjit.vmap(anp.sin)(1.0)
    with pytest.raises(adjit.AdjitValueError, match="in_axes"):
        adjit.vmap(anp.sin, in_axes=(0, 0))(np.ones(3))
