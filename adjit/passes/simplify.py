"""Algebraic simplification: a table of rewrite rules, each with its identity, run to a fixed
point by one engine. A rule sees an equation and returns the atom that replaces its output, an
equation that replaces it (a canonical form), equations computing it, or None. Only identities
exact in floating point are here (x * 0 is not 0 when x is inf or nan), but for the order of a
sum's terms (_sum_of_products) and a factor taken out of a sum (_factored_sum), which the
kernels' fast-math flags leave to LLVM anyway.
Graphs inside equations are simplified too."""

from __future__ import annotations

from adjit.ir.graph import (
    Dim,
    Eqn,
    Graph,
    Literal,
    ShapedArray,
    Var,
    dim_add,
    is_one,
    is_symbolic,
    map_subgraphs,
    same_shape,
)
from adjit.passes.dce import dce
from adjit.passes.rewrite import Renamer


class _Consts:
    """Which atoms are a known scalar everywhere: literals and broadcasts of literals."""

    def __init__(self, uses=None):
        self.value_of: dict[int, object] = {}
        self.producer: dict[int, object] = {}
        self.uses = uses or {}  # var id -> how many equations (and outputs) read it

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


def _same_dim(a, b) -> bool:
    """Equal lengths, known without fixing a symbol's value (no guard recorded)."""
    if is_symbolic(a) or is_symbolic(b):
        return is_symbolic(a) and is_symbolic(b) and (a.name, a.offset) == (b.name, b.offset)
    return int(a) == int(b)


def _add_of_adjacent_pads(eqn, k):
    """pad(a) + pad(b) -> pad(concatenate(a, b)) where the two regions are side by side along
    one axis (and equal along the others): the transposes of a vector's slices (the weight
    blocks of an LSTM's gates) become one concatenation instead of a sum of zero-filled
    arrays. Exact: each element is a value plus zero."""
    pads = [k.made_by(x, "pad") for x in eqn.inputs]
    if None in pads or any(any(p.params["interior"]) for p in pads) \
            or pads[0].inputs[0].aval.dtype != eqn.out.aval.dtype:
        return None
    (a, b), (pa, pb) = (p.inputs[0] for p in pads), (p.params for p in pads)
    differ = [i for i in range(len(pa["lo"])) if not (
        _same_dim(pa["lo"][i], pb["lo"][i]) and _same_dim(pa["hi"][i], pb["hi"][i]))]
    if len(differ) != 1:
        return None
    (axis,) = differ
    for first, second, p1, p2 in ((a, b, pa, pb), (b, a, pb, pa)):
        length = first.aval.shape[axis]
        if is_symbolic(p1["lo"][axis]) and is_symbolic(length):
            continue
        if not _same_dim(dim_add(p1["lo"][axis], length), p2["lo"][axis]):
            continue
        lengths = (length, second.aval.shape[axis])
        if all(is_symbolic(n) for n in lengths):
            return None
        lo, hi = (*p2["lo"][:axis], p1["lo"][axis], *p2["lo"][axis + 1:]), p2["hi"]
        if all(not is_symbolic(d) and d == 0 for d in (*lo, *hi)):
            return Eqn("concatenate", [first, second], [eqn.out], {"dimension": axis},
                       eqn.source)
        shape = list(first.aval.shape)
        shape[axis] = dim_add(*lengths)
        joined = Var(ShapedArray(tuple(shape), eqn.out.aval.dtype))
        return [Eqn("concatenate", [first, second], [joined], {"dimension": axis}, eqn.source),
                Eqn("pad", [joined], [eqn.out], {"lo": lo, "hi": hi,
                                                "interior": p2["interior"]}, eqn.source)]
    return None


def _flat_concatenate(eqn, k):
    """concatenate(concatenate(a, b), c) -> concatenate(a, b, c) along the same axis."""
    parts, changed = [], False
    for x in eqn.inputs:
        inner = k.made_by(x, "concatenate")
        if inner is not None and inner.params["dimension"] == eqn.params["dimension"]:
            parts += inner.inputs
            changed = True
        else:
            parts.append(x)
    return eqn.replace(inputs=parts) if changed else None


def _swaps_last(perm) -> bool:
    r = len(perm) - 2
    return r >= 0 and tuple(perm) == (*range(r), r + 1, r)


