"""The rule tables. A primitive is a name; every interpretation of it is a dict keyed by it.

Each primitive module registers a primitive and all its rules in one block:

    defprim("sin", unary_abstract, np.sin)              # shape rule, reference implementation
    defjvp("sin", lambda t, x: mul(t, cos(x)))          # one rule per argument
    # linear primitives also get a transpose rule:      deflinear("neg", lambda ct, x: [neg(ct)])

Tangents may be the symbolic ``Zero``; transpose rules receive ``LinearArg`` placeholders for the
arguments being transposed. Batching rules (``batching_rules``, used by ``adjit.vmap``: most
are one ``defbatch_elementwise`` or ``defbatch_params`` line) and backend lowerings are tables
keyed the same way.
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

# Primitives that may appear in a tangent computation, and so need a transpose rule.
linear_prims: set[str] = set()
# Primitives whose output has no derivative (comparisons, floor, integer ops).
nondiff_prims: set[str] = set()
# Call primitives: their ``fn`` param holds a graph (``fn.graph``) whose output ``index`` the
# equation computes; the pass ``inline_calls`` replaces them by the graph's equations.
call_prims: set[str] = set()


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


def defprim(name: str, abstract: Callable, impl: Callable) -> None:
    abstract_rules[name] = abstract
    impl_rules[name] = impl


def rule(table: dict[str, Callable], kind: str, name: str) -> Callable:
    """Look up a rule, with an error that names the primitive and the missing rule."""
    try:
        return table[name]
    except KeyError:
        raise MissingRuleError(f"adjit: primitive '{name}' has no {kind} rule") from None


def defjvp(name: str, *arg_rules: Callable | None) -> None:
    """JVP from one rule per argument: ``rule(t_i, *primals, out=out, **params)`` gives its term.

    ``None`` means the output does not depend on that argument differentiably.
    """
    from adjit.primitives.structural import add_tangents, bind

    def jvp(primals, tangents, **params):
        out = bind(name, *primals, **params)
        total = Zero(_tangent_aval(out))
        for r, t in zip(arg_rules, tangents):
            if r is None or isinstance(t, Zero):
                continue
            total = add_tangents(total, r(t, *primals, out=out, **params))
        return out, total

    jvp_rules[name] = jvp


def defjvp_full(name: str, fn: Callable) -> None:
    """A JVP rule written whole: ``fn(primals, tangents, **params) -> (out, tangent_out)``."""
    jvp_rules[name] = fn


def deflinear(name: str, transpose: Callable) -> None:
    """A primitive linear in all its array inputs: its JVP applies it to the tangents."""
    from adjit.primitives.structural import bind, zeros_like_aval

    def jvp(primals, tangents, **params):
        out = bind(name, *primals, **params)
        if all(isinstance(t, Zero) for t in tangents):
            return out, Zero(_tangent_aval(out))
        ts = [zeros_like_aval(t.aval) if isinstance(t, Zero) else t for t in tangents]
        return out, bind(name, *ts, **params)

    jvp_rules[name] = jvp
    transpose_rules[name] = transpose
    linear_prims.add(name)


def deftranspose(name: str, transpose: Callable) -> None:
    """Transpose rule for a primitive linear in some arguments (``mul``, ``div``, ``select``)."""
    transpose_rules[name] = transpose
    linear_prims.add(name)


def defnondiff(name: str) -> None:
    """The primitive's output is piecewise constant or discrete: its tangent is zero."""
    from adjit.primitives.structural import bind

    def jvp(primals, tangents, **params):
        out = bind(name, *primals, **params)
        return out, Zero(_tangent_aval(out))

    jvp_rules[name] = jvp
    nondiff_prims.add(name)


# --------------------------------------------------------------------------- batching
# A batching rule is ``rule(args, dims, **params) -> (out, out_dim)``: ``dims[i]`` is 0 when
# args[i] carries the batch on its leading axis, None when it is the same for every example.
# Rules are only called with at least one batched argument, and return 0 or None.


def batch_size(args, dims):
    from adjit.trace import get_aval

    return next(get_aval(x).shape[0] for x, d in zip(args, dims) if d is not None)


def batch_all(args, dims):
    """Every argument with the batch on axis 0: unbatched ones are broadcast along it."""
    from adjit.primitives.structural import broadcast_in_dim
    from adjit.trace import get_aval

    size = batch_size(args, dims)
    out = []
    for x, d in zip(args, dims):
        if d is None:
            aval = get_aval(x)
            x = broadcast_in_dim(x, (size, *aval.shape), tuple(range(1, aval.ndim + 1)))
        out.append(x)
    return out


def defbatch_elementwise(name: str) -> None:
    """Elementwise (same-shape operands): broadcast the unbatched ones, apply as is."""
    from adjit.primitives.structural import bind

    batching_rules[name] = lambda args, dims, **params: (
        bind(name, *batch_all(args, dims), **params), 0)


def defbatch_params(name: str, shift: Callable) -> None:
    """One (batched) operand; ``shift(**params)`` gives the params for the leading batch axis."""
    from adjit.primitives.structural import bind

    batching_rules[name] = lambda args, dims, **params: (
        bind(name, *args, **shift(**params)), 0)


def _tangent_aval(x) -> ShapedArray:
    from adjit.trace import get_aval

    return get_aval(x)


def missing_rules() -> dict[str, list[str]]:
    """Which primitive lacks which rule it needs, as ``{prim: [rule names]}``."""
    missing: dict[str, list[str]] = {}
    for name in abstract_rules:
        needs = ["impl", "jvp"]
        if name in linear_prims:
            needs.append("transpose")
        tables = {"impl": impl_rules, "jvp": jvp_rules, "transpose": transpose_rules}
        lacking = [k for k in needs if name not in tables[k]]
        if lacking:
            missing[name] = lacking
    return missing
