"""The NumPy calls kernels make for whole arrays, as Numba functions cached on disk.

Numba compiles an ``@overload`` such as ``np.empty``, ``np.copy`` or ``np.dot`` anew in every
process, for each combination of argument types and of the calling function's flags, and
``np.dot`` compiles its BLAS call again at each call site: in a new process this was most of
a kernel's first compilation (the MLP gradient of ``benchmarks/compile_latency.py``: about
1 s of its 2 s went to compiling three ``np.dot`` layouts, ``np.full`` and ``np.empty``).
Kernels call these wrappers instead (``rt.empty(...)``): each is compiled once per argument
types on a machine, kept by Numba's disk cache (next to this file, or in Numba's cache folder
where this one is read-only), and in a later process loaded in about a millisecond. Numba
links a callee's LLVM IR into its caller, so LLVM inlines them into the kernel as it did the
overloads; the kernel runs the same code.
"""

from __future__ import annotations

import numba
import numpy as np

from adjit.backend.numba_cpu.compat import advise_huge_pages

_cached = numba.njit(cache=True, nogil=True)


# New arrays ask for huge pages before their first write (see compat.advise_huge_pages).
@_cached
def empty(shape, dtype):
    a = np.empty(shape, dtype)
    advise_huge_pages(a)
    return a


@_cached
def zeros(shape, dtype):
    a = np.empty(shape, dtype)
    advise_huge_pages(a)
    a.fill(0)
    return a


@_cached
def full(shape, value):
    a = np.empty(shape, type(value))
    advise_huge_pages(a)
    a.fill(value)
    return a


@_cached
def copy(a):
    return np.copy(a)


@_cached
def dot(a, b):
    return np.dot(a, b)


@_cached
def ascontiguousarray(a):
    return np.ascontiguousarray(a)
