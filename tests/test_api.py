"""The public API: the README example's values, result types, composition, argnums, has_aux,
decorators, pytrees and jit."""

from __future__ import annotations

import math

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.primitives.registry import abstract_rules


def f(x):
    return x**2 + anp.sin(x)


# --------------------------------------------------------------------------- the README example


def test_readme_grad():
    assert adjit.grad(f)(0.0) == 1.0                       # 2x + cos x
    assert adjit.grad(adjit.grad(f))(0.0) == 2.0           # 2 - sin x
    assert adjit.grad(adjit.grad(adjit.grad(f)))(0.0) == -1.0   # -cos x
    np.testing.assert_array_equal(
        adjit.grad(lambda x: x[0]**2 + x[1]**3)(np.array([1.0, 2.0])), [2.0, 12.0])


def test_readme_value_and_grad():
    val, g = adjit.value_and_grad(f)(0.0)
    assert (val, g) == (0.0, 1.0)


def test_readme_decorator():
    @adjit.grad
    def h(x):
        return anp.tanh(x) * x

    x = 0.7
    assert math.isclose(h(x), math.tanh(x) + x * (1 - math.tanh(x) ** 2), rel_tol=1e-12)


def test_readme_argnums_tuple():
    gx, gy = adjit.grad(lambda x, y: x * anp.exp(y), argnums=(0, 1))(2.0, 0.5)
    assert math.isclose(gx, math.exp(0.5), rel_tol=1e-12)
    assert math.isclose(gy, 2.0 * math.exp(0.5), rel_tol=1e-12)


def test_readme_jvp_vjp():
    y, t = adjit.jvp(f, (1.0,), (1.0,))
    assert math.isclose(y, 1.0 + math.sin(1.0), rel_tol=1e-12)
    assert math.isclose(t, 2.0 + math.cos(1.0), rel_tol=1e-12)
    y, f_vjp = adjit.vjp(f, 1.0)
    assert math.isclose(y, 1.0 + math.sin(1.0), rel_tol=1e-12)
    (ct,) = f_vjp(1.0)
    assert math.isclose(ct, 2.0 + math.cos(1.0), rel_tol=1e-12)


def test_readme_make_graph():
    text = str(adjit.make_graph(f)(1.0))
    assert text.startswith("{ lambda ; a:f64[] .")
    assert "sin a" in text and "integer_pow[y=2] a" in text


# --------------------------------------------------------------------------- result types


def test_scalar_results_are_numpy_float64():
    for out in [adjit.grad(f)(0.0), adjit.grad(adjit.grad(f))(0.0), adjit.jit(f)(1.0),
                *adjit.value_and_grad(f)(0.5), *adjit.jvp(f, (1.0,), (1.0,)),
                adjit.vjp(f, 1.0)[0], adjit.vjp(f, 1.0)[1](1.0)[0]]:
        assert type(out) is np.float64, type(out)


def test_array_results_are_arrays():
    x = np.array([1.0, 2.0])
    g = adjit.grad(lambda x: anp.sum(x ** 2))(x)
    assert isinstance(g, np.ndarray) and g.dtype == np.float64 and g.shape == (2,)
    out = adjit.jit(lambda x: x * 2)(x)
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    _, t = adjit.jvp(lambda x: x * 3.0, (x,), (x,))
    assert isinstance(t, np.ndarray)


def test_float32_stays_float32():
    x32 = np.array([1.0, 2.0, 3.0], np.float32)
    assert adjit.jit(lambda x: x * 2.0)(x32).dtype == np.float32
    assert adjit.jit(lambda x: 2 * x + 1.5 - x / 3.0)(x32).dtype == np.float32
    assert adjit.grad(lambda x: anp.sum(anp.sin(x) * 2.0))(x32).dtype == np.float32
    assert type(adjit.grad(lambda x: x * x * 2.0)(np.float32(1.5))) is np.float32
    y, t = adjit.jvp(lambda x: x * 2.0, (x32,), (x32,))
    assert y.dtype == t.dtype == np.float32
    assert adjit.vjp(lambda x: anp.exp(x), x32)[1](x32)[0].dtype == np.float32
    # Mixing with a float64 array promotes, as in NumPy.
    assert adjit.jit(lambda x: x * np.ones(3))(x32).dtype == np.float64


