"""The NumPy calls and scalar branches kernels make, as Numba intrinsics (``rt.empty(...)``).

Numba compiles an ``@overload`` such as ``np.empty``, ``np.copy`` or ``np.dot`` anew in every
process, for each combination of argument types and of the calling function's flags (the MLP
gradient of ``benchmarks/compile_latency.py`` once spent about 1 s of its 2 s first call on
three ``np.dot`` layouts, ``np.full`` and ``np.empty``). Cached ``@njit`` wrappers fixed the
per-process compile, but Numba links a called function's LLVM IR into its caller, so LLVM
still optimized and compiled each wrapper's whole implementation again in every kernel. An
intrinsic writes only the LLVM IR its call needs for the argument types at hand: an NRT
allocation, one call of Numba's C BLAS helper, a view, a ``select``. The uncommon cases (a
non-contiguous operand) call a cached ``@njit`` NumPy implementation.

New arrays ask Linux for transparent huge pages before their first write, as NumPy does from
4 MiB (``madvise(MADV_HUGEPAGE)``): Numba allocates with ``malloc`` and never asks, and on a
virtual machine each 4 KiB page's first write faults into the hypervisor (filling a new 80 MB
array took 36 ms against NumPy's 6 ms). libc's ``madvise`` is called by name, so kernels stay
cacheable. This is a Numba workaround kept here rather than in ``compat.py``: Numba's cache
stamps a function by its own file, and the kernels' cache tag hashes this one.
"""

from __future__ import annotations

import contextlib
import math
import sys
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np import linalg
from numba.np.arrayobj import load_item, populate_array, store_item
from numba.np.numpy_support import as_dtype

_cached = numba.njit(cache=True, nogil=True)

_MADV_HUGEPAGE = 14  # Linux's <sys/mman.h>
_HUGE_FROM = 1 << 22  # NumPy's threshold (4 MiB)


# ----------------------------------------------------------------- new arrays, products
#
# Intrinsics, not ``@njit`` wrappers: Numba links a called ``@njit`` function's LLVM IR into
# each kernel, where LLVM optimizes and compiles it again, so a wrapper of ``np.empty`` or
# ``np.dot`` cost every kernel that called it its whole implementation, once per argument
# types (``np.dot``'s covers every layout and copies). An intrinsic writes only the IR the
# call needs for the argument types at hand: the MLP gradient's kernel without its loops (16
# new arrays, 5 products) compiled in 322 ms with wrappers and in 221 ms with intrinsics, in
# a process that had compiled another kernel.


def _as_intp(context, builder, values, tys):
    """LLVM values of the integer types ``tys`` cast to intp."""
    return [context.cast(builder, v, t, types.intp) for v, t in zip(values, tys)]


def _intp_args(context, builder, ty, value):
    """The lengths of a shape argument (an integer or a tuple of them) as LLVM intp values."""
    if isinstance(ty, types.BaseTuple):
        return _as_intp(context, builder, cgutils.unpack_tuple(builder, value), ty)
    return _as_intp(context, builder, [value], [ty])


class _NewArray(NamedTuple):
    """A new array's struct value and the fields its filling needs (LLVM values)."""
    value: ir.Value
    data: ir.Value
    nitems: ir.Value
    itemsize: ir.Value


