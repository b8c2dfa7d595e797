"""The discrete Fourier transform: one primitive, as JAX's ``lax.fft``.

    out = fft[fft_type, fft_lengths] x

transforms the last ``len(fft_lengths)`` axes: ``fft``/``ifft`` complex to complex (``ifft``
scaled by 1/N, NumPy's default), ``rfft`` real to the non-negative frequencies (last axis
``n // 2 + 1``), ``irfft`` back (last axis ``fft_lengths[-1]``). The lengths are numbers:
reading a symbolic length fixes it (a retrace per length). ``adjit.numpy.fft`` puts the
transformed axes last, pads or crops to ``n``/``s`` and applies ``norm``.

The transposes are JAX's (plain linear transposes; conjugation enters through grad's
convention): the DFT matrix is symmetric, so ``fft`` and ``ifft`` are their own transposes;
``rfft``'s is an ``irfft`` of the conjugate cotangent with the Hermitian weights, and
``irfft``'s the conjugate of a weighted ``rfft``.
"""

from __future__ import annotations

import math

import numpy as np

from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.ir.graph import ShapedArray, same_shape
from adjit.primitives.elementwise import complex_dtype, conj, div, full_like, mul, real_dtype
from adjit.primitives.registry import defbatch_params, deflinear, defprim
from adjit.primitives.structural import bind, broadcast_in_dim
from adjit.trace import get_aval

FFT_TYPES = ("fft", "ifft", "rfft", "irfft")


def fft(x, fft_type: str, fft_lengths):
    return bind("fft", x, fft_type=fft_type, fft_lengths=tuple(int(n) for n in fft_lengths))


def _fft_abstract(x, *, fft_type, fft_lengths):
    k = len(fft_lengths)
    if fft_type not in FFT_TYPES:
        raise AdjitValueError(f"adjit: unknown fft_type {fft_type!r} (known: {FFT_TYPES})")
    if not 1 <= k <= x.ndim:
        raise AdjitValueError(f"adjit: an FFT over {k} axes of an array {x}")
    if fft_type == "rfft" and not x.is_float or fft_type != "rfft" and not x.is_complex:
        want = "a real floating-point" if fft_type == "rfft" else "a complex"
        raise AdjitTypeError(f"adjit: {fft_type} takes {want} array, got {x}")
    lead, last = x.shape[:-k], tuple(fft_lengths)
    if fft_type == "irfft":
        expect = (*last[:-1], last[-1] // 2 + 1)
    else:
        expect = last
    if not same_shape(x.shape[-k:], expect):
        raise AdjitValueError(f"adjit: {fft_type} of lengths {last} needs trailing axes "
                              f"{expect}, got {x}")
    if fft_type == "rfft":
        return ShapedArray((*lead, *last[:-1], last[-1] // 2 + 1), complex_dtype(x.dtype))
    if fft_type == "irfft":
        return ShapedArray((*lead, *last), real_dtype(x.dtype))
    return x


def _fft_impl(x, *, fft_type, fft_lengths):
    """The discrete Fourier transform over the last axes (NumPy's pocketfft)."""
    axes = tuple(range(x.ndim - len(fft_lengths), x.ndim))
    dtype = _fft_abstract(get_aval(x), fft_type=fft_type, fft_lengths=fft_lengths).dtype
    if fft_type == "irfft":
        return np.fft.irfftn(x, s=fft_lengths, axes=axes).astype(dtype)
    transform = {"fft": np.fft.fftn, "ifft": np.fft.ifftn, "rfft": np.fft.rfftn}[fft_type]
    return transform(x, axes=axes).astype(dtype)


def _hermitian_weights(like, fft_lengths):
    """1 for the zero frequency (and the Nyquist one of an even length), 2 for the others:
    how often each stored frequency of a real signal's spectrum appears in the full one.
    Shaped to multiply ``like`` along its last axis, in its dtype."""
    n = fft_lengths[-1]
    weights = np.full(n // 2 + 1, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    aval = get_aval(like)
    return broadcast_in_dim(weights.astype(aval.dtype), aval.shape, (aval.ndim - 1,))


def _fft_transpose(ct, x, *, fft_type, fft_lengths):
    if fft_type == "rfft":
        out = fft(div(conj(ct), _hermitian_weights(ct, fft_lengths)), "irfft", fft_lengths)
        return [mul(out, full_like(out, math.prod(fft_lengths)))]
    if fft_type == "irfft":
        spectrum = fft(ct, "rfft", fft_lengths)
        scaled = mul(spectrum, _hermitian_weights(spectrum, fft_lengths))
        return [conj(mul(scaled, full_like(scaled, 1.0 / math.prod(fft_lengths))))]
    return [fft(ct, fft_type, fft_lengths)]


defprim("fft", _fft_abstract, _fft_impl)
deflinear("fft", _fft_transpose)
# The transformed axes are the last ones, so the batch axis (leading) is carried through.
defbatch_params("fft", lambda **params: params)
