"""adjit.numpy's shape functions (adjit/numpy/shaping.py) and einsum's ellipsis and sublist
forms: values and dtypes against NumPy (eagerly and traced), derivatives by check_grads to
second order in both modes, errors, and compiled equal to interpreted."""

from __future__ import annotations

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.config import config
from adjit.testing import check_grads

RNG = np.random.default_rng(0)
V = RNG.standard_normal(5)
M = RNG.standard_normal((3, 4))
S = RNG.standard_normal((4, 4))
T = RNG.standard_normal((2, 3, 4))
T4 = RNG.standard_normal((2, 3, 4, 5))
N = np.arange(12).reshape(3, 4)
F32 = M.astype(np.float32)
B = M > 0
V3, W3 = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
WITH_NONFINITE = np.array([1.0, np.nan, np.inf, -np.inf, -2.0])


@pytest.fixture(autouse=True)
def _interpreted(monkeypatch):
    # Values and derivatives with the reference interpreter; test_compiled_* compile.
    monkeypatch.setattr(config, "jit", False)


def _pair(name, *args, **kwargs):
    """(id, adjit function, NumPy function, args) for ``name`` in both namespaces."""
    return (name, lambda *a: getattr(anp, name)(*a, **kwargs),
            lambda *a: getattr(np, name)(*a, **kwargs), args)