def test_python_scalars_are_float64():
    assert adjit.jit(lambda x: x * 1.0)(2).dtype == np.float64
    assert type(adjit.grad(lambda x: x * 3.0)(2.0)) is np.float64


# --------------------------------------------------------------------------- composition


def test_jvp_of_grad():
    y, t = adjit.jvp(adjit.grad(f), (0.0,), (1.0,))
    assert (y, t) == (1.0, 2.0)


def test_grad_of_function_calling_vjp():
    def g(x):
        _, f_vjp = adjit.vjp(f, x)
        return f_vjp(1.0)[0]        # f'(x) = 2x + cos x

    assert adjit.grad(g)(0.0) == 2.0
    assert math.isclose(adjit.grad(g)(1.0), 2.0 - math.sin(1.0), rel_tol=1e-12)


def test_grad_of_function_calling_jvp():
    g = lambda x: adjit.jvp(f, (x,), (1.0,))[1]
    assert math.isclose(adjit.grad(g)(0.3), 2.0 - math.sin(0.3), rel_tol=1e-12)


def test_grad_closing_over_outer_traced_value():
    def outer(x):
        # d/dy (x y^2) at y = x is 2x^2, whose derivative is 4x.
        return adjit.grad(lambda y: x * y ** 2)(x)

    assert adjit.grad(outer)(1.5) == 6.0
    assert adjit.grad(adjit.grad(outer))(1.5) == 4.0


def test_composition_is_one_graph_of_primitives():
    graph = adjit.make_graph(adjit.grad(adjit.grad(f)))(1.0)
    prims = {e.prim for e in graph.eqns}
    assert prims and prims <= set(abstract_rules)
    assert "sin" in prims  # the second derivative of sin x is -sin x


def test_jit_of_grad_and_grad_of_jit():
    assert adjit.jit(adjit.grad(f))(0.0) == 1.0
    assert adjit.grad(adjit.jit(f))(0.0) == 1.0
    assert adjit.grad(adjit.jit(adjit.grad(f)))(0.0) == 2.0


def test_hessian_vector_product():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    fq = lambda x: 0.5 * x @ (A @ x)
    v = np.array([1.0, -1.0])
    _, hvp = adjit.jvp(adjit.grad(fq), (np.array([0.3, 0.2]),), (v,))
    np.testing.assert_allclose(hvp, A @ v)


# --------------------------------------------------------------------------- argnums, has_aux


def g3(x, y, z):
    return x * y ** 2 * z ** 3


# At x=1, y=2, z=3: d/dx = y^2 z^3, d/dy = 2xyz^3, d/dz = 3xy^2z^2.
G3_EXACT = {0: 4.0 * 27.0, 1: 2 * 2.0 * 27.0, 2: 3 * 4.0 * 9.0}


@pytest.mark.parametrize("argnums", [0, 1, 2, -1, -3, (0, 2), (2, 0), (-1,), (1, -3)])
def test_argnums(argnums):
    g = adjit.grad(g3, argnums=argnums)(1.0, 2.0, 3.0)
    if isinstance(argnums, int):
        assert g == G3_EXACT[argnums % 3]
    else:
        assert isinstance(g, tuple) and g == tuple(G3_EXACT[i % 3] for i in argnums)


def test_argnums_leaves_other_args_undifferentiated():
    # An integer argument outside argnums is fine.
    assert adjit.grad(lambda x, n: x ** 2 * n, argnums=0)(3.0, 2) == 12.0


