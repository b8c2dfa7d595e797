"""Code generation: a fused schedule becomes the readable source of one Numba kernel.

The kernel takes the graph's constvars then invars (arrays, or scalars for shape ()), reads the
symbolic lengths from its arguments' shapes, runs each loop nest as index loops (which LLVM
vectorizes), and returns the outputs. Constants are typed (``np.float32(2.0)`` in a float32
kernel), so nothing is computed in a wider type than the graph says.

What each primitive becomes is not written here: :func:`generate` reads it from the target's
lowering tables (``adjit/backend/numba_cpu/lowering.py``), keyed by primitive name:

* ``"elementwise"``: ``lower(*element_texts, out_dtype=, **params)``, the per-element expression;
* ``"gather"``: ``lower(gen, eqn, read, index)``, the expression of an element read at a
  computed index (``read(atom, at)`` reads an input's element, through views);
* ``"reduction"``: ``(initial value, update(acc, value) -> lines)``;
* ``"array"``: ``lower(gen, eqn)``, writing the statements of a whole-array equation;
* ``"control"``: ``lower(gen, eqn)`` for an equation carrying graphs (a branch, a loop): it
  writes the control flow and places each graph's code with ``gen.inline_graph``;
* ``"helpers"``: the source of a function emitted once above the kernel when a primitive with an
  entry is lowered; ``"helper_needs"``: the other helpers one calls;
* ``"libm"``: for elementwise lowerings that are vectorizable helpers, ``(outside(*element_texts,
  out_dtype=) -> condition text or None, libm lowering)``: the libm lowering is used for scalar
  code (a rank-0 nest, a nest LLVM will not vectorize), and a nest runs again with it when an
  element met the condition (sin and cos beyond their exact reduction).

Views are the fusion pass's index maps and need no table.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np

from adjit.backend.numba_cpu import nests
from adjit.backend.targets import find_lowering
from adjit.ir.graph import Dim, Eqn, Graph, Literal
from adjit.ir.rules import kind_of
from adjit.passes.fusion import (
    LoopNest,
    Schedule,
    SharedLoop,
    fuse,
    is_reduction,
    is_view,
    view_index,
)


def const_text(value, dtype) -> str:
    """Source text of a typed scalar constant."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return str(bool(value))
    if dtype.kind == "c":
        value = complex(value)
        return f"np.{dtype.name}(complex({_float_text(value.real)}, {_float_text(value.imag)}))"
    if dtype.kind != "f":
        return f"np.{dtype.name}({int(value)})"
    if dtype == np.float64:  # a float literal is a float64 already: no call for Numba to type
        return _float_text(float(value))
    return f"np.{dtype.name}({_float_text(float(value))})"


def _float_text(value: float) -> str:
    if np.isnan(value):
        return "np.nan"
    if np.isinf(value):
        return "np.inf" if value > 0 else "-np.inf"
    return repr(value)


def dim_text(d) -> str:
    """Source text of a length: a number, or a symbol read from an argument's shape."""
    if isinstance(d, Dim):
        return d.name if d.offset == 0 else f"({d.name} {'+' if d.offset > 0 else '-'} " \
            f"{abs(d.offset)})"
    return str(d)