VALUES = [
    _pair("split", T, 2, 2), _pair("split", T, [1, 3], -1), _pair("split", V, [2, 2, 9]),
    _pair("split", V, [-2]), _pair("split", M, [5, 1]), _pair("array_split", V, 3),
    _pair("array_split", T, 5, 1), _pair("array_split", N, [1], 1), _pair("hsplit", M, 2),
    _pair("hsplit", V, [1, 3]), _pair("vsplit", T, [1]), _pair("dsplit", T, 2),
    _pair("split", B, 2, 1),
    _pair("tril", S), _pair("tril", M, -1), _pair("tril", M, 2), _pair("triu", S),
    _pair("triu", T, 1), _pair("triu", N, -1), _pair("tril", V), _pair("triu", B),
    _pair("diag", V), _pair("diag", V, 2), _pair("diag", V, -1), _pair("diag", M),
    _pair("diag", M, 1), _pair("diag", M, -2), _pair("diag", M, 7), _pair("diag", N),
    _pair("diagonal", T), _pair("diagonal", T, 1, 1, 2), _pair("diagonal", T, -1, 2, 0),
    _pair("diagonal", T4, 0, -1, 1), _pair("diagonal", B),
    _pair("trace", S), _pair("trace", M, 1), _pair("trace", T, 0, 1, 2), _pair("trace", N),
    _pair("trace", B), _pair("trace", M, -5),
    _pair("roll", V, 2), _pair("roll", V, -7), _pair("roll", M, 1), _pair("roll", M, -1, 0),
    _pair("roll", T, (1, -2), (0, 2)), _pair("roll", T, 3, (1, 1)), _pair("roll", N, 0, 1),
    _pair("repeat", V, 2), _pair("repeat", M, 3, 1), _pair("repeat", M, [1, 0, 2], 0),
    _pair("repeat", T, [2], -1), _pair("repeat", N, 2), _pair("repeat", np.float64(2.5), 3),
    _pair("tile", V, 2), _pair("tile", M, (2, 1)), _pair("tile", V, (2, 1, 2)),
    _pair("tile", T, 2), _pair("tile", N, 0), _pair("tile", np.float64(1.5), (2, 3)),
    _pair("flip", V), _pair("flip", M, 0), _pair("flip", T, (0, 2)), _pair("flip", T, -1),
    _pair("flip", np.float64(3.0)), _pair("fliplr", M), _pair("flipud", N),
    _pair("rot90", M), _pair("rot90", M, 2), _pair("rot90", M, -1), _pair("rot90", M, 7),
    _pair("rot90", T, 1, (2, 0)), _pair("rot90", N, 0),
    _pair("kron", V, M), _pair("kron", M, S), _pair("kron", T, M), _pair("kron", N, M),
    _pair("kron", 2.0, V), _pair("kron", F32, F32),
    _pair("cross", V3, W3), _pair("cross", V3[0], W3), _pair("cross", V3[:, :2], W3[:, :2]),
    _pair("cross", V3[:, :2], W3), _pair("cross", V3.T, W3.T, axisa=0, axisb=0, axisc=0),
    _pair("cross", V3.T, W3, axisa=0), _pair("cross", V3.T, W3.T, axis=0),
    _pair("tensordot", T, T4[0]), _pair("tensordot", M, S, 1), _pair("tensordot", V, V, 0),
    _pair("tensordot", T, T4, ([0, 1], [0, 1])), _pair("tensordot", T, M, ((1, 2), (0, 1))),
    _pair("tensordot", T, M, (-1, 1)), _pair("tensordot", 2.0, 3.0, 0),
    _pair("tensordot", N, N, ([0], [0])),
    _pair("inner", 2.0, 3.0), _pair("inner", V, 2.0), _pair("inner", 2.0, M),
    _pair("inner", V, V), _pair("inner", M, M), _pair("inner", T, M), _pair("inner", M, V[:4]),
    _pair("deg2rad", V), _pair("rad2deg", M), _pair("degrees", F32), _pair("radians", N),
    _pair("deg2rad", 90), _pair("rad2deg", np.float32(1.0)),
    _pair("nan_to_num", WITH_NONFINITE), _pair("nan_to_num", WITH_NONFINITE.astype(np.float32)),
    _pair("nan_to_num", WITH_NONFINITE, nan=-1.0, posinf=9.0, neginf=-9.0), _pair(
        "nan_to_num", N), _pair("nan_to_num", np.float64(np.inf)),
    _pair("vstack", [V, V], dtype=np.float32), _pair("vstack", [N, M], dtype=np.float64),
    _pair("hstack", [V, V[:2]], dtype=np.float32), _pair("stack", [N, N], 1, dtype=np.float32),
    _pair("concatenate", [M, N], dtype=np.float32), _pair("concatenate", [M, T[0]], None),
    _pair("dstack", [M, M]), _pair("column_stack", [V, V]), _pair("atleast_2d", V),
    _pair("atleast_3d", M),
]
PADS = [
    (M, 1, {}), (M, ((1, 2), (0, 3)), {}), (V, (2, 3), {"constant_values": 1.5}),
    (M, 2, {"constant_values": ((1, 2), (3, 4))}), (N, 1, {"constant_values": 7.6}),
    (F32, 1, {"constant_values": 2.0}), (np.zeros((0, 2)), 1, {}),
]
for _mode in ("edge", "reflect", "symmetric", "wrap", "maximum", "minimum", "mean"):
    PADS += [(V, (2, 3), {"mode": _mode}), (M, ((1, 2), (3, 0)), {"mode": _mode}),
             (V, 12, {"mode": _mode}), (V[:1], 3, {"mode": _mode}), (N, 2, {"mode": _mode}),
             (T, ((0, 1), (2, 2), (1, 5)), {"mode": _mode})]
for _x, _w, _kw in PADS:
    VALUES.append((f"pad-{_kw}", lambda x, _w=_w, _kw=_kw: anp.pad(x, _w, **_kw),
                   lambda x, _w=_w, _kw=_kw: np.pad(x, _w, **_kw), (_x,)))
SELECTS = [
    ([V > 0, V < -1], [V, V * 2], 0), ([M > 0], [M], 1.5), ([N > 3, N > 6], [N, -N], -1),
    ([M > 0, M > 1], [1.0, 2.0], 3.0), ([F32 > 0], [F32], 0), ([V > 0], [2], 1.5),
    ([M > 0, V[:4] < 0], [M, V[:4]], np.float32(2.0)),
]
for _c, _ch, _d in SELECTS:
    VALUES.append(("select", lambda _c=_c, _ch=_ch, _d=_d: anp.select(_c, _ch, _d),
                   lambda _c=_c, _ch=_ch, _d=_d: np.select(_c, _ch, _d), ()))
