"""The CPU kernels' vectorizable transcendental functions (adjit/backend/numba_cpu/vecmath.py)
against the system libm: at most 2 ulp apart on random inputs over each function's whole
range (log-uniform magnitudes, both signs) and dense near its reduction boundaries, and
special values (inf, NaN, -0.0, overflow and underflow thresholds) bit for bit, subnormal
results within 1 ulp.

The helpers are compiled as a kernel uses them: inlined into a loop compiled with the
kernel's fast-math flags (reassociation included), float32 through float64. The reference is
libm called from Numba (``math.exp`` on a float32 is ``expf``). 10^5 points per function
here; the 10^7-point sweep is marked slow.
"""

import importlib.util
import math
import pathlib
import sys
import tempfile

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.backend.numba_cpu import vecmath
from adjit.backend.numba_cpu.codegen import FASTMATH

FUNCTIONS = ("exp", "expm1", "log", "log1p", "tanh", "sin", "cos")


@pytest.fixture(scope="module")
def compiled():
    """A module of the helpers, with for each function ``fast_<f>(x, out)`` (the helper in a
    loop compiled as a kernel is) and ``libm_<f>(x, out)``; written to a fixed place only
    when its text changes, so Numba's cache serves the next run."""
    parts = ["import math", "", "import numba", "import numpy as np", ""]
    parts += [vecmath.HELPERS[f] for f in FUNCTIONS]
    for f in FUNCTIONS:
        parts.append(f'''
@numba.njit(cache=True, fastmath={FASTMATH}, error_model="numpy")
def fast_{f}(x, out):
    for i in range(x.shape[0]):
        out[i] = _{f}(np.float64(x[i]))  # a float32 out rounds once, as the lowering does


@numba.njit(cache=True, error_model="numpy")
def libm_{f}(x, out):
    for i in range(x.shape[0]):
        out[i] = math.{f}(x[i])
''')
    text = "\n".join(parts)
    folder = pathlib.Path(tempfile.gettempdir()) / "adjit_test_vecmath"
    folder.mkdir(exist_ok=True)
    path = folder / "vecmath_kernels.py"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    spec = importlib.util.spec_from_file_location("adjit_test_vecmath_kernels", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Numba's cache finds the functions' globals there
    spec.loader.exec_module(module)
    return module


def _ordered(a):
    """Integers in the order of the floats, one apart per ulp (-0.0 and 0.0 one apart)."""
    bits = a.view(np.int64 if a.dtype == np.float64 else np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & (2 ** (8 * a.itemsize - 1) - 1)) - 1, bits)


def ulps(a, b):
    """How many floats apart a and b are (0 where both are NaN; huge where one is)."""
    d = np.abs(_ordered(a) - _ordered(b)).astype(np.float64)
    d[np.isnan(a) & np.isnan(b)] = 0
    d[np.isnan(a) != np.isnan(b)] = np.inf
    return d


def run(compiled, f, x):
    """The helper's and libm's values; for sin and cos beyond the exact reduction, libm's for
    both (there the kernel runs the nest again with libm: the last test)."""
    fast, libm = np.empty_like(x), np.empty_like(x)
    getattr(compiled, f"fast_{f}")(x, fast)
    getattr(compiled, f"libm_{f}")(x, libm)
    if f in ("sin", "cos"):
        fast = np.where(np.abs(x) > vecmath.SINCOS_LIMIT, libm, fast)
    return fast, libm


SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 2.2250738585072014e-308,
           -2.2250738585072014e-308, 2.225073858507201e-308, 1e-310, -1e-310, 1e-300, -1e-300,
           1e-17, -1e-17, 5.551115123125783e-17, -5.551115123125783e-17, 1.0, -1.0, 0.5, -0.5,
           709.782712893384, 709.7827128933841, 710.0, -745.1332191019411,
           -745.1332191019412, -745.0, -708.3964185322641, -708.4, -37.5, -38.0, 44.0, 22.0,
           -22.0, 20.0, 1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308,
           np.pi / 2, np.pi, 1.6e6, -1.6e6, 1.5e6, 0.7071067811865476, 1.4142135623730951,
           -0.2928932188134524, 0.41421356237309515, -0.9999999999999999]


