"""The rule tables. A primitive is a name; every interpretation of it is a dict keyed by it.

The tables live with the IR so that every layer above (the checker, the interpreter, tracing,
the transformations, the passes) reads them without importing the primitives that fill them.
``adjit.primitives.registry`` has the helpers that fill them, one block per primitive::

    defprim("sin", unary_abstract, np.sin, kind="elementwise")   # shape rule, reference impl
    defjvp("sin", lambda t, x, **_: mul(t, cos(x)))              # one rule per argument

Conventions, per table (``prim`` has ``k`` outputs; k == 1 unless ``prim in multiple_results``):

* ``abstract_rules[prim](*in_avals, **params)`` -> the output aval (a list of k avals).
* ``impl_rules[prim](*arrays, **params)`` -> the output array (a list of k arrays).
* ``jvp_rules[prim](primals, tangents, **params)`` -> (out, tangent_out) (lists for k outputs);
  tangents may be the symbolic ``Zero``.
* ``transpose_rules[prim](ct, *args, **params)`` -> one cotangent (or None) per argument; the
  arguments being transposed are ``LinearArg`` placeholders; ``ct`` is a list for k outputs.
* ``batching_rules[prim](args, dims, **params)`` -> (out, out_dim) (lists for k outputs).
* ``partial_eval_rules[prim](eqn, unknown_ins)`` splits an equation carrying a graph into a
  known and an unknown part (see ``adjit.ad.partial_eval``).
* ``dce_rules[prim](eqn, used_outs)`` -> the equation keeping only the used outputs and the
  inputs they need: dead-code elimination across the boundary of an equation carrying a graph.

A primitive's ``kind`` says what the compiler may do with it: ``elementwise`` (one output
element from the input elements at the same index: fused into loops), ``reduction`` (sums an
axis: fused with the loop producing its input), ``view`` (an index remapping: read through,
never computed), ``gather`` (reads its input at computed indices: fused), ``call`` (carries its
body as the graph param ``body``: inlined by the first pass), ``control`` (carries graphs run
as a branch or a loop: lowered by the target as control flow) and ``array`` (whole-array work:
a step of its own).
"""

from __future__ import annotations

from collections.abc import Callable

from adjit.errors import MissingRuleError
from adjit.ir.graph import ShapedArray

abstract_rules: dict[str, Callable] = {}
impl_rules: dict[str, Callable] = {}
jvp_rules: dict[str, Callable] = {}
transpose_rules: dict[str, Callable] = {}
batching_rules: dict[str, Callable] = {}
partial_eval_rules: dict[str, Callable] = {}
dce_rules: dict[str, Callable] = {}

KINDS = ("elementwise", "reduction", "view", "gather", "call", "control", "array")
prim_kinds: dict[str, str] = {}

# Primitives with a tuple of outputs.
multiple_results: set[str] = set()
# Primitives that may appear in a tangent computation, and so need a transpose rule.
linear_prims: set[str] = set()
# Primitives whose output has no derivative (comparisons, floor, integer ops).
nondiff_prims: set[str] = set()


class Zero:
    """A symbolic zero tangent or cotangent of the given abstract value."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self):
        return f"Zero({self.aval})"


class LinearArg:
    """Stands for the linear input a transpose rule is solving for."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval


def is_linear(x) -> bool:
    return isinstance(x, LinearArg)


def rule(table: dict[str, Callable], kind: str, name: str) -> Callable:
    """Look up a rule, with an error that names the primitive and the missing rule."""
    try:
        return table[name]
    except KeyError:
        raise MissingRuleError(f"adjit: primitive '{name}' has no {kind} rule") from None


def kind_of(name: str) -> str:
    return prim_kinds.get(name, "array")


def call_prims() -> set[str]:
    """The primitives that carry their body as the graph param ``body``."""
    return {name for name, kind in prim_kinds.items() if kind == "call"}


def missing_rules() -> dict[str, list[str]]:
    """Which primitive lacks which rule it needs, as ``{prim: [rule names]}``."""
    tables = {"impl": impl_rules, "jvp": jvp_rules, "transpose": transpose_rules}
    missing: dict[str, list[str]] = {}
    for name in abstract_rules:
        needs = ["impl", "jvp"]
        if name in linear_prims:
            needs.append("transpose")
        lacking = [k for k in needs if name not in tables[k]]
        if lacking:
            missing[name] = lacking
    return missing
