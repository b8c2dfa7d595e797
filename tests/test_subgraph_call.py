"""Equations carrying graphs, with several outputs, through every stage: a test-only call
primitive (``test_call``, registered here with ``adjit.control.call.defcall``) is printed,
type-checked, optimized (DCE inside and across the boundary, CSE, simplification), run by the
interpreter, differentiated in both modes to second order, batched and compiled."""

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.config import config
from adjit.control.call import defcall
from adjit.ir import rules
from adjit.ir.check import GraphTypeError, check_graph
from adjit.ir.graph import Var, subgraphs
from adjit.passes.cse import cse
from adjit.passes.dce import dce
from adjit.passes.simplify import simplify
from adjit.testing import check_grads
from adjit.trace import bind, get_aval, trace_closed


@pytest.fixture(scope="module", autouse=True)
def test_call_primitive():
    """Registered for this module's tests only: the other tests check that every primitive
    in the tables has a case, a description and a lowering."""
    defcall("test_call")
    yield
    for table in (rules.abstract_rules, rules.impl_rules, rules.jvp_rules,
                  rules.transpose_rules, rules.batching_rules, rules.partial_eval_rules,
                  rules.dce_rules, rules.prim_kinds):
        del table["test_call"]
    rules.multiple_results.discard("test_call")
    rules.linear_prims.discard("test_call")


def two_outputs(x, y):
    """``(sin(x) * y, x * y * 1.0 + cos(x))`` computed by one test_call equation."""
    def body(a, b):
        return [anp.sin(a) * b, a * b * 1.0 + anp.cos(a)]

    graph = trace_closed(body, [get_aval(x), get_aval(y)])
    return bind("test_call", x, y, body=graph)


def f(x, y):
    u, v = two_outputs(x, y)
    return anp.sum(u * v) + anp.sum(anp.tanh(v))


def only_first(x, y):
    u, _ = two_outputs(x, y)
    return u


X = np.array([0.3, -1.2, 2.0])
Y = np.array([1.5, 0.4, -0.7])


def reference(x, y):
    u = np.sin(x) * y
    v = x * y + np.cos(x)
    return np.sum(u * v) + np.sum(np.tanh(v))


def test_printed_with_the_body_indented():
    text = str(adjit.make_graph(only_first)(1.0, 2.0))
    assert text == """\
{ lambda ; a:f64[], b:f64[] .
    k:f64[], l:f64[] = test_call[body=
        { lambda ; c:f64[], d:f64[] .
            e:f64[] = sin c
            f:f64[] = mul e d
            g:f64[] = mul c d
            h:f64[] = mul g 1.0:f64
            i:f64[] = cos c
            j:f64[] = add h i
          in (f, j) }] a b
  in (k) }"""


def test_type_checked_inside_the_body():
    graph = adjit.make_graph(f)(X, Y)
    check_graph(graph)
    eqn = next(e for e in graph.eqns if e.prim == "test_call")
    (body,) = subgraphs(eqn)
    bad_out = Var(body.outvars[0].aval.update(dtype=np.float32))
    broken_body = body.replace(eqns=[*body.eqns[:-1], body.eqns[-1].replace(outs=(bad_out,))],
                               outvars=[body.outvars[0], bad_out])
    broken = graph.replace(eqns=[e if e is not eqn else e.replace(
        params={"body": broken_body}) for e in graph.eqns])
    with pytest.raises(GraphTypeError):
        check_graph(broken)


def test_dce_across_the_boundary_cse_and_simplify_inside():
    graph = adjit.make_graph(only_first)(X, Y)
    (eqn,) = [e for e in dce(graph).eqns if e.prim == "test_call"]
    (body,) = subgraphs(eqn)
    # Only u = sin(x) * y is read: the call keeps one output, its body two equations.
    assert len(eqn.outs) == 1 and [e.prim for e in body.eqns] == ["sin", "mul"]
    # y * 1.0 inside the body goes; two copies of a call become one.
    g = adjit.make_graph(lambda x, y: two_outputs(x, y)[1] + two_outputs(x, y)[1])(X, Y)
    optimized = dce(cse(simplify(g)))
    calls = [e for e in optimized.eqns if e.prim == "test_call"]
    assert len(calls) == 1
    assert [e.prim for e in subgraphs(calls[0])[0].eqns] == ["mul", "cos", "add"]


def test_interpreter_and_compiled_values():
    expected = reference(X, Y)
    config.update("jit", False)
    try:
        interpreted = adjit.jit(f)(X, Y)
    finally:
        config.update("jit", True)
    np.testing.assert_allclose(interpreted, expected, rtol=1e-12)
    np.testing.assert_allclose(adjit.jit(f)(X, Y), expected, rtol=1e-12)


def test_derivatives_both_modes_second_order():
    check_grads(f, (X, Y), order=2)
    grad = adjit.grad(f, argnums=(0, 1))(X, Y)
    eps = 1e-6
    for k, arg in enumerate((X, Y)):
        numeric = []
        for i in range(arg.size):
            step = np.zeros_like(arg)
            step[i] = eps
            args_p = [X, Y]
            args_m = [X, Y]
            args_p[k], args_m[k] = arg + step, arg - step
            numeric.append((reference(*args_p) - reference(*args_m)) / (2 * eps))
        np.testing.assert_allclose(grad[k], numeric, rtol=1e-6, atol=1e-8)


def test_reverse_mode_transposes_only_the_linear_part():
    # The gradient graph keeps calls: the known part of the JVP's call (primal outputs and
    # residuals) and the transpose of its linear part; no MissingRuleError on the way.
    graph = adjit.make_graph(adjit.grad(f))(X, Y)
    calls = [e for e in graph.eqns if e.prim == "test_call"]
    assert len(calls) == 2
    known, transposed = calls
    assert len(known.outs) > 2  # outputs and residuals
    assert {e.prim for e in subgraphs(transposed)[0].eqns} <= {"mul", "add", "neg",
                                                              "broadcast_in_dim"}


def test_batched_equals_a_loop():
    xs = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    ys = np.linspace(0.5, 2.0, 12).reshape(4, 3)
    batched = adjit.vmap(f)(xs, ys)
    np.testing.assert_allclose(batched, [reference(x, y) for x, y in zip(xs, ys)], rtol=1e-12)
    per_example = adjit.vmap(adjit.grad(f), in_axes=(0, None))(xs, Y)
    for x, g in zip(xs, per_example):
        np.testing.assert_allclose(g, adjit.grad(f)(x, Y), rtol=1e-12)
