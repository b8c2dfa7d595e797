"""The compiled path against the reference interpreter.

Every case of the primitive table (tests/test_primitives.py) is run compiled and interpreted:
its value, its JVP along a random direction, its VJP of a random cotangent and a Hessian-vector
product (the JVP of the VJP), all from one jitted function. Compiling one kernel per case would
take minutes, so neighbouring cases share one kernel (GROUP cases per kernel). Also: float32
kernels, shape errors, one compilation for many sizes, and unusual array layouts.
"""

from __future__ import annotations

import platform
import re
import warnings

import numpy as np
import pytest
from test_primitives import CASES, first_order_only, forward_only

import adjit
import adjit.numpy as anp
from adjit import tree
from adjit.backend.numba_cpu import cache
from adjit.config import config

# Numba's compile time grows faster than the kernel: eight cases per kernel took 41 s for the
# control-flow cases and 23 s for the matrix products, four per kernel (two kernels) 28 s and
# 16 s; small elementwise cases cost the same either way.
GROUP = 4
RTOL, ATOL = 1e-9, 1e-12


def _derivatives(fn, xs, v, u, w, reverse=True, second=True):
    """f(x), J v, u^T J and the Hessian-vector product w -> d/dw (u^T J) (the last two None
    for a case checked in forward mode only, the last for one checked to first order)."""
    y = fn(*xs)
    _, t = adjit.jvp(fn, xs, v)
    if not reverse:
        return y, t, None, None
    g = adjit.vjp(fn, *xs)[1](u)
    if not second:
        return y, t, g, None
    _, h = adjit.jvp(lambda *a: adjit.vjp(fn, *a)[1](u), xs, w)
    return y, t, g, h


def _group_body(cases):
    def body(all_args):
        return [_derivatives(c.fn, *args, reverse=not forward_only(c),
                             second=not first_order_only(c)) for c, args in zip(cases, all_args)]

    return body


def _run(body, args, jit: bool):
    """``body(*args)`` traced afresh, compiled or on the reference interpreter."""
    saved = config.jit
    config.jit = jit
    try:
        return adjit.jit(body)(*args)
    finally:
        config.jit = saved


def _case_args(c, dtype=np.float64, seed=0):
    xs = tuple(np.asarray(x, dtype) if np.ndim(x) else dtype(x) for x in c.inputs(seed))
    rng = np.random.default_rng(seed + 100)
    v = tuple(rng.standard_normal(np.shape(x)).astype(dtype) for x in xs)
    w = tuple(rng.standard_normal(np.shape(x)).astype(dtype) for x in xs)
    y = _run(lambda *a: c.fn(*a), xs, jit=False)
    u = rng.standard_normal(np.shape(y)).astype(dtype)
    return xs, v, u, w


def _compare(names, got, ref, rtol=RTOL, atol=ATOL):
    """Per case, the four results (f, jvp, vjp, hvp): same dtype, shape and values."""
    assert len(got) == len(ref)
    for name, g, r in zip(names, got, ref):
        for what, a, b in zip(["f", "jvp", "vjp", "hvp"], g, r):
            a, b = tree.leaves(a), tree.leaves(b)
            assert len(a) == len(b), f"{name} {what}"
            for x, y in zip(a, b):
                assert np.asarray(x).dtype == np.asarray(y).dtype, f"{name} {what} dtype"
                assert np.shape(x) == np.shape(y), f"{name} {what} shape"
                np.testing.assert_allclose(x, y, rtol=rtol, atol=atol,
                                           err_msg=f"{name}: {what} compiled != interpreted")


GROUPS = [CASES[i:i + GROUP] for i in range(0, len(CASES), GROUP)]


def run_group(cases, args, group_body):
    """(compiled, interpreted) results of ``group_body(cases)`` on ``args``, compiled as one
    kernel (at most one compilation); if it fails, each case alone names the culprit."""
    body = group_body(cases)
    ref = _run(body, (args,), jit=False)
    before = cache.cache_info()["compiles"]
    try:
        got = _run(body, (args,), jit=True)
    except Exception:
        for c, a in zip(cases, args):
            try:
                _run(group_body([c]), ([a],), jit=True)
            except Exception as exc:
                raise AssertionError(f"{c.name}: compiling failed: {exc}") from exc
        raise
    assert cache.cache_info()["compiles"] - before <= 1
    return got, ref


