"""adjit on Dask: compiled functions and their derivatives applied to Dask arrays block by
block, and data-parallel gradients of losses that are sums over rows.

    import adjit, adjit.dask
    per_row = adjit.dask.map_blocks(adjit.vmap(adjit.grad(l), in_axes=(None, 0, 0)), w, X, y)
    value, g = adjit.dask.value_and_grad(loss)(params, X, y)   # loss sums l over the rows

Blocks are runs of rows: every Dask array among the arguments (any leaf of their pytrees) is
cut along its first axis, all at the same row boundaries (the first array's; the others are
rechunked to them), in one chunk along its other axes. Every other leaf (NumPy arrays and
numbers: the parameters) is passed whole to every block.

What travels to the workers is a :class:`Kernel`: the graph adjit traced and optimized on the
client, pickled (without the user's source lines, so equal graphs have equal bytes), with its
constants and the digest of its bytes. Rows are traced as a symbolic
length, so one graph serves every block (a block of another length gets its own graph only
where the trace fixed the length). Only the IR travels: primitives are names and carried
graphs are graphs; the Python rules a traced graph may hold (a ``custom_jvp``'s) are gone once
the pipeline has inlined its calls. No dispatcher, Numba function or user function is pickled,
so lambdas and closures work. A worker builds a runner (the target's pipeline, fusion, source
and Numba kernel) the first time it meets a digest with given input types and keeps it for
every later block (:func:`worker_info` counts both); the Numba compilation itself goes through
adjit's kernel cache, in memory and on disk, keyed by the generated source, so a kernel
compiled before (by the client, another worker, an earlier run sharing ``ADJIT_CACHE_DIR``)
is loaded, not compiled again.

Dask is imported only when these functions are called: ``pip install 'adjit[dask]'``.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import threading
from collections.abc import Callable

import numpy as np

from adjit import tree
from adjit.api import value_and_grad as _value_and_grad
from adjit.backend import check_target_name, compile_graph
from adjit.config import config
from adjit.dispatch import graph_fits, signature
from adjit.errors import AdjitError, AdjitTypeError, AdjitValueError
from adjit.freevalues import FreeValues
from adjit.ir.graph import Dim, Graph, map_subgraphs, resolve_dim
from adjit.ir.interpret import bind_symbols
from adjit.passes import optimize
from adjit.trace import trace_symbolic

__all__ = ["Kernel", "map_blocks", "run_kernel", "value_and_grad", "worker_info"]


def _dask():
    """``dask`` and ``dask.array``, or an AdjitError naming the extra that installs them."""
    try:
        import dask
        import dask.array as da
    except ImportError as exc:
        raise AdjitError(f"adjit.dask needs Dask ({exc}): pip install 'adjit[dask]' "
                         "(dask[array] and distributed)") from None
    return dask, da


# --------------------------------------------------------------------------- kernels


class Kernel:
    """An optimized graph as it travels to the workers: ``blob``, the graph pickled;
    ``consts``, the values of its constvars (arrays the function closed over); the target and
    whether to compile (``config.jit`` on the client when it was traced). ``digest`` (the
    sha256 of the blob) names the graph in each worker's cache."""

    __slots__ = ("blob", "consts", "target", "jit", "digest", "_token")

    def __init__(self, blob: bytes, consts, target: str, jit: bool):
        self.blob = blob
        self.consts = tuple(consts)
        self.target = target
        self.jit = jit
        self.digest = hashlib.sha256(blob).hexdigest()
        self._token = None

    def __reduce__(self):
        return Kernel, (self.blob, self.consts, self.target, self.jit)

    def __dask_tokenize__(self):
        # Asked for every task naming the kernel: the constants (arrays) are hashed once.
        if self._token is None:
            from dask.base import tokenize

            self._token = ("adjit.dask.Kernel", self.digest, self.target, self.jit,
                           tokenize(*self.consts))
        return self._token


