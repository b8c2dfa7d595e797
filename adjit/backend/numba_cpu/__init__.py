"""The Numba CPU target: each fused schedule becomes the source of one ``@numba.njit`` kernel.

``lowering.py`` holds what each primitive becomes (the tables), ``codegen.py`` the generator
that reads them, ``runner.py`` the compiled graph a call runs, ``cache.py`` the kernel cache in
memory and on disk, ``compat.py`` every workaround for Numba itself.
"""

from __future__ import annotations

from adjit.backend.numba_cpu import cache, compat
from adjit.backend.numba_cpu.lowering import LOWERINGS
from adjit.backend.numba_cpu.runner import CompiledGraph
from adjit.backend.targets import Target


class NumbaCPU(Target):
    name = "cpu"
    lowerings = LOWERINGS

    def compile(self, graph, reason="first call", parallel=False) -> CompiledGraph:
        return CompiledGraph(graph, reason, self.lowerings, parallel)

    def cache_tag(self) -> str:
        """The disk cache's version-tag folder: Python, Numba, llvmlite, adjit, the CPU."""
        return cache.cache_tag()


TARGET = NumbaCPU()
compat.reuse_freed_memory()  # kernels' temporaries: glibc's heap, not a new mmap per call
compat.skip_kernel_function_passes()  # LLVM optimizes each kernel once, not twice
compat.fix_scope_fixup()  # a Numba pass quadratic in a kernel's size, made linear
compat.memoize_scalar_typing()  # a scalar operation's type is found once, not per statement
compat.skip_constant_inference_locations()  # no source excerpt per call: quadratic in length
compat.split_large_kernels()  # a large kernel's loop nests become functions for LLVM's backend
compat.fast_live_map()  # Numba's liveness analysis, linear in the variables
compat.extract_only_meminfos()  # an array's reference count reads its meminfo only
