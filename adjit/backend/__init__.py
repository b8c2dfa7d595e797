"""Backends turn a graph into a runner, ``run(inputs) -> outputs`` (constvar values first).

Each target is a folder (``numba_cpu/``) registered by name in :mod:`adjit.backend.targets`.
"""

from adjit.backend.targets import (  # noqa: F401
    TARGETS,
    Target,
    check_parallel,
    check_target_name,
    compile_graph,
    get_target,
)
