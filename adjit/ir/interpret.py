"""The reference interpreter: runs any graph with each primitive's NumPy implementation."""

from __future__ import annotations

import threading

import numpy as np

from adjit.errors import AdjitValueError
from adjit.ir.eval import eval_graph
from adjit.ir.graph import Dim, Graph, has_symbols, resolve_param
from adjit.ir.rules import impl_rules, multiple_results, rule


def bind_symbols(graph: Graph, values) -> dict[str, int]:
    """The length of every symbol, read off the inputs; a mismatch is an error, not a crash."""
    env: dict[str, int] = {}
    for var, value in zip((*graph.constvars, *graph.invars), values):
        shape = np.shape(value)
        expected = var.aval.shape
        if len(shape) != len(expected):
            raise AdjitValueError(f"adjit: expected an array of rank {len(expected)} for "
                                  f"{var.aval}, got shape {shape}")
        for d, n in zip(expected, shape):
            if isinstance(d, Dim):
                bound = env.setdefault(d.name, n - d.offset)
                if bound + d.offset != n:
                    raise AdjitValueError(
                        f"adjit: inconsistent lengths: {d} is {bound + d.offset} in one input "
                        f"and {n} in another (shape {shape}, expected {var.aval})")
            elif d != n:
                raise AdjitValueError(f"adjit: expected shape {var.aval}, got {shape}")
    return env


# The lengths bound by the graph being interpreted, for the graphs its equations carry (a
# branch or a loop body may need a length none of its own inputs has: zeros of an operand's
# shape in a transposed branch).
_outer = threading.local()


def interpret(graph: Graph, consts, args) -> list[np.ndarray]:
    inputs = [*consts, *args]
    outer = getattr(_outer, "dims", {})
    env_dims = {**outer, **bind_symbols(graph, inputs)}
    inputs = [np.asarray(x, v.aval.dtype) for v, x in zip((*graph.constvars, *graph.invars),
                                                           inputs)]

    def apply(eqn, values):
        params = eqn.params
        if any(has_symbols(v) for v in params.values()):
            params = {k: resolve_param(v, env_dims) for k, v in params.items()}
        out = rule(impl_rules, "impl", eqn.prim)(*values, **params)
        outs = out if eqn.prim in multiple_results else [out]
        return [np.asarray(o, v.aval.dtype) for o, v in zip(outs, eqn.outs)]

    _outer.dims = env_dims
    try:
        return eval_graph(graph, inputs, apply, literal=lambda lit: np.asarray(lit.value))
    finally:
        _outer.dims = outer
