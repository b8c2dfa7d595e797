"""Fusion: group elementwise equations, gathers (pads and concatenations among them, see
``placed_elementwise``) and the reductions that consume them into loop nests, so a chain like
``sum(x**2 + sin(x))`` and its gradient is one pass over x.

The result is a schedule: a list whose items are either a ``LoopNest`` (equations evaluated
element by element over one iteration shape) or a single equation run on whole arrays (a matrix
product, a scatter). The code generator turns each item into code.

Views (broadcasts, and reshapes that only add or drop length-1 axes) are not computed at all:
whoever reads one reads its source at the mapped index. A view is materialized only where a
whole-array equation or the graph's outputs need it as an array.

Grouping is greedy in graph order. An equation joins an open nest with its iteration shape
unless it reads, at another index, a value the nest computes (a reduction's result, or a view
of an in-nest value): then the nest is closed first, since that value exists only after the
loop.

For the CPU, ``share_first_axis`` then runs consecutive nests over one first axis with few
elements per index of it (per-example code under vmap) as one loop (``SharedLoop``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from adjit.ir.graph import Dim, Eqn, Graph, Literal, is_symbolic, same_shape
from adjit.ir.rules import kind_of


def is_reduction(prim: str) -> bool:
    return kind_of(prim) == "reduction"


def _non_unit(shape):
    return [d for d in shape if isinstance(d, Dim) or d != 1]


def is_view(eqn: Eqn) -> bool:
    """Index remappings: the primitives of kind ``view`` (broadcasts, transposes, slices), and
    reshapes that only insert or remove length-1 axes."""
    if kind_of(eqn.prim) == "view":
        return True
    return eqn.prim == "reshape" and same_shape(_non_unit(eqn.inputs[0].aval.shape),
                                                 _non_unit(eqn.out.aval.shape))


def view_index(eqn: Eqn, index: list) -> list:
    """The index into a view's input that the view's element at ``index`` reads."""
    (x,) = eqn.inputs
    in_shape = x.aval.shape
    if eqn.prim == "transpose":
        at = [None] * len(index)
        for k, p in enumerate(eqn.params["permutation"]):
            at[p] = index[k]
        return at
    if eqn.prim == "slice":
        p = eqn.params
        return [_affine(i, s, st) for i, s, st in
                zip(index, p["start_indices"], p["strides"])]
    if eqn.prim == "broadcast_in_dim":
        dims = eqn.params["broadcast_dimensions"]
        return ["0" if not isinstance(n, Dim) and n == 1 else index[d]
                for n, d in zip(in_shape, dims)]
    # A unit reshape: the non-unit axes correspond in order; length-1 axes read at 0.
    out_axes = [index[k] for k, d in enumerate(eqn.out.aval.shape)
                if isinstance(d, Dim) or d != 1]
    it = iter(out_axes)
    return [next(it) if isinstance(n, Dim) or n != 1 else "0" for n in in_shape]


def _affine(i: str, start, stride: int) -> str:
    """Source text of ``start + stride * i``; a symbolic start prints as an expression."""
    term = i if stride == 1 else f"{stride} * {i}"
    return term if not isinstance(start, Dim) and start == 0 else f"({start} + {term})"


def _known_length(n) -> bool:
    return not is_symbolic(n) and n >= 1


def pad_moves(lo, hi, interior) -> bool:
    """Whether a pad's axis is not its input's axis as it is."""
    return any(is_symbolic(v) or v != 0 for v in (lo, hi, interior))


def placed_elementwise(eqn: Eqn) -> bool:
    """A pad or a concatenation that a loop nest computes element by element, like a gather:
    each element reads its input at a clamped index and keeps it or a zero (branch-free, see
    the lowering). Only where every input's length along the axes it is moved on is known and
    nonzero, so that a clamped index lies inside the input; others are whole-array steps."""
    if eqn.prim == "pad":
        p = eqn.params
        return all(_known_length(n) for n, lo, hi, k in
                   zip(eqn.inputs[0].aval.shape, p["lo"], p["hi"], p["interior"])
                   if pad_moves(lo, hi, k))
    if eqn.prim == "concatenate":
        return all(_known_length(x.aval.shape[eqn.params["dimension"]]) for x in eqn.inputs)
    return False


def fusible(eqn: Eqn) -> bool:
    return kind_of(eqn.prim) in ("elementwise", "gather", "reduction") or \
        placed_elementwise(eqn)


def iteration_shape(eqn: Eqn):
    if is_reduction(eqn.prim):
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
        return [e for e in self.eqns if is_reduction(e.prim)]


@dataclass
class Schedule:
    graph: Graph
    items: list
    views: dict = field(default_factory=dict)   # var id -> the view equation that defines it
    # Views a matrix product reads without their being computed (see blas_view).
    blas_views: set = field(default_factory=set)
    # Operands of products of stacks of matrices read in another array: var id ->
    # stacked_matrices' answer (the source is an array: computed, or a view materialized).
    stacked: dict = field(default_factory=dict)
    _readers: dict | None = field(default=None, repr=False)  # var id -> the items reading it

    def units(self):
        """The items, with each shared loop's nests in its place."""
        for item in self.items:
            if isinstance(item, SharedLoop):
                yield from item.nests
            else:
                yield item

    def readers(self, var_id: int) -> set:
        """Which units read the value ``var_id`` (their ``id``), and ``"output"`` where the
        graph returns it; a nest reads views through to their sources."""
        if self._readers is None:
            self._readers = {}
            for item in self.units():
                if isinstance(item, LoopNest):  # (what a nest computes itself, it does not read)
                    used = _sources([a for e in item.eqns for a in e.inputs],
                                    self.views) - _computed(item)
                else:
                    used = {a.id for a in item.inputs if not isinstance(a, Literal)}
                    used |= _sources([a for a in item.inputs if not isinstance(a, Literal)
                                      and a.id in self.blas_views], self.views)
                    used |= {self.stacked[a.id][0].id for a in item.inputs
                             if not isinstance(a, Literal) and a.id in self.stacked}
                for used_id in used:
                    self._readers.setdefault(used_id, set()).add(id(item))
            for v in self.graph.outvars:
                if not isinstance(v, Literal):
                    self._readers.setdefault(v.id, set()).add("output")
        return self._readers.get(var_id, set())

    def needed_after(self, var, nest) -> bool:
        """Whether a value computed in ``nest`` is read outside it (by another unit, or as an
        output), so it must be stored rather than kept in a loop variable."""
        return bool(self.readers(var.id) - {id(nest)})

    @property
    def loop_count(self) -> int:
        """Memory passes: loop nests over arrays (a scalar-only nest is not a pass), a shared
        loop counting once."""
        return sum(1 for it in self.items if isinstance(it, SharedLoop)
                   or isinstance(it, LoopNest) and it.shape)