def _allocate(context, builder, arrty, shape) -> _NewArray:
    """A new C-contiguous array of ``arrty`` with the lengths ``shape`` (LLVM values, or Python
    integers where the kernel's text fixes them): one NRT allocation, aligned as Numba aligns
    arrays; huge pages asked for from ``_HUGE_FROM`` bytes. An impossible size raises
    ValueError and a failed allocation MemoryError, as ``np.empty``; fixed lengths are
    multiplied here, not checked in the kernel (``_fixed_size`` checked them). The array's
    struct is built as a value (a struct proxy would store each field in a stack slot and
    load it back, and cost about a millisecond of Python per array)."""
    intp = context.get_value_type(types.intp)
    # (NumPy's itemsize, as the typer's: Numba's get_abi_sizeof has LLVM parse a module.)
    itemsize = as_dtype(arrty.dtype).itemsize
    fixed = math.prod(n for n in shape if isinstance(n, int))
    varying = [n for n in shape if not isinstance(n, int)]
    nitems, overflow = ir.Constant(intp, fixed), ir.Constant(ir.IntType(1), 0)
    for length in varying:
        product = builder.smul_with_overflow(nitems, length)
        nitems = builder.extract_value(product, 0)
        overflow = builder.or_(overflow, builder.extract_value(product, 1))
    if varying:
        product = builder.smul_with_overflow(nitems, ir.Constant(intp, itemsize))
        size = builder.extract_value(product, 0)
        overflow = builder.or_(overflow, builder.extract_value(product, 1))
        negative = ir.Constant(ir.IntType(1), 0)
        for length in varying:
            negative = builder.or_(negative,
                                   builder.icmp_signed("<", length, ir.Constant(intp, 0)))
        with builder.if_then(builder.or_(overflow, negative), likely=False):
            context.call_conv.return_user_exc(
                builder, ValueError, ("adjit: a new array's lengths are negative or too large",))
    else:
        size = ir.Constant(intp, fixed * itemsize)
    align = context.get_preferred_array_alignment(arrty.dtype)
    # (Numba's checked allocation tests the pointer too: a second branch to the same error.)
    meminfo = context.nrt.meminfo_alloc_aligned_unchecked(builder, size, align)
    with builder.if_then(cgutils.is_null(builder, meminfo), likely=False):
        context.call_conv.return_user_exc(
            builder, MemoryError, ("adjit: could not allocate a new array",))
    data = context.nrt.meminfo_data(builder, meminfo)
    if sys.platform.startswith("linux") and (varying or fixed * itemsize >= _HUGE_FROM):
        _advise_huge(builder, data, size, known=not varying)
    data = builder.bitcast(data, context.get_data_type(arrty.dtype).as_pointer())
    lengths = [ir.Constant(intp, n) if isinstance(n, int) else n for n in shape]
    model = context.data_model_manager[arrty]
    fields = {"meminfo": meminfo, "parent": context.get_constant_null(types.pyobject),
              "nitems": nitems, "itemsize": ir.Constant(intp, itemsize), "data": data,
              "shape": cgutils.pack_array(builder, lengths, ty=intp),
              "strides": _c_strides(builder, shape, itemsize, intp)}
    value = ir.Constant(context.get_value_type(arrty), ir.Undefined)
    for name, field in fields.items():
        value = builder.insert_value(value, field, model.get_field_position(name))
    return _NewArray(value, data, nitems, fields["itemsize"])


def _c_strides(builder, shape, itemsize, intp):
    """The strides of a C-contiguous array of lengths ``shape``, packed; the lengths and
    ``itemsize`` are LLVM values or integers, and integers are multiplied here."""
    def constant(n):
        return ir.Constant(intp, n) if isinstance(n, int) else n

    strides = [itemsize] if shape else []
    for length in reversed(shape[1:]):
        last = strides[-1]
        strides.append(last * length if isinstance(last, int) and isinstance(length, int)
                       else builder.mul(constant(last), constant(length)))
    return cgutils.pack_array(builder, [constant(n) for n in strides[::-1]], ty=intp)


def _fixed_size(lengths, itemsize: int) -> bool:
    """Whether fixed lengths make a possible array (none negative, at most 2^63 - 1 bytes)."""
    return all(n >= 0 for n in lengths) and math.prod(lengths) * itemsize < 1 << 63


def _advise_huge(builder, data, size, known: bool = False):
    """``madvise(MADV_HUGEPAGE)`` on the whole pages of a new block of ``_HUGE_FROM`` bytes or
    more, before anything is written into it (advice: its result is ignored); ``known``: the
    caller knows the block is that large (no test in the kernel)."""
    i8p, i64 = ir.IntType(8).as_pointer(), ir.IntType(64)
    with contextlib.nullcontext() if known else builder.if_then(
            builder.icmp_signed(">=", size, ir.Constant(i64, _HUGE_FROM)), likely=False):
        address = builder.ptrtoint(data, i64)
        start = builder.and_(builder.add(address, ir.Constant(i64, 4095)),
                             ir.Constant(i64, ~4095))
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), [i8p, i64, ir.IntType(32)]),
            "madvise")
        builder.call(fn, [builder.inttoptr(start, i8p),
                          builder.sub(builder.add(address, size), start),
                          ir.Constant(ir.IntType(32), _MADV_HUGEPAGE)])


