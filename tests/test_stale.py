"""No stale results: a value a function reads from outside its arguments (a closed-over number,
a rebound global, a global array changed in place or rebound) changes between calls, and every
public transformation, and compositions of two, must give what a fresh trace gives (a newly
built transform of a newly defined function with the new values) and the closed form.

Every function is ``f(x) = s * x * x`` where ``s`` is read from outside: 1.0 first, then 3.0.
Kernels are few: scalar functions, one vector shape (3,), and the same graphs in every
scenario that reads a number (so a fresh trace is a hit in the kernel cache).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.config import config

X0, T0 = 2.0, 1.0                 # the point, and the tangent or cotangent
XS = np.array([0.5, 1.0, 2.0])    # the vmapped points
S0, S1 = 1.0, 3.0                 # what s is before and after the change

# --------------------------------------------------------------------------- the functions

SOURCES = {
    "plain": """
        def f(x):
            return S * x * x
        """,
    "custom_jvp": """
        @adjit.custom_jvp
        def f(x):
            return S * x * x

        @f.defjvp
        def f_jvp(primals, tangents):
            (x,), (t,) = primals, tangents
            return f(x), 2.0 * S * x * t
        """,
    "custom_vjp": """
        @adjit.custom_vjp
        def f(x):
            return S * x * x

        def f_fwd(x):
            return f(x), x

        def f_bwd(x, ct):
            return (2.0 * S * x * ct,)

        f.defvjp(f_fwd, f_bwd)
        """,
}


def _namespace(**values):
    """A module's globals, for functions made by exec()."""
    return {"__name__": "user_module", "adjit": adjit, "anp": anp, "np": np, **values}


def _closure_number(kind, s):
    """f closes over a number c; returns f and a function rebinding c."""
    src = ("def factory(c0):\n    c = c0\n"
           + textwrap.indent(textwrap.dedent(SOURCES[kind]).replace("S", "c"), "    ")
           + "\n    def set_c(value):\n        nonlocal c\n        c = value\n"
           + "    return f, set_c\n")
    ns = _namespace()
    exec(src, ns)
    return ns["factory"](s)


def _global_number(kind, s):
    """f reads a global number K (its module is a fresh namespace); rebinding K."""
    ns = _namespace(K=s)
    exec(textwrap.dedent(SOURCES[kind]).replace("S", "K"), ns)
    return ns["f"], lambda value: ns.__setitem__("K", value)


def _array(s):
    return np.full(4, s / 4)  # sums to s


def _global_array_in_place(kind, s):
    """f reads a global array X (s = sum(X), computed by the graph); X changed in place."""
    ns = _namespace(X=_array(s))
    exec(textwrap.dedent(SOURCES[kind]).replace("S", "anp.sum(X)"), ns)

    def set_x(value):
        ns["X"][:] = _array(value)

    return ns["f"], set_x


def _global_array_rebound(kind, s):
    """As above, X rebound to a new array of the same shape."""
    ns = _namespace(X=_array(s))
    exec(textwrap.dedent(SOURCES[kind]).replace("S", "anp.sum(X)"), ns)
    return ns["f"], lambda value: ns.__setitem__("X", _array(value))


def _global_array_read_by_numpy(kind, s):
    """f reads a global array with plain NumPy while tracing (np.sum on the concrete array, a
    number baked into the graph); X changed in place."""
    ns = _namespace(X=_array(s))
    exec(textwrap.dedent(SOURCES[kind]).replace("S", "np.sum(X)"), ns)

    def set_x(value):
        ns["X"][:] = _array(value)

    return ns["f"], set_x


SCENARIOS = {
    "closure number": _closure_number,
    "global number rebound": _global_number,
    "global array in place": _global_array_in_place,
    "global array rebound": _global_array_rebound,
    "global array read by NumPy": _global_array_read_by_numpy,
}

# --------------------------------------------------------------------------- the transforms