def _transposed_product(eqn, k):
    """(x @ y) with each matrix transposed -> y^T @ x^T, where the product is read only here:
    the product is then written in the order it is wanted, not copied into it (a gradient
    with respect to an operand read transposed), and an operand that is itself a transpose is
    read in its source. Exact: each element is the same sum of the same products."""
    prod = k.made_by(eqn.inputs[0], "matmul")
    if prod is None or not _swaps_last(eqn.params["permutation"]) \
            or k.uses.get(prod.out.id, 2) != 1:
        return None
    eqns, operands = [], []
    for v in reversed(prod.inputs):
        inner = k.made_by(v, "transpose")
        if inner is not None and _swaps_last(inner.params["permutation"]):
            operands.append(inner.inputs[0])
            continue
        shape = (*v.aval.shape[:-2], v.aval.shape[-1], v.aval.shape[-2])
        t = Var(ShapedArray(shape, v.aval.dtype))
        eqns.append(Eqn("transpose", [v], [t], dict(eqn.params), eqn.source))
        operands.append(t)
    return [*eqns, Eqn("matmul", operands, [eqn.out], {}, prod.source)]


def _sum_of_products(eqn, k):
    """sum over a matrix product's rows -> the product of the summed rows (over its columns:
    of the summed columns): sum_i (x @ y)[i, :] = (sum_i x[i, :]) @ y, n times fewer
    multiplications and no n x m product stored. Through sums, differences, negations and
    transposes read only here (sum(-(a + b)) = -(sum a + sum b)) down to at least one such
    product: the ADBench GMM gradient's means part is the sum over the points of a batched
    product (the einsum's transpose), a third of its BLAS time. Not exact: the terms are
    added in another order, as the kernels' reassociating fast-math flag lets LLVM do anyway."""
    eqns: list = []
    total = _pushed_sum(eqn.inputs[0], eqn.params["axes"], k, eqns, eqn.source)
    if total is None:
        return None
    last = eqns[-1]
    eqns[-1] = Eqn(last.prim, last.inputs, [eqn.out], last.params, last.source)
    return eqns


def _through_transpose(perm, axes):
    """(the axes of a transpose's input that a sum over its output's ``axes`` sums, the
    permutation of that sum's result giving the output's sum, or None where none is needed)."""
    summed = tuple(sorted(perm[a] for a in axes))  # output axis a is input axis perm[a]
    kept = [p for p in perm if p not in summed]
    order = tuple(sorted(kept).index(p) for p in kept)
    return summed, None if order == tuple(range(len(order))) else order


def _sum_of_transpose(eqn, k):
    """sum over axes of x^T -> (sum over x's axes)^T (no transpose where the kept axes keep
    their order): one form for a sum of a value in either layout, so CSE makes one sum of the
    two (the ADBench GMM gradient summed its einsum's cotangent over the points both ways,
    two accumulators in its largest nest)."""
    producer = k.made_by(eqn.inputs[0], "transpose")
    if producer is None:
        return None
    summed, order = _through_transpose(producer.params["permutation"], eqn.params["axes"])
    if order is None:
        return eqn.replace(inputs=[producer.inputs[0]], params={"axes": summed})
    total = Var(ShapedArray(tuple(d for a, d in enumerate(producer.inputs[0].aval.shape)
                                  if a not in summed), eqn.out.aval.dtype))
    return [Eqn("reduce_sum", [producer.inputs[0]], [total], {"axes": summed}, eqn.source),
            Eqn("transpose", [total], [eqn.out], {"permutation": order}, eqn.source)]