# A shared loop's nests have at most this many elements per index of the first axis: what one
# index computes (a few buffers of this size) stays in the L1 cache.
SHARED_INNER_MAX = 256


@dataclass(eq=False)
class SharedLoop:
    """Consecutive loop nests over the same first axis run as one loop over it: at each of
    its indices, each nest's other axes in turn. Per-example code under ``vmap`` is many small
    nests over (n, 2), (n, 3), (n, 2, 15): what one computes and a later one reads at the same
    first index is then still in the cache, and a value nothing after the loop reads lives in
    a buffer of one index's worth, or a scalar (``inner``). See ``share_first_axis``."""
    nests: list
    inner: set = field(default_factory=set)   # ids of the values kept per index

    @property
    def length(self):
        return self.nests[0].shape[0]


def _sources(atoms, views) -> set:
    """Ids of the computed values that reading ``atoms`` touches, looking through views."""
    ids = set()
    for a in atoms:
        while not isinstance(a, Literal) and a.id in views:
            a = views[a.id].inputs[0]
        if not isinstance(a, Literal):
            ids.add(a.id)
    return ids


def _through_views(eqn: Eqn, views) -> set:
    """Ids of the values ``eqn`` reads via a view (so at another index than its own)."""
    return _sources([a for a in eqn.inputs if not isinstance(a, Literal) and a.id in views],
                    views)


