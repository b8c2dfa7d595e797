"""Backends turn a graph into a callable ``run(inputs) -> outputs`` (constvar values first)."""

from __future__ import annotations

from adjit.ir.graph import Graph
from adjit.ir.interpret import interpret


def compile_graph(graph: Graph, jit: bool = True, reason: str = "first call"):
    """A callable running ``graph``: a Numba kernel, or the reference interpreter."""
    if jit:
        from adjit.backend.cpu import CompiledGraph

        return CompiledGraph(graph, reason)
    n_consts = len(graph.constvars)

    def run(inputs):
        return interpret(graph, inputs[:n_consts], inputs[n_consts:])

    return run