def shape_text(shape, dim=dim_text) -> str:
    """Source text of a shape tuple, each length written by ``dim``."""
    if not shape:
        return "()"
    return "(" + ", ".join(dim(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


# LLVM may reassociate (vectorize reductions), contract (fma) and divide by multiplying with
# a reciprocal (arcp: a value a loop body divides by twice or more is inverted once, as
# hand-written code does; the ADBench BA Jacobian, 22 divisions per observation, took 7-11%
# less time, both kernels called alternately in one process), but keeps NaN and inf semantics,
# so results propagate NaN like NumPy. (The reciprocal of a subnormal divisor overflows:
# x / 1e-310 may give inf where the quotient is finite.)
FASTMATH = '{"reassoc", "contract", "nsz", "arcp"}'


# --------------------------------------------------------------------------- the generator


class _Writer:
    def __init__(self):
        self.lines: list[str] = []
        self.depth = 1

    def __call__(self, text: str):
        self.lines.append("    " * self.depth + text)


class KernelSource:
    """The generated module text and what the dispatcher needs to call it: ``text`` with its
    loops as ``nests.nest`` calls (not in a parallel kernel), ``plain`` with Python loops
    (what the runner compiles where a nest cannot be lowered)."""

    def __init__(self, plain: str, n_loops: int, scalar_outputs: list[bool], nested: bool):
        self.plain = plain
        self.text = nests.wrap(plain) if nested else plain
        self.n_loops = n_loops
        self.scalar_outputs = scalar_outputs


def generate(schedule: Schedule, lowerings: dict[str, dict],
             parallel: bool = False) -> KernelSource:
    """The kernel of ``schedule``, each primitive lowered by the tables in ``lowerings``; with
    ``parallel``, its loop nests share their outer axis among threads (``Generator.chunked``)."""
    return Generator(schedule, lowerings, parallel).run()


class Generator:
    """Writes one kernel; array lowerings call its naming and writing methods (``name``,
    ``atom``, ``const``, ``dim``, ``shape``, ``fresh``, and ``w(line)`` with ``w.depth``)."""

    def __init__(self, schedule: Schedule, lowerings: dict[str, dict], parallel: bool = False):
        self.schedule = schedule
        self.parallel = parallel
        self.lowerings = lowerings
        self.graph: Graph = schedule.graph
        self.names: dict[int, str] = {}
        self.consts: dict[tuple, str] = {}
        self.w = _Writer()
        self.helpers: set[str] = set()
        self.counter = 0
        # Where a value computed element by element is written instead of a new array (a
        # loop's next carry buffer, its ys row), and which of them were used.
        self.destinations: dict[int, str] = {}
        self.written: set[int] = set()
        # Inside a loop's body: the allocations of arrays that live within one step, written
        # once at the top of the kernel instead of every step (shapes are the kernel's, the
        # same for every step); ``escaping`` are the values that must stay fresh per step.
        self.hoisted: list[str] = []
        self.escaping: set[int] = set()
        self.in_loop = False
        # Within a loop nest using vectorizable helpers (the "libm" table): the flag its
        # first pass sets where an element is outside a helper's domain, and whether this
        # pass uses the libm lowerings.
        self.outside: str | None = None
        self.exact = False
        # In a nest split among threads: what a reduction over the split axis accumulates
        # into instead of its result (a thread's own scalar, or its row of partial results).
        self.accumulators: dict[int, str] = {}
        # In a shared loop: the values kept per index of its first axis (SharedLoop.inner),
        # and whether it is written element by element (each such value's element a scalar).
        self.per_index: set[int] = set()
        self.unrolled = False
        # Appended to those scalars' names in a nest's run again by libm (``rerun_outside``):
        # its own temporaries, so that the first run's are read nowhere else and stay in it.
        self.rerun_suffix = ""
        # Within the inner loops of a nest that a reduction sums over: the scalar it
        # accumulates in (see ``loops``).
        self.running: dict[int, str] = {}
        # What the element being written has read (``elements``): (value id, index) -> the
        # name holding it, and index texts bound to a name (``bound``). One pair for all the
        # elements of a nest written out in a shared loop's body (straight code: each is read
        # or computed once, then named).
        self.reads: dict[tuple, str] = {}
        self.bindings: dict[str, str] = {}
        # The concatenations whose parts are written in their place (``assemble_in_place``).
        self.assembled: set[int] = set()
        # Arrays this kernel allocated (``alloc``) that nothing else lies in, and the units
        # of the schedule written so far: a nest's value may take the place of such an array
        # that it reads for the last time (``donor``).
        self.own_arrays: set[int] = set()
        self.emitted: set[int] = set()
        self.viewed = {v.inputs[0].id for v in schedule.views.values()  # (read by a view)
                       if not isinstance(v.inputs[0], Literal)}

    # ---------------------------------------------------------------- naming

    def name(self, var) -> str:
        if var.id not in self.names:
            self.names[var.id] = f"v{len(self.names)}"
        return self.names[var.id]

    def fresh(self, prefix: str) -> str:
        """A new local name, numbered per kernel: equal graphs give equal source text, which
        is what the kernel cache keys on (global variable ids would differ run to run)."""
        self.counter += 1
        return f"{prefix}{self.counter}"

    def new_array(self, shape, dtype, fill: str | None = None, zeros: bool = False) -> str:
        """Source text of a new array: ``rt.empty`` (``rt.zeros``, or ``rt.full`` of the
        scalar text ``fill``; see ``runtime.py``). Its fixed lengths are literals, so the
        intrinsic knows the size and writes no checks of it."""
        shape = shape_text(shape, lambda d: self.dim(d) if isinstance(d, Dim) else str(int(d)))
        if fill is not None:
            return f"rt.full({shape}, {fill})"
        return f"rt.{'zeros' if zeros else 'empty'}({shape}, np.{np.dtype(dtype).name})"

    def alloc(self, var, zeros: bool = False) -> None:
        """``var = rt.empty(...)`` (or zeros): once at the top of the kernel where it is an
        array of a loop's body that does not outlive its step, else here."""
        shape, dtype = var.aval.shape, var.aval.dtype
        if not self.in_loop or var.id in self.escaping:
            self.w(f"{self.name(var)} = {self.new_array(shape, dtype, zeros=zeros)}")
            if not self.in_loop:
                self.own_arrays.add(var.id)
            return
        text = self.new_array(shape, dtype)
        self.hoisted.append(f"{self.name(var)} = {text}")
        if zeros:
            self.w(f"{self.name(var)}.fill(0)")

    def const(self, value, dtype) -> str:
        """The source text of a typed constant: a float64 or boolean one is written where it is
        used (a literal of Numba's own type), any other is a name assigned once at the top of
        the kernel (its call, ``np.float32(...)``, typed once). A name defined at the top is
        live through every block before its last use: Numba's liveness and reaching-definition
        passes cost blocks times such variables (a kernel of k terms: k constants, k blocks)."""
        text = const_text(value, dtype)
        if text not in self.consts:
            literal = np.dtype(dtype) in (np.float64, np.bool_)
            self.consts[text] = (f"({text})" if text.startswith("-") else text) if literal \
                else f"c{len(self.consts)}"
        return self.consts[text]

    def dim(self, d) -> str:
        return dim_text(d)

    def bound(self, text: str) -> str:
        """A name holding the value of the index expression ``text`` for the element being
        written, assigned where first asked for: a gather's clamped index is then computed
        once for all it reads (the BA Jacobian gathers 11 camera and 3 point columns by two
        indices). A text that is a number (known indices) stays one."""
        if constant(text) is not None:
            return text
        if text not in self.bindings:
            self.bindings[text] = self.fresh("k")
            self.w(f"{self.bindings[text]} = {text}")
        return self.bindings[text]

    def clamp(self, i: str, last) -> str:
        """Source text of index ``i`` clamped into ``0..last``: its value where both are
        numbers (an unrolled loop's element), else one branch-free ``rt.clamp`` (a conditional
        expression is two blocks of Numba's IR, and its passes cost blocks times variables)."""
        known, end = constant(str(i)), constant(str(last))
        if known is not None and end is not None:
            return str(min(max(known, 0), end))
        return f"rt.clamp({i}, {last})"

    def clip_index(self, i: str, n: str) -> str:
        """Source text of index ``i`` into a length ``n``: NumPy's wrap-around of a negative
        index, then clamped into range (jax's "clip" mode)."""
        return f"rt.clip_index({i}, {n})"

    def select(self, condition: str, a: str, b: str) -> str:
        """Source text of ``a if condition else b``, both safe to compute: one ``select``."""
        return f"rt.select({condition}, {a}, {b})"

    def shape(self, shape) -> str:
        return shape_text(shape, self.dim)

    def atom(self, a) -> str:
        if isinstance(a, Literal):
            return self.const(a.value, a.aval.dtype)
        return self.name(a)

    # ---------------------------------------------------------------- top level

    def run(self) -> KernelSource:
        g = self.graph
        # A parallel kernel is told how many threads to use: calling numba.get_num_threads()
        # would make it uncacheable ("dynamic globals").
        params = ["threads"] * self.parallel + [self.name(v) for v in (*g.constvars, *g.invars)]
        body = self.w
        for symbol in g.symbols():
            var, axis = next((v, i) for v in (*g.constvars, *g.invars)
                             for i, d in enumerate(v.aval.shape)
                             if isinstance(d, Dim) and d.name == symbol)
            body(f"{symbol} = {self.name(var)}.shape[{axis}]")
        for var in (*g.constvars, *g.invars):
            # Lengths known here (constants) make the steps through the array constants.
            shape = var.aval.shape
            if len(shape) >= 2 and not all(isinstance(d, Dim) for d in shape):
                body(f"{self.name(var)} = rt.fixed_shape({self.name(var)}, {self.shape(shape)})")
        self.assembled = self.assemble_in_place()
        top = len(body.lines)
        self.emit_items()
        body.lines[top:top] = ["    " + line for line in self.hoisted]
        outs = [self.atom(v) for v in g.outvars]
        # One output is returned bare (no tuple to build and index on every call).
        body(f"return {outs[0]}" if len(outs) == 1 else f"return ({', '.join(outs)})")
        const_lines = [f"    {name} = {text}" for text, name in self.consts.items()
                       if name.startswith("c")]
        # no_cfunc_wrapper: Numba would also compile a C-callable wrapper of every kernel
        # (for passing it as a first-class function), which nothing calls: a third of a small
        # kernel's lowering time. parallel=True where the kernel has no prange would only warn.
        parallel = self.parallel and any("numba.prange(" in line for line in body.lines)
        decorator = (f"@numba.njit(cache=True, fastmath={FASTMATH}, error_model=\"numpy\", "
                     f"nogil=True, no_cfunc_wrapper=True{', parallel=True' if parallel else ''})")
        header = [
            "import cmath",
            "import math",
            "",
            "import numba",
            "import numpy as np",
            "",
            "from adjit.backend.numba_cpu import runtime as rt",
            "",
        ]
        for prim in sorted(self.helpers):
            header += self.lowerings["helpers"][prim].splitlines() + [""]
        header += ["", decorator, f"def kernel({', '.join(params)}):"]
        text = "\n".join(header + const_lines + body.lines) + "\n"
        scalar = [v.aval.shape == () for v in g.outvars]
        return KernelSource(text, self.schedule.loop_count, scalar, not self.parallel)

    def assemble_in_place(self) -> set[int]:
        """Allocates each concatenation along the first axis whose parts are arrays this
        kernel computes (``_assembled_in_place``), and has each part written in its place, so
        the joining is no copy at all; returns the ids of the items that are then written."""
        skipped = set()
        for item, concat, parts in _assembled_in_place(self.schedule):
            self.alloc(concat.out)
            self.own_arrays.discard(concat.out.id)  # its parts' names are views of it
            start = 0
            for x, source in parts:
                rows = x.aval.shape[0]
                stop = start + rows if isinstance(start, int) and isinstance(rows, int) else \
                    f"{self.dim(start)} + {self.dim(rows)}"
                place = f"{self.name(concat.out)}[{self.dim(start)}:{self.dim(stop)}]"
                self.destinations[source.id] = place if source is x else \
                    f"rt.reshape({place}, {self.shape(source.aval.shape)})"
                start = stop
            skipped.add(id(item))
        return skipped

    def emit_items(self):
        for item in self.schedule.items:
            if id(item) in self.assembled:
                continue
            if isinstance(item, SharedLoop):
                self.shared_loop(item)
                self.emitted.update(id(nest) for nest in item.nests)
            elif isinstance(item, LoopNest):
                self.loop_nest(item)
            else:
                self.array_eqn(item)
            self.emitted.add(id(item))

    def inline_graph(self, graph: Graph, args: list[str], destinations=None,
                     written=None, loop: bool = False) -> list[str]:
        """Writes here the code of a graph an equation carries (a branch, a loop's body, said
        by ``loop``), its inputs named by ``args``; returns the source texts of its outputs.
        Its schedule is its own (fused on its own); names, constants and helpers are the
        kernel's. An output in ``destinations`` that a loop nest computes is written there (an
        existing array) rather than into a new one; its id is added to ``written``. Within a
        loop, the graph's arrays that do not outlive a step are allocated once (``alloc``)."""
        schedule = fuse(graph, blas=True)
        sub = Generator(schedule, self.lowerings)
        sub.names, sub.consts, sub.w, sub.helpers = self.names, self.consts, self.w, self.helpers
        sub.counter = self.counter
        sub.destinations = destinations or {}
        if loop or self.in_loop:
            sub.hoisted, sub.escaping = self.hoisted, _escaping(schedule)
        sub.in_loop = loop or self.in_loop
        for var, text in zip(graph.invars, args):
            sub.names[var.id] = text
        sub.emit_items()
        self.counter = sub.counter
        if written is not None:
            written |= sub.written
        return [sub.atom(v) for v in graph.outvars]

    def lowering(self, kind: str, prim: str):
        """The entry for ``prim`` in the ``kind`` table; its helper, if any, is emitted."""
        return find_lowering(self.lowerings, kind, prim, "Numba", self.helpers)

    # ---------------------------------------------------------------- loop nests

    def loop_nest(self, nest: LoopNest):
        resets = self.allocate(nest, in_place=True)
        if self.scalar_code(nest, len(nest.shape)):
            self.exact = True  # scalar code: libm's is as fast, and exact everywhere
            self.shared_loops(nest)
            self.exact = False
            return
        self.outside_flag([nest])
        self.shared_loops(nest)

        def exact_loops():
            self.exact = True
            self.loops(nest)
            self.exact = False

        self.rerun_outside(resets, exact_loops)

    def allocate(self, nest: LoopNest, in_place: bool = False) -> list[str]:
        """Writes the nest's allocations: values needed after the loop, and reduction
        accumulators (not those kept per index of a shared loop); returns the lines that reset
        the accumulators. With ``in_place`` (a nest of its own, run once), a value is written
        in the place of an array the nest reads for the last time (``donor``) rather than
        into a new one."""
        w = self.w
        resets = []
        in_place = in_place and not self.parallel and not self.in_loop and not self.reruns(nest)
        for eqn in nest.eqns:
            out = eqn.out
            if out.id in self.per_index:
                continue
            if is_reduction(eqn.prim):
                resets.append(f"{self.name(out)} = {self.reduce_init(eqn, out.aval.shape)}")
                w(resets[-1])
            elif nest.shape and self.schedule.needed_after(out, nest):
                if out.id in self.destinations:
                    w(f"{self.name(out)} = {self.destinations[out.id]}")
                    self.written.add(out.id)
                elif in_place and (donor := self.donor(nest, eqn)) is not None:
                    # (the nest reads and writes it by one name)
                    w(f"# in place: the next loop's last reads of {self.name(donor)}")
                    self.names[out.id] = self.name(donor)
                    self.own_arrays.discard(donor.id)
                    self.own_arrays.add(out.id)
                else:
                    self.alloc(out)
        return resets

    def donor(self, nest: LoopNest, eqn):
        """An array whose place the value ``eqn.out`` of ``nest`` can take, or None: one this
        kernel allocated (``own_arrays``), of the same shape and dtype, that no view lies in
        and nothing after the nest reads, and that the nest reads only element by element
        at its own index, in equations up to ``eqn`` (each element is read before the value's
        element is written over it). Saves the allocation and, for arrays larger than the
        cache, the memory traffic of a new one: the ADBench GMM gradient's (5, 10^4, 10)
        temporaries."""
        out = eqn.out
        if out.id in self.names or not _same_lengths(out.aval.shape, nest.shape):
            return None
        last = nest.eqns.index(eqn)
        done = self.emitted | {id(nest)}
        for a in (a for e in nest.eqns[:last + 1] for a in e.inputs):
            if isinstance(a, Literal) or a.id not in self.own_arrays or a.id in self.viewed \
                    or a.aval.dtype != out.aval.dtype \
                    or not _same_lengths(a.aval.shape, out.aval.shape) \
                    or not self.schedule.readers(a.id) <= done:
                continue
            if all(_reads_in_place(e, a, k <= last) for k, e in enumerate(nest.eqns)):
                return a
        return None

    def reduce_init(self, eqn, shape) -> str:
        """Source text of a reduction's accumulator of ``shape``, holding its initial value."""
        init, _ = self.lowering("reduction", eqn.prim)
        init = self.const(_reduce_init(init, eqn.out.aval.dtype), eqn.out.aval.dtype)
        return self.new_array(shape, None, fill=init) if shape else init

    def reset_per_index(self, eqn):
        """Sets a reduction kept per index of a shared loop to its initial value."""
        w = self.w
        if self.unrolled:
            for inner in itertools.product(*(range(d) for d in eqn.out.aval.shape[1:])):
                at = ["0", *map(str, inner)]
                w(f"{self.element_ref(eqn.out, at, None)} = {self.reduce_init(eqn, ())}")
            return
        index = [self.fresh("k") for _ in eqn.out.aval.shape[1:]]
        for k, d in zip(index, eqn.out.aval.shape[1:]):
            w(f"for {k} in range({d}):")
            w.depth += 1
        at = f"[{', '.join(index)}]" if index else ""
        w(f"{self.name(eqn.out)}{at} = {self.reduce_init(eqn, ())}")
        w.depth -= len(index)

    def scalar_code(self, nest: LoopNest, rank: int, copies: int = 1) -> bool:
        """Whether the nest (``rank`` loops of its own) calls libm rather than vectorizable
        helpers: where LLVM will not vectorize it (see the ``"libm"`` table). Its arrays are
        declared apart by the memory they lie in (``nests._memory_groups``), which LLVM then
        does not check; a loop's body swaps its carries, which are declared nothing.
        ``copies``: how often the body is written out (elements of an unrolled nest)."""
        libm = self.lowerings.get("libm", {})
        uses = [eqn for eqn in nest.eqns if eqn.prim in libm]
        return bool(uses) and (not rank or len(uses) * copies > _MAX_INLINED or (
            self.in_loop and _overlap_checks(self.schedule, nest) > _LLVM_CHECK_LIMIT))

    def has_domains(self, nests) -> bool:
        """Whether one of ``nests`` calls a vectorizable helper with a domain (outside it,
        the nest runs again with libm: ``rerun_outside``)."""
        libm = self.lowerings.get("libm", {})
        return any(libm[eqn.prim][0]("x", out_dtype=eqn.out.aval.dtype)
                   for nest in nests for eqn in nest.eqns if eqn.prim in libm)

    def reruns(self, nest: LoopNest) -> bool:
        """Whether a nest of its own (``loop_nest``) may run twice: a second run would read
        what the first wrote in place."""
        return not self.scalar_code(nest, len(nest.shape)) and self.has_domains([nest])

    def outside_flag(self, nests):
        """Starts ``self.outside``, the flag of an element outside a helper's domain, where
        one of ``nests`` calls a helper with such a domain."""
        if self.has_domains(nests):
            self.outside = self.fresh("outside")
            self.w(f"{self.outside} = False")

    def rerun_outside(self, resets: list[str], exact_loops):
        """Where ``self.outside`` was set (an element outside a helper's domain): the
        accumulators reset and the loops written again by ``exact_loops()`` with libm."""
        if self.outside is None:
            return
        w = self.w
        w(f"if {self.outside}:  # an element outside a helper's domain: all again, by libm")
        w.depth += 1
        for line in resets:
            w(line)
        self.outside = None
        self.rerun_suffix = "x"
        exact_loops()
        self.rerun_suffix = ""
        w.depth -= 1

    def shared_loop(self, loop: SharedLoop):
        """The nests of ``loop`` within one loop over their first axis (see SharedLoop):
        written out element by element where that is at most UNROLLED_MAX statements and
        every value kept per index is read at known indices (then each of its elements is a
        scalar: no memory, and a straight loop body for LLVM), else with each nest's loops
        and per-index buffers."""
        statements = sum(len(n.eqns) * math.prod(n.shape[1:]) for n in loop.nests)
        if statements <= UNROLLED_MAX:
            lines, depth = len(self.w.lines), self.w.depth
            helpers, consts = set(self.helpers), dict(self.consts)
            self.unrolled = True
            try:
                self.shared_loop_once(loop)
                if sum(_branches(line) for line in self.w.lines[lines:]) > UNROLLED_BRANCHES:
                    raise _NotConstant("too many branches")
                return
            except _NotConstant:  # a kept value read at a computed index: start again
                del self.w.lines[lines:]
                self.w.depth, self.helpers, self.consts, self.outside = depth, helpers, consts, None
            finally:
                self.unrolled = False
        self.shared_loop_once(loop)

    def shared_loop_once(self, loop: SharedLoop):
        self.per_index = loop.inner
        resets = [line for nest in loop.nests for line in self.allocate(nest)]
        # The shared axis is a loop LLVM vectorizes, written out element by element too: the
        # ADBench BA Jacobian (p = 10^5) ran in 3.4 ms with the helpers against 8.7 ms with
        # libm, once its arrays were declared apart and its steps constants (compiling took
        # 1.0 s against 0.8 s: the loop is written twice, the second time by libm). Each
        # element written out is one more inlined helper: the GMM gradient's 25 exps per
        # point compiled in 0.97 s against 0.77 s with libm.
        scalar = {id(nest): self.scalar_code(
            nest, len(nest.shape), math.prod(nest.shape[1:]) if self.unrolled else 1)
            for nest in loop.nests}
        self.outside_flag([nest for nest in loop.nests if not scalar[id(nest)]])
        self.shared_axis(loop, scalar)
        self.rerun_outside(resets, lambda: self.shared_axis(loop, dict.fromkeys(scalar, True)))
        self.per_index = set()

    def shared_axis(self, loop: SharedLoop, scalar: dict):
        """The loop over the first axis, shared among threads in a parallel kernel; ``scalar``
        says of each nest whether it calls libm (``scalar_code``)."""
        w = self.w

        def run(first: str, lo: str | None, count: str):
            # One index's buffers per thread: allocated where the thread starts.
            for nest in loop.nests:
                for eqn in nest.eqns:
                    out = eqn.out
                    if out.id in loop.inner and out.aval.ndim > 1 and not self.unrolled:
                        w(f"{self.name(out)} = "
                          f"{self.new_array(out.aval.shape[1:], out.aval.dtype)}")
            if lo is None:
                w(f"for {first} in range({count}):")
                w.depth += 1
            else:  # a thread's chunk, indexed unsigned (see loops)
                step = self.fresh("j")
                w(f"for {step} in range({count}):")
                w.depth += 1
                w(f"{first} = {lo} + {step}")
                w(f"{unsigned} = numba.uint64({first})")
            at = (first, first if lo is None else unsigned)

            def subscript(index) -> str:
                return ", ".join(at[1] if i == first else i for i in index)

            for nest in loop.nests:
                for eqn in nest.reductions:
                    if eqn.out.id in loop.inner:
                        self.reset_per_index(eqn)
                self.exact = scalar[id(nest)]
                self.reads, self.bindings = {}, {}
                if self.unrolled:
                    for inner in itertools.product(*(range(d) for d in nest.shape[1:])):
                        self.elements(nest, [first, *map(str, inner)], subscript)
                else:
                    self.loops(nest, first=at)
            self.exact = False
            w.depth -= 1

        first, unsigned = self.fresh("i"), self.fresh("u")
        if not self.parallel:
            run(first, None, self.dim(loop.length))
            return
        size = sum(math.prod(nest.shape[1:]) for nest in loop.nests)
        reductions = [eqn for nest in loop.nests for eqn in nest.reductions]
        self.chunked(reductions, 0, (loop.length, size), lambda split: run(first, *split[1:]))

    def shared_loops(self, nest: LoopNest):
        """The nest's loops, shared among threads in a parallel kernel."""
        split = _split_axis(nest) if self.parallel else None
        if split is None:
            self.loops(nest)
        else:
            self.chunked(nest.reductions, split, nest.shape, lambda at: self.loops(nest, at))

    def chunked(self, reductions: list, axis: int, shape: tuple, loops):
        """Loops over ``shape`` whose ``axis`` is split into one contiguous chunk per thread
        (``prange``); ``loops((axis, first index, count))`` writes them for one chunk.
        A reduction over that axis accumulates per chunk (a scalar of the thread's own, or its
        row of an array of partial results), combined in chunk order after the loop: never two
        threads adding into one element, and the result depends on the thread count only."""
        w = self.w
        length = self.dim(shape[axis])
        chunks = self.chunk_count(shape[axis], shape)
        chunk, lo = self.fresh("chunk"), self.fresh("lo")
        partials, privates = [], []
        for eqn in reductions:
            if axis not in eqn.params["axes"]:
                continue  # each thread accumulates into the elements of its own chunk
            out = eqn.out
            init, _ = self.lowering("reduction", eqn.prim)
            init = self.const(_reduce_init(init, out.aval.dtype), out.aval.dtype)
            partial = self.fresh("partial")
            w(f"{partial} = np.full({self.shape((chunks, *out.aval.shape))}, "
              f"{init})")
            partials.append((eqn, partial))
            if out.aval.shape == ():
                private = self.fresh("acc")
                privates.append((private, init, f"{partial}[{chunk}]"))
                self.accumulators[out.id] = private
            else:
                self.accumulators[out.id] = f"{partial}[{chunk}, "
        outside = self.outside
        if outside is not None:
            flags, self.outside = self.fresh("outsides"), self.fresh("outside")
            w(f"{flags} = np.zeros({chunks}, np.bool_)")
            privates.append((self.outside, "False", f"{flags}[{chunk}]"))
        w(f"for {chunk} in numba.prange({chunks}):")
        w.depth += 1
        w(f"{lo} = {chunk} * {length} // {chunks}")
        for private, init, _ in privates:
            w(f"{private} = {init}")
        loops((axis, lo, f"({chunk} + 1) * {length} // {chunks} - {lo}"))
        for private, _, row in privates:
            w(f"{row} = {private}")
        w.depth -= 1
        self.accumulators.clear()
        for eqn, partial in partials:
            out = eqn.out
            _, update = self.lowering("reduction", eqn.prim)
            w(f"for {chunk} in range({chunks}):")
            w.depth += 1
            index = [self.fresh("k") for _ in out.aval.shape]
            for k, d in zip(index, out.aval.shape):
                w(f"for {k} in range({self.dim(d)}):")
                w.depth += 1
            at = "".join(f", {k}" for k in index)
            for line in update(self.name(out) + (f"[{', '.join(index)}]" if index else ""),
                               f"{partial}[{chunk}{at}]"):
                w(line)
            w.depth -= 1 + len(index)
        if outside is not None:
            w(f"{outside} = {flags}.any()")
            self.outside = outside

    def chunk_count(self, length, shape) -> str:
        """The name of how many threads share a loop of ``length`` over ``shape``'s elements:
        as many as there are (``threads``, the parallel kernel's first argument), with at least
        ``GRAIN`` elements each."""
        chunks = self.fresh("chunks")
        size = " * ".join(self.dim(d) for d in shape)
        self.w(f"{chunks} = max(1, min(threads, {self.dim(length)}, ({size}) // {GRAIN}))")
        return chunks

    def loops(self, nest: LoopNest, split: tuple | None = None, first: tuple | None = None):
        """The loops of a nest and the computation of its elements; ``split``, (axis, first
        index, count), runs that axis over one chunk of its indices; in a shared loop, the
        first axis is at the index ``first``, (its name, the name arrays are indexed by)."""
        w = self.w
        rank = len(nest.shape)
        # Each nest's own index names: reusing i0 in every nest makes Numba's SSA
        # reconstruction version it across the whole kernel (superlinear in its loops).
        index = [self.fresh("i") for _ in range(rank)]
        loops = 0
        unsigned: dict[str, str] = {}

        def subscript(at) -> str:
            return ", ".join(unsigned.get(i, i) for i in at)

        if first is not None:
            index[0] = first[0]
            if first[1] != first[0]:
                unsigned[first[0]] = first[1]
        running = self.running_sums(nest)
        stores = []  # (depth, line): each running reduction written back after its loops
        for k, d in enumerate(nest.shape):
            if first is not None and k == 0:
                continue
            if not isinstance(d, Dim) and d == 1:
                w(f"{index[k]} = 0")  # a length-1 axis needs no loop
                continue
            for eqn in running.pop(k, ()):
                acc, scalar = self.accumulator(eqn, index, subscript), self.fresh("run")
                w(f"{scalar} = {acc}")
                stores.append((w.depth, f"{acc} = {scalar}"))
                self.running[eqn.out.id] = scalar
            if split is not None and split[0] == k:
                step = self.fresh("j")
                w(f"for {step} in range({split[2]}):")
                w(f"    {index[k]} = {split[1]} + {step}")
                # Arrays are indexed by the index made unsigned: Numba wraps a signed index
                # that might be negative around (this one never is, but LLVM cannot tell from
                # a chunk's start), and the loop would not vectorize. Index arithmetic (a
                # slice's start + i) stays signed: mixed with an unsigned it would be a float.
                unsigned[index[k]] = self.fresh("u")
                w(f"    {unsigned[index[k]]} = numba.uint64({index[k]})")
                w.depth += 1
                loops += 1
                continue
            w(f"for {index[k]} in range({self.dim(d)}):")
            w.depth += 1
            loops += 1
        self.elements(nest, index, subscript)
        w.depth -= loops
        depth = w.depth
        for at_depth, line in reversed(stores):
            w.depth = at_depth
            w(line)
        w.depth = depth
        self.running.clear()

    def running_sums(self, nest: LoopNest) -> dict[int, list]:
        """The nest's reductions whose result element stays the same through its innermost
        loops, by the axis of the first of those loops: each such reduction accumulates in a
        scalar while they run, written back once after them. Accumulated in memory instead,
        LLVM cannot keep the value in a register (the nest's stores might overlap it), so the
        loop does not vectorize: ADBench GMM's sum of exp over the components ran 5x slower,
        and its sum of squares over d = 10 coordinates 3.8x (in memory: 546 us, in a scalar:
        143 us, for 25 x 1000 points). Through inner loops of fewer than ``RUNNING_MIN``
        elements, only in a nest of ``RUNNING_NEST_MIN`` elements or more (or of symbolic
        length): in a smaller one the time LLVM spends vectorizing the few elements (with
        run-time overlap checks) is not repaid."""
        looped = [k for k, d in enumerate(nest.shape) if isinstance(d, Dim) or d != 1]
        running: dict[int, list] = {}
        for eqn in nest.reductions:
            kept = [k for k in range(len(nest.shape)) if k not in eqn.params["axes"]]
            if not kept:  # over every axis: its accumulator is a scalar already
                continue
            inner = [k for k in looped if k > kept[-1]]
            if inner and (_at_least(nest.shape, RUNNING_NEST_MIN)
                          or _at_least([nest.shape[k] for k in inner], RUNNING_MIN)):
                running.setdefault(inner[0], []).append(eqn)
        return running

    def elements(self, nest: LoopNest, index: list, subscript):
        """The computation of the nest's element at ``index`` (``subscript`` writes an index
        into an array)."""
        w = self.w
        local: dict[int, str] = {}
        if not self.unrolled:
            self.reads, self.bindings = {}, {}
        reads = self.reads
        views = self.schedule.views

        def read(a, at=None) -> str:
            """The element of input ``a`` at index ``at`` (default: the nest's index); a view
            is read through to its source at the mapped index."""
            at = index if at is None else at
            if isinstance(a, Literal):
                return self.atom(a)
            if a.id in local and at == index:
                return local[a.id]
            if a.id in views:
                view = views[a.id]
                return read(view.inputs[0], view_index(view, at))
            if a.aval.shape == ():
                return self.name(a)
            key = (a.id, tuple(at))
            if key not in reads:
                ref = self.element_ref(a, at, subscript)
                # An element kept in a scalar (an unrolled shared loop's) is read as it is: a
                # copy is one more statement for Numba to type and lower, per element.
                reads[key] = ref if ref.isidentifier() else self.fresh("e")
                if reads[key] != ref:
                    w(f"{reads[key]} = {ref}")
            return reads[key]

        for eqn in nest.eqns:
            out = eqn.out
            if is_reduction(eqn.prim):
                self.reduce_into(eqn, read(eqn.inputs[0]), index, subscript)
                continue
            value = self.element(eqn, read, index, local)
            if not value.isidentifier():  # (a name, as a copy's element is, needs no copy)
                target = self.fresh("t")
                w(f"{target} = {value}")
                value = target
            local[out.id] = value
            if self.schedule.needed_after(out, nest):
                w(f"{self.element_ref(out, index, subscript)} = {value}")

    def element(self, eqn, read, index, local) -> str:
        prim, params = eqn.prim, eqn.params
        if is_view(eqn):  # a view materialized as an array for a whole-array reader
            return read(eqn.inputs[0], view_index(eqn, index))
        if prim in self.lowerings["gather"]:
            return self.lowering("gather", prim)(self, eqn, read, index)
        args = [read(a) for a in eqn.inputs]
        if prim in ("add", "sub") and all(a.aval.dtype == eqn.out.aval.dtype
                                          for a in eqn.inputs):
            # x + 0 is x where signed zeros need not be kept (the kernels' "nsz"): the
            # transposes of an unrolled loop's pads and concatenations add many zeros.
            zero = self.consts.get(const_text(0, eqn.out.aval.dtype))
            if zero is not None and args[1] == zero:
                return args[0]
            if zero is not None and prim == "add" and args[0] == zero:
                return args[1]
        libm = self.lowerings.get("libm", {}).get(prim)
        if libm is not None and self.exact:
            return libm[1](*args, out_dtype=eqn.out.aval.dtype, **params)
        lower = self.lowering("elementwise", prim)
        if libm is not None and self.outside is not None:
            outside = libm[0](*args, out_dtype=eqn.out.aval.dtype)
            if outside is not None:
                self.w(f"{self.outside} |= {outside}")
        return lower(*args, out_dtype=eqn.out.aval.dtype, **params)

    def element_ref(self, var, at: list, subscript) -> str:
        """Where ``var``'s element at index ``at`` is (``subscript`` writes an index): a value
        kept per index of a shared loop has no first axis, and one with no other is a
        scalar."""
        if var.id in self.per_index:
            at = at[1:]
            if self.unrolled:  # a scalar per element
                return self.name(var) + self.rerun_suffix + "".join(
                    f"_{_constant(i)}" for i in at)
        return f"{self.name(var)}[{subscript(at)}]" if at else self.name(var)

    def reduce_into(self, eqn, value: str, index, subscript):
        acc = self.running.get(eqn.out.id) or self.accumulator(eqn, index, subscript)
        _, update = self.lowering("reduction", eqn.prim)
        for line in update(acc, value):
            self.w(line)

    def accumulator(self, eqn, index, subscript) -> str:
        """Where the reduction ``eqn`` accumulates its element at the nest's ``index``."""
        out = eqn.out
        at = [i for k, i in enumerate(index) if k not in eqn.params["axes"]]
        partial = self.accumulators.get(out.id)
        if partial is not None:  # a thread's own accumulator (see chunked)
            return partial + subscript(at) + "]" if partial.endswith(", ") else partial
        return self.element_ref(out, at, subscript)

    # ---------------------------------------------------------------- whole-array equations

    def array_eqn(self, eqn):
        table = "control" if kind_of(eqn.prim) == "control" else "array"
        self.lowering(table, eqn.prim)(self, eqn)


# Each vectorizable helper is inlined where it is called: a nest calling many of them grows
# into a loop body LLVM optimizes in superlinear time (1000 sines: 115 s against 3 s with
# libm), and one that big is memory-bound anyway. Beyond this many calls a nest uses libm.
_MAX_INLINED = 8

# LLVM vectorizes a loop whose arrays may overlap only after checking at run time that they
# do not, and gives up beyond 8 such checks (its -runtime-memory-check-threshold).
_LLVM_CHECK_LIMIT = 8


# A reduction runs in a scalar through inner loops of at least RUNNING_MIN elements in all, or
# in a nest of at least RUNNING_NEST_MIN (see running_sums). With sums over few elements all
# in scalars, the ADBench GMM gradient ran 5-33% faster at every size with d < 64 (nests of
# 10^4 elements and more); the MLP gradient's over 10 classes (nests of 512 x 10) ran as fast
# either way, but its first call took 819 ms against 743 ms (LLVM: 387 against 311 ms).
RUNNING_MIN = 64
RUNNING_NEST_MIN = 1 << 14


def _reads_in_place(eqn, a, allowed: bool) -> bool:
    """Whether ``eqn`` of a nest reads array ``a`` only as an in-place update allows: not at
    all, or (where ``allowed``) at the nest's own index (an elementwise operation or a
    reduction over ``a``'s shape, not a gather or a view of it). A view of the schedule
    that reads ``a`` is ruled out before (``Generator.viewed``)."""
    if not any(x is a for x in eqn.inputs):
        return True
    return allowed and not is_view(eqn) and (
        kind_of(eqn.prim) == "elementwise" or is_reduction(eqn.prim))


def _same_lengths(a, b) -> bool:
    """Shapes equal as written, a symbol only to itself (no symbol's value is read)."""
    return len(a) == len(b) and all(isinstance(x, Dim) == isinstance(y, Dim) and x == y
                                    for x, y in zip(a, b))


def _at_least(lengths, count: int) -> bool:
    """Whether loops of these lengths run ``count`` times or more (a symbolic length may)."""
    return any(isinstance(d, Dim) for d in lengths) or math.prod(lengths) >= count


# A shared loop is written element by element (no loops of its nests) up to this many
# statements: one straight body, each element of a value kept per index a scalar (the BA
# Jacobian, 933: 36 -> 18 ms at ba5, and its first call 3.1 -> 2.0 s).
UNROLLED_MAX = 1024
# ... and with at most this many branches in Numba's IR (a conditional expression, a logical
# `and`/`or`): its SSA reconstruction recurses along chains of blocks, and exceeded Python's
# recursion limit on the BA Jacobian written with one branchy clamp per element (selects and
# clamps are branch-free intrinsics now, runtime.py).
UNROLLED_BRANCHES = 256


def _branches(line: str) -> int:
    """How many branches of Numba's IR a generated line holds (see UNROLLED_BRANCHES)."""
    return sum(line.count(word) for word in (" if ", " and ", " or "))


class _NotConstant(Exception):
    """An index of a value kept per index of an unrolled shared loop is computed at run time."""


_NAME = re.compile(r"[A-Za-z_]\w*")
_OPERATORS = {"if", "else", "and", "or", "not"}


def constant(index: str):
    """The value of an index expression (or a condition on indices) without names, as the
    elements of an unrolled shared loop have (``(3 + 2)``, a clamp of numbers); None where it
    reads a name (a loop index, a length, a value)."""
    if any(name not in _OPERATORS for name in _NAME.findall(index)):
        return None
    return eval(index, {"__builtins__": {}})  # our own index text: numbers and operators


def _constant(index: str) -> int:
    value = constant(index)
    if value is None:
        raise _NotConstant(index)
    return value


def _overlap_checks(schedule: Schedule, nest: LoopNest) -> int:
    """How many pairs of arrays LLVM would check for overlap to vectorize the nest: each array
    it writes against each other array it writes or reads (views read their source)."""
    local = {eqn.out.id for eqn in nest.eqns}
    written = {eqn.out.id for eqn in nest.eqns if eqn.out.aval.shape and (
        is_reduction(eqn.prim) or schedule.needed_after(eqn.out, nest))}
    read = set()
    for eqn in nest.eqns:
        for a in eqn.inputs:
            while not isinstance(a, Literal) and a.id in schedule.views:
                a = schedule.views[a.id].inputs[0]
            if not isinstance(a, Literal) and a.aval.shape and a.id not in local:
                read.add(a.id)
    n_written, n_read = len(written), len(read - written)
    return n_written * (n_written - 1) // 2 + n_written * n_read


# A thread takes at least this many elements of a nest: below it the start-up of a parallel
# loop (microseconds) costs more than the thread saves.
GRAIN = 1 << 14


def _split_axis(nest: LoopNest) -> int | None:
    """The axis a parallel kernel splits among threads: the nest's first loop."""
    return next((k for k, d in enumerate(nest.shape) if isinstance(d, Dim) or d != 1), None)


def _assembled_in_place(schedule: Schedule) -> list[tuple]:
    """The concatenations along the first axis (a whole-array equation, or a nest of its own)
    whose every part is an array a nest of the kernel computes, or a reshape of one, used in no
    other place of a concatenation and not an output itself (it would share the result's
    memory), each as (item, its concatenate equation, [(part, the nest's array)]). Each part's
    rows are a contiguous piece of the result, so the nest can write its array there."""
    producers = {}  # var id -> (the unit computing it, its equation)
    for unit in schedule.units():
        for eqn in (unit.eqns if isinstance(unit, LoopNest) else [unit]):
            for out in eqn.outs:
                producers[out.id] = (unit, eqn)
    found, used = [], set()
    for item in schedule.items:
        eqn = item.eqns[0] if isinstance(item, LoopNest) and len(item.eqns) == 1 else item
        if not (isinstance(eqn, Eqn) and eqn.prim == "concatenate"
                and eqn.params["dimension"] == 0 and eqn.out.aval.shape):
            continue
        parts = []
        for x in eqn.inputs:
            if isinstance(x, Literal) or x.id in schedule.views or x.id not in producers:
                break
            unit, source = producers[x.id]
            if not isinstance(unit, LoopNest):  # a reshape of what a nest computes
                if source.prim != "reshape" or source.inputs[0].id not in producers:
                    break
                unit, source = producers[source.inputs[0].id]
            if (not isinstance(unit, LoopNest) or not unit.shape or source.out.id in used
                    or any(source.out is other for _, other in parts)
                    or source.out.aval.dtype != eqn.out.aval.dtype
                    or "output" in schedule.readers(source.out.id) or is_reduction(source.prim)):
                break
            parts.append((x, source.out))
        else:
            found.append((item, eqn, parts))
            used.update(source.id for _, source in parts)
    return found


def _escaping(schedule: Schedule) -> set[int]:
    """The values of a carried graph that leave its step: its outputs, and what a whole-array
    equation computing one of them reads (its result may be a view of it: a reshape)."""
    out = {v.id for v in schedule.graph.outvars if not isinstance(v, Literal)}
    for item in reversed(schedule.items):
        if not isinstance(item, LoopNest) and any(v.id in out for v in item.outs):
            out.update(a.id for a in item.inputs if not isinstance(a, Literal))
    return out


def _reduce_init(init, dtype):
    """An infinite initial value of an integer reduction is the type's extreme instead."""
    if np.dtype(dtype).kind in "iu" and not np.isfinite(init):
        info = np.iinfo(dtype)
        return info.min if init < 0 else info.max
    return init