def _can_join(eqn: Eqn, nest: LoopNest, views) -> bool:
    if _sources(eqn.inputs, views) & nest.reduced:
        return False
    if _through_views(eqn, views) & nest.defined:
        return False
    if eqn.prim == "take" or placed_elementwise(eqn):  # reads its inputs at other indices
        return not _sources(eqn.inputs, views) & nest.defined
    return True


def blas_view(view: Eqn, views, side: int) -> bool:
    """A view the ``side`` operand (0 left, 1 right) of a matrix product reads as it is, not
    computed: the transpose of a matrix (BLAS reads it through its transpose flag), or a vector
    made a row on the left or a column on the right (a matrix-vector product); of a value that
    is itself computed."""
    (x,) = view.inputs
    if isinstance(x, Literal) or x.id in views or view.out.aval.ndim != 2:
        return False
    if view.prim == "transpose":
        return x.aval.ndim == 2 and tuple(view.params["permutation"]) == (1, 0)
    unit = view.out.aval.shape[side]
    return (view.prim == "reshape" and x.aval.ndim == 1 and not isinstance(unit, Dim)
            and unit == 1)


def stacked_matrices(x, views, batch: int, stop=None):
    """How a product of stacks of matrices (``batch`` leading batch axes) reads its operand
    ``x`` without computing it, where ``x`` is a computed value or a view of one (through
    transposes, broadcasts and unit reshapes): ``(source, axes)``, where ``axes`` names what
    indexes each axis of the source: a batch axis (its number), ``None`` (a broadcast axis,
    read at 0), or ``"i"`` / ``"j"``, the row and column of each matrix. The source is the
    first value that is not a view, or the view ``stop``. None where the matrices' columns or
    rows are not the source's last axis: a BLAS call reads a matrix in place (the source is a
    C-contiguous array) only where one of its axes is contiguous."""
    index = [f"b{k}" for k in range(batch)] + ["i", "j"]
    while not isinstance(x, Literal) and x.id in views and x is not stop:
        view = views[x.id]
        if view.prim not in ("transpose", "broadcast_in_dim", "reshape"):
            return None
        index = view_index(view, index)
        x = view.inputs[0]
    if isinstance(x, Literal) or not index or index[-1] not in ("i", "j"):
        return None
    if index.count("i") != 1 or index.count("j") != 1:
        return None
    return x, [t if t in ("i", "j") else None if t == "0" else int(t[1:]) for t in index]


def _demand_order(nest: LoopNest) -> list:
    """The nest's equations reordered so that each comes just before its first reader in the
    nest (the values nothing in the nest reads keep their order). The order the transpose
    writes is the reverse of the forward one, so a sum of many terms would otherwise compute
    every term first and keep them all live; in this order a few values are live at a time,
    which LLVM's register allocator and Numba's liveness analyses handle in linear time."""
    defined = {eqn.out.id: eqn for eqn in nest.eqns}
    readers = {a.id for eqn in nest.eqns for a in eqn.inputs if not isinstance(a, Literal)}
    order, placed = [], set()
    for root in nest.eqns:
        if root.out.id in readers:
            continue
        stack = [(root, False)]
        while stack:  # depth-first, inputs before their reader, without recursion
            eqn, ready = stack.pop()
            if eqn.out.id in placed:
                continue
            if ready:
                placed.add(eqn.out.id)
                order.append(eqn)
                continue
            stack.append((eqn, True))
            for a in reversed(eqn.inputs):
                if not isinstance(a, Literal) and a.id in defined and a.id not in placed:
                    stack.append((defined[a.id], False))
    return order


# A loop nest's body is one basic block for the backend's compiler, whose instruction
# selection and register allocation take superlinear time in a block's length (LLVM: a sum of
# 1000 terms in one nest took 7.7 s of machine-code generation, of 100 terms 0.2 s).
MAX_NEST_EQNS = 256


