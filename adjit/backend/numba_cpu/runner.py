"""The Numba CPU runner: optimize, fuse, generate, compile with Numba, and call.

``CompiledGraph`` is built once per traced signature. It compiles on its first call, for the
dtypes, ranks and layouts it is called with (the dispatcher keys on those), and afterwards
calls the kernel directly.
"""

from __future__ import annotations

import numba
import numpy as np

from adjit.backend.numba_cpu import compat
from adjit.backend.numba_cpu.cache import load_kernel
from adjit.backend.numba_cpu.codegen import generate
from adjit.backend.numba_cpu.lowering import LOWERINGS
from adjit.ir.graph import Graph
from adjit.passes import optimize
from adjit.passes.fusion import fuse


class CompiledGraph:
    def __init__(self, graph: Graph, reason: str = "first call",
                 lowerings: dict[str, dict] = LOWERINGS):
        self.trail: list = []
        self.graph = graph
        self.optimized = optimize(graph, self.trail)
        self.schedule = fuse(self.optimized, blas=True)
        self.source = generate(self.schedule, lowerings)
        self.reason = reason
        self.kernel = None
        self._out_dtypes = [v.aval.dtype for v in self.optimized.outvars]
        self._single = len(self._out_dtypes) == 1

    def compile_for(self, inputs):
        arg_types = self.arg_types = tuple(numba.typeof(x) for x in inputs)
        self.dispatcher = load_kernel(self.source.text, arg_types, self.reason)
        # Safe to skip Numba's type dispatch: the caller keys this object on exactly these
        # types (dtype, rank, layout, writability).
        self.kernel = compat.entry_point(self.dispatcher, arg_types)

    def __call__(self, inputs):
        if self.kernel is None:
            self.compile_for(inputs)
        outs = self.kernel(*inputs)
        if self._single:
            outs = (outs,)
        # Numba returns scalars as Python floats; keep the graph's dtype (float32 stays float32).
        return [np.asarray(o, dt) for o, dt in zip(outs, self._out_dtypes)]