# name -> (kinds of f, build(f) -> t (built once, before the change), run(t, f) -> numbers,
#          closed form of run at s)
CASES = {
    "jit": (lambda f: adjit.jit(f), lambda t, f: t(X0), lambda s: s * X0**2),
    "grad": (lambda f: adjit.grad(f), lambda t, f: t(X0), lambda s: 2 * s * X0),
    "value_and_grad": (lambda f: adjit.value_and_grad(f), lambda t, f: t(X0),
                       lambda s: (s * X0**2, 2 * s * X0)),
    "jvp": (lambda f: None, lambda t, f: adjit.jvp(f, (X0,), (T0,)),
            lambda s: (s * X0**2, 2 * s * X0 * T0)),
    "vjp": (lambda f: None, lambda t, f: _vjp(f), lambda s: (s * X0**2, 2 * s * X0 * T0)),
    "linearize": (lambda f: None, lambda t, f: _linearize(f),
                  lambda s: (s * X0**2, 2 * s * X0 * T0)),
    "vmap": (lambda f: adjit.vmap(f), lambda t, f: t(XS), lambda s: s * XS**2),
    "jacfwd": (lambda f: adjit.jacfwd(f), lambda t, f: t(X0), lambda s: 2 * s * X0),
    "jacrev": (lambda f: adjit.jacrev(f), lambda t, f: t(X0), lambda s: 2 * s * X0),
    "hessian": (lambda f: adjit.hessian(f), lambda t, f: t(X0), lambda s: 2 * s),
    # compositions of two
    "jit(grad)": (lambda f: adjit.jit(adjit.grad(f)), lambda t, f: t(X0), lambda s: 2 * s * X0),
    "grad(jit)": (lambda f: adjit.grad(adjit.jit(f)), lambda t, f: t(X0), lambda s: 2 * s * X0),
    "vmap(grad)": (lambda f: adjit.vmap(adjit.grad(f)), lambda t, f: t(XS),
                   lambda s: 2 * s * XS),
    "grad(grad)": (lambda f: adjit.grad(adjit.grad(f)), lambda t, f: t(X0), lambda s: 2 * s),
    "jacfwd(jit)": (lambda f: adjit.jacfwd(adjit.jit(f)), lambda t, f: t(X0),
                    lambda s: 2 * s * X0),
    "jvp(grad)": (lambda f: adjit.grad(f), lambda t, f: adjit.jvp(t, (X0,), (T0,)),
                  lambda s: (2 * s * X0, 2 * s * T0)),
    "vjp(jit)": (lambda f: adjit.jit(f), lambda t, f: _vjp(t),
                 lambda s: (s * X0**2, 2 * s * X0 * T0)),
    "linearize(grad)": (lambda f: adjit.grad(f), lambda t, f: _linearize(t),
                        lambda s: (2 * s * X0, 2 * s * T0)),
    "jit(vmap)": (lambda f: adjit.jit(adjit.vmap(f)), lambda t, f: t(XS), lambda s: s * XS**2),
    "jit(value_and_grad)": (lambda f: adjit.jit(adjit.value_and_grad(f)), lambda t, f: t(X0),
                            lambda s: (s * X0**2, 2 * s * X0)),
}
# The transforms custom rules are run under (they are what reads the rules).
CUSTOM_CASES = ("grad", "jvp", "jit(grad)", "vjp")


def _vjp(f):
    y, f_vjp = adjit.vjp(f, X0)
    return y, f_vjp(T0)[0]


def _linearize(f):
    y, f_jvp = adjit.linearize(f, X0)
    return y, f_jvp(T0)


def _check(what, actual, expected):
    actual = actual if isinstance(actual, tuple) else (actual,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(actual) == len(expected), what
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(e, np.float64),
                                   rtol=1e-12, atol=1e-12, err_msg=what)


def _stale_case(scenario, kind, case):
    build, run, closed = CASES[case]
    f, set_value = SCENARIOS[scenario](kind, S0)
    t = build(f)
    _check("before the change", run(t, f), closed(S0))
    set_value(S1)
    after = run(t, f)
    _check("after the change, against the closed form", after, closed(S1))
    fresh_f, _ = SCENARIOS[scenario](kind, S1)
    fresh = run(build(fresh_f), fresh_f)
    _check("after the change, against a fresh trace", after, fresh)
    set_value(S0)  # and back: the first graph's values again
    _check("changed back", run(t, f), closed(S0))


MATRIX = ([(s, "plain", c) for s in SCENARIOS for c in CASES]
          + [(s, k, c) for s in SCENARIOS for k in ("custom_jvp", "custom_vjp")
             for c in CUSTOM_CASES])


@pytest.mark.parametrize("scenario, kind, case", MATRIX)
def test_no_stale_result(scenario, kind, case):
    _stale_case(scenario, kind, case)


# --------------------------------------------------------------------------- the example