@pytest.mark.parametrize("cases", GROUPS, ids=[f"{g[0].name}..{g[-1].name}" for g in GROUPS])
def test_compiled_matches_interpreter(cases):
    got, ref = run_group(cases, [_case_args(c) for c in cases], _group_body)
    _compare([c.name for c in cases], got, ref)


# --------------------------------------------------------------------------- float32

FLOAT32_CASES = ["sin-(3,)", "exp-(2, 3)", "tanh-(3,)", "sqrt-(3,)", "erf",
                 "operators-(3, 1)-(4,)", "logaddexp-(3,)-(3,)", "sum-(3, 4)-{'axis': 0}"]


def test_float32_kernels():
    cases = [c for c in CASES if c.name in FLOAT32_CASES]
    assert len(cases) == len(FLOAT32_CASES)
    body = _group_body(cases)
    args32 = [_case_args(c, np.float32) for c in cases]
    args64 = [tree.tree_map(lambda a: np.asarray(a, np.float64), a) for a in args32]
    got32 = _run(body, (args32,), jit=True)
    ref64 = _run(body, (args64,), jit=False)
    for c, g32, r64 in zip(cases, got32, ref64):
        for what, a, r in zip(["f", "jvp", "vjp", "hvp"], g32, r64):
            for x, z in zip(tree.leaves(a), tree.leaves(r)):
                assert np.asarray(x).dtype == np.float32, f"{c.name} {what}"
                np.testing.assert_allclose(x, z, rtol=2e-5, atol=2e-5,
                                           err_msg=f"{c.name}: {what} float32 vs float64")


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("fun, good, bad", [
    (lambda x, y: x + y, (3, 3), (3, 5)),
    (lambda x, y: anp.sum(x * y), (4, 4), (4, 2)),
    (lambda x, y: x[1:] * y, (4, 3), (4, 4)),
    (lambda x, y: anp.concatenate([x, y]) * anp.arange(7.0), (3, 4), (4, 4)),
])
def test_inconsistent_shapes_raise(fun, good, bad):
    f = adjit.jit(fun)
    g = adjit.grad(lambda x, y: anp.sum(fun(x, y)))
    f(np.ones(good[0]), np.ones(good[1]))
    g(np.ones(good[0]), np.ones(good[1]))
    with pytest.raises(adjit.AdjitError):
        f(np.ones(bad[0]), np.ones(bad[1]))
    with pytest.raises(adjit.AdjitError):
        g(np.ones(bad[0]), np.ones(bad[1]))
    # The good shapes still work afterwards.
    f(np.ones(good[0]), np.ones(good[1]))


def test_inconsistent_matrix_shapes_raise():
    f = adjit.jit(lambda a, b: a @ b)
    assert f(np.ones((2, 3)), np.ones((3, 4))).shape == (2, 4)
    with pytest.raises(adjit.AdjitError):
        f(np.ones((2, 3)), np.ones((5, 4)))
    with pytest.raises(adjit.AdjitError):
        f(np.ones((2, 3)), np.ones(5))
    r = adjit.jit(lambda x: x.reshape(3, 2))
    assert r(np.ones(6)).shape == (3, 2)
    with pytest.raises(adjit.AdjitError):
        r(np.ones(8))


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADJIT_CACHE_DIR", str(tmp_path / "cache"))
    cache._reset_for_tests()
    yield
    cache._reset_for_tests()


def test_ten_sizes_one_compilation(fresh_cache):
    gf = adjit.grad(lambda x: anp.sum(x ** 2 + anp.sin(x)))
    before = adjit.cache_info()["compiles"]
    for n in range(2, 12):
        x = np.linspace(-1.0, 1.0, n)
        np.testing.assert_allclose(gf(x), 2 * x + np.cos(x), rtol=1e-13)
    assert adjit.cache_info()["compiles"] - before == 1


# --------------------------------------------------------------------------- layouts

LAYOUT_FUNS = {
    "value_and_grad": lambda: adjit.value_and_grad(lambda x: anp.sum(x ** 2 + anp.sin(x))),
    "matmul": lambda: adjit.grad(lambda x: anp.sum(anp.tanh(x @ x.T) * x[:, :1])),
    "reshape_cumsum": lambda: adjit.jit(lambda x: x.reshape(-1) * anp.cumsum(x.ravel())),
    "reverse_max": lambda: adjit.grad(lambda x: anp.sum(x[::-1] ** 2 * anp.max(x, axis=0))),
    "scatter_mean": lambda: adjit.jit(lambda x: x.at[0].add(1.0) * anp.mean(x, -1, True)),
}


