"""Vectorizable transcendental functions for the CPU kernels, as helper sources.

LLVM vectorizes a loop only if each call in it has a vector version, and the pip builds of
llvmlite have no vector math library (no SVML; LLVM's libmvec table lacks tanh, expm1 and
log1p), so a kernel calling ``math.exp`` runs one element at a time. These helpers are range
reduction plus polynomial, as fdlibm, SLEEF and XLA do, written without calls and with
branches that LLVM turns into selects, so that inlined into a kernel's loop the loop
vectorizes. Each is a float64 function (float32 kernels call it on the widened value: one
rounding to float32 at the end, so special values, overflow and subnormals come out as the
float32 libm's).

Accuracy: within 1 ulp of the system libm (tanh: 2, where glibc's tanh is itself 1.9 ulp
off), inf, NaN, -0.0 and subnormals as libm (``tests/test_vecmath.py``). The helpers are
compiled with ``fastmath={"contract"}`` and ``forceinline``: LLVM keeps an instruction's flags
when it inlines it into the kernel (compiled with ``reassoc``), and reassociation would undo
the exact splittings the reductions rely on (Cody-Waite, TwoSum, the 1.5 * 2^52 rounding).
sin and cos reduce exactly only for |x| <= 1.6e6: beyond, the nest runs again with libm, and
scalar code keeps libm (``LIBM_LOWERINGS`` in ``lowering.py``).
"""

from __future__ import annotations

import numba
import numpy as np

# Compiled once per process (and cached by Numba) and imported by each kernel that calls one:
# forceinline has LLVM inline it into the kernel's loop, keeping its own fast-math flags.
_helper = numba.njit(cache=True, fastmath={"contract"}, error_model="numpy", forceinline=True)


@_helper
def _expm1_taylor(r):
    # expm1(r) - r for |r| <= ln2/2: Taylor to degree 13 (truncation < 2^-57 relative),
    # evaluated by Estrin's scheme (a short dependency chain for a scalar loop).
    r2 = r * r
    r4 = r2 * r2
    b0 = (0.5 + r * 0.16666666666666666) + r2 * (0.041666666666666664 + r * 0.008333333333333333)
    b1 = (0.001388888888888889 + r * 0.0001984126984126984) \
        + r2 * (2.48015873015873e-05 + r * 2.7557319223985893e-06)
    b2 = (2.755731922398589e-07 + r * 2.505210838544172e-08) \
        + r2 * (2.08767569878681e-09 + r * 1.6059043836821613e-10)
    return r2 * ((b0 + r4 * b1) + (r4 * r4) * b2)


@_helper
def _exp(x):
    # exp(x) = 2^k exp(r), k = round(x / ln2), r = x - k ln2 (k ln2_hi exact: Cody-Waite),
    # exp(r) = 1 + (r + _expm1_taylor(r)); 2^k from its bits in two factors, so a subnormal
    # result rounds once. Error <= 0.8 ulp. Below -745.2 (under ln 2^-1075) exp rounds to +0:
    # such a lane computes exp(0) and is replaced, since its last product would underflow,
    # and each underflow costs the CPU a microcode assist (a logsumexp over far-apart terms
    # meets one per element: the ADBench GMM objective took 5.5 ms against 0.66 ms).
    xc = x if x < 710.0 else 710.0  # a NaN's lane is replaced at the end
    xc = xc if xc > -745.2 else 0.0
    t = xc * 1.4426950408889634 + 6755399441055744.0  # 1.5 * 2^52: k in the low bits
    kf = t - 6755399441055744.0
    k = np.float64(t).view(np.int64) - 0x4338000000000000
    r = (xc - kf * 0.6931471803691238) - kf * 1.9082149292705877e-10
    k1 = k >> 1
    y = (1.0 + (r + _expm1_taylor(r))) * np.int64((k1 + 1023) << 52).view(np.float64) \
        * np.int64((k - k1 + 1023) << 52).view(np.float64)
    y = y if x > -745.2 else 0.0
    return y if x == x else x