# One process's runners (a worker's, or the client's with the local schedulers):
# (digest, target, jit, input signatures) -> (graph, runner).
_runners: dict = {}
_runners_lock = threading.Lock()
_counts = {"kernels": 0, "blocks": 0}


def worker_info() -> dict:
    """This process's counters: ``kernels``, the runners built from shipped graphs (one per
    graph and input types), and ``blocks``, the blocks run. ``client.run(worker_info)`` asks
    every worker; ``adjit.cache_info`` says how many of those kernels Numba compiled and how
    many came from the disk cache."""
    with _runners_lock:
        return dict(_counts)


def _as_input(x):
    """``x`` as the kernels take it, one way for each type Numba sees: a number or 0-d array
    as a NumPy scalar (a parameter updated by NumPy turns from float to np.float64), an array
    as a read-only view (Dask hands over data received from another worker read-only)."""
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            return x[()]
        if x.flags.writeable:
            x = x.view()
            x.flags.writeable = False
        return x
    return np.asarray(x)[()] if type(x) in (float, int, bool, complex) else x


def run_kernel(kernel: Kernel, leaves) -> list[np.ndarray]:
    """The outputs of ``kernel`` on one block's leaves (in the traced order), run by the
    runner this process built for its graph and these input types, built on first use."""
    leaves = [_as_input(x) for x in leaves]
    inputs = [*kernel.consts, *leaves]
    key = (kernel.digest, kernel.target, kernel.jit, *map(signature, inputs))
    with _runners_lock:
        _counts["blocks"] += 1
        entry = _runners.get(key)
        if entry is None:
            graph = pickle.loads(kernel.blob)
            run = compile_graph(graph, target=kernel.target, jit=kernel.jit,
                                reason="adjit.dask block")
            entry = _runners[key] = (graph, run)
            _counts["kernels"] += 1
    graph, run = entry
    if not graph_fits(graph, inputs):  # the client traced for other shapes: never read past
        raise AdjitValueError(
            f"adjit.dask: a block's inputs of shapes {[np.shape(x) for x in leaves]} do not "
            f"fit the kernel traced for {[v.aval for v in graph.invars]}")
    return run(inputs)


# --------------------------------------------------------------------------- client side


class _Trace:
    """One traced signature: the optimized graph, the output tree and the kernel to ship."""

    __slots__ = ("graph", "out_tree", "kernel")

    def __init__(self, graph, out_tree, kernel):
        self.graph, self.out_tree, self.kernel = graph, out_tree, kernel


class _Traces:
    """The traces of ``body`` for the block signatures met so far (rows symbolic, so usually
    one serves every block). ``fun``, the user's function, is watched as a call of an adjit
    function watches it (:mod:`adjit.freevalues`): a change of what it reads from outside its
    arguments drops every trace."""

    def __init__(self, body: Callable, fun: Callable, target: str):
        self.body, self.fun, self.target = body, fun, target
        self._entries: dict = {}
        self._free: FreeValues | None = None

    def get(self, in_tree, leaves) -> _Trace:
        if self._free is not None and self._free.changed():
            self._entries.clear()
            self._free = None
        key = (in_tree, *map(signature, leaves))
        for entry in self._entries.get(key, ()):
            if graph_fits(entry.graph, [*entry.kernel.consts, *leaves]):
                return entry
        free = FreeValues(self.fun)
        entry = self._trace(in_tree, leaves)
        free.settle(frozenset())  # every free array compared by content, none read afresh
        self._free = free if free else None
        self._entries.setdefault(key, []).append(entry)
        return entry

    def _trace(self, in_tree, leaves) -> _Trace:
        out_trees = []

        def flat_body(*flat):
            out_leaves, out_tree = tree.flatten(self.body(*tree.unflatten(in_tree, flat)))
            out_trees.append(out_tree)
            return out_leaves

        graph, consts = trace_symbolic(flat_body, leaves)
        graph = _without_sources(optimize(graph))
        blob = pickle.dumps(graph, protocol=pickle.HIGHEST_PROTOCOL)
        return _Trace(graph, out_trees[-1], Kernel(blob, consts, self.target, config.jit))