def _split(nest: LoopNest) -> list[LoopNest]:
    """A nest longer than MAX_NEST_EQNS as consecutive nests of at most that many equations,
    in demand order (few values cross from one to the next: they are stored in arrays)."""
    if len(nest.eqns) <= MAX_NEST_EQNS:
        return [nest]
    order = _demand_order(nest)
    parts = []
    for start in range(0, len(order), MAX_NEST_EQNS):
        eqns = order[start:start + MAX_NEST_EQNS]
        parts.append(LoopNest(nest.shape, eqns,
                              {e.out.id for e in eqns if not is_reduction(e.prim)},
                              {e.out.id for e in eqns if is_reduction(e.prim)}))
    return parts


def fuse(graph: Graph, blas: bool = False) -> Schedule:
    """The schedule of ``graph``. With ``blas`` (a target whose matrix products call BLAS),
    a matrix product reads a transposed matrix or a vector made a matrix as it is
    (``blas_view``) rather than computed into an array."""
    items: list = []
    open_nests: list[LoopNest] = []
    # Every view is known from the start: an equation pulled forward (``pull``) may read one
    # defined after the point it is pulled to; a view only names an index remapping.
    views: dict = {eqn.out.id: eqn for eqn in graph.eqns if is_view(eqn)}
    materialized: set = set()
    blas_views: set = set()
    stacked: dict = {}
    available = {v.id for v in (*graph.constvars, *graph.invars)}
    readers: dict = {}  # value id -> id() of the equations reading it (through views)
    for eqn in graph.eqns:
        for source in _sources(eqn.inputs, views):
            readers.setdefault(source, set()).add(id(eqn))
    for source in _sources(graph.outvars, views):
        readers.setdefault(source, set()).add("output")
    pulled: set = set()  # id() of the equations already placed by ``pull``
    here = [0]  # the index in graph.eqns of the equation being placed (read by pull)

    def pull(nest):
        """Later equations that can join ``nest`` now, placed in it before it is closed: a
        reduction of its values (the gradient's sum over points of a per-point term) is then
        accumulated in its loop, not stored whole and read back by a nest of its own. An
        elementwise value comes along only where all its readers do: one read behind would be
        stored here and read back, where left behind it is computed in its readers' nest.
        Not into a nest of per-example size: share_first_axis runs those in one loop, where
        a value lives in a buffer of one example's size until a reduction over the examples
        ends the run. (A short known axis of few elements per index still gathers them: the
        ADBench GMM gradient at n = 10^4, d = 2, K = 5, shared, took 0.68 ms a call with and
        0.78 ms without.)"""
        if _per_index(nest, False):
            return
        others = set().union(*(n.defined | n.reduced for n in open_nests if n is not nest))
        # The nest as it would be with what is chosen so far (a reduction chosen is as
        # unreadable in the loop as one already there).
        grown = LoopNest(nest.shape, [], set(nest.defined), set(nest.reduced))
        chosen = {}
        for eqn in graph.eqns[here[0] + 1:]:
            if id(eqn) in pulled or is_view(eqn) or not fusible(eqn) or len(eqn.outs) != 1:
                continue
            sources = _sources(eqn.inputs, views)
            if sources <= available | grown.defined and not sources & others and same_shape(
                    iteration_shape(eqn), nest.shape) and _can_join(eqn, grown, views):
                chosen[eqn.out.id] = eqn
                (grown.reduced if is_reduction(eqn.prim) else grown.defined).add(eqn.out.id)
        # Drop each elementwise value some reader of which stays behind, and then what reads
        # a dropped value, until nothing changes.
        while True:
            kept = {id(e) for e in chosen.values()}
            dropped = [v for v, eqn in chosen.items()
                       if not is_reduction(eqn.prim) and not readers.get(v, set()) <= kept
                       or not _sources(eqn.inputs, views) <= available | nest.defined
                       | set(chosen)]
            if not dropped:
                break
            for v in dropped:
                del chosen[v]
        for eqn in chosen.values():
            nest.eqns.append(eqn)
            (nest.reduced if is_reduction(eqn.prim) else nest.defined).add(eqn.out.id)
            pulled.add(id(eqn))

    def close(nest):
        pull(nest)
        open_nests.remove(nest)
        items.append(nest)
        available.update(e.out.id for e in nest.eqns)

    def close_readers_of(ids):
        for nest in list(open_nests):
            if ids & (nest.defined | nest.reduced):
                close(nest)

    def materialize(atoms):
        """Views read as whole arrays get a loop nest of their own, before the reader (which
        reads a chain of views through to its source: the views inside it need no array)."""
        for a in atoms:
            if isinstance(a, Literal) or a.id not in views or a.id in materialized:
                continue
            view = views[a.id]
            close_readers_of(_sources(view.inputs, views))
            nest = LoopNest(tuple(view.out.aval.shape), [view], {view.out.id})
            items.append(nest)
            materialized.add(a.id)

    for here[0], eqn in enumerate(graph.eqns):
        if is_view(eqn) or id(eqn) in pulled:
            continue
        if not fusible(eqn):
            if blas and eqn.prim == "matmul" and eqn.out.aval.ndim > 2:
                direct = _read_stacked(eqn, views, stacked, materialize)
            else:
                direct = [a for side, a in enumerate(eqn.inputs) if blas and eqn.prim == "matmul"
                          and not isinstance(a, Literal) and a.id in views
                          and blas_view(views[a.id], views, side)]
            blas_views.update(a.id for a in direct)
            materialize([a for a in eqn.inputs if a not in direct])
            close_readers_of(_sources(eqn.inputs, views))
            items.append(eqn)
            available.update(v.id for v in eqn.outs)
            continue
        shape = iteration_shape(eqn)
        target = next((n for n in open_nests if same_shape(n.shape, shape)
                       and _can_join(eqn, n, views)), None)
        # Any other nest whose values this equation reads must be finished first.
        for nest in list(open_nests):
            if nest is not target and _sources(eqn.inputs, views) & (nest.defined | nest.reduced):
                close(nest)
        if target is None:
            target = LoopNest(tuple(shape))
            open_nests.append(target)
        target.eqns.append(eqn)
        (target.reduced if is_reduction(eqn.prim) else target.defined).add(eqn.out.id)
    materialize(graph.outvars)
    items.extend(open_nests)
    items = [part for item in items
             for part in (_split(item) if isinstance(item, LoopNest) else [item])]
    return Schedule(graph, items, views, blas_views, stacked)