@_helper
def _expm1_split(x):
    # For -60 <= x <= 44: expm1(x) as hi + lo (hi rounded, lo its error), k = round(x / ln2)
    # < 64. x = k ln2 + r as in _exp, what r lost kept in c; expm1(x) = (2^k - 1) + 2^k r +
    # 2^k (d + c (1 + r)), d = _expm1_taylor(r); the first sum is exact (Fast2Sum).
    t = x * 1.4426950408889634 + 6755399441055744.0
    kf = t - 6755399441055744.0
    k = np.float64(t).view(np.int64) - 0x4338000000000000
    hi = x - kf * 0.6931471803691238  # exact
    lo = kf * 1.9082149292705877e-10
    r = hi - lo
    c = (hi - r) - lo
    two_k = np.int64((k + 1023) << 52).view(np.float64)
    a = two_k - 1.0
    b = two_k * r
    s = a + b
    lo = ((a - s) + b) + two_k * (_expm1_taylor(r) + c * (1.0 + r))
    y = s + lo  # |s| >= |lo|: Fast2Sum again
    return y, lo - (y - s)


@_helper
def _expm1(x):
    # _expm1_split rounded once; above 44 the -1 does not matter: _exp. |x| < 2^-54 gives x
    # (-0.0, subnormals). Error <= 0.6 ulp.
    xc = x if x < 44.0 else 44.0  # a NaN's lane is replaced at the end
    xc = xc if xc > -60.0 else -60.0  # expm1 rounds to -1 below -38
    y = _expm1_split(xc)[0] if x < 44.0 else _exp(x)
    y = y if x == x else x
    return x if abs(x) < 5.551115123125783e-17 else y


@_helper
def _log_reduced(f, dk, c):
    # log(2^dk (1 + f)) + c for 1 + f in [sqrt(1/2), sqrt(2)): log(1 + f) = 2 atanh(s),
    # s = f / (2 + f), fdlibm's (e_log.c) polynomial in s^2; error < 1 ulp.
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * (
        1.531383769920937332e-01)))
    t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01 + w * (
        1.818357216161805012e-01 + w * 1.479819860511658591e-01)))
    return s * (hfsq + (t1 + t2)) + (dk * 1.9082149292705877e-10 + c) - hfsq + f \
        + dk * 0.6931471803691238


@_helper
def _log(x):
    # x = 2^k m, m in [sqrt(1/2), sqrt(2)) read from the bits (a subnormal x scaled by 2^54
    # first), then _log_reduced(m - 1, k). Error < 1 ulp.
    tiny = x < 2.2250738585072014e-308
    xs = x * 18014398509481984.0 if tiny else x
    ix = np.float64(xs).view(np.int64) - 0x3fe6a09e667f3bcd
    m = np.int64((ix & 0x000fffffffffffff) + 0x3fe6a09e667f3bcd).view(np.float64)
    k = (ix >> 52) - (54 if tiny else 0)
    dk = np.int64(k + 0x4338000000000000).view(np.float64) - 6755399441055744.0
    y = _log_reduced(m - 1.0, dk, 0.0)
    y = y if x < np.inf else x  # inf and NaN
    return y if x > 0.0 else (-np.inf if x == 0.0 else np.nan)


@_helper
def _log1p(x):
    # u = 1 + x = 2^k m as in _log; log1p(x) = log(u) + c / u, c what the sum 1 + x lost
    # (musl's log1p). |x| < 2^-54 gives x (-0.0, subnormals). Error < 1 ulp.
    u = 1.0 + x
    iu = np.float64(u).view(np.int64) - 0x3fe6a09e667f3bcd
    m = np.int64((iu & 0x000fffffffffffff) + 0x3fe6a09e667f3bcd).view(np.float64)
    k = iu >> 52
    dk = np.int64(k + 0x4338000000000000).view(np.float64) - 6755399441055744.0
    c = (1.0 - (u - x)) if k >= 2 else (x - (u - 1.0))
    c = c / u if k < 54 else 0.0
    y = _log_reduced(m - 1.0, dk, c)
    y = y if x < np.inf else x
    y = y if x > -1.0 else (-np.inf if x == -1.0 else np.nan)
    return x if abs(x) < 5.551115123125783e-17 else y


