"""Text form of a graph, in the grammar of ``adjit.ir.graph``; tests compare against it."""

from __future__ import annotations

import numpy as np

from adjit.ir.graph import Graph, Literal, Var


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


def _format_param(value) -> str:
    if isinstance(value, tuple):
        inner = ",".join(_format_param(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, np.dtype):
        from adjit.ir.graph import dtype_name

        return dtype_name(value)
    return str(value)


def format_graph(graph: Graph) -> str:
    names: dict[int, str] = {}
    fresh = _letters()

    def declare(v: Var) -> str:
        names[v.id] = next(fresh)
        return f"{names[v.id]}:{v.aval}"

    def atom(a) -> str:
        if isinstance(a, Literal):
            return repr(a)
        return names.get(a.id, f"?{a.id}")

    consts = ", ".join(declare(v) for v in graph.constvars)
    ins = ", ".join(declare(v) for v in graph.invars)
    lines = [f"{{ lambda {consts}{' ' if consts else ''}; {ins} ."]
    for eqn in graph.eqns:
        params = ""
        if eqn.params:
            params = "[" + ", ".join(f"{k}={_format_param(v)}" for k, v in eqn.params.items()) + "]"
        args = " ".join(atom(a) for a in eqn.inputs)
        lines.append(f"    {declare(eqn.out)} = {eqn.prim}{params} {args}".rstrip())
    lines.append(f"  in ({', '.join(atom(v) for v in graph.outvars)}) }}")
    return "\n".join(lines)
