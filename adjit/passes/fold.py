"""Constant folding: a scalar equation whose inputs are all literals becomes a literal."""

from __future__ import annotations

import numpy as np

from adjit.ir.graph import Graph, Literal, map_subgraphs, subgraphs
from adjit.ir.rules import impl_rules
from adjit.passes.rewrite import Renamer

# Folding these would change what the program means or lose a symbolic length.
_NEVER_FOLD = {"shape_size", "iota"}


def fold_constants(graph: Graph) -> Graph:
    renamer = Renamer()
    eqns = []
    for eqn in graph.eqns:
        eqn = map_subgraphs(renamer.apply(eqn), fold_constants)
        if (len(eqn.outs) == 1 and not subgraphs(eqn) and eqn.out.aval.shape == ()
                and eqn.prim not in _NEVER_FOLD and eqn.inputs
                and all(isinstance(a, Literal) for a in eqn.inputs)):
            with np.errstate(all="ignore"):
                value = impl_rules[eqn.prim](*[np.asarray(a.value) for a in eqn.inputs],
                                             **eqn.params)
            renamer.alias(eqn.out, Literal(np.asarray(value).item(), eqn.out.aval.dtype))
            continue
        eqns.append(eqn)
    return renamer.finish(graph, eqns)
