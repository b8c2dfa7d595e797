"""Shared machinery of the rewriting passes: substituting one atom for a variable."""

from __future__ import annotations

from adjit.ir.graph import Graph, Literal


class Renamer:
    """Collects ``var -> atom`` substitutions and applies them to later equations."""

    def __init__(self):
        self._subst: dict[int, object] = {}

    def alias(self, var, atom) -> None:
        self._subst[var.id] = self(atom)

    def __call__(self, atom):
        if isinstance(atom, Literal):
            return atom
        return self._subst.get(atom.id, atom)

    def apply(self, eqn):
        inputs = tuple(self(a) for a in eqn.inputs)
        if all(a is b for a, b in zip(inputs, eqn.inputs)):
            return eqn
        return eqn.replace(inputs=inputs)

    def finish(self, graph: Graph, eqns) -> Graph:
        outvars = [self(v) for v in graph.outvars]
        return graph.replace(eqns=eqns, outvars=outvars)