# A known first axis is shared from this many indices: per-example code whose number of
# examples the trace fixed (a reshape flattening them fixes it: the BA Jacobian's CSR values,
# 43 loops over 10^6 examples, 515 ms, against one loop, 126 ms). Over fewer, the nests'
# arrays stay in the caches anyway and the shared loop written out only costs compile time
# (the ADBench GMM gradient over 1000 points: first call 1.75 -> 2.2 s, calls as fast).
SHARED_KNOWN_MIN = 1 << 14
# ... except a shorter one with at most SHARED_SMALL_INNER elements per index, up to
# SHARED_SMALL_MAX indices: what its nests compute then fits in the L2 cache either way, and the
# shared loop, short to write out, spares the compiler their loops and arrays. The MLP
# gradient's softmax over 10 classes, seven nests over (512, 10) and (512,) with ten arrays of
# their own, became one loop with none: its kernel compiled in 0.51-0.64 s against
# 0.67-0.87 s, its calls as fast (the ADBench GMM gradient at n = 1000 as fast; at n = 10^4,
# d = 2, K = 5, 8% slower, hence the bound).
SHARED_SMALL_INNER = 16
SHARED_SMALL_MAX = 1 << 12


def _per_index(nest: LoopNest, small: bool = True) -> bool:
    """A nest that may share its first loop: with few elements (of known count) per index of
    its first axis, which is symbolic (the examples under vmap) or known and at least
    SHARED_KNOWN_MIN long, or (where ``small``) known and short with very few elements per
    index (SHARED_SMALL_INNER, SHARED_SMALL_MAX)."""
    inner = nest.shape[1:]
    if not nest.shape or any(is_symbolic(d) for d in inner):
        return False
    per_index, first = math.prod(inner), nest.shape[0]
    if is_symbolic(first) or first >= SHARED_KNOWN_MIN:
        return per_index <= SHARED_INNER_MAX
    return small and per_index <= SHARED_SMALL_INNER and first <= SHARED_SMALL_MAX


