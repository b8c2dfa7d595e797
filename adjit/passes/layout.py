"""Batch-major layout: elementwise work around a product of stacks of matrices is computed in
the axis order the product reads and writes.

``einsum("kij,nkj->nki", L, xc)`` (ADBench GMM) is a product batched over k, the second axis
of its operand and of its result: the graph reads ``transpose(xc, (1, 0, 2))`` and writes a
(k, n, i) result that it transposes back. Computed as written, the (n, k, i) values around it
are stored n-major, so each of the product's matrices is strided in memory (BLAS then packs
every one: 3x slower at d=10, K=100, n=1000) and every elementwise loop reads the product's
result across the k-major order it was written in.

This pass finds each transpose between a batched product and elementwise work, and computes
the connected elementwise values in the transposed order instead: ``v' = transpose(v, P)`` is
computed from its operands' transposes (views of leaves, or values already computed in that
order), a transpose between such a value and the product disappears, a reduction reduces the
transposed axes, and a reader outside this region reads ``v`` as the view ``transpose(v', P)``.
Exact: every element is the same operation on the same elements. Only permutations that are
their own inverse (swaps of axes) are followed, and a region is left as it is where a value
would be wanted in both orders. Graphs inside equations are rewritten too.
"""

from __future__ import annotations

from collections import defaultdict

from adjit.ir.graph import Eqn, Graph, Literal, ShapedArray, Var, map_subgraphs, same_shape
from adjit.ir.rules import kind_of
from adjit.passes.rewrite import Renamer


def _swap(perm) -> bool:
    """A permutation that is its own inverse and moves an axis other than the last two (BLAS
    reads a transpose of the last two through its transpose flag)."""
    perm = tuple(perm)
    r = len(perm)
    return (r >= 3 and perm != tuple(range(r)) and all(perm[p] == i for i, p in enumerate(perm))
            and perm[:r - 2] != tuple(range(r - 2)))


def _elementwise(eqn) -> bool:
    return eqn is not None and len(eqn.outs) == 1 and kind_of(eqn.prim) == "elementwise"


def _transpose_by(eqn, perm) -> bool:
    return eqn is not None and eqn.prim == "transpose" and \
        tuple(eqn.params["permutation"]) == perm


def _region(seed, perm, producer, users) -> dict | None:
    """Each value connected to ``seed`` (computed in ``perm``'s order: True) through
    elementwise equations and transposes by ``perm``: True where it is to be computed in
    that order, False where it stays; None where some value would be wanted both ways."""
    color = {seed.id: True}
    todo = [seed]
    while todo:
        v = todo.pop()
        flipped = color[v.id]
        linked = []
        made = producer.get(v.id)
        if _elementwise(made):
            linked += [(a, flipped) for a in made.inputs if not isinstance(a, Literal)
                       and same_shape(a.aval.shape, v.aval.shape)]
        elif _transpose_by(made, perm):
            linked.append((made.inputs[0], not flipped))
        for eqn in users[v.id]:
            if _elementwise(eqn) and same_shape(eqn.out.aval.shape, v.aval.shape):
                linked.append((eqn.out, flipped))
            elif _transpose_by(eqn, perm):
                linked.append((eqn.out, not flipped))
        for a, want in linked:
            made = producer.get(a.id)
            if not (_elementwise(made) or _transpose_by(made, perm)):
                continue  # computed otherwise (an input, a product): read as it is, or a view
            if a.id in color:
                if color[a.id] != want:
                    return None
                continue
            color[a.id] = want
            todo.append(a)
    return color


def _seeds(graph: Graph, producer, users):
    """(value, permutation): the elementwise side of each transpose by a swap that feeds a
    product of stacks of matrices or reads one."""
    for eqn in graph.eqns:
        if eqn.prim != "matmul" or eqn.out.aval.ndim < 3:
            continue
        for a in eqn.inputs:
            t = None if isinstance(a, Literal) else producer.get(a.id)
            if t is None or t.prim != "transpose" or not _swap(t.params["permutation"]):
                continue
            (x,) = t.inputs
            if not isinstance(x, Literal) and _elementwise(producer.get(x.id)):
                yield x, tuple(t.params["permutation"])
        for t in users[eqn.out.id]:
            if t.prim == "transpose" and _swap(t.params["permutation"]):
                yield t.out, tuple(t.params["permutation"])