def _new_array_type(shape, dtype):
    """The array type of ``empty(shape, dtype)``, or None where the arguments are not a shape
    (an integer or a tuple of integers) and a NumPy scalar type."""
    lengths = list(shape) if isinstance(shape, types.BaseTuple) else [shape]
    if not all(isinstance(t, types.Integer) for t in lengths):
        return None
    if isinstance(dtype, (types.NumberClass, types.DType)):
        dtype = dtype.dtype
    dtype = types.unliteral(dtype)  # a value's type (full): a constant's is a literal
    if not isinstance(dtype, (types.Number, types.Boolean)):
        return None
    return types.Array(dtype, len(lengths), "C")


def _new_array_intrinsic(name: str, doc: str, fill):
    """An intrinsic ``name(shape, kind)``: a new array of ``_new_array_type(shape, kind)``,
    its contents written by ``fill(context, builder, array type, array, signature, args)``."""
    def typer(typingctx, shape, kind):
        arrty = _new_array_type(shape, kind)
        if arrty is None:
            return None
        lengths = list(shape) if isinstance(shape, types.BaseTuple) else [shape]
        # A length the kernel's text fixes is a literal type: the size is known here.
        fixed = {k: t.literal_value for k, t in enumerate(lengths)
                 if isinstance(t, types.IntegerLiteral)}
        if not _fixed_size(list(fixed.values()), as_dtype(arrty.dtype).itemsize):
            return None

        def codegen(context, builder, signature, args):
            values = _intp_args(context, builder, signature.args[0], args[0])
            array = _allocate(context, builder, arrty,
                              [fixed.get(k, v) for k, v in enumerate(values)])
            fill(context, builder, arrty, array, signature, args)
            return array.value

        return arrty(shape, kind), codegen

    typer.__name__, typer.__qualname__, typer.__doc__ = name, name, doc
    # Literal lengths first: a fixed size is multiplied and checked once, at typing.
    return intrinsic(prefer_literal=True)(typer)


def _zero(builder, array):
    """Every byte of the new C-contiguous ``array`` set to zero."""
    cgutils.memset(builder, array.data, builder.mul(array.itemsize, array.nitems), 0)


def _fill_zeros(context, builder, arrty, array, signature, args):
    _zero(builder, array)


def _fill_value(context, builder, arrty, array, signature, args):
    value = context.cast(builder, args[1], signature.args[1], arrty.dtype)
    with cgutils.for_range(builder, array.nitems) as loop:
        store_item(context, builder, arrty, value, builder.gep(array.data, [loop.index]))


empty = _new_array_intrinsic(
    "empty", "``np.empty(shape, dtype)``, C-contiguous, asking for huge pages when large.",
    lambda *_: None)
zeros = _new_array_intrinsic("zeros", "``np.zeros(shape, dtype)``: ``empty`` and a ``memset``.",
                             _fill_zeros)
full = _new_array_intrinsic(
    "full", "``np.full(shape, value)`` of ``value``'s type: ``empty`` and one loop of stores.",
    _fill_value)


@intrinsic
def reshape(typingctx, a, shape):
    """``a.reshape(shape)`` of a C-contiguous array: a view with C strides. (Numba's method
    compiles a helper for each number of axes in each new process, about 80 ms each.)"""
    lengths = list(shape) if isinstance(shape, types.BaseTuple) else [shape]
    if not (isinstance(a, types.Array) and a.layout == "C"
            and all(isinstance(t, types.Integer) for t in lengths)):
        return None
    out = a.copy(ndim=len(lengths))

    def codegen(context, builder, signature, args):
        source = context.make_array(a)(context, builder, args[0])
        new = _intp_args(context, builder, signature.args[1], args[1])
        intp = context.get_value_type(types.intp)
        size = ir.Constant(intp, 1)
        for length in new:
            size = builder.mul(size, length)
        with builder.if_then(builder.icmp_signed("!=", size, source.nitems), likely=False):
            context.call_conv.return_user_exc(
                builder, ValueError, ("adjit: a reshape that changes the number of elements",))
        view = context.make_array(out)(context, builder)
        populate_array(view, data=source.data, shape=cgutils.pack_array(builder, new, ty=intp),
                       strides=_c_strides(builder, new, source.itemsize, intp),
                       itemsize=source.itemsize, meminfo=source.meminfo, parent=source.parent)
        return impl_ret_borrowed(context, builder, out, view._getvalue())

    return out(a, shape), codegen


