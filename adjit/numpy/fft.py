"""``numpy.fft`` over the ``fft`` primitive: the transformed axes moved last, each padded with
zeros or cropped to its length (``n``/``s``), then ``norm`` ("backward", "ortho", "forward")
as a constant factor. ``adjit.scipy.fft`` is the same functions under SciPy's names.
"""

from __future__ import annotations

import math

import numpy as np

from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.numpy import core
from adjit.primitives import elementwise as ew
from adjit.primitives import fft as fft_p
from adjit.primitives import structural as st
from adjit.trace import get_aval

_NORMS = (None, "backward", "ortho", "forward")


def _resize(x, axis, length):
    """``x`` cropped, or padded with zeros at the end, to ``length`` along ``axis``."""
    shape = get_aval(x).shape
    have = int(shape[axis])
    if length < 1:
        raise AdjitValueError(f"adjit: invalid FFT length {length}")
    if length < have:
        limits = [length if i == axis else d for i, d in enumerate(shape)]
        return st.slice_p(x, [0] * len(shape), limits)
    if length > have:
        hi = [length - have if i == axis else 0 for i in range(len(shape))]
        return st.pad(x, [0] * len(shape), hi, [0] * len(shape))
    return x


def _transform(fft_type, a, s, axes, norm):
    if norm not in _NORMS:
        raise AdjitValueError(f"adjit: invalid norm {norm!r} (one of {_NORMS[1:]})")
    x = core.asarray(a)
    dtype = core._float_dtype(x)
    if fft_type == "rfft":
        if dtype.kind == "c":
            raise AdjitTypeError("adjit: rfft takes a real array (NumPy drops the imaginary "
                                 "part); use fft, or take real() first")
        x = core.astype(x, dtype)
    else:
        x = core.astype(x, ew.complex_dtype(dtype))
    nd = core.ndim(x)
    if axes is None:
        axes = tuple(range(nd)) if s is None else tuple(range(nd - len(s), nd))
    for axis in axes:
        if not -nd <= int(axis) < nd:
            raise AdjitValueError(f"adjit: axis {axis} is out of bounds for an array of rank "
                                  f"{nd}")
    axes = tuple(int(axis) % nd for axis in axes)
    if len(set(axes)) != len(axes):
        raise AdjitValueError(f"adjit: repeated axes {axes} in an FFT")
    shape = get_aval(x).shape
    if s is None:
        s = [int(shape[a]) for a in axes]
        if fft_type == "irfft":
            s[-1] = 2 * (s[-1] - 1)
    s = [int(n) for n in s]
    if len(s) != len(axes):
        raise AdjitValueError(f"adjit: FFT lengths {tuple(s)} do not match axes {axes}")
    for axis, n in zip(axes, s):
        x = _resize(x, axis, n // 2 + 1 if fft_type == "irfft" and axis == axes[-1] else n)
    rest = [i for i in range(nd) if i not in axes]
    perm = (*rest, *axes)
    out = fft_p.fft(core.transpose(x, perm), fft_type, s)
    out = core.transpose(out, np.argsort(perm))
    inverse = fft_type in ("ifft", "irfft")
    total = math.prod(s)
    # The primitive scales the inverse by 1/N ("backward"); the other norms move the factor.
    scale = {"ortho": math.sqrt(total) if inverse else 1 / math.sqrt(total),
             "forward": total if inverse else 1 / total}.get(norm)
    return out if scale is None else core.multiply(out, scale)


def _one_axis(fft_type):
    def transform(a, n=None, axis=-1, norm=None):
        return _transform(fft_type, a, None if n is None else (n,), (axis,), norm)

    transform.__name__ = fft_type
    transform.__doc__ = f"numpy.fft.{fft_type}: one axis, length ``n``."
    return transform


def _many_axes(fft_type, name, default_axes):
    def transform(a, s=None, axes=default_axes, norm=None):
        return _transform(fft_type, a, s, axes, norm)

    transform.__name__ = name
    transform.__doc__ = f"numpy.fft.{name}: the axes ``axes``, lengths ``s``."
    return transform


fft, ifft, rfft, irfft = (_one_axis(t) for t in ("fft", "ifft", "rfft", "irfft"))
fft2, ifft2 = _many_axes("fft", "fft2", (-2, -1)), _many_axes("ifft", "ifft2", (-2, -1))
rfft2, irfft2 = _many_axes("rfft", "rfft2", (-2, -1)), _many_axes("irfft", "irfft2", (-2, -1))
fftn, ifftn = _many_axes("fft", "fftn", None), _many_axes("ifft", "ifftn", None)
rfftn, irfftn = _many_axes("rfft", "rfftn", None), _many_axes("irfft", "irfftn", None)


def _roll_half(x, axes, shift_of):
    x = core.asarray(x)
    nd = core.ndim(x)
    axes = range(nd) if axes is None else (axes,) if isinstance(axes, int) else axes
    for axis in axes:
        axis = int(axis) % nd
        n = int(get_aval(x).shape[axis])
        k = shift_of(n) % n if n else 0
        if k:
            shape = get_aval(x).shape
            cut = n - k
            head = st.slice_p(x, [0] * nd, [cut if i == axis else d for i, d in enumerate(shape)])
            tail = st.slice_p(x, [cut if i == axis else 0 for i in range(nd)], shape)
            x = st.concatenate([tail, head], axis)
    return x


def fftshift(x, axes=None):
    """The zero frequency moved to the middle: each axis rolled by ``n // 2``."""
    return _roll_half(x, axes, lambda n: n // 2)


def ifftshift(x, axes=None):
    """The inverse of fftshift: each axis rolled by ``-(n // 2)``."""
    return _roll_half(x, axes, lambda n: -(n // 2))


def fftfreq(n, d=1.0):
    """The sample frequencies of an FFT of length ``n`` and sample spacing ``d``."""
    return core.divide(np.fft.fftfreq(int(n)), d)


def rfftfreq(n, d=1.0):
    """The sample frequencies of an rfft of length ``n`` and sample spacing ``d``."""
    return core.divide(np.fft.rfftfreq(int(n)), d)