def _without_sources(graph: Graph) -> Graph:
    """``graph`` without the user's source lines of its equations (where they were traced,
    which does not change the kernel), so that equal graphs pickle to equal bytes."""
    return graph.replace(eqns=[map_subgraphs(e, _without_sources).replace(source=None)
                               for e in graph.eqns])


class _Blocks:
    """The Dask arrays among a call's leaves, cut at the same row boundaries: ``arrays`` (at
    ``positions`` among the leaves), ``rows`` (each block's length), ``template`` (the
    leaves, None where a block goes)."""

    def __init__(self, leaves, what: str, da):
        self.positions = tuple(i for i, x in enumerate(leaves) if isinstance(x, da.Array))
        if not self.positions:
            raise AdjitTypeError(f"adjit.dask.{what}: no Dask array among the arguments; "
                                 "the data to cut into blocks of rows are Dask arrays")
        arrays = []
        for i in self.positions:
            a = leaves[i]
            if a.ndim == 0:
                raise AdjitValueError(f"adjit.dask.{what}: argument leaf {i} is a 0-d Dask "
                                      "array; blocks are runs of rows (the first axis)")
            if any(np.isnan(n) for n in a.chunks[0]):
                raise AdjitValueError(f"adjit.dask.{what}: argument leaf {i} has unknown "
                                      "chunk sizes; call its compute_chunk_sizes() first")
            if any(n > 1 for n in a.numblocks[1:]):
                a = a.rechunk({axis: -1 for axis in range(1, a.ndim)})
            arrays.append(a)
        n_rows = {a.shape[0] for a in arrays}
        if len(n_rows) > 1:
            shapes = ", ".join(f"leaf {i}: {a.shape}" for i, a in zip(self.positions, arrays))
            raise AdjitValueError(f"adjit.dask.{what}: the Dask arrays have different numbers "
                                  f"of rows ({shapes}); blocks take the same rows of each")
        self.rows = arrays[0].chunks[0]
        self.arrays = [a if a.chunks[0] == self.rows else a.rechunk({0: self.rows})
                       for a in arrays]
        self.template = tuple(None if i in self.positions else x for i, x in enumerate(leaves))

    def examples(self, rows: int) -> list:
        """The leaves of a block of ``rows`` rows, for tracing: blocks as zero-strided arrays
        of their shape (never read, so never allocated)."""
        leaves = list(self.template)
        for i, a in zip(self.positions, self.arrays):
            leaves[i] = np.broadcast_to(np.zeros((), a.dtype), (rows, *a.shape[1:]))
        return leaves


def _fill(template, positions, blocks) -> list:
    leaves = list(template)
    for i, block in zip(positions, blocks):
        leaves[i] = block
    return leaves


# --------------------------------------------------------------------------- map_blocks


def _block_outputs(*blocks, kernels, template, positions) -> list:
    """One block's outputs, on a worker: the kernel traced for its length, on its leaves."""
    blocks = [_only(b) for b in blocks]
    return run_kernel(kernels[blocks[0].shape[0]], _fill(template, positions, blocks))


def _only(block):
    """The block itself: ``blockwise`` hands an array's one chunk along each of its other axes
    (indices of its own, not the output's) as a list of one (concatenating would copy it)."""
    while isinstance(block, list):
        (block,) = block
    return block


def _map_block(*blocks, **how):
    outs = _block_outputs(*blocks, **how)
    return outs[0] if len(outs) == 1 else tuple(outs)


def _layer(da, fun, blocks: _Blocks, kernels: dict, name: str, out_index, **how):
    """One ``blockwise`` layer calling ``fun`` on each block's arrays (the kernels, the other
    leaves and where the blocks go among them as keywords)."""
    pairs = []
    for k, a in enumerate(blocks.arrays):
        # Axis 0 is the rows, shared; each array's other axes (one chunk) are its own indices.
        pairs += [a, ("rows", *(f"{k}.{axis}" for axis in range(1, a.ndim)))]
    return da.blockwise(fun, out_index, *pairs, token=f"adjit-{name}", concatenate=False,
                        align_arrays=False, kernels=kernels, template=blocks.template,
                        positions=blocks.positions, **how)