@intrinsic
def fixed_shape(typingctx, a, shape):
    """``a`` with ``shape`` as its lengths: those its graph gives, which every caller checked
    before the kernel runs (the dispatcher, ``to_numba``'s wrapper, an ahead-of-time
    library's entry). A constant length makes the steps through the array constants: in an
    (n, 2) array ``x[i, 1]`` is element ``2 i + 1``, which LLVM vectorizes over ``i``; with the
    length read at run time it assumed a step of 1 and checked it before its vector loop
    (the ADBench BA Jacobian's features: the check failed and the loop ran scalar)."""
    lengths = list(shape) if isinstance(shape, types.BaseTuple) else [shape]
    if not (isinstance(a, types.Array) and len(lengths) == a.ndim
            and all(isinstance(t, types.Integer) for t in lengths)):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(a)(context, builder, args[0])
        new = _intp_args(context, builder, signature.args[1], args[1])
        array.shape = cgutils.pack_array(builder, new, ty=context.get_value_type(types.intp))
        return impl_ret_borrowed(context, builder, a, array._getvalue())

    return a(a, shape), codegen


def _blas_operands(a, b) -> bool:
    """Whether ``dot`` hands ``a`` and ``b`` to BLAS: vectors or matrices of one float or
    complex dtype whose types say they are contiguous (C or Fortran order)."""
    return (isinstance(a, types.Array) and isinstance(b, types.Array) and a.dtype == b.dtype
            and a.dtype in _BLAS_KINDS and all(1 <= t.ndim <= 2 and t.layout in ("C", "F")
                                                for t in (a, b)))


@_cached
def _contiguous_copy(a):
    return np.ascontiguousarray(a)


@_cached
def _copy(a):
    return np.copy(a)


@_cached
def _dot(a, b):
    return np.dot(a, b)


def _by_cached(typingctx, function, *arg_types):
    """(signature, codegen) of a call of the cached ``@njit`` ``function``, for an intrinsic's
    uncommon case: compiled once per types, and linked into the kernels that call it."""
    function_type = typingctx.resolve_value_type(function)
    signature = typingctx.resolve_function_type(function_type, arg_types, {})

    def codegen(context, builder, sig, args):
        return context.get_function(function_type, signature)(builder, args)

    return signature, codegen


@intrinsic
def ascontiguousarray(typingctx, a):
    """``np.ascontiguousarray(a)``: ``a`` itself where its type is C-contiguous (no call at
    all), else NumPy's copy."""
    if not isinstance(a, types.Array):
        return None
    if a.layout != "C":
        return _by_cached(typingctx, _contiguous_copy, a)
    return a(a), lambda context, builder, signature, args: impl_ret_borrowed(
        context, builder, a, args[0])


@intrinsic
def copy(typingctx, a):
    """``np.copy(a)``: a new array and one ``memcpy`` where ``a``'s type is C-contiguous,
    else NumPy's copy."""
    if not isinstance(a, types.Array):
        return None
    if a.layout != "C":
        return _by_cached(typingctx, _copy, a)
    out = a.copy(readonly=False)

    def codegen(context, builder, signature, args):
        source = context.make_array(a)(context, builder, args[0])
        new = _allocate(context, builder, out, cgutils.unpack_tuple(builder, source.shape))
        cgutils.raw_memcpy(builder, new.data, source.data, source.nitems, source.itemsize)
        return new.value

    return out(a), codegen


@intrinsic
def copy_into(typingctx, out, a):
    """``out[...] = a`` of two arrays of one dtype and shape (a ``scan``'s row of stacked
    values, a snapshot): a ``memcpy`` where both types are C-contiguous, else a loop over
    the elements. Numba's own assignment checks the shapes with an error that formats them,
    whose string code Numba compiled in every process that assigned an array (2 s)."""
    if not (isinstance(out, types.Array) and isinstance(a, types.Array)
            and out.ndim == a.ndim and out.dtype == a.dtype and out.mutable):
        return None

    def codegen(context, builder, signature, args):
        target = context.make_array(out)(context, builder, args[0])
        source = context.make_array(a)(context, builder, args[1])
        shape = cgutils.unpack_tuple(builder, source.shape)
        same = cgutils.true_bit
        for m, n in zip(cgutils.unpack_tuple(builder, target.shape), shape):
            same = builder.and_(same, builder.icmp_signed("==", m, n))
        with builder.if_then(builder.not_(same), likely=False):
            context.call_conv.return_user_exc(
                builder, ValueError, ("adjit: copying an array into one of another shape",))
        if out.layout == "C" and a.layout == "C":
            cgutils.raw_memcpy(builder, target.data, source.data, source.nitems,
                               source.itemsize)
        else:
            with cgutils.loop_nest(builder, shape, shape[0].type if shape else
                                   context.get_value_type(types.intp)) as index:
                value = load_item(context, builder, a, cgutils.get_item_pointer(
                    context, builder, a, source, index))
                store_item(context, builder, out, value, cgutils.get_item_pointer(
                    context, builder, out, target, index))
        return context.get_dummy_value()

    return types.none(out, a), codegen