@_helper
def _tanh(x):
    # tanh|x| = t / (t + 2), t = expm1(2|x|) unrounded (hi + lo, from _expm1_split), the
    # quotient corrected by its residual (exact by fma); 1 from |x| >= 22; the sign of x.
    # |x| < 2^-55 gives x. Error <= 0.6 ulp.
    a = abs(x)
    th, tl = _expm1_split(2.0 * a if a < 22.0 else 44.0)
    dh = th + 2.0
    v = dh - th
    dl = ((th - (dh - v)) + (2.0 - v)) + tl  # th + 2 - dh exactly (TwoSum), plus tl
    inv = 1.0 / dh
    q = th * inv
    q = q + ((th - q * dh) + (tl - q * dl)) * inv
    z = q if a < 22.0 else 1.0
    z = -z if x < 0.0 else z
    z = z if x == x else x
    return x if a < 2.7755575615628914e-17 else z


@_helper
def _reduce_pio2(x):
    # x - n pi/2 as a double-double (y0, y1) and n mod 4, n = round(x 2/pi), for |x| <=
    # 1.6e6: pi/2 in three 33-bit parts and a fourth (fdlibm), each n * part exact, the
    # subtractions' rounding errors kept by TwoSum.
    t = x * 0.6366197723675814 + 6755399441055744.0
    n = t - 6755399441055744.0
    q = np.float64(t).view(np.int64) & 3
    r1 = x - n * 1.5707963267341256  # exact
    w1 = n * 6.077100506303966e-11
    r2 = r1 - w1
    v = r2 - r1
    e2 = (r1 - (r2 - v)) - (w1 + v)
    w2 = n * 2.0222662487111665e-21
    r3 = r2 - w2
    v = r3 - r2
    e3 = (r2 - (r3 - v)) - (w2 + v)
    tail = (e2 + e3) - n * 8.4784276603689e-32
    y0 = r3 + tail
    return y0, tail - (y0 - r3), q


@_helper
def _sin_kernel(x, y):
    # sin(x + y), |x| <= pi/4, |y| tiny: fdlibm's k_sin.c polynomial; error < 0.6 ulp
    z = x * x
    w = z * z
    r = 8.33333333332248946124e-03 + z * (-1.98412698298579493134e-04 + z * (
        2.75573137070700676789e-06)) + z * w * (-2.50507602534068634195e-08 + z * (
            1.58969099521155010221e-10))
    v = z * x
    return x - ((z * (0.5 * y - v * r) - y) - v * -1.66666666666666324348e-01)


@_helper
def _cos_kernel(x, y):
    # cos(x + y), |x| <= pi/4, |y| tiny: fdlibm's k_cos.c polynomial; error < 0.6 ulp
    z = x * x
    w = z * z
    r = z * (4.16666666666666019037e-02 + z * (-1.38888888888741095749e-03 + z * (
        2.48015872894767294178e-05))) + w * w * (-2.75573143513906633035e-07 + z * (
            2.08757232129817482790e-09 + z * -1.13596475577881948265e-11))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * r - x * y))


@_helper
def _sin(x):
    # x = n pi/2 + y, then +-sin(y) or +-cos(y) by n mod 4 (both computed, one selected).
    # |x| < 2^-26 gives x (-0.0, subnormals); exact for |x| <= 1.6e6. Error < 1 ulp.
    y0, y1, q = _reduce_pio2(x)
    s = _cos_kernel(y0, y1) if q & 1 else _sin_kernel(y0, y1)
    s = -s if q & 2 else s
    return x if abs(x) < 1.4901161193847656e-08 else s


@_helper
def _cos(x):
    # x = n pi/2 + y, then +-cos(y) or +-sin(y) by n mod 4; exact for |x| <= 1.6e6.
    # Error < 1 ulp.
    y0, y1, q = _reduce_pio2(x)
    c = _sin_kernel(y0, y1) if q & 1 else _cos_kernel(y0, y1)
    return -c if (q + 1) & 2 else c


# The largest |x| that sin and cos reduce exactly (n = round(x 2/pi) < 2^20).
SINCOS_LIMIT = 1.6e6

# prim -> the float64 function a kernel imports from here.
FUNCTIONS = {prim: f"_{prim}" for prim in ("exp", "expm1", "log", "log1p", "tanh", "sin", "cos")}
HELPERS = {prim: f"from adjit.backend.numba_cpu.vecmath import {name}\n"
           for prim, name in FUNCTIONS.items()}
