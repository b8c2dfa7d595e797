"""Jacobians and Hessians: ``vmap`` of ``jvp`` over a basis of the input (forward mode) or of
``vjp`` over a basis of the output (reverse mode). Staged like every transform, so
``hessian = jacfwd(jacrev(f))`` and ``vmap(jacrev(f))`` are each one graph and one kernel.

The basis of an array of shape S is the identity of shape (*S, *S), built from iotas so that
symbolic lengths stay symbolic; one ``vmap`` per axis of S maps over it, and a Jacobian has
shape (*output shape, *input shape). Pytrees nest: the Jacobian of a function of a dict
returning a tuple is a tuple (one entry per output) of dicts (one block per input), as in JAX.
"""

from __future__ import annotations

from collections.abc import Callable

from adjit import tree
from adjit.api import check_input_dtype, check_output_dtype, jvp, normalize_argnums, vjp, vmap
from adjit.backend import check_target_name
from adjit.dispatch import Staged, entry_function
from adjit.errors import AdjitTypeError
from adjit.primitives import elementwise as ew
from adjit.primitives import structural as st
from adjit.trace import get_aval


def _identity(aval):
    """The basis of arrays shaped like ``aval``: E[i..., j...] = (i == j), shape (*S, *S)."""
    shape, r = aval.shape, aval.ndim
    if r == 0:
        return st.broadcast_in_dim(ew.convert_element_type(True, aval.dtype), (), ())
    full = (*shape, *shape)
    same = None
    for k in range(r):
        eq = ew.eq(st.iota("int64", full, k), st.iota("int64", full, r + k))
        same = eq if same is None else ew.logical_and(same, eq)
    return ew.convert_element_type(same, aval.dtype)


def _map_basis(fn, basis, rank: int):
    """``fn`` applied to every basis element: vmapped over the leading ``rank`` axes."""
    for _ in range(rank):
        fn = vmap(fn)
    return fn(basis)


def _with_arg(fun, args, i):
    return lambda x: fun(*args[:i], x, *args[i + 1:])


def _per_argnum(fun, argnums, what, jac_of_arg, holomorphic):
    def body(*args):
        single, nums = normalize_argnums(argnums, len(args), what)
        jacs = tuple(jac_of_arg(_with_arg(fun, args, i), args[i], holomorphic) for i in nums)
        return jacs[0] if single else jacs

    return body


def _jacfwd_of_arg(f, x, holomorphic):
    """The Jacobian of ``f`` at ``x``: one JVP per input element, vmapped. As in JAX, complex
    inputs need ``holomorphic=True`` (one complex JVP per element is the Jacobian only then)."""
    x_leaves, x_tree = tree.flatten(x)
    per_in = []  # for each input leaf, the output tree of its Jacobian blocks
    for k, leaf in enumerate(x_leaves):
        aval = get_aval(leaf)
        check_input_dtype(aval, "jacfwd", holomorphic, complex_ok=False)

        def push(t, k=k):
            ts = [t if j == k else st.zeros_like_aval(get_aval(other))
                  for j, other in enumerate(x_leaves)]
            out = jvp(f, (x,), (tree.unflatten(x_tree, ts),))[1]
            if holomorphic:
                for o in tree.leaves(out):
                    check_output_dtype(get_aval(o), "jacfwd", holomorphic)
            return out

        cols = _map_basis(push, _identity(aval), aval.ndim)  # (*in, *out) per output leaf
        per_in.append(tree.tree_map(
            lambda c, r=aval.ndim: st.transpose(c, (*range(r, get_aval(c).ndim),
                                                    *range(r))), cols))
    # Nest the output structure over the input structure, as JAX does.
    out_leaves = [tree.flatten(p)[0] for p in per_in]
    out_tree = tree.flatten(per_in[0])[1]
    return tree.unflatten(out_tree, [
        tree.unflatten(x_tree, [blocks[o] for blocks in out_leaves])
        for o in range(out_tree.num_leaves)])


def _jacrev_of_arg(f, x, holomorphic):
    """The Jacobian of ``f`` at ``x``: one VJP per output element, vmapped. As in JAX,
    complex outputs need ``holomorphic=True``; a real function of complex inputs follows
    grad's convention."""
    for leaf in tree.leaves(x):
        check_input_dtype(get_aval(leaf), "jacrev", holomorphic)
    out, f_vjp = vjp(f, x)
    out_leaves, out_tree = tree.flatten(out)
    rows = []
    for k, y in enumerate(out_leaves):
        aval = get_aval(y)
        check_output_dtype(aval, "jacrev", holomorphic)

        def pull(ct, k=k):
            cts = [ct if j == k else st.zeros_like_aval(get_aval(o))
                   for j, o in enumerate(out_leaves)]
            return f_vjp(tree.unflatten(out_tree, cts))[0]

        # Shaped like x: (*out, *in) for each of its leaves.
        rows.append(_map_basis(pull, _identity(aval), aval.ndim))
    return tree.unflatten(out_tree, rows)


def _jacobian_transform(name: str, jac_of_arg, doc: str):
    """A public transformation ``t(fun, argnums=0, *, target="cpu", parallel=False)``, also a
    decorator."""

    def transform(fun: Callable = None, argnums=0, *, holomorphic: bool = False,
                  target: str = "cpu", parallel: bool = False):
        check_target_name(target)
        if fun is None:
            return lambda f: transform(f, argnums, holomorphic=holomorphic, target=target,
                                       parallel=parallel)
        if not callable(fun):
            raise AdjitTypeError(f"adjit: {name} expects a function, got {type(fun).__name__}")
        body = _per_argnum(fun, argnums, name, jac_of_arg, holomorphic)
        return entry_function(Staged(body, name, fun, target=target, parallel=parallel), fun)

    transform.__name__ = transform.__qualname__ = name
    transform.__doc__ = doc
    return transform


jacfwd = _jacobian_transform("jacfwd", _jacfwd_of_arg,
                             "The Jacobian by forward mode: one JVP per input element, vmapped.")
jacrev = _jacobian_transform("jacrev", _jacrev_of_arg,
                             "The Jacobian by reverse mode: one VJP per output element, vmapped.")


def hessian(fun: Callable = None, argnums=0, *, holomorphic: bool = False,
            target: str = "cpu", parallel: bool = False):
    """The Hessian: ``jacfwd(jacrev(f))``, forward over reverse (one graph, compiled for
    ``target``; the inner jacrev runs inside jacfwd's trace)."""
    check_target_name(target)
    if fun is None:
        return lambda f: hessian(f, argnums, holomorphic=holomorphic, target=target,
                                 parallel=parallel)
    return jacfwd(jacrev(fun, argnums, holomorphic=holomorphic, target=target), argnums,
                  holomorphic=holomorphic, target=target, parallel=parallel)