def _pick(block, k):
    return block[k]


def _row_outputs(trace: _Trace, leaves, position: int, name: str):
    """The trailing shapes and dtypes of the outputs of a block (its leaves, the first
    blocked one at ``position``), after checking that each has the block's rows as its first
    axis and only there."""
    graph = trace.graph
    row = graph.invars[position].aval.shape[0]  # a symbol, or the length the trace fixed
    lengths = bind_symbols(graph, [*trace.kernel.consts, *leaves])
    specs = []
    for k, v in enumerate(graph.outvars):
        shape = v.aval.shape
        first_is_row = bool(shape) and type(shape[0]) is type(row) and shape[0] == row
        rest_is_not = not (isinstance(row, Dim)
                           and any(isinstance(d, Dim) and d.name == row.name for d in shape[1:]))
        if not (first_is_row and rest_is_not):
            raise AdjitValueError(
                f"adjit.dask.map_blocks: output {k} of {name} is {v.aval} for a block of "
                f"{[x.shape if isinstance(x, np.ndarray) else type(x).__name__ for x in leaves]}"
                f": a block's result must have the block's rows ({row}) as its first axis and "
                "only there, so the function must be row-wise (elementwise, or a vmap over the "
                "rows); for sums over the rows use adjit.dask.value_and_grad")
        specs.append((tuple(resolve_dim(d, lengths) for d in shape[1:]), v.aval.dtype))
    return specs


def map_blocks(fun: Callable, *args, target: str = "cpu"):
    """``fun`` applied to the rows of the Dask arrays among ``args``, block by block: a Dask
    array (a pytree of them when ``fun`` returns several) whose blocks are ``fun``'s results on
    the arguments' blocks, computed on the workers by the kernel adjit compiles for ``fun``.
    Nothing runs until the result is computed.

    ``fun`` is anything adjit traces: a compiled function or derivative (``jit``, ``grad``,
    ``vmap``, ``jacfwd``, ... results) or a plain function of adjit.numpy. It must be
    row-wise: row i of each output depends only on row i of the blocked inputs (elementwise
    functions, a ``vmap`` over the rows), so that its results on the blocks are the blocks of
    its result on the whole. adjit checks from the trace, before anything runs, what it can:
    each output has the block's rows as its first axis and only there, with the same other
    axes and dtype for every block; a function summing or mixing rows fails this, except one
    keeping the rows' length (reversing a block's rows passes). Other leaves of ``args``
    (NumPy arrays, numbers) are passed whole to every block.
    """
    check_target_name(target)
    _, da = _dask()
    name = getattr(fun, "__name__", type(fun).__name__)
    leaves, in_tree = tree.flatten(args)
    blocks = _Blocks(leaves, "map_blocks", da)
    traces = _Traces(fun, fun, target)
    kernels, out = {}, None
    for rows in sorted(set(blocks.rows)):
        examples = blocks.examples(rows)
        trace = traces.get(in_tree, examples)
        this = (trace.out_tree, _row_outputs(trace, examples, blocks.positions[0], name))
        if out is not None and this != out:
            raise AdjitValueError(
                f"adjit.dask.map_blocks: {name} gives outputs of other trailing shapes or "
                f"dtypes for blocks of {rows} rows ({this[1]}) than for the others ({out[1]}); "
                "the function must be row-wise")
        out = this
        kernels[rows] = trace.kernel
    out_tree, specs = out
    if len(specs) == 1:
        return tree.unflatten(out_tree, [_layer(da, _map_block, blocks, kernels, name,
                                                _out_index(specs[0][0]), **_new_axes(specs[0]))])
    # Several outputs: a layer of the blocks' tuples, and one picking each output.
    packed = _layer(da, _map_block, blocks, kernels, name, ("rows",),
                    **_new_axes(((), np.dtype(object))))
    outs = [da.blockwise(_pick, _out_index(tail), packed, ("rows",), token=f"adjit-{name}",
                         **_new_axes((tail, dtype)), k=k)
            for k, (tail, dtype) in enumerate(specs)]
    return tree.unflatten(out_tree, outs)


