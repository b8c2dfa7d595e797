"""The reference interpreter: runs any graph with each primitive's NumPy implementation."""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitValueError
from adjit.ir.graph import Dim, Graph, Literal, has_symbols, resolve_param
from adjit.primitives.registry import impl_rules, rule


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


def interpret(graph: Graph, consts, args) -> list[np.ndarray]:
    inputs = [*consts, *args]
    env_dims = bind_symbols(graph, inputs)
    values: dict[int, np.ndarray] = {}
    for var, value in zip((*graph.constvars, *graph.invars), inputs):
        values[var.id] = np.asarray(value, var.aval.dtype)

    def read(atom):
        return np.asarray(atom.value) if isinstance(atom, Literal) else values[atom.id]

    for eqn in graph.eqns:
        params = eqn.params
        if any(has_symbols(v) for v in params.values()):
            params = {k: resolve_param(v, env_dims) for k, v in params.items()}
        out = rule(impl_rules, "impl", eqn.prim)(*[read(a) for a in eqn.inputs], **params)
        values[eqn.out.id] = np.asarray(out, eqn.out.aval.dtype)
    return [read(v) for v in graph.outvars]
