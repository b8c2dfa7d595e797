"""Inlining: every call equation (``custom_jvp_call`` and the like, see ``adjit.custom``) is
replaced by the equations of its graph, so the passes after it and the code generator see only
ordinary primitives. Runs first in the pipeline."""

from __future__ import annotations

from adjit.ir.graph import Eqn, Graph, Literal, Var
from adjit.passes.rewrite import Renamer
from adjit.primitives.registry import call_prims


def inline_calls(graph: Graph) -> Graph:
    if not any(eqn.prim in call_prims for eqn in graph.eqns):
        return graph
    from adjit.custom import dim_map, is_identity, subst_dims

    renamer = Renamer()
    eqns = []
    for eqn in graph.eqns:
        eqn = renamer.apply(eqn)
        if eqn.prim not in call_prims:
            eqns.append(eqn)
            continue
        body = inline_calls(eqn.params["fn"].graph)
        mapping = dim_map(body.in_avals, [a.aval for a in eqn.inputs])
        same = is_identity(mapping)
        env = {v.id: a for v, a in zip(body.invars, eqn.inputs)}
        for inner in body.eqns:
            # Fresh variables: a body may be inlined once per output of its call.
            out = Var(inner.out.aval if same else subst_dims(inner.out.aval, mapping))
            params = inner.params if same else {k: subst_dims(v, mapping)
                                                for k, v in inner.params.items()}
            inputs = [a if isinstance(a, Literal) else env[a.id] for a in inner.inputs]
            eqns.append(Eqn(inner.prim, inputs, out, params, inner.source or eqn.source))
            env[inner.out.id] = out
        result = body.outvars[eqn.params["index"]]
        renamer.alias(eqn.out, result if isinstance(result, Literal) else env[result.id])
    graph = renamer.finish(graph, eqns)
    if any(isinstance(v, Literal) for v in graph.outvars):
        # An output must be a variable: a body that returned a literal argument as it is.
        outvars = []
        for v in graph.outvars:
            if isinstance(v, Literal):
                out = Var(v.aval)
                eqns.append(Eqn("broadcast_in_dim", [v], out,
                                {"shape": (), "broadcast_dimensions": ()}))
                v = out
            outvars.append(v)
        graph = graph.replace(eqns=eqns, outvars=outvars)
    return graph