def test_has_aux():
    def loss(x, y):
        return x * y, {"sum": x + y, "tag": (x, 1.0)}

    g, aux = adjit.grad(loss, has_aux=True)(2.0, 3.0)
    assert g == 3.0
    assert aux["sum"] == 5.0 and aux["tag"] == (2.0, 1.0)
    (val, aux), (gx, gy) = adjit.value_and_grad(loss, argnums=(0, 1), has_aux=True)(2.0, 3.0)
    assert (val, gx, gy) == (6.0, 3.0, 2.0) and aux["sum"] == 5.0
    y, f_vjp, aux = adjit.vjp(lambda x: (x ** 2, x + 1.0), 3.0, has_aux=True)
    assert (y, aux, f_vjp(1.0)) == (9.0, 4.0, (6.0,))


def test_decorator_forms():
    @adjit.grad
    def a(x):
        return x ** 3

    @adjit.grad(argnums=1)
    def b(x, y):
        return x * y ** 3

    @adjit.value_and_grad
    def c(x):
        return x ** 3

    @adjit.value_and_grad(argnums=(0, 1), has_aux=True)
    def d(x, y):
        return x * y, x - y

    @adjit.grad(has_aux=True)
    def e(x):
        return x ** 2, x

    assert a(2.0) == 12.0
    assert b(2.0, 1.0) == 6.0
    assert c(2.0) == (8.0, 12.0)
    assert d(2.0, 3.0) == ((6.0, -1.0), (3.0, 2.0))
    assert e(3.0) == (6.0, 3.0)
    assert a.__name__ == "a"


def test_target_keyword():
    f = lambda x: x ** 3  # noqa: E731
    assert adjit.jit(f, target="cpu")(2.0) == 8.0
    assert adjit.grad(f, target="cpu")(2.0) == 12.0
    assert adjit.value_and_grad(f, target="cpu")(2.0) == (8.0, 12.0)
    assert adjit.jvp(f, (2.0,), (1.0,), target="cpu") == (8.0, 12.0)
    y, f_vjp = adjit.vjp(f, 2.0, target="cpu")
    assert (y, f_vjp(1.0)) == (8.0, (12.0,))
    y, f_jvp = adjit.linearize(f, 2.0, target="cpu")
    assert (y, f_jvp(1.0)) == (8.0, 12.0)
    np.testing.assert_allclose(adjit.vmap(f, target="cpu")(np.array([1.0, 2.0])), [1.0, 8.0])
    assert adjit.jacfwd(f, target="cpu")(2.0) == 12.0
    assert adjit.jacrev(f, target="cpu")(2.0) == 12.0
    assert adjit.hessian(f, target="cpu")(2.0) == 12.0

    @adjit.jit(target="cpu")
    def g(x):
        return x * 2.0

    assert g(1.0) == 2.0 and g.__name__ == "g"
    with pytest.raises(adjit.AdjitValueError, match="'cpu'"):
        adjit.jit(f, target="tpu")


def test_options_never_share_a_staged_function():
    from adjit.dispatch import call_cache

    def f(x):
        return x ** 2

    adjit.jvp(f, (1.0,), (1.0,))
    adjit.vjp(f, 1.0)[1](1.0)
    adjit.linearize(f, 1.0)[1](1.0)
    adjit.vjp(lambda x: (f(x), x), 1.0, has_aux=True)
    adjit.jvp(f, (1.0,), (1.0,), parallel=True)
    keys = set(call_cache[f])
    assert keys == {("jvp", "cpu", False), ("vjp", False, "cpu", False),
                    ("vjp.backward", False, "cpu", False), ("linearize", "cpu", False),
                    ("linearize.tangents", "cpu", False), ("jvp", "cpu", True)}
    assert len({id(s) for s in call_cache[f].values()}) == len(keys)


# --------------------------------------------------------------------------- pytrees


