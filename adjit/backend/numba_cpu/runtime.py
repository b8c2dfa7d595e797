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
def ascontiguousarray(a):
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------- matrix products in place
#
# ``gemm_into(a, b, out)`` writes ``a @ b`` into ``out`` by one BLAS ``gemm`` that reads each
# 2-D operand where it lies, given the distance between its rows or its columns (the leading
# dimension): a matrix of a stack taken along any axes (``x[:, k, :]`` of an (n, K, d) array),
# or its transpose. Numba's ``np.dot`` copies every operand that is not C- or F-contiguous, so
# such a matrix used to be copied, and a stack read along a middle axis was first transposed
# whole into a new array (two of the ADBench GMM gradient's nine (n, K, d) temporaries).

_BLAS_KINDS = {types.float32: "s", types.float64: "d", types.complex64: "c",
               types.complex128: "z"}


@intrinsic
def _xxgemm(typingctx, transa, transb, m, n, k, a, lda, b, ldb, c, ldc):
    """Numba's C helper ``numba_xxgemm`` (SciPy's BLAS ``?gemm``, column-major):
    ``c = op(a) @ op(b)`` of an m x k by a k x n matrix, ``op`` by the flags ``ord('n')``
    or ``ord('t')``; its status (0: done)."""
    sig = types.int32(transa, transb, m, n, k, a, lda, b, ldb, c, ldc)

    def codegen(context, builder, signature, args):
        i8, void_p = ir.IntType(8), ir.IntType(8).as_pointer()
        intp = context.get_value_type(types.intp)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.IntType(32), [i8, i8, i8, intp, intp, intp, void_p, void_p, intp, void_p, intp,
                             void_p, void_p, intp]), "numba_xxgemm")
        dtype = signature.args[5].dtype
        ta, tb, m_, n_, k_, a_, lda_, b_, ldb_, c_, ldc_ = args

        def data(ty, value):
            return builder.bitcast(context.make_array(ty)(context, builder, value).data, void_p)

        def slot(number):
            return builder.bitcast(cgutils.alloca_once_value(
                builder, context.get_constant(dtype, number)), void_p)

        return builder.call(fn, [
            ir.Constant(i8, ord(_BLAS_KINDS[dtype])), builder.trunc(ta, i8),
            builder.trunc(tb, i8), m_, n_, k_, slot(1), data(signature.args[5], a_), lda_,
            data(signature.args[7], b_), ldb_, slot(0), data(signature.args[9], c_), ldc_])

    return sig, codegen


_ROWS, _COLUMNS = 1, 2  # which of a matrix's axes is contiguous (_in_place)


@numba.njit(nogil=True)
def _in_place(x):
    """How BLAS reads the 2-D array ``x`` where it lies, as ``(axis, leading dimension)``:
    ``_ROWS`` where its rows are contiguous (column-major, that memory is ``x.T``),
    ``_COLUMNS`` where its columns are (it is ``x``), or ``(0, 0)`` for neither."""
    rows, cols = x.shape
    s = x.itemsize
    if (cols == 1 or x.strides[1] == s) and (rows == 1 or x.strides[0] >= cols * s):
        return _ROWS, (x.strides[0] // s if rows > 1 else max(cols, 1))
    if (rows == 1 or x.strides[0] == s) and (cols == 1 or x.strides[1] >= rows * s):
        return _COLUMNS, (x.strides[1] // s if cols > 1 else max(rows, 1))
    return 0, 0


@_cached
def gemm_into(a, b, out):
    """``out[...] = a @ b`` for 2-D float or complex arrays, by one BLAS ``gemm`` reading each
    operand in place when its rows or its columns are contiguous (any other operand is copied
    first)."""
    if a.shape[1] == 0:
        out[...] = 0
        return
    if out.size == 0:
        return
    # BLAS is column-major: the row-major ``out = a @ b`` is its ``out.T = b.T @ a.T``, where
    # an operand with contiguous rows is its own transpose as BLAS reads it ('n').
    axis_a, lda = _in_place(a)
    if axis_a == 0:
        a = np.ascontiguousarray(a)
        axis_a, lda = _in_place(a)
    axis_b, ldb = _in_place(b)
    if axis_b == 0:
        b = np.ascontiguousarray(b)
        axis_b, ldb = _in_place(b)
    axis_out, ldo = _in_place(out)
    if axis_out != _ROWS:
        raise ValueError("adjit: gemm_into writes only into an array with contiguous rows")
    status = _xxgemm(ord("n") if axis_b == _ROWS else ord("t"),
                     ord("n") if axis_a == _ROWS else ord("t"),
                     b.shape[1], a.shape[0], a.shape[1], b, ldb, a, lda, out, ldo)
    if status != 0:
        raise RuntimeError("adjit: BLAS gemm failed")
