"""Text form of a graph, in the grammar of ``adjit.ir.graph``; tests compare against it.
Graphs inside equations are printed in place, indented, with names continuing the outer ones."""

from __future__ import annotations

import numpy as np

from adjit.ir.graph import Graph, Literal, Var, dtype_name


def _letters():
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    n = 0
    while True:
        name, k = "", n
        while True:
            name = alphabet[k % 26] + name
            k = k // 26 - 1
            if k < 0:
                break
        yield name
        n += 1


def _format_param(value, printer, indent: str) -> str:
    if isinstance(value, Graph):
        return "\n" + printer.graph(value, indent + "        ")
    if isinstance(value, tuple):
        inner = ",".join(_format_param(v, printer, indent) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, np.dtype):
        return dtype_name(value)
    return str(value)


class _Printer:
    def __init__(self):
        self.names: dict[int, str] = {}
        self.fresh = _letters()

    def declare(self, v: Var) -> str:
        self.names[v.id] = next(self.fresh)
        return f"{self.names[v.id]}:{v.aval}"

    def atom(self, a) -> str:
        if isinstance(a, Literal):
            return repr(a)
        return self.names.get(a.id, f"?{a.id}")

    def graph(self, graph: Graph, indent: str = "") -> str:
        consts = ", ".join(self.declare(v) for v in graph.constvars)
        ins = ", ".join(self.declare(v) for v in graph.invars)
        lines = [f"{indent}{{ lambda {consts}{' ' if consts else ''}; {ins} ."]
        for eqn in graph.eqns:
            params = ""
            if eqn.params:
                params = "[" + ", ".join(f"{k}={_format_param(v, self, indent)}"
                                         for k, v in eqn.params.items()) + "]"
            args = " ".join(self.atom(a) for a in eqn.inputs)
            outs = ", ".join(self.declare(v) for v in eqn.outs)
            lines.append(f"{indent}    {outs} = {eqn.prim}{params} {args}".rstrip())
        lines.append(f"{indent}  in ({', '.join(self.atom(v) for v in graph.outvars)}) }}")
        return "\n".join(lines)


def format_graph(graph: Graph) -> str:
    return _Printer().graph(graph)
