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

New arrays ask Linux for transparent huge pages before their first write, as NumPy does from
4 MiB (``madvise(MADV_HUGEPAGE)``): Numba allocates with ``malloc`` and never asks, and on a
virtual machine each 4 KiB page's first write faults into the hypervisor (filling a new 80 MB
array took 36 ms against NumPy's 6 ms). libc's ``madvise`` is called by name, so kernels stay
cacheable. This is a Numba workaround kept here rather than in ``compat.py``: Numba's cache
stamps a function by its own file, and the kernels' cache tag hashes this one.
"""

from __future__ import annotations

import sys

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_cached = numba.njit(cache=True, nogil=True)

_MADV_HUGEPAGE = 14  # Linux's <sys/mman.h>
_HUGE_FROM = 1 << 22  # NumPy's threshold (4 MiB)


@intrinsic
def _madvise(typingctx, address, length):
    """libc's ``madvise(address, length, MADV_HUGEPAGE)``; its result is ignored (advice)."""
    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), [i8p, ir.IntType(64),
                                                             ir.IntType(32)]), "madvise")
        builder.call(fn, [builder.inttoptr(args[0], i8p), args[1],
                          ir.Constant(ir.IntType(32), _MADV_HUGEPAGE)])
        return context.get_dummy_value()

    return types.none(types.intp, types.intp), codegen


if sys.platform.startswith("linux"):
    @numba.njit(cache=True, nogil=True)
    def advise_huge_pages(a):
        """Asks for huge pages for a new array of 4 MiB or more (its whole pages), before
        anything is written into it."""
        size = a.size * a.itemsize
        if size >= _HUGE_FROM:
            address = a.ctypes.data
            start = (address + 4095) & ~4095
            _madvise(start, address + size - start)
else:  # pragma: no cover  (madvise with this advice is Linux's)
    @numba.njit(cache=True, nogil=True)
    def advise_huge_pages(a):
        """Nothing to ask for outside Linux."""


# New arrays ask for huge pages before their first write (advise_huge_pages).
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
def dot_into(a, b, out):
    """``np.dot(a, b, out)``: a product written into an existing array (a slice of a stack)."""
    np.dot(a, b, out)


@_cached
def ascontiguousarray(a):
    return np.ascontiguousarray(a)
