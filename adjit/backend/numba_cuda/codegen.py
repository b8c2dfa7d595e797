"""Code generation for CUDA: a fused schedule becomes a module of ``@cuda.jit`` kernels and a
host function ``run`` that allocates device arrays and launches them in order.

The same schedule as the CPU target (``adjit/passes/fusion.py``), lowered differently:

* a loop nest without reductions, or whose reductions reduce every axis, is one kernel over
  its elements, one thread per element in a grid-stride loop; each thread keeps its own
  accumulator of every full reduction, a block combines them in shared memory and writes one
  partial per block, and a one-block kernel combines the partials (the second pass);
* a reduction that keeps some axes (``sum(x, axis=1)``) runs one thread per output element,
  looping over the reduced axes; a nest whose reductions keep different axes becomes one kernel
  per set of kept axes, each computing just the elementwise values it needs;
* views and gathers are read through at mapped indices, as on the CPU;
* whole-array equations are the target's ``"array"`` lowerings (``lowering.py``);
* equations carrying graphs (``cond``, ``scan``, ``while``, ``revolve``) are its ``"control"``
  lowerings: control flow in the host function (``if``, ``for``, ``while``), each carried
  graph's own schedule placed inside it by :meth:`Generator.inline_graph` (its kernels are
  written once in the module and launched per branch or step).

Values live in three places: ``host`` (a scalar argument or a length computed on the host,
passed to kernels by value), ``dev0`` (a scalar computed on the device: a 0-d device array, so
the host never waits for it) and ``array`` (a device array); inside a loop body a scalar
slice of a stacked input is a fourth, ``row``: element ``step`` of a 1-d device array, read
in kernels as ``xs[step]``. Constants are typed
(``np.float32(2.0)`` in a float32 kernel) and assigned at the top of each kernel.

The host function calls names the runner supplies: ``_empty(shape, dtype)``, ``_blocks(n)``
(the grid for ``n`` elements), ``_launch(kernel, grid, block, args)``, and for control flow
``_index(x, n, site)`` (a branch index read to the host, clamped to ``[0, n)``) and
``_going(x, site)`` (a loop predicate read to the host), so a checker can run ``run`` with
NumPy stand-ins, choosing every branch and entering every loop once, and type every kernel
without a GPU; kernels may call ``libdevice``, also supplied (the simulator's is a stand-in).
"""

from __future__ import annotations

import contextlib
import re

import numpy as np

from adjit.backend.numba_cpu.codegen import const_text, dim_text, shape_text
from adjit.backend.targets import find_lowering
from adjit.ir.graph import Dim, Graph, Literal
from adjit.ir.rules import kind_of
from adjit.passes.fusion import (
    LoopNest,
    Schedule,
    _sources,
    fuse,
    is_reduction,
    is_view,
    view_index,
)


def numba_type(dtype) -> str:
    """Source text of the Numba scalar type of ``dtype`` (for shared arrays)."""
    dtype = np.dtype(dtype)
    return "numba.boolean" if dtype == np.bool_ else f"numba.{dtype.name}"


def reduce_init(init, dtype):
    """An infinite initial value of an integer reduction is the type's extreme instead."""
    if np.dtype(dtype).kind in "iu" and not np.isfinite(init):
        info = np.iinfo(dtype)
        return info.min if init < 0 else info.max
    return init


class _Writer:
    def __init__(self, depth: int = 1):
        self.lines: list[str] = []
        self.depth = depth

    def __call__(self, text: str):
        self.lines.append("    " * self.depth + text)


class _Kernel:
    def __init__(self, name: str):
        self.name = name
        self.w = _Writer()
        self.params: dict[str, None] = {}    # ordered set: arguments, in order of first use
        self.consts: dict[str, str] = {}     # const text -> local name


class KernelSource:
    """The generated module text and what the runner needs to call ``run``."""

    def __init__(self, text: str, n_kernels: int, out_kinds: list[str]):
        self.text = text
        self.n_kernels = n_kernels
        self.out_kinds = out_kinds


