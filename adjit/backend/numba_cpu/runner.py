"""The Numba CPU runner: optimize, fuse, generate, compile with Numba, and call.

``CompiledGraph`` is built once per traced signature. It compiles on its first call, for the
dtypes, ranks and layouts it is called with (the dispatcher keys on those), and afterwards
calls the kernel directly.

With ``parallel``, a second kernel shares each loop nest's outer axis among threads; a call
whose arrays hold fewer than ``PARALLEL_MIN_ELEMENTS`` elements in all runs the serial kernel
(starting threads would cost more than they save), and the parallel one is compiled on the
first call that reaches it.

With ``config.tiered`` (``ADJIT_TIERED=1``, off by default), the first call is answered by the
reference interpreter on the optimized graph and then starts compiling the serial kernel in a
thread; calls interpret until the kernel is ready, then run it. The two differ in
the last bits (summation order, fastmath, the vectorized transcendental helpers), which is why
tiering is opt-in. A compilation that fails in the thread raises its error on the next call
(that call then compiles in the foreground). The thread is not a daemon: a process that ends
while it runs waits for it (and stores the kernel in the disk cache) rather than killing LLVM
mid-write. ``wait_for_kernels()`` waits for every such thread. Only calls take this path:
``compile_for`` (``adjit.inspect``), ``to_numba`` and ``adjit.aot`` (which load the kernel from
the source themselves) and the parallel kernel compile in the foreground.
"""

from __future__ import annotations

import logging
import threading

import numba
import numpy as np

from adjit.backend.numba_cpu import compat, nests
from adjit.backend.numba_cpu.cache import count_python_loop, load_kernel
from adjit.backend.numba_cpu.codegen import KernelSource, generate
from adjit.backend.numba_cpu.lowering import LOWERINGS
from adjit.collector import collector_paused
from adjit.config import config
from adjit.ir.graph import Graph
from adjit.ir.interpret import interpret
from adjit.passes import optimize
from adjit.passes.fusion import fuse, recompute_cheap, share_first_axis

PARALLEL_MIN_ELEMENTS = 1 << 16

logger = logging.getLogger("adjit")


class CompiledGraph:
    def __init__(self, graph: Graph, reason: str = "first call",
                 lowerings: dict[str, dict] = LOWERINGS, parallel: bool = False):
        self.trail: list = []
        self.graph = graph
        with collector_paused():  # as for Numba's compiler: most objects made are kept
            self.optimized = optimize(graph, self.trail)
            self.schedule = share_first_axis(recompute_cheap(fuse(self.optimized, blas=True)))
            self.source = generate(self.schedule, lowerings)
        self.reason = reason
        self.kernel = None
        # config.tiered: the thread compiling the kernel, the error it raised (if any), and
        # whether calls compile in the foreground after all (once that error was raised).
        self._tier_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._foreground = False
        self._out_dtypes = [v.aval.dtype for v in self.optimized.outvars]
        self._single = len(self._out_dtypes) == 1
        # A graph without loop nests over arrays has nothing to share among threads.
        self.parallel = None
        if parallel and self.schedule.loop_count:
            self.parallel = _Parallel(generate(self.schedule, lowerings, parallel=True))

    def compile_for(self, inputs):
        self._load(_types(inputs), self.reason)

    def _load(self, arg_types: tuple, reason: str):
        # The kernel is assigned last: a call that sees it sees its arg_types and dispatcher.
        self.arg_types, self.dispatcher, self.kernel = compile_source(self.source, arg_types,
                                                                      reason)

    def __call__(self, inputs):
        if self.parallel is not None and sum(
                x.size for x in inputs if type(x) is np.ndarray) >= PARALLEL_MIN_ELEMENTS:
            outs = self.parallel(inputs, self.reason)
        else:
            if self.kernel is None:
                if config.tiered and not self._foreground:
                    outs = self._interim(inputs)
                    if outs is not None:
                        return outs
                else:
                    self.compile_for(inputs)
            outs = self.kernel(*inputs)
        if self._single:
            outs = (outs,)
        # Numba returns scalars as Python floats; keep the graph's dtype (float32 stays float32).
        return [np.asarray(o, dt) for o, dt in zip(outs, self._out_dtypes)]

    def _interim(self, inputs):
        """A call while tiered (see the module docstring): the interpreter's outputs, starting
        the kernel's compilation on the first call; None once the kernel is ready."""
        thread = None
        with self._tier_lock:
            if self.kernel is not None:
                return None
            if self._error is not None:  # the thread failed: raise its error, once
                error, self._error, self._foreground = self._error, None, True
                error.add_note("adjit: raised while compiling the kernel in the background "
                               "(config.tiered)")
                raise error
            if self._thread is None:
                # Typed here, not in the thread: the caller keys this graph on these types.
                thread = self._thread = threading.Thread(
                    target=self._compile_behind, args=(_types(inputs),), name="adjit-compile")
        try:
            outs = interpret(self.optimized, (), inputs)
        finally:
            # Started once the interpreter has answered: Numba's typing holds the GIL, so a
            # thread compiling meanwhile made the MLP gradient's first answer 8x slower.
            if thread is not None:
                with _threads_lock:
                    _threads.add(thread)
                thread.start()
        return [np.asarray(o, dt) for o, dt in zip(outs, self._out_dtypes)]

    def _compile_behind(self, arg_types: tuple):
        try:
            self._load(arg_types, self.reason + ", tiered (in the background)")
        except BaseException as exc:  # raised by the next call, see _interim
            self._error = exc
        finally:
            with _threads_lock:
                _threads.discard(threading.current_thread())