R_C = [
    ("r_", lambda ns: ns.r_[V, 1.5, 0:3]), ("r_", lambda ns: ns.r_[F32[0], 2.0]),
    ("r_", lambda ns: ns.r_[1:2:5j, V]), ("r_", lambda ns: ns.r_[M, S[:1]]),
    ("r_", lambda ns: ns.r_["-1", M, S[:3]]), ("r_", lambda ns: ns.r_["0,2", V, V]),
    ("r_", lambda ns: ns.r_["0,2,0", V, V]), ("r_", lambda ns: ns.r_["1,3,1", M, M]),
    ("r_", lambda ns: ns.r_[N[0], 3]), ("r_", lambda ns: ns.r_[2, 3.5]),
    ("c_", lambda ns: ns.c_[V, V]), ("c_", lambda ns: ns.c_[M, N]),
    ("c_", lambda ns: ns.c_[V[:3], M]), ("c_", lambda ns: ns.c_[0:3, F32[:, 0]]),
]
for _name, _fn in R_C:
    VALUES.append((_name, lambda _fn=_fn: _fn(anp), lambda _fn=_fn: _fn(np), ()))


def _check_same(got, want):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            _check_same(g, w)
        return
    got = np.asarray(got)
    assert got.shape == want.shape and got.dtype == want.dtype, (got, want)
    np.testing.assert_allclose(got, want, rtol=1e-6 if want.dtype == np.float32 else 1e-12,
                               atol=1e-12)


def _is_array(a) -> bool:
    return isinstance(a, np.ndarray) or (
        isinstance(a, list) and all(isinstance(x, np.ndarray) for x in a))


@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
@pytest.mark.parametrize("name,fn,np_fn,args", VALUES, ids=[v[0] for v in VALUES])
def test_values_match_numpy(name, fn, np_fn, args):
    want = np_fn(*args)
    _check_same(fn(*args), want)  # on concrete arrays
    # Traced: the arrays (and lists of arrays) are inputs, the other arguments constants.
    traced = [i for i, a in enumerate(args) if _is_array(a)]

    def with_inputs(*xs):
        full = list(args)
        for i, x in zip(traced, xs):
            full[i] = x
        return fn(*full)

    _check_same(adjit.jit(with_inputs)(*[args[i] for i in traced]), want)


# --------------------------------------------------------------------------- derivatives