def _read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


_BASE = np.arange(1.0, 25.0).reshape(4, 6) / 7.0
LAYOUTS = {
    "c": lambda: _BASE[:, :4].copy(),
    "column_slice": lambda: _BASE[:, 1:5],
    "step": lambda: _BASE[:, ::2],
    "negative_stride": lambda: _BASE[::-1, ::-1][:, :4],
    "fortran": lambda: np.asfortranarray(_BASE[:, :4]),
    "read_only": lambda: _read_only(_BASE[:, :4]),
    "zero_stride": lambda: np.broadcast_to(_BASE[:1, :4], (4, 4)),
}


@pytest.mark.parametrize("fname", LAYOUT_FUNS)
def test_layouts(fname):
    contiguous = LAYOUTS["c"]()
    saved = config.jit
    config.jit = False
    try:
        interpreted = LAYOUT_FUNS[fname]()
        expected = {k: interpreted(np.ascontiguousarray(make())) for k, make in LAYOUTS.items()}
    finally:
        config.jit = saved
    f = LAYOUT_FUNS[fname]()
    for name, make in LAYOUTS.items():
        x = make()
        x_before = x.copy()
        got = f(x)
        for a, b in zip(tree.leaves(got), tree.leaves(expected[name])):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"{fname} {name}")
        np.testing.assert_array_equal(x, x_before)  # inputs are never written
    assert contiguous.flags.c_contiguous


def test_zero_d_inputs():
    gf = adjit.grad(lambda x: anp.sum(x ** 2 + anp.sin(x)))
    for x in (np.array(0.7), np.float64(0.7), 0.7, np.array(0.7)[()]):
        g = gf(x)
        assert np.ndim(g) == 0
        np.testing.assert_allclose(g, 2 * 0.7 + np.cos(0.7), rtol=1e-14)
    f = adjit.jit(lambda x, y: x * y + anp.sin(y))
    y = np.arange(3.0)
    np.testing.assert_allclose(f(np.array(2.0), y), 2.0 * y + np.sin(y))
    np.testing.assert_allclose(f(np.array(2.0, np.float32), np.float32(1.5)),
                               np.float32(3.0) + np.sin(np.float32(1.5)), rtol=1e-6)
    vg = adjit.value_and_grad(lambda x: anp.sum(x * x))
    v, g = vg(np.array(3.0))
    assert (float(v), float(g)) == (9.0, 6.0)