def generate(schedule: Schedule, lowerings: dict[str, dict], *, threads: int = 256,
             tile: int = 16) -> KernelSource:
    """The module of ``schedule``: kernels of ``threads`` threads per block (a power of two),
    matrix products in ``tile`` x ``tile`` tiles."""
    return Generator(schedule, lowerings, threads, tile).run()


def clamped(i: str, last) -> str:
    """Source text of ``i`` clamped into 0..``last``: conditional expressions rather than
    builtin ``min``/``max``."""
    return f"(0 if {i} < 0 else {last} if {i} > {last} else {i})"


def clamped_index(i: str, n: str) -> str:
    """Source text of index ``i`` into a length ``n``: NumPy's wrap-around of a negative index,
    then clamped into range (jax's "clip" mode)."""
    return clamped(f"({i} + {n} if {i} < 0 else {i})", f"{n} - 1")


class Generator:
    """Writes one module; array lowerings use ``kernel``/``per_element``/``launch`` and the
    naming methods (``name``, ``dim``, ``shape``, ``const``, ``elem``, ``store``, ``alloc``)."""

    def __init__(self, schedule: Schedule, lowerings: dict[str, dict], threads: int,
                 tile: int):
        if threads & (threads - 1):
            raise ValueError(f"threads per block must be a power of two, got {threads}")
        self.schedule = schedule
        self.lowerings = lowerings
        self.threads = threads
        self.tile = tile
        self.graph: Graph = schedule.graph
        self.names: dict[int, str] = {}
        self.kinds: dict[int, str] = {}
        self.h = _Writer()
        self.kernels: list[str] = []
        self.helpers: set[str] = set()
        self.counter = 0
        self.k: _Kernel | None = None   # the kernel being written
        self.rows: dict[int, tuple[str, str]] = {}  # row values: var id -> (array, step)

    # ---------------------------------------------------------------- naming

    def name(self, var) -> str:
        if var.id not in self.names:
            self.names[var.id] = f"v{len(self.names)}"
        return self.names[var.id]

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def bound(self, text: str) -> str:
        """An index expression for the element being written (the CPU's names it, to compute
        it once for the many elements its unrolled loops write; here a thread writes one)."""
        return text

    # The CPU's gather lowerings ask these for their clamps and selects: there, runtime.py's
    # branch-free intrinsics; here conditional expressions, which the device compiles to
    # selects itself.

    def clamp(self, i: str, last) -> str:
        """Source text of index ``i`` clamped into ``0..last``."""
        return clamped(i, last)

    def clip_index(self, i: str, n: str) -> str:
        """Source text of index ``i`` into a length ``n`` (jax's "clip" mode)."""
        return clamped_index(i, n)

    def select(self, condition: str, a: str, b: str) -> str:
        return f"({a} if {condition} else {b})"

    def param(self, name: str) -> str:
        if self.k is not None:
            self.k.params.setdefault(name)
        return name

    def const(self, value, dtype) -> str:
        text = const_text(value, dtype)
        # np.float32(-np.inf) negates a float64 (-np.inf is an expression): negate after.
        text = text.replace("(-np.inf)", "(np.inf)").replace("np.", "-np.", 1) \
            if text.endswith("(-np.inf)") else text
        if self.k is None:
            return text
        if text not in self.k.consts:
            self.k.consts[text] = f"c{len(self.k.consts)}"
        return self.k.consts[text]

    def dim(self, d) -> str:
        if isinstance(d, Dim):
            self.param(d.name)  # a symbol the kernel reads is one of its arguments
        return dim_text(d)

    def shape(self, shape) -> str:
        return shape_text(shape, self.dim)

    def size(self, shape) -> str:
        return " * ".join(self.dim(d) for d in shape) or "1"

    def atom(self, a) -> str:
        if isinstance(a, Literal):
            return self.const(a.value, a.aval.dtype)
        return self.param(self.name(a))

    # ---------------------------------------------------------------- storage

    def kind(self, var) -> str:
        if isinstance(var, Literal):
            return "host"
        return self.kinds.get(var.id, "array" if var.aval.shape else "dev0")

    def alloc(self, var, kind: str | None = None) -> str:
        """Host line allocating ``var`` on the device (a 0-d array for a scalar)."""
        kind = kind or ("array" if var.aval.shape else "dev0")
        self.kinds[var.id] = kind
        name = self.name(var)
        if kind != "host":
            self.h(f"{name} = _empty({self.shape(var.aval.shape)}, "
                   f"np.{var.aval.dtype.name})")
        return name

    def elem(self, a, index) -> str:
        """Inside a kernel: the element of ``a`` at ``index`` (names or expressions)."""
        kind = self.kind(a)
        if kind == "host":
            return self.atom(a)
        if kind == "row":
            array, step = self.rows[a.id]
            return f"{self.param(array)}[{self.param(step)}]"
        if kind == "dev0":
            return f"{self.atom(a)}[()]"
        return f"{self.atom(a)}[{', '.join(index)}]"

    def store(self, var, index) -> str:
        """Inside a kernel: the assignment target of ``var`` at ``index``."""
        if not var.aval.shape:
            return f"{self.param(self.name(var))}[()]"
        return f"{self.param(self.name(var))}[{', '.join(index)}]"

    # ---------------------------------------------------------------- kernels

    @contextlib.contextmanager
    def kernel(self, hint: str = "k"):
        """Write a kernel's body with ``w`` (the yielded kernel's writer); its parameters are
        the names used while writing it."""
        assert self.k is None, "kernels do not nest"
        k = _Kernel(f"{hint}{len(self.kernels)}")
        self.k = k
        try:
            yield k
        finally:
            self.k = None
        # Lengths inside index text the fusion pass wrote (a slice's symbolic start) are
        # arguments too.
        body = "\n".join(k.w.lines)
        for symbol in self.graph.symbols():
            if re.search(rf"\b{symbol}\b", body):
                k.params.setdefault(symbol)
        head = ["@cuda.jit(cache=_DISK_CACHE)", f"def {k.name}({', '.join(k.params)}):"]
        consts = [f"    {name} = {text}" for text, name in k.consts.items()]
        self.kernels.append("\n".join(head + consts + k.w.lines))

    def launch(self, k: _Kernel, grid: str, block: str):
        args = ", ".join(k.params) + ("," if len(k.params) == 1 else "")
        self.h(f"_launch({k.name}, {grid}, {block}, ({args}))")

    def unravel(self, w, flat: str, shape, names):
        """Lines setting ``names`` to the C-order index of flat position ``flat`` in ``shape``."""
        rank = len(shape)
        if rank == 0:
            return
        if rank == 1:
            w(f"{names[0]} = {flat}")
            return
        rest = self.fresh("r")
        w(f"{rest} = {flat}")
        for k in range(rank - 1, 0, -1):
            d = shape[k]
            if not isinstance(d, Dim) and d == 1:
                w(f"{names[k]} = 0")
                continue
            w(f"{names[k]} = {rest} % {self.dim(d)}")
            w(f"{rest} //= {self.dim(d)}")
        w(f"{names[0]} = {rest}")

    def per_element(self, shape, emit, hint: str = "k"):
        """One kernel, one thread per element of ``shape`` (grid-stride): ``emit(w, index)``
        writes the body for the element at ``index``."""
        with self.kernel(hint) as k:
            w = k.w
            index = [self.fresh("j") for _ in shape]
            f = self.fresh("f")
            w(f"for {f} in range(cuda.grid(1), {self.size(shape)}, cuda.gridsize(1)):")
            w.depth += 1
            self.unravel(w, f, shape, index)
            emit(w, index)
        size = " * ".join(self.dim(d) for d in shape) or "1"
        self.launch(k, f"_blocks({size})", str(self.threads))

    # ---------------------------------------------------------------- top level

    def run(self) -> KernelSource:
        g = self.graph
        params = [self.name(v) for v in (*g.constvars, *g.invars)]
        for v in (*g.constvars, *g.invars):
            self.kinds[v.id] = "array" if v.aval.shape else "host"
        for symbol in g.symbols():
            var, axis = next((v, i) for v in (*g.constvars, *g.invars)
                             for i, d in enumerate(v.aval.shape)
                             if isinstance(d, Dim) and d.name == symbol)
            self.h(f"{symbol} = {self.name(var)}.shape[{axis}]")
        self.emit_items()
        outs, kinds = [], []
        for v in g.outvars:
            kinds.append(self.kind(v))
            outs.append(self.atom(v))
        self.h(f"return ({', '.join(outs)},)")
        header = ["import cmath", "import math", "", "import numba", "import numpy as np",
                  "from numba import cuda", ""]
        for prim in sorted(self.helpers):
            header += [self.lowerings["helpers"][prim].strip(), "", ""]
        body = [*self.kernels, ""]
        text = "\n".join(header) + "\n" + "\n\n\n".join(body) + "\n" + \
            f"def run({', '.join(params)}):\n" + "\n".join(self.h.lines) + "\n"
        return KernelSource(text, len(self.kernels), kinds)

    def emit_items(self):
        for item in self.schedule.items:
            if isinstance(item, LoopNest):
                self.loop_nest(item)
            else:
                self.array_eqn(item)

    # ---------------------------------------------------------------- carried graphs

    def inline_graph(self, graph: Graph, args) -> list:
        """Writes here (in the host function, at the current indentation) the launches of a
        graph an equation carries, its inputs bound to ``args`` (each an outer atom, or a
        ``(name, kind)`` or ``(name, "row", (array, step))`` tuple); its schedule is its own
        (fused on its own), its kernels are added to the module. Returns its output atoms,
        named in this generator."""
        sub = Generator(fuse(graph), self.lowerings, self.threads, self.tile)
        sub.names, sub.kinds, sub.rows = self.names, self.kinds, self.rows
        sub.h, sub.kernels, sub.helpers = self.h, self.kernels, self.helpers
        sub.counter = self.counter
        for var, a in zip(graph.invars, args):
            self.bind(var, a)
        sub.emit_items()
        self.counter = sub.counter
        return list(graph.outvars)

    def bind(self, var, a):
        """Name ``var`` (a carried graph's input) as ``a``: an outer atom (a literal becomes a
        host name), or an explicit ``(name, kind[, (array, step)])``."""
        if isinstance(a, tuple):
            self.names[var.id], self.kinds[var.id] = a[0], a[1]
            if a[1] == "row":
                self.rows[var.id] = a[2]
            return
        if isinstance(a, Literal):
            name = self.fresh("lit")
            self.h(f"{name} = {self.atom(a)}")
            self.names[var.id], self.kinds[var.id] = name, "host"
            return
        self.names[var.id] = self.name(a)
        self.kinds[var.id] = self.kind(a)
        if a.id in self.rows:
            self.rows[var.id] = self.rows[a.id]

    def host_value(self, a) -> str:
        """Host text of scalar ``a`` for ``_index``/``_going``: a host value, a 0-d device
        array (read by them), or an element of a device array (a copy to the host)."""
        if self.kind(a) == "row":
            array, step = self.rows[a.id]
            return f"{array}[{step}]"
        return self.atom(a)

    def device_value(self, a) -> str:
        """Host text of ``a`` as a device value: arrays as they are; a scalar as a 0-d device
        array, written by a one-thread kernel when it is a host value, literal or row."""
        if a.aval.shape or self.kind(a) == "dev0":
            return self.atom(a)
        name = self.fresh("s")
        self.h(f"{name} = _empty((), np.{a.aval.dtype.name})")
        with self.kernel("put") as k:
            k.w(f"{self.param(name)}[()] = {self.elem(a, [])}")
        self.launch(k, "1", "1")
        return name

    def copy_rows(self, target: str, at: str, value, shape, reading: bool = False):
        """Launches a kernel copying between device array ``target``'s row ``at`` (a host
        name) and ``value`` of ``shape``: ``target[at] = value``, or with ``reading``,
        ``value[...] = target[at]``. ``value`` is an atom, or the name of a device value."""
        def emit(w, index):
            row = f"{self.param(target)}[{', '.join([self.param(at), *index])}]"
            if isinstance(value, str):
                mine = f"{self.param(value)}[{', '.join(index) or '()'}]"
                w(f"{mine} = {row}" if reading else f"{row} = {mine}")
            else:
                w(f"{row} = {self.elem(value, index)}")

        self.per_element(shape, emit, "row")

    def lowering(self, kind: str, prim: str):
        """The entry for ``prim`` in the ``kind`` table; its helper, if any, is emitted."""
        return find_lowering(self.lowerings, kind, prim, "CUDA", self.helpers)

    # ---------------------------------------------------------------- loop nests

    def loop_nest(self, nest: LoopNest):
        rank = len(nest.shape)
        stored = [e for e in nest.eqns
                  if not is_reduction(e.prim) and self.schedule.needed_after(e.out, nest)]
        groups: dict[tuple, list] = {}
        for e in nest.reductions:
            groups.setdefault(tuple(sorted(e.params["axes"])), []).append(e)
        everything = tuple(range(rank))
        full = groups.pop(everything, []) if rank else []
        for e in stored:
            self.alloc(e.out)
        for e in nest.reductions:
            self.alloc(e.out)
        if full or not groups:
            self.flat_kernel(nest, stored, full)
            stored = []
        for axes, reductions in groups.items():
            self.kept_kernel(nest, stored, reductions, axes)
            stored = []

    def _needed(self, nest: LoopNest, targets) -> list:
        """The equations of ``nest`` that computing ``targets`` needs, in order."""
        need = {e.out.id for e in targets}
        by_out = {e.out.id: e for e in nest.eqns}
        views = self.schedule.views
        for e in reversed(nest.eqns):
            if e.out.id in need:
                for src in _sources(e.inputs, views):
                    if src in by_out:
                        need.add(src)
        return [e for e in nest.eqns if e.out.id in need]

    def _body(self, w, nest, eqns, index, stored_ids, accs):
        """The elementwise part of a nest at ``index``: values, stores, accumulator updates."""
        local: dict[int, str] = {}
        reads: dict[tuple, str] = {}
        views = self.schedule.views

        def read(a, at=None) -> str:
            at = index if at is None else at
            if isinstance(a, Literal):
                return self.atom(a)
            if a.id in local and at == index:
                return local[a.id]
            if a.id in views:
                view = views[a.id]
                return read(view.inputs[0], view_index(view, at))
            if self.kind(a) == "host":
                return self.atom(a)
            key = (a.id, tuple(at))
            if key not in reads:
                reads[key] = self.fresh("e")
                w(f"{reads[key]} = {self.elem(a, at)}")
            return reads[key]

        for eqn in eqns:
            if is_reduction(eqn.prim):
                _, update = self.lowering("reduction", eqn.prim)
                for line in update(accs[eqn.out.id], read(eqn.inputs[0])):
                    w(line)
                continue
            target = self.fresh("t")
            w(f"{target} = {self.element(eqn, read, index)}")
            local[eqn.out.id] = target
            if eqn.out.id in stored_ids:
                w(f"{self.store(eqn.out, index)} = {target}")

    def element(self, eqn, read, index) -> str:
        prim, params = eqn.prim, eqn.params
        if is_view(eqn):
            return read(eqn.inputs[0], view_index(eqn, index))
        if prim in self.lowerings["gather"]:
            return self.lowering("gather", prim)(self, eqn, read, index)
        lower = self.lowering("elementwise", prim)
        args = [read(a) for a in eqn.inputs]
        return lower(*args, out_dtype=eqn.out.aval.dtype, **params)

    def _init(self, eqn) -> str:
        init, _ = self.lowering("reduction", eqn.prim)
        dtype = eqn.out.aval.dtype
        return self.const(reduce_init(init, dtype), dtype)

    def flat_kernel(self, nest: LoopNest, stored, full):
        """One thread per element (grid-stride); full reductions: a block reduction in shared
        memory to one partial per block, then a one-block second pass."""
        shape, rank = nest.shape, len(nest.shape)
        eqns = self._needed(nest, [*stored, *full])
        if not eqns:
            return
        stored_ids = {e.out.id for e in stored}
        with self.kernel("k") as k:
            w = k.w
            size = self.size(shape)
            accs = {}
            for e in full:
                accs[e.out.id] = self.fresh("acc")
                w(f"{accs[e.out.id]} = {self._init(e)}")
            index = [f"i{d}" for d in range(rank)]
            f = self.fresh("f")
            w(f"for {f} in range(cuda.grid(1), {size}, cuda.gridsize(1)):")
            w.depth += 1
            self.unravel(w, f, shape, index)
            self._body(w, nest, eqns, index, stored_ids, accs)
            w.depth -= 1
            partials = {}
            for e in full:
                partials[e.out.id] = self.fresh("part")
                self._block_reduce(w, e, accs[e.out.id],
                                   f"{self.param(partials[e.out.id])}[cuda.blockIdx.x]")
        grid = self.fresh("grid")
        self.h(f"{grid} = _blocks({self.size(shape)})")
        for e in full:
            self.h(f"{partials[e.out.id]} = _empty(({grid},), np.{e.out.aval.dtype.name})")
        self.launch(k, grid, str(self.threads))
        for e in full:
            self._second_pass(e, partials[e.out.id], grid)

    def _block_reduce(self, w, eqn, acc: str, target: str):
        """Combine every thread's ``acc`` in shared memory; thread 0 writes ``target``."""
        t = self.threads
        _, update = self.lowering("reduction", eqn.prim)
        sm, tid, s = self.fresh("sm"), self.fresh("tid"), self.fresh("s")
        w(f"{sm} = cuda.shared.array({t}, {numba_type(eqn.out.aval.dtype)})")
        w(f"{tid} = cuda.threadIdx.x")
        w(f"{sm}[{tid}] = {acc}")
        w("cuda.syncthreads()")
        w(f"{s} = {t // 2}")
        w(f"while {s} > 0:")
        w(f"    if {tid} < {s}:")
        a, b = self.fresh("a"), self.fresh("b")
        w(f"        {a} = {sm}[{tid}]")
        w(f"        {b} = {sm}[{tid} + {s}]")
        for line in update(a, b):
            w("        " + line)
        w(f"        {sm}[{tid}] = {a}")
        w("    cuda.syncthreads()")
        w(f"    {s} //= 2")
        w(f"if {tid} == 0:")
        w(f"    {target} = {sm}[0]")

    def _second_pass(self, eqn, partials: str, count: str):
        with self.kernel("fin") as k:
            w = k.w
            acc, i = self.fresh("acc"), self.fresh("q")
            w(f"{acc} = {self._init(eqn)}")
            self.param(partials)
            self.param(count)
            w(f"for {i} in range(cuda.threadIdx.x, {count}, {self.threads}):")
            _, update = self.lowering("reduction", eqn.prim)
            for line in update(acc, f"{partials}[{i}]"):
                w("    " + line)
            self._block_reduce(w, eqn, acc, self.store(eqn.out, []))
        self.launch(k, "1", str(self.threads))

    def kept_kernel(self, nest: LoopNest, stored, reductions, axes):
        """One thread per element of the kept axes, looping over the reduced ones."""
        shape, rank = nest.shape, len(nest.shape)
        eqns = self._needed(nest, [*stored, *reductions])
        stored_ids = {e.out.id for e in stored}
        kept = [d for d in range(rank) if d not in axes]
        kept_shape = [shape[d] for d in kept]
        index = [f"i{d}" for d in range(rank)]
        with self.kernel("k") as k:
            w = k.w
            f = self.fresh("f")
            w(f"for {f} in range(cuda.grid(1), {self.size(kept_shape)}, cuda.gridsize(1)):")
            w.depth += 1
            self.unravel(w, f, kept_shape, [index[d] for d in kept])
            accs = {}
            for e in reductions:
                accs[e.out.id] = self.fresh("acc")
                w(f"{accs[e.out.id]} = {self._init(e)}")
            loops = 0
            for d in axes:
                w(f"for {index[d]} in range({self.dim(shape[d])}):")
                w.depth += 1
                loops += 1
            self._body(w, nest, eqns, index, stored_ids, accs)
            w.depth -= loops
            for e in reductions:
                w(f"{self.store(e.out, [index[d] for d in kept])} = {accs[e.out.id]}")
        self.launch(k, f"_blocks({' * '.join(self.dim(d) for d in kept_shape) or '1'})",
                    str(self.threads))

    # ---------------------------------------------------------------- whole-array equations

    def array_eqn(self, eqn):
        table = "control" if kind_of(eqn.prim) == "control" else "array"
        self.lowering(table, eqn.prim)(self, eqn)