GRADS = [
    ("split", lambda x: anp.split(x, [1, 3], axis=1)[1] * anp.array_split(x, 2, 1)[0][:, :2],
     (M,)),
    ("hsplit_vsplit_dsplit", lambda x: anp.hsplit(x, 3)[2] + anp.vsplit(x, [1])[1][0]
     * anp.dsplit(x, 2)[0].sum(), (RNG.standard_normal((2, 3, 4)),)),
    ("tril_triu", lambda x: anp.tril(x, -1) * anp.triu(x, 1) + anp.tril(x) ** 2, (S,)),
    ("diag", lambda x, v: anp.diag(x, 1) * v[:3] + anp.diag(v, -1)[1:, :3].sum(0), (M, V)),
    ("diagonal_trace", lambda x: anp.diagonal(x, 1, 2, 1) * anp.trace(x, -1, 0, 2)[:2], (T,)),
    ("roll", lambda x: anp.roll(x, 2) * anp.roll(x, (-1, 2), (0, 1)), (M,)),
    ("repeat", lambda x: anp.repeat(x, 2, 1)[:, :4] * anp.repeat(x, [2, 0, 1], 0)[:, 0:1], (M,)),
    ("tile", lambda x: anp.tile(x, (2, 1, 2)) * 1.5, (M,)),
    ("flip_rot90", lambda x: anp.flip(x) * anp.rot90(anp.rot90(x, 3, (1, 0))), (M,)),
    ("kron", lambda x, y: anp.kron(x, y), (M[:2, :2], V[:3])),
    ("cross", lambda x, y: anp.cross(x, y) + anp.cross(x[:, :2], y[:, :2])[:, None], (V3, W3)),
    ("tensordot", lambda x, y: anp.tensordot(x, y, ([0, 2], [1, 0])),
     (T, RNG.standard_normal((4, 2)))),
    ("tensordot_outer", lambda x, y: anp.tensordot(x, y, 0), (V[:2], V[2:])),
    ("inner", lambda x, y: anp.inner(x, y) * anp.inner(x[0, 0, 0], y[0, 0]), (T, M)),
    ("r_c_", lambda x, y: anp.r_[x, 2.0, y] * anp.c_[x, y].sum(1).sum(), (V[:3], V[2:])),
    ("degrees", lambda x: anp.sin(anp.deg2rad(anp.rad2deg(x) * 3.0)) + anp.radians(x), (V,)),
    ("select", lambda x: anp.select([x > 1, x < -0.5], [x ** 2, anp.sin(x)], x * 3.0), (V,)),
    ("nan_to_num", lambda x: anp.nan_to_num(anp.log(x)) * x, (np.abs(V),)),
    ("stack_dtype", lambda x: anp.vstack([x, x * 2.0], dtype=np.float64) ** 2, (V,)),
]
for _mode in ("constant", "edge", "reflect", "symmetric", "wrap", "maximum", "mean"):
    GRADS.append((f"pad-{_mode}", lambda x, _m=_mode: anp.pad(x, ((1, 2), (3, 1)), mode=_m) ** 2,
                  (M,)))
GRADS.append(("pad-long", lambda x: anp.pad(anp.sin(x), 7, mode="reflect"), (V,)))
EINSUM_GRADS = [
    ("...ij,...jk->...ik", (T, RNG.standard_normal((2, 4, 2)))), ("...ii->...", (S[None],)),
    ("i...,i...->...", (M, M)), ("...j,j", (T, V[:4])),
]
for _spec, _ops in EINSUM_GRADS:
    GRADS.append((f"einsum-{_spec}", lambda *xs, _s=_spec: anp.einsum(_s, *xs), _ops))
GRADS.append(("einsum-sublist",
              lambda a, b: anp.einsum(a, [Ellipsis, 1, 2], b, [2, 3], [3, Ellipsis, 1]),
              (T, RNG.standard_normal((4, 2)))))


@pytest.mark.parametrize("name,fn,args", GRADS, ids=[g[0] for g in GRADS])
def test_grads(name, fn, args):
    check_grads(fn, args, order=2)


def test_logaddexp_std_unchanged_elsewhere():
    # The rewrites of logaddexp and std keep their derivatives away from the fixed points.
    check_grads(anp.logaddexp, (V, V[::-1].copy()), order=2)
    check_grads(lambda x: anp.std(x, axis=1, ddof=1), (M,), order=2)


# --------------------------------------------------------------------------- einsum forms

EINSUM_VALUES = [
    ("...ij,jk", (T, S)), ("...ij,...jk->...ik", (T, RNG.standard_normal((2, 4, 3)))),
    ("...ii->...i", (np.stack([S, S]),)), ("...", (T,)), ("i...->...", (T,)),
    ("...ij,...jk", (RNG.standard_normal((1, 3, 4)), RNG.standard_normal((2, 4, 2)))),
    ("...i,...i", (T, V[:4])), ("ij...,...", (M, np.ones(1))), ("i...j,j...k", (T, T.T)),
    ("ij...,jk...", (M, RNG.standard_normal((4, 2)))),
    ("...,...", (V, 2.0)),
]


@pytest.mark.parametrize("spec,ops", EINSUM_VALUES, ids=[s for s, _ in EINSUM_VALUES])
def test_einsum_ellipsis(spec, ops):
    np.testing.assert_allclose(anp.einsum(spec, *ops), np.einsum(spec, *ops), atol=1e-12)
    traced = adjit.jit(lambda *xs: anp.einsum(spec, *xs))(*ops)
    np.testing.assert_allclose(traced, np.einsum(spec, *ops), atol=1e-12)


