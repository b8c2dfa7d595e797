"""The Numba CPU target: fused loop nests as the source of one ``@numba.njit`` kernel."""

from __future__ import annotations

from adjit.backend import cache
from adjit.backend.codegen import ARRAY_LOWERINGS, SCALAR_LOWERINGS
from adjit.backend.cpu import CompiledGraph
from adjit.backend.targets import Target


class NumbaCPU(Target):
    name = "cpu"
    lowerings = {"scalar": SCALAR_LOWERINGS, "array": ARRAY_LOWERINGS}

    def compile(self, graph, reason="first call"):
        return CompiledGraph(graph, reason)

    def cache_tag(self) -> str:
        return cache._version_tag()


TARGET = NumbaCPU()
