"""Python's cyclic garbage collector, paused while adjit builds a kernel.

Tracing a function, optimizing its graph and Numba's compiler make hundreds of thousands of
Python objects, most of them kept until the kernel is built (the trace's equations, Numba's IR
and types, its caches). CPython's collector runs each time allocations outnumber
deallocations by 700, and it scans the young objects each time and, every so often, every
object of the process: it ran about 320 times during the ADBench GMM gradient's first call,
two of them full collections (100-120 ms each), about 0.25 s in all, and 270 times (0.8 s)
in the k = 1000 terms program's of ``benchmarks/compile_latency.py``, a share that grows with
the program. :func:`collector_paused` pauses it while the dispatcher traces (``dispatch.py``),
the runner optimizes a graph and generates its kernel (``runner.py``) and Numba compiles it
(``backend/numba_cpu/cache.py``); one young-generation collection afterwards costs less
(garbage collection in the GMM gradient's first call: 0.24 s before, 0.17 s after; the MLP's
0.13 s, 0.03 s after; the k = 1000 terms program's 0.8 s, 0.5 s after).

The collector is the whole process's: it is left alone where it is already off, and by a
compilation off the main thread (``config.tiered``'s: the user's code runs meanwhile); a
``gc.disable()`` by another thread during the pause is undone when it ends.
"""

from __future__ import annotations

import contextlib
import gc
import threading


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector off inside (see the module docstring), unless it is
    off already or this is not the main thread; its state is restored on the way out."""
    if not gc.isenabled() or threading.current_thread() is not threading.main_thread():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