def test_matrix_products_read_transposes_and_vectors_as_they_are(monkeypatch):
    """X.T feeding a product is BLAS's transposed view, a vector made a column a vector (gemv):
    no copy of X. The same column is also a left operand (an outer product), where it must be
    computed as a matrix: each product decides for itself."""
    def lsq(w, x, y):
        return anp.sum((x @ w - y) ** 2)

    rng = np.random.default_rng(4)
    w, x, y = rng.standard_normal(3), rng.standard_normal((5, 3)), rng.standard_normal(5)
    info = adjit.inspect(adjit.grad(lsq, argnums=(0, 1)), w, x, y)
    assert ").T, " in info.source
    compiled = adjit.grad(lsq, argnums=(0, 1))(w, x, y)
    monkeypatch.setattr(config, "jit", False)
    for got, want in zip(compiled, adjit.grad(lsq, argnums=(0, 1))(w, x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_inspect_shows_the_code_of_a_kernel_from_the_disk_cache(fresh_cache):
    """Numba keeps no LLVM IR or assembly for code it loads from its disk cache (it warns and
    returns invalid text): adjit.inspect compiles such a kernel afresh to show them."""
    g = adjit.grad(lambda x: anp.sum(anp.tanh(x) * x))
    x = np.linspace(-1.0, 1.0, 5)
    first = adjit.inspect(g, x)
    cache._reset_for_tests()  # as a new process would, the kernel is loaded from disk
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = adjit.inspect(g, x)
    assert adjit.cache_info()["disk_hits"] == 1 and adjit.cache_info()["compiles"] == 0
    for info in (first, again):
        assert "define " in info.llvm and "kernel" in info.llvm and "ret" in info.asm
    assert again.llvm.count("define ") == first.llvm.count("define ")
    # The copy is compiled as the kernel was (as a kernel: compat.skip_kernel_function_passes).
    assert machine_code(again.asm) == machine_code(first.asm)


def machine_code(asm: str) -> list[str]:
    """The instructions of an assembly listing, symbol and label names left out (a compilation
    numbers them afresh)."""
    return [re.sub(r"_ZN\S+|\.L\w+|\.const\S*", "S", line) for line in asm.splitlines()
            if line.startswith("\t") and not line.startswith("\t.")]


@pytest.mark.skipif(not re.match(r"x86_64|AMD64", platform.machine()),
                    reason="counts x86 division instructions")
def test_quotients_by_one_value_share_its_reciprocal():
    """The kernels' ``arcp`` flag: the forward and reverse sweeps divide by y five times per
    point; LLVM inverts y once and multiplies, as hand-written code would (fewer division
    instructions than the same kernel compiled without the flag); the values stay those of
    the interpreter to rounding."""

    def f(x, y):
        return x / y + anp.sin(x) / y + (x * x) / y

    g = adjit.vmap(adjit.grad(f, argnums=(0, 1)))
    x, y = np.linspace(0.5, 2.0, 37), np.linspace(1.0, 3.0, 37)
    source = adjit.inspect(g, x, y).source
    assert '"arcp"' in source

    def divisions(text: str, tag: str) -> int:
        namespace = {"__name__": "_adjit_kernel_" + tag * 16}
        exec(compile(text.replace("cache=True", "cache=False"), "<test kernel>", "exec"),
             namespace)
        kernel = namespace["kernel"]
        kernel(x, y)
        asm = kernel.inspect_asm(kernel.signatures[0])
        return sum(bool(re.fullmatch(r"v?div[sp]d", line.split()[0]))
                   for line in asm.splitlines() if line.startswith("\t"))

    assert divisions(source, "ar") < divisions(source.replace(', "arcp"', ""), "no")
    dx, dy = g(x, y)
    with pytest.MonkeyPatch.context() as patch:  # the reference interpreter
        patch.setattr(config, "jit", False)
        want = g(x, y)
    np.testing.assert_allclose(dx, want[0], rtol=1e-14)
    np.testing.assert_allclose(dy, want[1], rtol=1e-14)
    np.testing.assert_allclose(dx, (1.0 + np.cos(x) + 2.0 * x) / y, rtol=1e-13)
    np.testing.assert_allclose(dy, -(x + np.sin(x) + x * x) / y ** 2, rtol=1e-13)


def _y_then(y_uses):
    """f(x) = y_uses(exp(x)): exp(x) is stored for the nests after the row sums."""
    return lambda x: y_uses(anp.exp(x))


IN_PLACE = {
    # (function, how many values a later loop writes over an array it reads for the last time)
    "softmax": (_y_then(lambda y: y / anp.sum(y, axis=1, keepdims=True)), 1),
    "second value in place": (
        _y_then(lambda y: (y / anp.sum(y, axis=1, keepdims=True), y * 3.0)), 1),
    # exp(x) is read after the quotient's loop (so not written over there), reversed by it
    "read again afterwards": (_y_then(lambda y: (lambda z: z[::-1] * y + anp.sum(z))(
        y / anp.sum(y, axis=1, keepdims=True))), 1),
    "read reversed": (_y_then(lambda y: y / anp.sum(y, axis=1, keepdims=True) + y[::-1]), 0),
    "read transposed": (_y_then(lambda y: y / anp.sum(y, axis=0) + y.T.T[:, ::-1]), 0),
    "returned": (_y_then(lambda y: (y / anp.sum(y, axis=1, keepdims=True), y)), 0),
}


@pytest.mark.parametrize("name", IN_PLACE)
def test_values_written_in_place_of_an_array_read_for_the_last_time(name):
    """A loop nest writes a value over an array of the kernel's own that it reads for the
    last time, element by element at its own index; never over one read again after it,
    read at another index, or returned; the results stay the interpreter's."""
    f, count = IN_PLACE[name]
    x = np.random.default_rng(0).standard_normal((300, 7))
    jf = adjit.jit(f)
    source = adjit.inspect(jf, x).source
    assert source.count("# in place:") == count, source
    got = jf(x)
    with pytest.MonkeyPatch.context() as patch:  # the reference interpreter
        patch.setattr(config, "jit", False)
        want = adjit.jit(f)(x)
    for g, w in zip(tree.flatten(got)[0], tree.flatten(want)[0]):
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=0)