def batch_major(graph: Graph) -> Graph:
    graph = graph.replace(eqns=[map_subgraphs(eqn, batch_major) for eqn in graph.eqns])
    producer = {v.id: eqn for eqn in graph.eqns for v in eqn.outs}
    users = defaultdict(list)
    for eqn in graph.eqns:
        for a in eqn.inputs:
            if not isinstance(a, Literal):
                users[a.id].append(eqn)
    order: dict[int, tuple] = {}  # var id -> the permutation it is computed in
    for seed, perm in _seeds(graph, producer, users):
        if seed.id in order:
            continue
        color = _region(seed, perm, producer, users)
        if color is not None and not any(v in order for v in color):
            order.update((v, perm) for v, flipped in color.items() if flipped)
    if not order:
        return graph

    renamer = Renamer()
    moved: dict[int, object] = {}  # var id -> the same values in its permutation's order
    views: dict[tuple, Var] = {}
    eqns = []

    def transposed(a, perm):
        if isinstance(a, Literal) or a.aval.ndim == 0:
            return a
        if a.id in moved:
            return moved[a.id]
        if (a.id, perm) not in views:  # a leaf (an input, a broadcast): read through a view
            t = Var(ShapedArray([a.aval.shape[p] for p in perm], a.aval.dtype))
            eqns.append(Eqn("transpose", [a], [t], {"permutation": perm}))
            views[a.id, perm] = t
        return views[a.id, perm]

    for eqn in graph.eqns:
        eqn = renamer.apply(eqn)
        out = eqn.outs[0]
        perm = order.get(out.id)
        if perm is not None and eqn.prim == "transpose":
            moved[out.id] = eqn.inputs[0]  # transpose(transpose(y, P), P) is y
            eqns.append(eqn)  # for readers outside the region (dce drops it otherwise)
        elif perm is not None:
            inputs = [transposed(a, perm) for a in eqn.inputs]
            new = Var(ShapedArray([out.aval.shape[p] for p in perm], out.aval.dtype))
            eqns.append(eqn.replace(inputs=inputs, outs=(new,)))
            moved[out.id] = new
            eqns.append(Eqn("transpose", [new], [out], {"permutation": perm}, eqn.source))
        elif eqn.prim == "transpose" and not isinstance(eqn.inputs[0], Literal) and \
                order.get(eqn.inputs[0].id) == tuple(eqn.params["permutation"]):
            renamer.alias(out, moved[eqn.inputs[0].id])
        elif kind_of(eqn.prim) == "reduction" and set(eqn.params) == {"axes"} and \
                not isinstance(eqn.inputs[0], Literal) and eqn.inputs[0].id in order:
            eqns += _reduce_moved(eqn, moved[eqn.inputs[0].id], order[eqn.inputs[0].id])
        else:
            eqns.append(eqn)
    return renamer.finish(graph, eqns)


def _reduce_moved(eqn, x, perm) -> list:
    """``eqn`` (a reduction over ``axes`` of a value) as the reduction of ``x``, the value in
    ``perm``'s order, then a transpose where the axes left are not in their order."""
    axes = {j for j, p in enumerate(perm) if p in eqn.params["axes"]}
    kept = [p for j, p in enumerate(perm) if j not in axes]  # x's remaining axes, as original
    params = {"axes": tuple(sorted(axes))}
    if kept == sorted(kept):
        return [eqn.replace(inputs=(x,), params=params)]
    out = eqn.out
    rank = sorted(kept)
    inner = Var(ShapedArray([out.aval.shape[rank.index(p)] for p in kept], out.aval.dtype))
    back = tuple(kept.index(p) for p in rank)
    return [eqn.replace(inputs=(x,), outs=(inner,), params=params),
            Eqn("transpose", [inner], [out], {"permutation": back}, eqn.source)]
