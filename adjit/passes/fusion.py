"""Fusion: group elementwise equations, broadcasts, gathers and the reductions that consume them
into loop nests, so a chain like ``sum(x**2 + sin(x))`` and its gradient is one pass over x.

The result is a schedule: a list whose items are either a ``LoopNest`` (equations evaluated
element by element over one iteration shape) or a single equation run on whole arrays (a matrix
product, a reshape, a scatter). The code generator turns each item into code.

Grouping is greedy in graph order. An equation joins an open nest with its iteration shape
unless it reads, at another index, a value the nest computes (a reduction's result, or a
broadcast of one): then the nest is closed first, since that value exists only after the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adjit.ir.graph import Eqn, Graph, Literal, same_shape

# Evaluated per element at the nest's index; inputs at the same index may be in-nest values.
ELEMENTWISE = {
    "neg", "add", "sub", "mul", "div", "max", "min", "pow", "integer_pow", "atan2",
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
    "atanh", "exp", "expm1", "log", "log1p", "sqrt", "cbrt", "logistic", "erf", "lgamma",
    "digamma", "polygamma", "abs", "sign", "floor", "ceil", "round", "eq", "ne", "lt", "le",
    "gt", "ge", "and", "or", "not", "select", "convert_element_type", "stop_gradient",
}
# Read their array input at a computed index: it must exist before the nest starts.
INDEXED = {"broadcast_in_dim", "take", "iota"}
REDUCTIONS = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod"}


def iteration_shape(eqn: Eqn):
    if eqn.prim in REDUCTIONS:
        return eqn.inputs[0].aval.shape
    return eqn.out.aval.shape


@dataclass(eq=False)
class LoopNest:
    shape: tuple
    eqns: list = field(default_factory=list)
    defined: set = field(default_factory=set)      # ids of values computed per element
    reduced: set = field(default_factory=set)      # ids of reduction results (after the loop)

    @property
    def reductions(self):
        return [e for e in self.eqns if e.prim in REDUCTIONS]


@dataclass
class Schedule:
    graph: Graph
    items: list

    @property
    def loop_count(self) -> int:
        """Memory passes: loop nests over arrays (a scalar-only nest is not a pass)."""
        return sum(1 for it in self.items if isinstance(it, LoopNest) and it.shape)


def _uses(eqn: Eqn, ids: set) -> bool:
    return any(not isinstance(a, Literal) and a.id in ids for a in eqn.inputs)


def _can_join(eqn: Eqn, nest: LoopNest) -> bool:
    if _uses(eqn, nest.reduced):
        return False
    if eqn.prim == "take":
        return not _uses(eqn, nest.defined)
    if eqn.prim == "broadcast_in_dim":
        # A broadcast of an in-nest value of the same shape is the identity, so it may join.
        (x,) = eqn.inputs
        return isinstance(x, Literal) or x.id not in nest.defined or same_shape(
            x.aval.shape, eqn.out.aval.shape)
    return True


def fuse(graph: Graph) -> Schedule:
    items: list = []
    open_nests: list[LoopNest] = []

    def close(nest):
        open_nests.remove(nest)
        items.append(nest)

    for eqn in graph.eqns:
        fusible = eqn.prim in ELEMENTWISE or eqn.prim in INDEXED or eqn.prim in REDUCTIONS
        target = None
        if fusible:
            shape = iteration_shape(eqn)
            for nest in open_nests:
                if same_shape(nest.shape, shape) and _can_join(eqn, nest):
                    target = nest
                    break
        # Any other nest whose values this equation reads must be finished first.
        for nest in list(open_nests):
            if nest is not target and _uses(eqn, nest.defined | nest.reduced):
                close(nest)
        if not fusible:
            items.append(eqn)
            continue
        if target is None or target not in open_nests:
            target = LoopNest(tuple(iteration_shape(eqn)))
            open_nests.append(target)
        target.eqns.append(eqn)
        (target.reduced if eqn.prim in REDUCTIONS else target.defined).add(eqn.out.id)
    items.extend(open_nests)
    return Schedule(graph, items)