def test_linearize_and_vjp_of_a_changed_closure():
    c = 1.0

    def f(x):
        return c * x * x

    out, f_jvp = adjit.linearize(f, 2.0)
    assert (out, f_jvp(1.0)) == (4.0, 4.0)
    c = 3.0
    out, f_jvp = adjit.linearize(f, 2.0)
    assert (out, f_jvp(1.0)) == (12.0, 12.0)
    c = 5.0
    y, f_vjp = adjit.vjp(f, 2.0)
    assert (y, f_vjp(1.0)) == (20.0, (20.0,))
    # vjp and linearize never share a staged function, nor do two options
    from adjit.dispatch import call_cache
    assert len({id(s) for s in call_cache[f].values()}) == len(call_cache[f]) == 4


# --------------------------------------------------------------------------- free arrays as inputs

W = np.array([1.0, 2.0, 3.0])
traces: list = []


def _sum_w(x):
    traces.append(1)
    return anp.sum(W) * x


def _kinds(entry):
    return sorted(r.kind for r in entry.staged._free.reads)


def test_free_array_is_an_input_read_at_each_call():
    global W
    traces.clear()
    f = adjit.jit(_sum_w)
    assert f(1.0) == 6.0 and len(traces) == 1
    assert _kinds(f) == ["id", "input"]  # the list traces, and W: no copy of W is kept
    W[:] = [2.0, 2.0, 2.0]  # in place: read afresh, no new trace
    assert f(1.0) == 6.0 and len(traces) == 1
    old = W
    W = np.array([1.0, 0.0, 0.0])  # rebound to an array of the same kind: no new trace
    assert f(1.0) == 1.0 and len(traces) == 1
    # What the kernel is specialised on changed (shape, dtype, layout, writability): a new
    # trace each time.
    for new, expected in [(np.ones(4), 4.0), (np.ones(3, np.float32), 3.0),
                          (np.arange(6.0)[::2], 6.0), (old, 6.0)]:
        W = new
        n = len(traces)
        assert f(1.0) == expected and len(traces) == n + 1
    W.flags.writeable = False
    assert f(1.0) == 6.0 and len(traces) == 6
    W = np.array([1.0, 2.0, 3.0])


def test_free_array_rebound_is_not_kept_alive():
    import gc
    import weakref

    ns = _namespace(X=np.ones(3))
    exec("def f(x):\n    return anp.sum(X) * x\n", ns)
    f = adjit.grad(ns["f"])
    assert f(2.0) == 3.0
    old = weakref.ref(ns["X"])
    ns["X"] = np.full(3, 2.0)
    assert f(2.0) == 6.0
    gc.collect()
    assert old() is None  # nothing of adjit's holds the first array


def test_free_array_gone_is_a_name_error():
    ns = _namespace(X=np.ones(3))
    exec("def f(x):\n    return anp.sum(X * x)\n", ns)
    f = adjit.jit(ns["f"])
    assert f(np.ones(3)) == 3.0
    del ns["X"]
    with pytest.raises(NameError):
        f(np.ones(3))


def test_free_array_also_read_by_a_view_is_compared():
    """X and a NumPy view of it (X.T computed while tracing) are both constants of the graph:
    the view would keep reading the old X if X were rebound, so X is compared by identity
    and content, not read as an input."""
    ns = _namespace(X=np.arange(6.0).reshape(2, 3))
    exec("def f(x):\n    return anp.sum(X @ x) + anp.sum(X.T[0])\n", ns)
    f = adjit.jit(ns["f"])
    x = np.ones(3)
    assert f(x) == 15.0 + 3.0
    assert _kinds(f) == ["array"]
    ns["X"] = np.ones((2, 3))
    assert f(x) == 6.0 + 2.0


def test_free_array_also_computed_from_by_numpy_is_compared():
    """The graph reads a, and NumPy computed np.sin(a) while tracing (another constant): a
    stays compared by content, so changing it in place is seen in both places."""
    a = np.ones(3)
    f = adjit.jit(lambda x: x * a + np.sin(a))
    np.testing.assert_allclose(f(np.ones(3)), 1 + np.sin(1.0))
    assert _kinds(f) == ["array"]
    a[:] = 5.0
    np.testing.assert_allclose(f(np.ones(3)), 5 + np.sin(5.0))