def _out_index(tail) -> tuple:
    return ("rows", *(f"out.{axis}" for axis in range(1, len(tail) + 1)))


def _new_axes(spec) -> dict:
    tail, dtype = spec
    return dict(new_axes={f"out.{axis}": n for axis, n in enumerate(tail, 1)}, dtype=dtype,
                meta=np.empty((0,) * (1 + len(tail)), dtype))


# --------------------------------------------------------------------------- value_and_grad


def _add_partials(*parts) -> list:
    """The sum of several blocks' values and gradients, leaf by leaf."""
    return [functools.reduce(np.add, leaves) for leaves in zip(*parts)]


def value_and_grad(loss: Callable, *, split_every: int = 8, target: str = "cpu") -> Callable:
    """``vg(params, *data) -> (value, grad)``: the value of ``loss`` and its gradient with
    respect to ``params`` (a pytree: its gradient has the same structure), computed where
    the data are, for a loss that is a sum over the rows of the Dask arrays in ``data``:
    ``loss(params, *data) = sum_i l(params, row i of data)``.

    Each block of rows computes its partial value and gradient with the kernel adjit compiles
    for ``adjit.value_and_grad(loss)``, and a tree of additions (``split_every`` partials per
    node, as Dask's reductions) combines them, so the data never leave their workers and only
    parameter-sized values move; the result is NumPy values, as ``adjit.value_and_grad``
    returns. ``loss`` must be such a sum: on a block it returns the block's part (a constant
    or a regulariser inside it would be added once per block: add those outside). Leaves of
    ``data`` that are not Dask arrays are passed whole to every block. Compute with a
    ``dask.distributed`` client (or any Dask scheduler); persist the data first
    (``X = X.persist()``) so that each call reads them where they are.
    """
    check_target_name(target)
    if not callable(loss):
        raise AdjitTypeError(f"adjit.dask.value_and_grad expects a function, got "
                             f"{type(loss).__name__}")
    if not isinstance(split_every, int) or split_every < 2:
        raise AdjitValueError(f"adjit.dask.value_and_grad: split_every must be an int >= 2, "
                              f"got {split_every!r}")
    traces = _Traces(_value_and_grad(loss), loss, target)

    def vg(params, *data):
        dask, da = _dask()
        if any(isinstance(x, da.Array) for x in tree.leaves(params)):
            raise AdjitTypeError(
                "adjit.dask.value_and_grad: the parameters (argument 0) hold a Dask array; "
                "parameters are NumPy arrays or numbers, passed whole to every block, and "
                "the data (the other arguments) are the Dask arrays")
        leaves, in_tree = tree.flatten((params, *data))
        blocks = _Blocks(leaves, "value_and_grad", da)
        by_rows = {rows: traces.get(in_tree, blocks.examples(rows))
                   for rows in set(blocks.rows)}
        # Each block's value and gradient leaves (a list per block, where the block is) ...
        partials = _layer(da, _block_outputs, blocks,
                          {rows: t.kernel for rows, t in by_rows.items()}, "value_and_grad",
                          ("rows",), dtype=object, meta=np.empty((0,), object))
        # ... summed in a tree.
        parts = list(partials.to_delayed())
        add = dask.delayed(_add_partials, pure=True)
        while len(parts) > 1:
            parts = [add(*parts[i:i + split_every]) for i in range(0, len(parts), split_every)]
        (flat,) = dask.compute(parts[0])
        out_tree = by_rows[blocks.rows[0]].out_tree
        return tree.unflatten(out_tree, [np.asarray(o)[()] if np.ndim(o) == 0 else o
                                         for o in flat])

    functools.update_wrapper(vg, loss, updated=())
    return vg
