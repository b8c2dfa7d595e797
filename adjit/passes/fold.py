"""Constant folding: a scalar equation whose inputs are all literals becomes a literal."""

from __future__ import annotations

import numpy as np

from adjit.ir.graph import Graph, Literal
from adjit.passes.rewrite import Renamer
from adjit.primitives.registry import impl_rules

# Folding these would change what the program means or lose a symbolic length.
_NEVER_FOLD = {"shape_size", "iota"}


def fold_constants(graph: Graph) -> Graph:
    renamer = Renamer()
    eqns = []
    for eqn in graph.eqns:
        eqn = renamer.apply(eqn)
        if (eqn.out.aval.shape == () and eqn.prim not in _NEVER_FOLD and eqn.inputs
                and all(isinstance(a, Literal) for a in eqn.inputs)):
            with np.errstate(all="ignore"):
                value = impl_rules[eqn.prim](*[np.asarray(a.value) for a in eqn.inputs],
                                             **eqn.params)
            renamer.alias(eqn.out, Literal(np.asarray(value).item(), eqn.out.aval.dtype))
            continue
        eqns.append(eqn)
    return renamer.finish(graph, eqns)
