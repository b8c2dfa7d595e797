"""The one graph evaluator. Every interpretation of a graph (the NumPy reference, forward mode,
batching, the forward replay of reverse mode) is this loop with its own per-equation step."""

from __future__ import annotations

from collections.abc import Callable

from adjit.ir.graph import Graph, Literal


def eval_graph(graph: Graph, inputs, apply: Callable, literal: Callable = None) -> list:
    """The values of ``graph``'s outputs.

    ``inputs`` are the values of the constvars then the invars; ``apply(eqn, in_values)``
    returns the list of the equation's output values; ``literal(lit)`` the value standing for a
    literal input (default: its scalar value)."""
    env: dict[int, object] = {}
    for var, value in zip((*graph.constvars, *graph.invars), inputs, strict=True):
        env[var.id] = value

    def read(atom):
        if isinstance(atom, Literal):
            return atom.value if literal is None else literal(atom)
        return env[atom.id]

    for eqn in graph.eqns:
        outs = apply(eqn, [read(a) for a in eqn.inputs])
        for var, value in zip(eqn.outs, outs, strict=True):
            env[var.id] = value
    return [read(v) for v in graph.outvars]