def _pushed_sum(x, axes, k, eqns, source):
    """The sum of ``x`` over ``axes``, taken inside the sums, negations and matrix products
    that compute ``x`` (see _sum_of_products), appended to ``eqns``; None where no product is
    reached."""
    producer = None if isinstance(x, Literal) else k.producer.get(x.id)
    if producer is None or k.uses.get(x.id, 2) != 1:
        return None
    shape = tuple(d for a, d in enumerate(x.aval.shape) if a not in axes)
    aval = ShapedArray(shape, x.aval.dtype)

    def emit(prim, inputs, params=None, out_aval=aval):
        out = Var(out_aval)
        eqns.append(Eqn(prim, list(inputs), [out], params or {}, source))
        return out

    if producer.prim == "neg":
        inner = _pushed_sum(producer.inputs[0], axes, k, eqns, source)
        return None if inner is None else emit("neg", [inner])
    if producer.prim == "transpose":
        summed, order = _through_transpose(producer.params["permutation"], axes)
        inner = _pushed_sum(producer.inputs[0], summed, k, eqns, source)
        if inner is None:
            return None
        return inner if order is None else emit("transpose", [inner], {"permutation": order})
    if producer.prim in ("add", "sub"):
        a, b = producer.inputs
        if isinstance(a, Literal) or isinstance(b, Literal) \
                or not (same_shape(a.aval.shape, x.aval.shape)
                        and same_shape(b.aval.shape, x.aval.shape)):
            return None
        mark = len(eqns)
        sums = [_pushed_sum(a, axes, k, eqns, source),
                _pushed_sum(b, axes, k, eqns, source)]
        if sums == [None, None]:
            del eqns[mark:]
            return None
        sums = [emit("reduce_sum", [v], {"axes": tuple(axes)}) if t is None else t
                for v, t in zip((a, b), sums)]
        return emit(producer.prim, sums)
    if producer.prim != "matmul" or len(axes) != 1 or is_one(x.aval.shape[axes[0]]):
        return None
    r = x.aval.ndim
    left, right = producer.inputs
    batch = x.aval.shape[:-2]
    if axes[0] == r - 2:  # over the rows: (sum of x's rows) @ y
        rows = emit("reduce_sum", [left], {"axes": (r - 2,)},
                    ShapedArray((*batch, left.aval.shape[-1]), x.aval.dtype))
        row = emit("reshape", [rows], {"new_sizes": (*batch, 1, left.aval.shape[-1])},
                   ShapedArray((*batch, 1, left.aval.shape[-1]), x.aval.dtype))
        product = emit("matmul", [row, right], None,
                       ShapedArray((*batch, 1, x.aval.shape[-1]), x.aval.dtype))
    elif axes[0] == r - 1:  # over the columns: x @ (sum of y's columns)
        cols = emit("reduce_sum", [right], {"axes": (r - 1,)},
                    ShapedArray((*batch, right.aval.shape[-2]), x.aval.dtype))
        col = emit("reshape", [cols], {"new_sizes": (*batch, right.aval.shape[-2], 1)},
                   ShapedArray((*batch, right.aval.shape[-2], 1), x.aval.dtype))
        product = emit("matmul", [left, col], None,
                       ShapedArray((*batch, x.aval.shape[-2], 1), x.aval.dtype))
    else:
        return None
    return emit("reshape", [product], {"new_sizes": shape})


def _broadcast_source(x, k):
    """(a, where): ``x`` as transposes of a broadcast of ``a``, ``where[j]`` the axis of ``x``
    holding ``a``'s axis ``j``; None where ``x`` is not made so."""
    where = list(range(x.aval.ndim))  # x's axis i is axis where[i] of the value reached
    while not isinstance(x, Literal) and x.id in k.producer:
        producer = k.producer[x.id]
        if producer.prim == "transpose":  # output axis i is input axis perm[i]
            perm = producer.params["permutation"]
            where = [perm[w] for w in where]
            x = producer.inputs[0]
        elif producer.prim == "broadcast_in_dim":
            dims = producer.params["broadcast_dimensions"]
            return producer.inputs[0], [where.index(d) for d in dims]
        else:
            return None
    return None


def _never_empty(d) -> bool:
    """A length that is at least 1 whatever the symbols' values (a symbol stands for 2 or more:
    lengths 0 and 1 are traced as numbers)."""
    return d.offset >= -1 if isinstance(d, Dim) else d >= 1