def inputs(f, n, rng, dtype=np.float64):
    """n points over f's range, a quarter of them near its reduction boundaries, and the
    special values."""
    big = float(np.finfo(dtype).max)
    tiny = float(np.finfo(dtype).smallest_subnormal)

    def log_uniform(lo, hi, m, signed=True):
        mag = np.exp(rng.uniform(np.log(lo), np.log(hi), m))
        return mag * rng.choice([-1.0, 1.0], m) if signed else mag

    def near(points, width, m):
        return rng.choice(points, m) * (1 + rng.uniform(-width, width, m))

    wide = n - n // 4
    k = np.arange(-1080, 1030)
    half_ln2 = (k + 0.5) * math.log(2)  # where round(x / ln2) changes
    quarter_pi = np.arange(-400, 400) * math.pi / 4  # round(x 2/pi) changes, sin/cos zeros
    if f == "exp":
        parts = [log_uniform(tiny, 750, wide), near(half_ln2, 1e-12, n // 4)]
    elif f == "expm1":
        parts = [log_uniform(tiny, 750, wide), near(half_ln2[1000:1200], 1e-12, n // 4)]
    elif f == "log":
        scales = 2.0 ** np.arange(-1074, 1024)
        parts = [log_uniform(tiny, big, wide, signed=False),
                 near(np.concatenate([scales * math.sqrt(0.5), [1.0]]), 1e-12, n // 4)]
    elif f == "log1p":
        parts = [log_uniform(tiny, big, wide), -1 + log_uniform(1e-16, 1.0, n // 8, False),
                 near(np.array([math.sqrt(2) - 1, math.sqrt(0.5) - 1, 1.0]), 1e-9,
                      n // 4 - n // 8)]
    elif f == "tanh":
        parts = [log_uniform(tiny, 40, wide), near(np.array([1.0, -1.0, 22.0, -22.0,
                                                             0.3466, -0.3466]), 1e-3, n // 4)]
    else:
        parts = [log_uniform(tiny, vecmath.SINCOS_LIMIT, wide), near(quarter_pi, 1e-12, n // 4)]
    x = np.concatenate(parts + [np.array(SPECIAL)])
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def check(compiled, f, x):
    fast, libm = run(compiled, f, x)
    d = ulps(fast, libm)
    worst = int(np.argmax(d))
    assert d[worst] <= 2, (f"{f}({x[worst]!r}) = {fast[worst]!r}, libm {libm[worst]!r}: "
                           f"{d[worst]:g} ulp")
    # Not one ulp off where libm says inf, NaN, a zero (its sign) or a subnormal.
    exact = ~np.isfinite(libm) | (np.abs(libm) < np.finfo(x.dtype).smallest_normal)
    np.testing.assert_array_equal(ulps(fast[exact], libm[exact]) <= (libm[exact] != 0), True,
                                  err_msg=f"{f} at {x[exact][ulps(fast[exact], libm[exact]) > 0]}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("f", FUNCTIONS)
def test_within_two_ulp_of_libm(compiled, f, dtype):
    check(compiled, f, inputs(f, 10 ** 5, np.random.default_rng(FUNCTIONS.index(f)), dtype))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("f", FUNCTIONS)
def test_within_two_ulp_of_libm_1e7(compiled, f, dtype):
    check(compiled, f, inputs(f, 10 ** 7, np.random.default_rng(100 + FUNCTIONS.index(f)),
                              dtype))


def test_special_values_bit_for_bit(compiled):
    """NaN where libm gives NaN; inf and zeros (their signs) bit for bit."""
    x = np.array(SPECIAL)
    for f in FUNCTIONS:
        fast, libm = run(compiled, f, x)
        for a, got, want in zip(x, fast, libm):
            if np.isnan(want):
                assert np.isnan(got), f"{f}({a!r}) = {got!r}, libm NaN"
            elif not np.isfinite(want) or want == 0:
                assert got.tobytes() == want.tobytes(), f"{f}({a!r}) = {got!r}, libm {want!r}"


def test_kernel_calls_helpers_and_falls_back_to_libm_for_huge_sin():
    """The elementwise derivative of sin is the helper _cos in a vectorizable loop; an
    element beyond the exact reduction makes the nest run again with libm."""
    g = adjit.vmap(adjit.grad(lambda x: x ** 2 + anp.sin(x)))
    x = np.array([0.0, -0.0, 1.0, -2.5, 1e5, 1.6e6, 1e7, 1e300, np.inf, -np.inf, np.nan])
    source = adjit.inspect(g, x).source
    assert "_cos(" in source and "math.cos(" in source and "outside" in source
    with np.errstate(invalid="ignore"):
        want = 2 * x + np.array([math.cos(v) if np.isfinite(v) else np.nan for v in x])
    got = adjit.jit(g)(x)
    assert ulps(got, want).max() <= 2
    xs = x[np.abs(x) < 1e30].astype(np.float32)  # float32 through the float64 helper
    got = adjit.jit(g)(xs)
    want = np.array([2 * v + math.cos(v) if np.isfinite(v) else np.nan for v in xs.tolist()])
    assert got.dtype == np.float32 and ulps(got, want.astype(np.float32)).max() <= 2


def test_libm_only_where_llvm_would_check_overlaps():
    """A nest's arrays are declared apart (``nests._memory_groups``), so outside a loop's
    body LLVM vectorizes it however many arrays it has: the helpers. A loop's body swaps its
    carries, which are declared nothing: there LLVM would check each pair of arrays for
    overlap at run time and gives up beyond 8, and libm's scalar code is as fast."""
    def many(a, b, c, d):
        return (anp.exp(a) + b, anp.exp(b) + c, anp.exp(c) + d, anp.exp(d) + a, anp.tanh(a * b))

    def looped(a, b, c, d):
        def step(i, carry):
            a, b, c, d = carry
            return (0.5 * anp.exp(-a) + b, 0.5 * anp.exp(-b) + c, 0.5 * anp.exp(-c) + d,
                    0.5 * anp.exp(-d) + a)
        return adjit.fori_loop(0, 3, step, (a, b, c, d))

    args = [np.linspace(-1, 1, 7) * k for k in range(1, 5)]
    source = adjit.inspect(many, *args).source
    assert "_exp(" in source and "math.exp(" not in source
    a, b, c, d = args
    wants = (np.exp(a) + b, np.exp(b) + c, np.exp(c) + d, np.exp(d) + a, np.tanh(a * b))
    for got, want in zip(adjit.jit(many)(*args), wants):
        np.testing.assert_allclose(got, want, rtol=1e-13)  # helpers: within 2 ulp
    source = adjit.inspect(looped, *args).source
    assert "math.exp(" in source and "_exp(" not in source
    a, b, c, d = args
    for _ in range(3):
        a, b, c, d = (0.5 * np.exp(-a) + b, 0.5 * np.exp(-b) + c, 0.5 * np.exp(-c) + d,
                      0.5 * np.exp(-d) + a)
    for got, want in zip(adjit.jit(looped)(*args), (a, b, c, d)):
        np.testing.assert_allclose(got, want, rtol=1e-14)