def _element_reads(eqn: Eqn, index: list):
    """The inputs a nest's equation reads for its element at ``index``, each with the index it
    reads it at (``"?"`` on an axis read at a computed index), before views."""
    if eqn.prim == "take":
        x, idx = eqn.inputs
        axis, k = eqn.params["axis"], idx.aval.ndim
        return [(x, [*index[:axis], "?", *index[axis + k:]]), (idx, index[axis:axis + k])]
    if eqn.prim == "pad":
        p = eqn.params
        return [(eqn.inputs[0], ["?" if pad_moves(lo, hi, k) else i for i, lo, hi, k in
                                 zip(index, p["lo"], p["hi"], p["interior"])])]
    if eqn.prim == "concatenate":
        axis = eqn.params["dimension"]
        return [(x, [*index[:axis], "?", *index[axis + 1:]]) for x in eqn.inputs]
    if is_view(eqn):  # a view materialized by a nest of its own
        return [(eqn.inputs[0], view_index(eqn, index))]
    return [(a, index) for a in eqn.inputs]


def _reads_own_index(nest: LoopNest, run: list, views) -> bool:
    """Whether ``nest`` reads what the nests of ``run`` compute only at its own index of the
    first axis (the run's loop has computed it by then), never a reduction over that axis."""
    defined = {eqn.out.id: eqn for n in run for eqn in n.eqns}
    index = [f"i{k}" for k in range(len(nest.shape))]
    for eqn in nest.eqns:
        for a, at in _element_reads(eqn, index):
            while not isinstance(a, Literal) and a.id in views:
                at = view_index(views[a.id], at)
                a = views[a.id].inputs[0]
            if isinstance(a, Literal) or a.id not in defined:
                continue
            source = defined[a.id]
            if not at or at[0] != "i0" or (is_reduction(source.prim)
                                           and 0 in source.params["axes"]):
                return False
    return True


def _computed(item) -> set:
    """Ids of the values a schedule item computes."""
    if isinstance(item, LoopNest):
        return {eqn.out.id for eqn in item.eqns}
    return {v.id for v in item.outs}


# Elementwise primitives cheaper to compute again than to store and read back.
CHEAP = frozenset({"add", "sub", "mul", "neg"})


def recompute_cheap(schedule: Schedule) -> Schedule:
    """``schedule`` with each cheap value (CHEAP) that later nests read at their own index
    computed again in each of them instead of stored: GMM's exp(q) * (x - mu) over (K, n, d),
    an array of 8 MB written by one nest and read back by the next, is then one multiply
    there of what it reads anyway. Only where every operand is itself stored (an input, a
    value read after its nest, a view of one) and not one computed again itself, no reader
    reads the value through a view, and nothing else (an output, a whole-array step) reads
    it. Not in nests of per-example size (share_first_axis keeps their values in buffers of
    one example)."""
    nests = [item for item in schedule.items if isinstance(item, LoopNest)]
    views = schedule.views
    moved: set = set()
    placed = {}  # id(reader) -> how many equations it was given (in their order, at its front)
    for nest in nests:
        if _per_index(nest, False):
            continue
        for eqn in list(nest.eqns):
            readers = schedule.readers(eqn.out.id) - {id(nest)}
            if eqn.prim not in CHEAP or not readers or eqn.out.id in schedule.blas_views:
                continue
            later = [n for n in nests if id(n) in readers]
            if len(later) != len(readers) or any(
                    _per_index(n, False) or not same_shape(n.shape, nest.shape)
                    or any(eqn.out.id in _through_views(e, views) for e in n.eqns)
                    for n in later):
                continue
            operands = _sources(eqn.inputs, views)
            if operands & moved or any(a in nest.defined and not schedule.readers(a) - {id(nest)}
                                       for a in operands):
                continue  # an operand not stored: computed again itself, or read only here
            for reader in later:
                reader.eqns.insert(placed.get(id(reader), 0), eqn)
                placed[id(reader)] = placed.get(id(reader), 0) + 1
                reader.defined.add(eqn.out.id)
            if not any(eqn.out.id in _sources(e.inputs, views) for e in nest.eqns):
                nest.eqns.remove(eqn)  # (read by nothing here: the readers compute it)
                nest.defined.discard(eqn.out.id)
            moved.add(eqn.out.id)
            schedule._readers = None  # (the readers changed)
    return schedule