@intrinsic
def dot(typingctx, a, b):
    """``np.dot(a, b)`` of contiguous vectors and matrices (C or Fortran order, one float or
    complex dtype): one call of Numba's BLAS helper (``?gemm``, ``?gemv`` or ``?dot``) on a new
    C-contiguous array. Other operands go to Numba's ``np.dot``."""
    if not (isinstance(a, types.Array) and isinstance(b, types.Array)):
        return None
    ndim = a.ndim + b.ndim - 2
    if not _blas_operands(a, b):
        return _by_cached(typingctx, _dot, a, b)
    out = a.dtype if ndim == 0 else types.Array(a.dtype, ndim, "C")

    def codegen(context, builder, signature, args):
        return _blas_product(context, builder, a, b, out, args)

    return out(a, b), codegen


def _check_blas_lengths(context, builder, lengths):
    """An OverflowError where a length exceeds what BLAS takes (a C int)."""
    too_long = ir.Constant(ir.IntType(1), 0)
    for length in lengths:
        too_long = builder.or_(too_long, builder.icmp_signed(
            ">", length, ir.Constant(length.type, 2 ** 31 - 1)))
    with builder.if_then(too_long, likely=False):
        context.call_conv.return_user_exc(
            builder, OverflowError, ("adjit: a matrix product's length exceeds BLAS's C int",))


def _blas_product(context, builder, a, b, out, args):
    """LLVM IR of ``np.dot(a, b)`` for ``dot``: lengths checked, the result allocated, and one
    BLAS call (none where the result is empty; zeros where the shared length is 0)."""
    x = context.make_array(a)(context, builder, args[0])
    y = context.make_array(b)(context, builder, args[1])
    xs, ys = cgutils.unpack_tuple(builder, x.shape), cgutils.unpack_tuple(builder, y.shape)
    with builder.if_then(builder.icmp_signed("!=", xs[-1], ys[0]), likely=False):
        context.call_conv.return_user_exc(
            builder, ValueError, ("adjit: a matrix product of incompatible lengths",))
    _check_blas_lengths(context, builder, (*xs, *ys))
    if out is a.dtype:  # vector . vector
        slot = cgutils.alloca_once(builder, context.get_value_type(out))
        linalg.call_xxdot(context, builder, False, out, xs[0], x.data, y.data, slot)
        return builder.load(slot)
    shape = [*xs[:-1], *ys[1:]]
    result = _allocate(context, builder, out, shape)
    with _blas_writes(builder, xs[-1], result):
        if a.ndim == b.ndim == 2:
            linalg.call_xxgemm(context, builder, a, xs, x.data, b, ys, y.data,
                               out, shape, result.data)
        elif a.ndim == 2:  # matrix . vector
            linalg.call_xxgemv(context, builder, a.layout == "C", a, xs, x.data,
                               y.data, result.data)
        else:  # vector . matrix: the matrix's transpose times the vector
            linalg.call_xxgemv(context, builder, b.layout == "F", b, ys, y.data,
                               x.data, result.data)
    return result.value


@contextlib.contextmanager
def _blas_writes(builder, shared, result):
    """Inside: the BLAS call that writes ``result``, run where ``result`` has elements and the
    product's shared length ``shared`` is not 0; where it is 0, ``result`` is zeroed instead
    (BLAS would leave it unwritten)."""
    zero = ir.Constant(shared.type, 0)
    with builder.if_else(builder.icmp_signed("==", shared, zero), likely=False) as (none, some):
        with none:
            _zero(builder, result)
        with some:
            with builder.if_then(builder.icmp_signed(">", result.nitems, zero), likely=True):
                yield


# ----------------------------------------------------------------- branch-free scalars
#
# A conditional expression is a branch in Numba's IR: two blocks and a phi each, and Numba's
# passes (SSA reconstruction, liveness) cost blocks times variables. A gather's clamped index
# was five of them, the NaN-aware maximum two. These emit LLVM's ``select`` instead (both
# values are computed; the generator passes only values safe to compute).


