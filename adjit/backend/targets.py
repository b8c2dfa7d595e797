"""Targets: what turns an optimized graph into something that runs, registered by name.

A target is a folder under ``adjit/backend/`` whose package exposes ``TARGET``, an instance of
:class:`Target`. The registry maps names to those packages and imports one only when it is
first asked for, so ``import adjit`` never loads a target nobody uses (a CUDA target must not
need CUDA to import adjit).
"""

from __future__ import annotations

import importlib
import threading

from adjit.errors import AdjitTypeError, AdjitValueError, MissingRuleError
from adjit.ir.graph import Graph

# name -> module whose TARGET is the target; a new target is one line here and one folder.
TARGETS = {
    "cpu": "adjit.backend.numba_cpu",
    "cuda": "adjit.backend.numba_cuda",
}

_loaded: dict[str, Target] = {}
_load_lock = threading.Lock()


class Target:
    """A code generator and runtime for one kind of device.

    ``name`` is its registry name; ``lowerings`` maps a table name to the per-primitive
    lowering table the generator reads (a primitive the fusion pass can hand it and no table
    holds is a ``MissingRuleError``); ``compile(graph, reason)`` returns a runner,
    ``runner(inputs) -> list of np.ndarray``, whose inputs are the graph's constvar values then
    its invar values and which compiles on its first call; ``cache_tag()`` names everything
    its cached kernels must match to be reused (toolchain versions, the device).
    """

    name: str = ""
    lowerings: dict[str, dict] = {}

    def compile(self, graph: Graph, reason: str = "first call"):
        raise NotImplementedError

    def cache_tag(self) -> str:
        raise NotImplementedError

    def __repr__(self):
        return f"<adjit target {self.name!r}>"


def find_lowering(lowerings: dict[str, dict], kind: str, prim: str, target: str,
                  helpers: set):
    """The entry for ``prim`` in a target's ``kind`` table, its per-kernel helper (if any)
    added to ``helpers`` with those it needs (the optional table ``helper_needs``); a
    primitive with none is a MissingRuleError naming both."""
    lower = lowerings[kind].get(prim)
    if lower is None:
        raise MissingRuleError(f"adjit: primitive '{prim}' has no {target} lowering ({kind})")
    pending = [prim]
    while pending:
        name = pending.pop()
        if name in lowerings["helpers"]:
            helpers.add(name)
        pending += [n for n in lowerings.get("helper_needs", {}).get(name, ()) if n not in helpers]
    return lower


def _known() -> str:
    return ", ".join(repr(name) for name in TARGETS)


def check_target_name(name) -> str:
    """``name`` if it names a registered target; else an error listing the known ones."""
    if not isinstance(name, str):
        raise AdjitTypeError(
            f"adjit: a target is named by a string, got {type(name).__name__} {name!r}; "
            f"known targets: {_known()}")
    if name not in TARGETS:
        raise AdjitValueError(f"adjit: unknown target {name!r}; known targets: {_known()}")
    return name


def get_target(name) -> Target:
    """The target registered as ``name``, imported on first use."""
    target = _loaded.get(name) if isinstance(name, str) else None
    if target is not None:
        return target
    check_target_name(name)
    with _load_lock:
        if name not in _loaded:
            target = importlib.import_module(TARGETS[name]).TARGET
            if not isinstance(target, Target):
                raise TypeError(f"{TARGETS[name]}.TARGET is {target!r}, not an adjit Target")
            _loaded[name] = target
        return _loaded[name]


def check_parallel(parallel, target: str) -> bool:
    """``parallel`` if it is a bool the target accepts: threads share a kernel's loops on the
    CPU; a GPU kernel is parallel by itself."""
    if not isinstance(parallel, bool):
        raise AdjitTypeError(f"adjit: parallel= takes True or False, got "
                             f"{type(parallel).__name__} {parallel!r}")
    if parallel and target != "cpu":
        raise AdjitValueError(f"adjit: parallel=True is an option of the 'cpu' target (threads "
                              f"sharing its loops); target {target!r} runs in parallel anyway")
    return parallel


def compile_graph(graph: Graph, *, target: str = "cpu", jit: bool = True,
                  reason: str = "first call", parallel: bool = False):
    """A runner for ``graph`` on ``target``; with ``jit`` False, the reference interpreter
    (the target name is still checked, so a misspelt one fails the same way either way).
    ``parallel`` is passed to targets that take it (the CPU's threads)."""
    if jit:
        if parallel:
            return get_target(target).compile(graph, reason, parallel=True)
        return get_target(target).compile(graph, reason)
    check_target_name(target)
    from adjit.ir.interpret import interpret

    n_consts = len(graph.constvars)

    def run(inputs):
        return interpret(graph, inputs[:n_consts], inputs[n_consts:])

    return run