def _factored_sum(eqn, k):
    """sum over axes of (a * y) (or of y / a), a the same along those axes (a broadcast along
    them, maybe transposed) -> a * (sum of y) (or (sum of y) / a), a broadcast from its source
    to the sum's shape: one product per element of the sum, not one per term, and one
    accumulator less where the nest sums y anyway. A derivative meets it at every broadcast
    factor: the ADBench GMM gradient's means part sums exp(q) * g over the points (d=10, K=5,
    n=10^4: that nest 877 -> 630 us). Not exact (a * b + a * c rounds otherwise than
    a * (b + c)), as with _sum_of_products; only where the product has no other reader, and
    a quotient only of floats (integer division does not distribute)."""
    x = eqn.inputs[0]
    prod = None if isinstance(x, Literal) else k.producer.get(x.id)
    if prod is None or prod.prim not in ("mul", "div") or k.uses.get(x.id, 2) != 1 or (
            prod.prim == "div" and x.aval.dtype.kind not in "fc"):
        return None
    axes = eqn.params["axes"]
    for side in ((0, 1) if prod.prim == "mul" else (1,)):
        factor, y = prod.inputs[side], prod.inputs[1 - side]
        source = None if isinstance(factor, Literal) or isinstance(y, Literal) or \
            not same_shape(factor.aval.shape, x.aval.shape) else _broadcast_source(factor, k)
        if source is None:
            continue
        a, where = source
        # Each summed axis is a new one of the broadcast, or stretches a length-1 axis of a;
        # and has terms: a sum of none is 0, where inf * 0 would be NaN.
        if not all(w not in axes or is_one(a.aval.shape[j]) for j, w in enumerate(where)) \
                or not all(_never_empty(x.aval.shape[s]) for s in axes):
            continue
        kept = sorted((w - sum(1 for s in axes if s < w), j)
                      for j, w in enumerate(where) if w not in axes)
        eqns: list = []

        def emit(prim, value, params, shape):
            out = Var(ShapedArray(tuple(shape), value.aval.dtype))
            eqns.append(Eqn(prim, [value], [out], params, eqn.source))
            return out

        if len(kept) < a.aval.ndim:  # a's stretched length-1 axes dropped
            order = sorted(j for _, j in kept)
            a = emit("reshape", a, {"new_sizes": tuple(a.aval.shape[j] for j in order)},
                     [a.aval.shape[j] for j in order])
            kept = [(w, order.index(j)) for w, j in kept]
        if [j for _, j in kept] != list(range(len(kept))):  # in the sum's axis order
            perm = tuple(j for _, j in kept)
            a = emit("transpose", a, {"permutation": perm}, [a.aval.shape[j] for j in perm])
        shape = eqn.out.aval.shape
        if not same_shape(a.aval.shape, shape):
            a = emit("broadcast_in_dim", a, {"shape": tuple(shape), "broadcast_dimensions":
                                             tuple(w for w, _ in kept)}, shape)
        total = Var(eqn.out.aval)
        eqns.append(Eqn("reduce_sum", [y], [total], {"axes": tuple(axes)}, eqn.source))
        eqns.append(Eqn(prod.prim, [a, total] if prod.prim == "mul" else [total, a],
                        [eqn.out], {}, prod.source))
        return eqns
    return None


RULES = {
    # x * 1 -> x,  1 * x -> x,  x * x -> x ** 2 (one form, so CSE sees x*x and x**2 as one)
    "mul": [lambda e, k: e.inputs[0] if k.is_(e.inputs[1], 1) else None,
            lambda e, k: e.inputs[1] if k.is_(e.inputs[0], 1) else None,
            _square],
    # x + 0 -> x,  0 + x -> x
    "add": [lambda e, k: e.inputs[0] if k.is_(e.inputs[1], 0) else None,
            lambda e, k: e.inputs[1] if k.is_(e.inputs[0], 0) else None,
            _add_of_adjacent_pads],
    "concatenate": [_flat_concatenate],
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
    # (x @ y)^T -> y^T @ x^T where the product has no other reader
    "transpose": [_transposed_product],
    # sum_i (x @ y)[i, :] -> (sum_i x[i, :]) @ y, through sums, negations, transposes read here;
    # sum_i a * y[i] -> a * sum_i y[i] (and sum_i y[i] / a -> (sum_i y[i]) / a);
    # sum(x^T) -> sum(x)^T
    "reduce_sum": [_sum_of_products, _factored_sum, _sum_of_transpose],
}


def simplify(graph: Graph) -> Graph:
    for _ in range(10):
        new, changed = _simplify_once(graph)
        if not changed:
            return new
        # Without what a rewrite left unread: rules that need a value read once (a product
        # only a sum reads) count its readers among the equations still live.
        graph = dce(new)
    return graph


def _rewrite(eqn, consts):
    """The atom replacing ``eqn``'s output, or ``eqn`` in canonical form (maybe itself), or a
    list of equations whose last one computes the output."""
    for _ in range(10):
        for rule in RULES.get(eqn.prim, ()):
            candidate = rule(eqn, consts)
            if isinstance(candidate, list):
                return candidate
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
    uses: dict[int, int] = {}
    for a in [a for e in graph.eqns for a in e.inputs] + list(graph.outvars):
        if not isinstance(a, Literal):
            uses[a.id] = uses.get(a.id, 0) + 1
    consts = _Consts(uses)
    eqns = []
    changed = False
    for eqn in graph.eqns:
        eqn = map_subgraphs(renamer.apply(eqn), simplify)
        replacement = _rewrite(eqn, consts) if len(eqn.outs) == 1 else eqn
        if isinstance(replacement, list):
            *before, replacement = replacement
            for new in before:
                consts.producer[new.out.id] = new
                eqns.append(new)
            changed = True
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