def _integers(*tys) -> bool:
    """Whether every type is an integer's (a boolean counts: a branch index may be one)."""
    return all(isinstance(t, (types.Integer, types.Boolean)) for t in tys)


def _clamp_ir(builder, i, last):
    zero = ir.Constant(i.type, 0)
    low = builder.select(builder.icmp_signed("<", i, zero), zero, i)
    return builder.select(builder.icmp_signed(">", low, last), last, low)


@intrinsic
def clamp(typingctx, i, last):
    """``i`` clamped into ``0..last`` (integers)."""
    if not _integers(i, last):
        return None

    def codegen(context, builder, signature, args):
        return _clamp_ir(builder, *_as_intp(context, builder, args, signature.args))

    return types.intp(i, last), codegen


@intrinsic
def clip_index(typingctx, i, n):
    """Index ``i`` into a length ``n``: NumPy's wrap-around of a negative index, then clamped
    into ``0..n-1`` (jax's "clip" mode)."""
    if not _integers(i, n):
        return None

    def codegen(context, builder, signature, args):
        i_, n_ = _as_intp(context, builder, args, signature.args)
        wrapped = builder.select(builder.icmp_signed("<", i_, ir.Constant(i_.type, 0)),
                                 builder.add(i_, n_), i_)
        return _clamp_ir(builder, wrapped, builder.sub(n_, ir.Constant(n_.type, 1)))

    return types.intp(i, n), codegen


@intrinsic
def select(typingctx, condition, a, b):
    """``a if condition else b`` of two scalars, both computed, as one ``select``."""
    kind = typingctx.unify_types(a, b)
    if not isinstance(kind, (types.Number, types.Boolean)):
        return None

    def codegen(context, builder, signature, args):
        ty_c, ty_a, ty_b = signature.args
        return builder.select(context.cast(builder, args[0], ty_c, types.boolean),
                              context.cast(builder, args[1], ty_a, kind),
                              context.cast(builder, args[2], ty_b, kind))

    return kind(condition, a, b), codegen


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


@intrinsic
def gemm_into(typingctx, a, b, out):
    """``out[...] = a @ b`` for 2-D float or complex arrays of one dtype: where the types say
    ``a`` and ``b`` are contiguous (C or Fortran order) and ``out`` C-contiguous, one BLAS
    ``gemm`` call written in the kernel, as ``dot``'s; other layouts go to
    ``_gemm_into_strided``. A cached ``@njit`` function called by a kernel is linked into it,
    and LLVM optimized and compiled its whole body, with ``np.ascontiguousarray``'s, in every
    kernel again: a seventh of the ADBench GMM gradient's machine code."""
    arrays = (a, b, out)
    if not (all(isinstance(t, types.Array) and t.ndim == 2 for t in arrays)
            and a.dtype == b.dtype == out.dtype and a.dtype in _BLAS_KINDS and out.mutable):
        return None
    if a.layout not in ("C", "F") or b.layout not in ("C", "F") or out.layout != "C":
        return _by_cached(typingctx, _gemm_into_strided, a, b, out)

    def codegen(context, builder, signature, args):
        x, y, z = (context.make_array(t)(context, builder, v) for t, v in zip(arrays, args))
        xs, ys, zs = (cgutils.unpack_tuple(builder, v.shape) for v in (x, y, z))
        wrong = builder.or_(builder.icmp_signed("!=", xs[1], ys[0]), builder.or_(
            builder.icmp_signed("!=", zs[0], xs[0]), builder.icmp_signed("!=", zs[1], ys[1])))
        with builder.if_then(wrong, likely=False):
            context.call_conv.return_user_exc(
                builder, ValueError, ("adjit: a matrix product of incompatible lengths",))
        _check_blas_lengths(context, builder, (*xs, *ys))
        with _blas_writes(builder, xs[1], z):
            linalg.call_xxgemm(context, builder, a, xs, x.data, b, ys, y.data, out, zs, z.data)
        return context.get_dummy_value()

    return types.none(a, b, out), codegen


@_cached
def _gemm_into_strided(a, b, out):
    """``gemm_into`` of operands whose types do not say they are contiguous: one BLAS ``gemm``
    reading each operand in place when its rows or its columns are contiguous (any other
    operand is copied first)."""
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
