"""Inlining: every call equation (kind ``call``: the custom-rule calls of ``adjit.custom``, the
calls of ``adjit.control.call``) is replaced by the equations of its body, so the passes after
it and the code generator see only ordinary primitives. Runs first in the pipeline."""

from __future__ import annotations

from adjit.ir.graph import (
    Eqn,
    Graph,
    Literal,
    Var,
    dim_map,
    is_identity,
    map_subgraphs,
    subgraphs,
    subst_dims,
)
from adjit.ir.rules import kind_of
from adjit.passes.rewrite import Renamer


def _body(eqn) -> Graph:
    body = eqn.params["body"]
    if not isinstance(body, Graph):
        # A body that could not be traced (adjit.custom's untraceable transposed bwd): its
        # error says what forward mode would have needed.
        raise body.error
    return body


def _has_calls(graph: Graph) -> bool:
    return any(kind_of(eqn.prim) == "call" or any(_has_calls(g) for g in subgraphs(eqn))
               for eqn in graph.eqns)


def inline_calls(graph: Graph) -> Graph:
    if not _has_calls(graph):
        return graph
    renamer = Renamer()
    eqns = []
    for eqn in graph.eqns:
        eqn = renamer.apply(eqn)
        if kind_of(eqn.prim) != "call":
            eqns.append(map_subgraphs(eqn, inline_calls))  # calls inside a loop's body too
            continue
        body = inline_calls(_body(eqn))
        mapping = dim_map(body.in_avals, [a.aval for a in eqn.inputs])
        same = is_identity(mapping)
        env = {v.id: a for v, a in zip(body.invars, eqn.inputs)}
        for inner in body.eqns:
            # Fresh variables: a body may be inlined more than once.
            outs = [Var(v.aval if same else subst_dims(v.aval, mapping)) for v in inner.outs]
            params = inner.params if same else {k: subst_dims(v, mapping)
                                                for k, v in inner.params.items()}
            inputs = [a if isinstance(a, Literal) else env[a.id] for a in inner.inputs]
            eqns.append(Eqn(inner.prim, inputs, outs, params, inner.source or eqn.source))
            env.update((v.id, o) for v, o in zip(inner.outs, outs))
        for out, result in zip(eqn.outs, body.outvars):
            renamer.alias(out, result if isinstance(result, Literal) else env[result.id])
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