# The threads compiling kernels behind the interpreter (config.tiered).
_threads: set = set()
_threads_lock = threading.Lock()


def wait_for_kernels(timeout: float | None = None) -> bool:
    """Wait until every kernel compiling in the background (``config.tiered``) is ready or has
    failed, at most ``timeout`` seconds each; whether none is still compiling."""
    with _threads_lock:
        threads = list(_threads)
    for thread in threads:
        thread.join(timeout)
    return not any(thread.is_alive() for thread in threads)


class _Parallel:
    """The parallel kernel, compiled on its first call; it runs on ``config.num_threads``
    threads (at most Numba's pool, ``NUMBA_NUM_THREADS``), its first argument."""

    def __init__(self, source: KernelSource):
        self.source = source
        self.kernel = None

    def __call__(self, inputs, reason: str):
        threads = min(config.num_threads or _POOL, _POOL)
        if self.kernel is None:
            self.kernel = compile_source(self.source, _types((threads, *inputs)),
                                         reason + " (parallel)")[2]
        return self.kernel(threads, *inputs)


_POOL = numba.config.NUMBA_NUM_THREADS


def _types(inputs) -> tuple:
    return tuple(numba.typeof(x) for x in inputs)


def load_source(source: KernelSource, arg_types: tuple, reason: str):
    """The dispatcher of ``source``'s kernel for ``arg_types``: its text with nests; where a
    nest cannot be lowered (``NestError``), the text again with that loop in Python."""
    text, keep = source.text, frozenset()
    while True:
        try:
            return load_kernel(text, arg_types, reason)
        except nests.NestError as exc:
            if exc.loop is None or exc.loop in keep:  # pragma: no cover (wrap's own bug)
                raise
            logger.debug("adjit: %s; compiling that loop in Python", exc)
            count_python_loop()
            keep |= {exc.loop}
            text = nests.wrap(source.plain, keep)


def compile_source(source: KernelSource, arg_types: tuple, reason: str):
    """(argument types, dispatcher, entry point) of ``source``'s kernel for ``arg_types``
    (``_types`` of the inputs; ``load_source``). Calling the entry point skips Numba's type
    dispatch, which is safe: the caller keys the kernel on exactly these types (dtype, rank,
    layout, writability)."""
    dispatcher = load_source(source, arg_types, reason)
    return arg_types, dispatcher, compat.entry_point(dispatcher, arg_types)