def share_first_axis(schedule: Schedule) -> Schedule:
    """``schedule`` with runs of nests that can share their first loop (``_per_index``,
    ``_reads_own_index``) made ``SharedLoop``s. While a run is open, an item that reads none
    of its values (nor a waiting item's) runs before it; one that does waits until the run
    is closed, and so does all that reads a waiting item: a single item reading one value of
    the run does not split it. The waiting items are then scheduled the same way. A run has
    at most MAX_NEST_EQNS equations: the part of its body outside the nests' own loops is one
    block for the backend's compiler, like a nest's."""

    def reads(item, ids) -> bool:
        return any(id(item) in schedule.readers(i) for i in ids)

    def joins(item, run) -> bool:
        if not run:  # a run starts at a nest with axes of its own within the first's
            return len(item.shape) > 1
        return (same_shape(item.shape[:1], run[0].shape[:1])
                and sum(len(n.eqns) for n in run) + len(item.eqns) <= MAX_NEST_EQNS
                and _reads_own_index(item, run, schedule.views))

    items, pending = [], list(schedule.items)
    while pending:
        run, waiting, in_run, in_waiting = [], [], set(), set()
        for item in pending:
            if not reads(item, in_waiting) and isinstance(item, LoopNest) and \
                    _per_index(item) and joins(item, run):
                run.append(item)
                in_run |= _computed(item)
            elif run and (reads(item, in_run) or reads(item, in_waiting)):
                waiting.append(item)
                in_waiting |= _computed(item)
            else:
                items.append(item)
        if run:
            items.append(SharedLoop(run) if len(run) > 1 else run[0])
        pending = waiting
    shared = Schedule(schedule.graph, items, schedule.views, schedule.blas_views,
                      schedule.stacked)
    for item in items:
        if isinstance(item, SharedLoop):
            item.inner = _kept_per_index(shared, item)
    return shared


def _kept_per_index(schedule: Schedule, loop: SharedLoop) -> set:
    """The values of ``loop`` that only its own nests read after the one computing them
    (elementwise values, and reductions over other axes than the first)."""
    members = {id(n) for n in loop.nests}
    kept = set()
    for nest in loop.nests:
        for eqn in nest.eqns:
            readers = schedule.readers(eqn.out.id)
            if not readers - {id(nest)} or readers - members:
                continue
            if not is_reduction(eqn.prim) or 0 not in eqn.params["axes"]:
                kept.add(eqn.out.id)
    return kept


def _read_stacked(eqn: Eqn, views, stacked: dict, materialize) -> list:
    """The operands of a product of stacks of matrices that are views it reads in an array
    (``stacked_matrices``): in their source, or else in the view nearest the source whose
    array, materialized (one copy), has the matrices on its last two axes (einsum's operand
    with a batch axis between its matrix axes: transposed to batch-first order, then the last
    two swapped)."""
    direct = []
    for a in eqn.inputs:
        if isinstance(a, Literal) or a.id not in views:
            continue
        chain = []
        x = a
        while not isinstance(x, Literal) and x.id in views:
            chain.append(x)
            x = views[x.id].inputs[0]
        for stop in [None, *reversed(chain[1:])]:
            how = stacked_matrices(a, views, eqn.out.aval.ndim - 2, stop)
            if how is not None:
                if stop is not None:
                    materialize([stop])
                stacked[a.id] = how
                direct.append(a)
                break
    return direct
