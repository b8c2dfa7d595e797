"""Algebraic simplification: a table of rewrite rules, each with its identity, run to a fixed
point by one engine. A rule sees an equation and returns the atom that replaces its output, an
equation that replaces it (a canonical form), or None. Only identities exact in floating point
are here (x * 0 is not 0 when x is inf or nan). Graphs inside equations are simplified too."""

from __future__ import annotations

from adjit.ir.graph import Eqn, Graph, Literal, map_subgraphs, same_shape
from adjit.passes.rewrite import Renamer


class _Consts:
    """Which atoms are a known scalar everywhere: literals and broadcasts of literals."""

    def __init__(self):
        self.value_of: dict[int, object] = {}
        self.producer: dict[int, object] = {}

    def value(self, atom):
        if isinstance(atom, Literal):
            return atom.value
        return self.value_of.get(atom.id)

    def is_(self, atom, c) -> bool:
        v = self.value(atom)
        return v is not None and v == c

    def made_by(self, atom, prim):
        eqn = None if isinstance(atom, Literal) else self.producer.get(atom.id)
        return eqn if eqn is not None and eqn.prim == prim else None


def _neg_neg(eqn, k):
    inner = k.made_by(eqn.inputs[0], "neg")
    return inner.inputs[0] if inner else None


def _square(eqn, k):
    x, y = eqn.inputs
    if x is y and not isinstance(x, Literal):
        return eqn.replace(prim="integer_pow", inputs=(x,), params={"y": 2})
    return None


RULES = {
    # x * 1 -> x,  1 * x -> x,  x * x -> x ** 2 (one form, so CSE sees x*x and x**2 as one)
    "mul": [lambda e, k: e.inputs[0] if k.is_(e.inputs[1], 1) else None,
            lambda e, k: e.inputs[1] if k.is_(e.inputs[0], 1) else None,
            _square],
    # x + 0 -> x,  0 + x -> x
    "add": [lambda e, k: e.inputs[0] if k.is_(e.inputs[1], 0) else None,
            lambda e, k: e.inputs[1] if k.is_(e.inputs[0], 0) else None],
    # x - 0 -> x
    "sub": [lambda e, k: e.inputs[0] if k.is_(e.inputs[1], 0) else None],
    # x / 1 -> x
    "div": [lambda e, k: e.inputs[0] if k.is_(e.inputs[1], 1) else None],
    # -(-x) -> x
    "neg": [_neg_neg],
    # x ** 1 -> x
    "integer_pow": [lambda e, k: e.inputs[0] if e.params["y"] == 1 else None],
    # select(p, x, x) -> x
    "select": [lambda e, k: e.inputs[1] if e.inputs[1] is e.inputs[2] else None],
    # stop_gradient(x) -> x   (derivatives are taken before optimization)
    "stop_gradient": [lambda e, k: e.inputs[0]],
}


def simplify(graph: Graph) -> Graph:
    for _ in range(10):
        new, changed = _simplify_once(graph)
        if not changed:
            return new
        graph = new
    return graph


def _rewrite(eqn, consts):
    """The atom replacing ``eqn``'s output, or ``eqn`` in canonical form (maybe itself)."""
    for _ in range(10):
        for rule in RULES.get(eqn.prim, ()):
            candidate = rule(eqn, consts)
            if isinstance(candidate, Eqn):
                eqn = candidate
                break
            if candidate is not None and candidate.aval.dtype == eqn.out.aval.dtype and \
                    same_shape(candidate.aval.shape, eqn.out.aval.shape):
                return candidate
        else:
            return eqn
    return eqn


def _simplify_once(graph: Graph):
    renamer = Renamer()
    consts = _Consts()
    eqns = []
    changed = False
    for eqn in graph.eqns:
        eqn = map_subgraphs(renamer.apply(eqn), simplify)
        replacement = _rewrite(eqn, consts) if len(eqn.outs) == 1 else eqn
        if not isinstance(replacement, Eqn):
            renamer.alias(eqn.out, replacement)
            changed = True
            continue
        changed |= replacement is not eqn
        eqn = replacement
        if eqn.prim == "broadcast_in_dim" and isinstance(eqn.inputs[0], Literal):
            consts.value_of[eqn.out.id] = eqn.inputs[0].value
        for out in eqn.outs:
            consts.producer[out.id] = eqn
        eqns.append(eqn)
    return renamer.finish(graph, eqns), changed