@pytest.mark.parametrize("read", ["np.sum(X)", "X[0]", "X.max()"])
def test_free_array_also_reduced_by_numpy_is_compared(read):
    """The graph reads X, and NumPy computed a scalar from it while tracing (a NumPy scalar
    made into a literal): X stays compared by content, so changing it in place is seen."""
    ns = _namespace(X=np.ones(3))
    exec(f"def f(x):\n    return anp.sum(X * x) * {read}\n", ns)
    scalar = {"np.sum(X)": 6.0, "X[0]": 2.0, "X.max()": 2.0}[read]  # once X is all 2.0
    for t, expected in ((adjit.jit(ns["f"]), 6.0 * scalar),
                        (adjit.grad(ns["f"]), 2.0 * scalar * np.ones(3))):
        ns["X"][:] = 1.0
        t(np.ones(3))
        assert _kinds(t) == ["array"]
        ns["X"][:] = 2.0
        np.testing.assert_allclose(t(np.ones(3)), expected)


@pytest.mark.parametrize("case", ["jit", "grad", "value_and_grad", "vmap", "jacfwd", "jacrev",
                                  "hessian", "jit(grad)", "vmap(grad)", "grad(grad)"])
def test_transforms_read_free_arrays_as_inputs(case):
    """What the transforms add to a graph does not stop a free array being an input."""
    f, _ = _global_array_in_place("plain", S0)
    build, run, _ = CASES[case]
    t = build(f)
    run(t, f)
    assert _kinds(t) == ["input"]


def test_array_read_only_by_numpy_keeps_a_copy():
    ns = _namespace(X=np.ones(3))
    exec("def f(x):\n    return np.sum(X) * x\n", ns)
    f = adjit.jit(ns["f"])
    assert f(2.0) == 6.0
    assert _kinds(f) == ["array"]
    ns["X"][0] = 4.0
    assert f(2.0) == 12.0


def test_kept_array_compared_bit_for_bit():
    """A kept copy is compared bit for bit: NaNs that stay do not force a new trace, and a
    change that equal values would miss (0.0 to -0.0, which 1/X tells apart) is seen."""
    calls = []
    ns = _namespace(X=np.array([np.nan, 0.0, 2.0]), calls=calls)
    exec("def f(x):\n    calls.append(1)\n    return x * anp.sum(1.0 / X[1:]) + np.sum(X[1:])\n",
         ns)
    f = adjit.jit(ns["f"])
    assert f(1.0) == np.inf + 2.0
    assert f(1.0) == np.inf + 2.0 and len(calls) == 1  # NaN == NaN, bit for bit
    assert _kinds(f) == ["array", "id"]  # X, and the list calls
    ns["X"][1] = -0.0
    assert f(1.0) == -np.inf and len(calls) == 2


def test_aliased_free_arrays():
    """Two names for one array: one is read as an input, the other compared by identity and
    content, so rebinding either is seen."""
    a = np.ones(3)
    ns = _namespace(A=a, B=a)
    exec("def f(x):\n    return anp.sum(A * x) + 10.0 * anp.sum(B * x)\n", ns)
    f = adjit.jit(ns["f"])
    x = np.ones(3)
    assert f(x) == 33.0
    ns["B"] = np.zeros(3)
    assert f(x) == 3.0
    ns["B"] = ns["A"]
    ns["A"] = np.zeros(3)
    assert f(x) == 30.0


def test_free_array_in_a_tuple():
    ns = _namespace(P=(np.ones(3), 2.0))
    exec("def f(x):\n    return anp.sum(P[0] * x) * P[1]\n", ns)
    f = adjit.jit(ns["f"])
    x = np.ones(3)
    assert f(x) == 6.0
    ns["P"][0][:] = 2.0
    assert f(x) == 12.0
    ns["P"] = (np.ones(3), 1.0)
    assert f(x) == 3.0


def test_custom_rule_defined_again():
    @adjit.custom_jvp
    def f(x):
        return x * x

    f.defjvp(lambda p, t: (f(p[0]), 2.0 * p[0] * t[0]))
    df = adjit.grad(f)
    assert df(3.0) == 6.0
    f.defjvp(lambda p, t: (f(p[0]), 0.0 * t[0]))  # a new rule: a new trace
    assert df(3.0) == 0.0


def test_function_made_by_exec_without_a_module_name():
    ns = {"K": 1.0}
    exec("def f(x):\n    return K * x\n", ns)
    f = adjit.jit(ns["f"])
    assert f(2.0) == 2.0
    ns["K"] = 3.0
    assert f(2.0) == 6.0


def test_same_result_interpreted(monkeypatch):
    monkeypatch.setattr(config, "jit", False)
    for case in ("grad", "vjp", "linearize", "vmap(grad)"):
        _stale_case("global array in place", "plain", case)
        _stale_case("closure number", "plain", case)