def test_grad_of_dict_tuple_list():
    params = {"w": np.array([1.0, 2.0]), "b": (0.5, [np.array([3.0])])}

    def loss(p):
        return anp.sum(p["w"] ** 2) * p["b"][0] + anp.sum(p["b"][1][0])

    g = adjit.grad(loss)(params)
    assert set(g) == {"w", "b"} and isinstance(g["b"], tuple) and isinstance(g["b"][1], list)
    np.testing.assert_allclose(g["w"], 2 * params["w"] * 0.5)
    assert g["b"][0] == 5.0
    np.testing.assert_allclose(g["b"][1][0], [1.0])


def test_grad_of_list_and_tuple_args():
    g = adjit.grad(lambda xs, t: anp.sum(xs[0] * xs[1]) * t[0])([np.ones(2), np.arange(2.0)],
                                                                (2.0,))
    assert isinstance(g, list)
    np.testing.assert_allclose(g[0], [0.0, 2.0])
    np.testing.assert_allclose(g[1], [2.0, 2.0])


def test_jvp_and_jit_pytrees():
    out = adjit.jit(lambda p: {"s": p[0] + p[1], "d": p[0] - p[1]})((1.0, 2.0))
    assert out == {"s": 3.0, "d": -1.0}
    y, t = adjit.jvp(lambda p: p["a"] * p["b"], ({"a": 2.0, "b": 3.0},), ({"a": 1.0, "b": 0.0},))
    assert (y, t) == (6.0, 3.0)


# --------------------------------------------------------------------------- jit


def test_jit_values_and_cache():
    calls = []

    def body(x):
        calls.append(1)
        return anp.sum(anp.sin(x) * x)

    fj = adjit.jit(body)
    for n in (3, 5, 8):
        x = np.linspace(0.0, 1.0, n)
        assert math.isclose(fj(x), float(np.sum(np.sin(x) * x)), rel_tol=1e-12)
    # One trace serves every length of the same dtype and rank.
    assert len(calls) == 1
    fj(np.ones((2, 2)))
    assert len(calls) == 2


def test_jit_shape_specialized_graph_is_not_reused_for_other_shapes():
    # Reading a length in Python fixes it in the graph; another length retraces.
    fj = adjit.jit(lambda x: x * x.shape[0])
    np.testing.assert_allclose(fj(np.ones(3)), 3 * np.ones(3))
    np.testing.assert_allclose(fj(np.ones(4)), 4 * np.ones(4))
    fa = adjit.jit(anp.add)
    assert fa(np.ones((3, 1)), np.ones(4)).shape == (3, 4)
    assert fa(np.ones((2, 3)), np.ones(3)).shape == (2, 3)


def test_grad_serves_several_sizes():
    gf = adjit.grad(lambda x: anp.sum(x ** 3))
    for n in (2, 3, 7):
        x = np.arange(1.0, n + 1)
        np.testing.assert_allclose(gf(x), 3 * x ** 2)


def test_numpy_functions_trace_through_protocols():
    # Code written with plain numpy traces through __array_ufunc__ / __array_function__.
    g = adjit.grad(lambda x: np.sum(np.sin(x) * np.exp(x)))(np.array([0.0, 1.0]))
    x = np.array([0.0, 1.0])
    np.testing.assert_allclose(g, np.exp(x) * (np.sin(x) + np.cos(x)))


def test_tracer_array_attributes():
    seen = {}

    def body(x):
        seen["shape"], seen["ndim"], seen["dtype"] = x.shape, x.ndim, x.dtype
        return (x.T @ x).sum() + x.mean() + x.max() + x.min()

    x = np.arange(6.0).reshape(2, 3)
    out = adjit.jit(body)(x)
    assert seen["ndim"] == 2 and seen["dtype"] == np.float64 and len(seen["shape"]) == 2
    assert math.isclose(out, float((x.T @ x).sum() + x.mean() + x.max() + x.min()))
