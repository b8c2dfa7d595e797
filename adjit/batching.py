"""Batching: ``vmap`` evaluates a function's graph with each primitive's batching rule.

Like ``jvp_eval``, ``batch_eval`` walks a graph and stages into the current trace, so a
vectorized function (and any transform of it, or inside it) is one graph and one kernel: the
loop over the batch is the kernel's loop, fused with the body, never a Python loop.

Every value carries its batch axis: 0 (the canonical place; inputs are moved there first) or
None when it is the same for the whole batch. Equations whose inputs are all unbatched are
staged unchanged.
"""

from __future__ import annotations

from adjit import tree
from adjit.errors import AdjitValueError
from adjit.ir.eval import eval_graph
from adjit.ir.graph import Graph, ShapedArray, same_shape
from adjit.ir.rules import batching_rules, multiple_results, rule
from adjit.primitives.structural import broadcast_in_dim, transpose
from adjit.trace import bind_outs, get_aval, trace_closed, trace_tree

# --------------------------------------------------------------------------- the evaluator


def _batch_eqn(eqn, pairs):
    args = [x for x, _ in pairs]
    dims = [d for _, d in pairs]
    if all(d is None for d in dims):
        return [(o, None) for o in bind_outs(eqn.prim, *args, **eqn.params)]
    out, out_dim = rule(batching_rules, "batching", eqn.prim)(args, dims, **eqn.params)
    if eqn.prim not in multiple_results:
        out, out_dim = [out], [out_dim]
    return list(zip(out, out_dim))


def batch_eval(graph: Graph, consts, args, dims):
    """(outputs, their batch axes) of ``graph`` on ``args``, batched on axis 0 where ``dims``
    says 0 and shared by every example where it says None."""
    inputs = [(c, None) for c in consts] + list(zip(args, dims))
    pairs = eval_graph(graph, inputs, _batch_eqn, literal=lambda lit: (lit.value, None))
    return [x for x, _ in pairs], [d for _, d in pairs]


def batch_graph(graph: Graph, in_avals, dims, force=None) -> tuple[Graph, list]:
    """The batched graph of a closed graph: its inputs have ``in_avals`` (the batched ones with
    the batch on axis 0, where ``dims`` says 0); returns it with the batch axis of each output
    (0 or None). Outputs where ``force`` says so are batched even when the same for every
    example (a loop's carry, every branch of a conditional alike)."""
    force = force or [False] * len(graph.outvars)
    size = next(a.shape[0] for a, d in zip(in_avals, dims) if d is not None)
    out_dims = []

    def fun(*args):
        outs, ds = batch_eval(graph, [], args, dims)
        outs = [broadcast_batch(o, size) if f and d is None else o
                for o, d, f in zip(outs, ds, force)]
        out_dims[:] = [0 if f else d for d, f in zip(ds, force)]
        return outs

    return trace_closed(fun, in_avals), out_dims


# --------------------------------------------------------------------------- axes


def broadcast_batch(x, size):
    """``x``, the same for every example, with a leading batch axis of ``size``."""
    aval = get_aval(x)
    return broadcast_in_dim(x, (size, *aval.shape), tuple(range(1, aval.ndim + 1)))


def moveaxis(x, source: int, destination: int):
    ndim = get_aval(x).ndim
    perm = [i for i in range(ndim) if i != source]
    perm.insert(destination, source)
    return transpose(x, perm)


def _normalize_axis(axis, ndim: int, what: str) -> int:
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise AdjitValueError(f"adjit: vmap {what}={axis!r} is out of range for an array of "
                              f"rank {ndim - 1 if what == 'in_axes' else ndim}")
    return axis % ndim


def _prefix_leaves(axes, value, what: str) -> list:
    """One axis (or None) per leaf of ``value``: ``axes`` is a tree prefix of it, whose int or
    None entries stand for every leaf below them (JAX's in_axes and out_axes)."""
    if axes is None or isinstance(axes, int):
        return [axes] * len(tree.leaves(value))
    if isinstance(value, dict) and isinstance(axes, dict) and sorted(axes) == sorted(value):
        return [a for k in sorted(value) for a in _prefix_leaves(axes[k], value[k], what)]
    if isinstance(value, (tuple, list)) and isinstance(axes, (tuple, list)) and \
            len(axes) == len(value):
        return [a for ax, v in zip(axes, value) for a in _prefix_leaves(ax, v, what)]
    raise AdjitValueError(f"adjit: vmap {what}={axes!r} does not match the structure of "
                          f"{type(value).__name__} (each entry an int, None or a matching tree)")


# --------------------------------------------------------------------------- vmap


def vmap_body(fun, in_axes, out_axes):
    """The body of ``vmap(fun)``: staged by ``adjit.vmap``, called directly inside a trace."""

    def body(*args):
        leaves, in_tree = tree.flatten(args)
        axes = _prefix_leaves(tuple(in_axes) if isinstance(in_axes, list) else in_axes,
                              args, "in_axes")
        size = None
        moved, per_example = [], []
        for x, ax in zip(leaves, axes):
            aval = get_aval(x)
            if ax is None:
                moved.append(x)
                per_example.append(aval)
                continue
            ax = _normalize_axis(ax, aval.ndim, "in_axes") if aval.ndim else None
            if ax is None:
                raise AdjitValueError("adjit: vmap cannot map over an axis of a scalar; "
                                      "give it in_axes=None")
            n = aval.shape[ax]
            if size is None:
                size = n
            elif not same_shape((size,), (n,)):
                raise AdjitValueError(f"adjit: vmap got inputs with different sizes along "
                                      f"the mapped axes: {size} and {n}")
            moved.append(moveaxis(x, ax, 0))
            per_example.append(ShapedArray(aval.shape[:ax] + aval.shape[ax + 1:], aval.dtype))
        if size is None:
            raise AdjitValueError("adjit: vmap needs at least one argument with a mapped axis")
        dims = [None if ax is None else 0 for ax in axes]

        graph, consts, out_tree = trace_tree(fun, in_tree, per_example, "vmap")
        outs, out_dims = batch_eval(graph, consts, moved, dims)
        results = []
        leaf_out_axes = _prefix_leaves(out_axes, tree.unflatten(out_tree, outs), "out_axes")
        for out, d, ax in zip(outs, out_dims, leaf_out_axes):
            aval = get_aval(out)
            if ax is None:
                if d is not None:
                    raise AdjitValueError("adjit: vmap out_axes=None needs an output that "
                                          "does not depend on the mapped inputs")
                results.append(out)
                continue
            if d is None:
                out = broadcast_batch(out, size)
            results.append(moveaxis(out, 0, _normalize_axis(ax, aval.ndim + (d is None),
                                                             "out_axes")))
        return tree.unflatten(out_tree, results)

    return body