SUBLISTS = [
    (T, [0, 1, 2], S, [2, 3], [0, 3, 1]), (T, [Ellipsis, 2], S, [2, 3]), (T, [0, 1, 2]),
    (T, [0, 1, 2], [2]), (S, [0, 0]), (V, [0], V, [0], []), (M, [5, 51], M, [7, 51]),
    (T, [0, Ellipsis], M, [Ellipsis], [Ellipsis, 0]),
]


@pytest.mark.parametrize("args", SUBLISTS, ids=range(len(SUBLISTS)))
def test_einsum_sublists(args):
    np.testing.assert_allclose(anp.einsum(*args), np.einsum(*args), atol=1e-12)


# --------------------------------------------------------------------------- errors

ERRORS = [
    (lambda: anp.split(V, 2), "equal division"), (lambda: anp.array_split(V, 0), "larger"),
    (lambda: anp.vsplit(V, 1), "2 or more"), (lambda: anp.dsplit(M, 1), "3 or more"),
    (lambda: anp.hsplit(np.float64(1.0), 1), "1 or more"), (lambda: anp.tril(2.0), "rank"),
    (lambda: anp.diag(T), "1- or 2-dimensional"), (lambda: anp.diagonal(M, 0, 1, 1), "same"),
    (lambda: anp.diagonal(V), "rank 2"), (lambda: anp.roll(M, 1, 2), "out of bounds"),
    (lambda: anp.repeat(V, [1, 2]), "repeats for an axis"),
    (lambda: anp.repeat(V, -1), "non-negative"), (lambda: anp.tile(V, -1), "negative"),
    (lambda: anp.rot90(M, 1, (0, 0)), "different"), (lambda: anp.rot90(M, 1, (0,)), "len"),
    (lambda: anp.tensordot(M, S, 3), "axes=3"), (lambda: anp.tensordot(M, M, 1), "mismatch"),
    (lambda: anp.tensordot(M, S, ([0, 1], [0])), "differ in length"),
    (lambda: anp.cross(V, V), "2 or 3"), (lambda: anp.r_["x", V], "directive"),
    (lambda: anp.r_[V, "0"], "first entry"), (lambda: anp.select([V], [V]), "boolean"),
    (lambda: anp.select([V > 0], []), "same length"), (lambda: anp.select([], []), "empty"),
    (lambda: anp.pad(V, 1, mode="linear_ramp"), "not supported"),
    (lambda: anp.pad(V, -1), "negative"), (lambda: anp.pad(M, (1, 2, 3)), "does not fit"),
    (lambda: anp.pad(V, 1, mode="reflect", reflect_type="odd"), "even"),
    (lambda: anp.pad(V, 1, mode="edge", constant_values=1), "unsupported keyword"),
    (lambda: anp.pad(np.zeros((0, 2)), 1, mode="edge"), "empty axis"),
    (lambda: anp.concatenate([M, N], dtype=np.int64), "cannot cast"),
    (lambda: anp.einsum(V, ["a"]), "sublist"),
    (lambda: anp.einsum("...ij->ji", T), "no '...'"),
    (lambda: adjit.jit(lambda r: anp.repeat(V, r))(np.array([1, 2, 1, 1, 1])), "concrete"),
]


@pytest.mark.parametrize("fn,message", ERRORS, ids=[m for _, m in ERRORS])
def test_errors(fn, message):
    with pytest.raises(adjit.AdjitError, match=message):
        fn()


def test_numpy_dispatch_on_traced_arrays():
    # np.tril(traced) and friends reach adjit.numpy through __array_function__.
    def f(x):
        return np.tril(x) + np.flip(x, 0) + np.roll(x, 1) + np.trace(x) + np.diag(np.diag(x))

    np.testing.assert_allclose(adjit.jit(f)(S), f(S))


