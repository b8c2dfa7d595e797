"""vmap, compiled: every case of the primitive table (tests/test_primitives.py), batched over
a leading axis of every argument, run compiled and on the reference interpreter.

test_batching checks each batching rule against a Python loop, interpreted; this checks that
the batched graphs compile to the same numbers. As in test_compiled, neighbouring cases share
one jitted function (up to MAX_EQNS equations, MAX_CASES cases per kernel), so the whole table
costs a few dozen compiles.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_batching import BATCH, _stack
from test_compiled import ATOL, RTOL, run_group
from test_primitives import CASES

import adjit
from adjit import tree
from adjit.config import config

MAX_EQNS, MAX_CASES = 60, 24


def _group_body(cases):
    def body(all_args):
        return [adjit.vmap(c.fn)(*args) for c, args in zip(cases, all_args)]

    return body


def _cost(c):
    """Equations in the batched graph: Numba's compile time grows faster than linearly
    with a kernel's size, so kernels are filled up to a number of equations."""
    saved = config.jit
    config.jit = False
    try:
        args = _stack([c.inputs(seed) for seed in range(BATCH)])
        return len(adjit.make_graph(adjit.vmap(c.fn))(*args).eqns)
    finally:
        config.jit = saved


def _groups(cases):
    groups, size = [[]], 0
    for c in cases:
        cost = _cost(c)
        if groups[-1] and (size + cost > MAX_EQNS or len(groups[-1]) == MAX_CASES):
            groups.append([])
            size = 0
        groups[-1].append(c)
        size += cost
    return groups


GROUPS = _groups(CASES)


@pytest.mark.parametrize("cases", GROUPS, ids=[f"{g[0].name}..{g[-1].name}" for g in GROUPS])
def test_vmap_compiled_matches_interpreter(cases):
    args = [_stack([c.inputs(seed) for seed in range(BATCH)]) for c in cases]
    got, ref = run_group(cases, args, _group_body)
    assert len(got) == len(ref)
    for c, g, r in zip(cases, got, ref):
        g, r = tree.leaves(g), tree.leaves(r)
        assert len(g) == len(r), c.name
        for x, y in zip(g, r):
            x, y = np.asarray(x), np.asarray(y)
            assert x.dtype == y.dtype, f"{c.name}: dtype"
            assert x.shape == y.shape and x.shape[:1] == (BATCH,), f"{c.name}: shape"
            np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL,
                                       err_msg=f"{c.name}: vmap compiled != interpreted")
