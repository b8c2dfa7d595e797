"""The Numba CPU runner: optimize, fuse, generate, compile with Numba, and call.

``CompiledGraph`` is built once per traced signature. It compiles on its first call, for the
dtypes, ranks and layouts it is called with (the dispatcher keys on those), and afterwards
calls the kernel directly.

With ``parallel``, a second kernel shares each loop nest's outer axis among threads; a call
whose arrays hold fewer than ``PARALLEL_MIN_ELEMENTS`` elements in all runs the serial kernel
(starting threads would cost more than they save), and the parallel one is compiled on the
first call that reaches it.
"""

from __future__ import annotations

import numba
import numpy as np

from adjit.backend.numba_cpu import compat
from adjit.backend.numba_cpu.cache import load_kernel
from adjit.backend.numba_cpu.codegen import generate
from adjit.backend.numba_cpu.lowering import LOWERINGS
from adjit.config import config
from adjit.ir.graph import Graph
from adjit.passes import optimize
from adjit.passes.fusion import fuse

PARALLEL_MIN_ELEMENTS = 1 << 16


class CompiledGraph:
    def __init__(self, graph: Graph, reason: str = "first call",
                 lowerings: dict[str, dict] = LOWERINGS, parallel: bool = False):
        self.trail: list = []
        self.graph = graph
        self.optimized = optimize(graph, self.trail)
        self.schedule = fuse(self.optimized, blas=True)
        self.source = generate(self.schedule, lowerings)
        self.reason = reason
        self.kernel = None
        self._out_dtypes = [v.aval.dtype for v in self.optimized.outvars]
        self._single = len(self._out_dtypes) == 1
        # A graph without loop nests over arrays has nothing to share among threads.
        self.parallel = None
        if parallel and self.schedule.loop_count:
            self.parallel = _Parallel(generate(self.schedule, lowerings, parallel=True).text)

    def compile_for(self, inputs):
        self.arg_types, self.dispatcher, self.kernel = _compile(self.source.text, inputs,
                                                                self.reason)

    def __call__(self, inputs):
        if self.parallel is not None and sum(
                x.size for x in inputs if type(x) is np.ndarray) >= PARALLEL_MIN_ELEMENTS:
            outs = self.parallel(inputs, self.reason)
        else:
            if self.kernel is None:
                self.compile_for(inputs)
            outs = self.kernel(*inputs)
        if self._single:
            outs = (outs,)
        # Numba returns scalars as Python floats; keep the graph's dtype (float32 stays float32).
        return [np.asarray(o, dt) for o, dt in zip(outs, self._out_dtypes)]


class _Parallel:
    """The parallel kernel, compiled on its first call; it runs on ``config.num_threads``
    threads (at most Numba's pool, ``NUMBA_NUM_THREADS``), its first argument."""

    def __init__(self, text: str):
        self.text = text
        self.kernel = None

    def __call__(self, inputs, reason: str):
        threads = min(config.num_threads or _POOL, _POOL)
        if self.kernel is None:
            self.kernel = _compile(self.text, (threads, *inputs), reason + " (parallel)")[2]
        return self.kernel(threads, *inputs)


_POOL = numba.config.NUMBA_NUM_THREADS


def _compile(text: str, inputs, reason: str):
    """(argument types, dispatcher, entry point) of the kernel in ``text`` for ``inputs``.
    Calling the entry point skips Numba's type dispatch, which is safe: the caller keys the
    kernel on exactly these types (dtype, rank, layout, writability)."""
    arg_types = tuple(numba.typeof(x) for x in inputs)
    dispatcher = load_kernel(text, arg_types, reason)
    return arg_types, dispatcher, compat.entry_point(dispatcher, arg_types)