BATCHED = [
    lambda x: anp.tril(x, 1), lambda x: anp.diagonal(x, 1), lambda x: anp.trace(x),
    lambda x: anp.roll(x, -1, 1), lambda x: anp.repeat(x, [1, 0, 2, 1], 1),
    lambda x: anp.tile(x, 2), lambda x: anp.rot90(x), lambda x: anp.kron(x, x[:2, :2]),
    lambda x: anp.tensordot(x, x, ([0], [1])), lambda x: anp.pad(x, (1, 2), mode="symmetric"),
    lambda x: anp.einsum("...j,j...", x, x), lambda x: anp.split(x, 2, 1)[1],
    lambda x: anp.select([x > 0], [x], -1.0), lambda x: anp.r_[x[0], 2.0],
]


@pytest.mark.parametrize("fn", BATCHED, ids=range(len(BATCHED)))
def test_vmap_matches_a_loop(fn):
    xs = RNG.standard_normal((3, 4, 4))
    np.testing.assert_allclose(adjit.vmap(fn)(xs), np.stack([fn(x) for x in xs]), atol=1e-12)


@pytest.mark.parametrize("index", [np.s_[3:1], np.s_[5:1], np.s_[:, 3:1], np.s_[-1:-3],
                                   np.s_[2:0:2]], ids=str)
def test_empty_slices_traced(index):
    # A slice whose stop is before its start is empty (it had a negative length), and the
    # transpose of an empty strided slice pads back to the input's length.
    assert adjit.jit(lambda x: x[index])(M).shape == M[index].shape
    assert adjit.grad(lambda x: anp.sum(x[index]) + anp.sum(x))(M).shape == M.shape


def test_array_methods():
    def f(x):
        return x.repeat(2, axis=0)[::2] + x.diagonal()

    np.testing.assert_allclose(adjit.jit(f)(S), f(S))


# --------------------------------------------------------------------------- compiled


def _everything(x, v):
    parts = anp.split(x, 2, axis=1)
    return (anp.sum(anp.tril(x, -1) * anp.rot90(x, 2)) + anp.trace(x) * anp.sum(parts[0])
            + anp.sum(anp.kron(anp.diag(v[:2]), x[:2, :2]))
            + anp.sum(anp.pad(x, 2, mode="reflect") * anp.pad(x, 2, mode="edge"))
            + anp.sum(anp.tensordot(x, x, 1) * anp.tile(v[:4], (4, 1)))
            + anp.sum(anp.roll(v, 2) * anp.repeat(v[:1], 5) * anp.deg2rad(v))
            + anp.sum(anp.einsum("...i,i...->...", x, x)) + anp.sum(anp.r_[v, 1.0])
            + anp.sum(anp.cross(x[:, :3], x[:, 1:]))
            + anp.sum(anp.select([v > 0], [v], 0.5) * anp.nan_to_num(anp.log(v))))


def _few(x):
    return (anp.tril(x) + anp.roll(x, 1, 0) + anp.pad(x, 1, mode="reflect")[2:, :-2]
            + anp.tensordot(x, anp.flip(x), 1) + anp.diag(anp.diagonal(x)))


def test_compiled_equals_interpreted(monkeypatch):
    expected = adjit.jit(_few)(S)
    monkeypatch.setattr(config, "jit", True)
    np.testing.assert_allclose(adjit.jit(_few)(S), expected, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # log(v < 0): nan_to_num
def test_compiled_gradient_equals_interpreted(monkeypatch):
    # One kernel for the value and the gradient of all of them: compiling is the slow part.
    value, grads = adjit.value_and_grad(_everything, argnums=(0, 1))(S, V)
    monkeypatch.setattr(config, "jit", True)
    got_value, got_grads = adjit.value_and_grad(_everything, argnums=(0, 1))(S, V)
    np.testing.assert_allclose(got_value, value, rtol=1e-12)
    for got, want in zip(got_grads, grads):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)
