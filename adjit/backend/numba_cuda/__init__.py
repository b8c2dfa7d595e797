"""The CUDA target (numba-cuda): each fused schedule becomes a module of ``@cuda.jit`` kernels
and a host function launching them.

``lowering.py`` holds what each primitive becomes (the CPU target's expression tables where
they are valid device code, overridden where not, and kernels for whole-array equations),
``codegen.py`` the generator, ``runner.py`` the compiled graph a call runs and the module
cache, ``compat.py`` every numba-cuda workaround. Importing this package does not import
numba-cuda; the first compilation does, and raises an AdjitError when there is no GPU (unless
the CUDA simulator is on, ``NUMBA_ENABLE_CUDASIM=1``).
"""

from __future__ import annotations

from adjit.backend.numba_cuda import compat
from adjit.backend.numba_cuda.lowering import LOWERINGS
from adjit.backend.numba_cuda.runner import CompiledGraph, default_launch
from adjit.backend.targets import Target


class NumbaCUDA(Target):
    name = "cuda"
    lowerings = LOWERINGS

    def compile(self, graph, reason="first call") -> CompiledGraph:
        compat.require_device()
        return CompiledGraph(graph, reason, self.lowerings, default_launch())

    def cache_tag(self) -> str:
        """The disk cache's folder: Python, numba-cuda, the GPU's compute capability."""
        from adjit.backend.numba_cuda.runner import cache_tag

        compat.require_device()
        return cache_tag()


TARGET = NumbaCUDA()
