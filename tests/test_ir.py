"""The IR: the printer's text, the type checker, and symbolic lengths."""

from __future__ import annotations

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.config import config
from adjit.ir.check import GraphTypeError, check_graph
from adjit.ir.graph import Dim, Eqn, Graph, ShapedArray, Var
from adjit.ir.interpret import interpret


def _text(fun, *args):
    return str(adjit.make_graph(fun)(*args))


# --------------------------------------------------------------------------- printer


def test_print_scalar_function():
    assert _text(lambda x: x ** 2 + anp.sin(x), 1.0) == """\
{ lambda ; a:f64[] .
    b:f64[] = integer_pow[y=2] a
    c:f64[] = sin a
    d:f64[] = add b c
  in (d) }"""


def test_print_broadcast_and_reduce():
    assert _text(lambda x, y: anp.sum(x * y, axis=0), np.ones((3, 4)), np.ones(4)) == """\
{ lambda ; a:f64[n0,n1], b:f64[n1] .
    c:f64[n0,n1] = broadcast_in_dim[shape=(n0,n1), broadcast_dimensions=(1,)] b
    d:f64[n0,n1] = mul a c
    e:f64[n1] = reduce_sum[axes=(0,)] d
  in (e) }"""


def test_print_literals_and_select():
    assert _text(lambda x: anp.where(x > 0, x, 0.5), np.ones(3, np.float32)) == """\
{ lambda ; a:f32[n0] .
    b:f32[n0] = broadcast_in_dim[shape=(n0,), broadcast_dimensions=()] 0.0:f32
    c:bool[n0] = gt a b
    d:f32[n0] = broadcast_in_dim[shape=(n0,), broadcast_dimensions=()] 0.5:f32
    e:f32[n0] = select c a d
  in (e) }"""


def test_print_shifted_symbols():
    assert _text(lambda x: x[1:] - x[:-1], np.ones(5)) == """\
{ lambda ; a:f64[n0] .
    b:f64[n0-1] = slice[start_indices=(1,), limit_indices=(n0,), strides=(1,)] a
    c:f64[n0-1] = slice[start_indices=(0,), limit_indices=(n0-1,), strides=(1,)] a
    d:f64[n0-1] = sub b c
  in (d) }"""


def test_print_captured_constant_and_several_outputs():
    # The captured array's length 3 meets the input's symbol: the input is fixed to 3.
    c = np.arange(3.0)
    assert _text(lambda x: (x * c, x), np.ones(3)) == """\
{ lambda a:f64[3] ; b:f64[3] .
    c:f64[3] = mul b a
  in (c, b) }"""


def test_print_gradient_graph():
    assert _text(adjit.grad(lambda x: anp.sum(anp.sin(x))), np.ones(4)) == """\
{ lambda ; a:f64[n0] .
    b:f64[n0] = sin a
    c:f64[n0] = cos a
    d:f64[] = reduce_sum[axes=(0,)] b
    e:f64[n0] = broadcast_in_dim[shape=(n0,), broadcast_dimensions=()] 1.0:f64
    f:f64[n0] = mul e c
  in (f) }"""


# --------------------------------------------------------------------------- type checker


def test_graphs_are_checked_in_tests():
    assert config.check_graphs


def _sin_graph():
    x = Var(ShapedArray((3,), np.float64))
    y = Var(ShapedArray((3,), np.float64))
    return x, y, Graph([], [x], [Eqn("sin", [x], y, {})], [y])


def test_check_accepts_a_good_graph():
    check_graph(_sin_graph()[2])
    check_graph(adjit.make_graph(adjit.grad(lambda x: anp.sum(anp.exp(x) * x)))(np.ones(3)))


def test_check_rejects_a_wrong_output_type():
    x, _, graph = _sin_graph()
    bad = Var(ShapedArray((3,), np.float32))
    broken = graph.replace(eqns=[Eqn("sin", [x], bad, {})], outvars=[bad])
    with pytest.raises(GraphTypeError, match="sin"):
        check_graph(broken)
    bad_shape = Var(ShapedArray((4,), np.float64))
    with pytest.raises(GraphTypeError, match="its rule says"):
        check_graph(graph.replace(eqns=[Eqn("sin", [x], bad_shape, {})], outvars=[bad_shape]))


def test_check_rejects_use_before_definition():
    x, y, graph = _sin_graph()
    z = Var(ShapedArray((3,), np.float64))
    broken = graph.replace(eqns=[Eqn("cos", [y], z, {}), *graph.eqns], outvars=[z])
    with pytest.raises(GraphTypeError, match="before it is defined"):
        check_graph(broken)


def test_check_rejects_double_assignment_and_undefined_output():
    x, y, graph = _sin_graph()
    with pytest.raises(GraphTypeError, match="assigned twice"):
        check_graph(graph.replace(eqns=[*graph.eqns, *graph.eqns]))
    stray = Var(ShapedArray((3,), np.float64))
    with pytest.raises(GraphTypeError):
        check_graph(graph.replace(outvars=[stray]))


def test_check_rejects_mismatched_elementwise_operands():
    a = Var(ShapedArray((3,), np.float64))
    b = Var(ShapedArray((4,), np.float64))
    out = Var(ShapedArray((3,), np.float64))
    with pytest.raises(adjit.AdjitError):
        check_graph(Graph([], [a, b], [Eqn("add", [a, b], out, {})], [out]))


# --------------------------------------------------------------------------- symbolic lengths


def test_sum_of_array_is_symbolic():
    graph = adjit.make_graph(anp.sum)(np.ones(7))
    assert "a:f64[n0]" in str(graph)
    assert graph.symbols() == ["n0"]
    assert isinstance(graph.invars[0].aval.shape[0], Dim)


def test_lengths_0_and_1_stay_literal():
    assert "f64[1,n0]" in _text(lambda x: x * 2.0, np.ones((1, 5)))
    assert "f64[0]" in _text(lambda x: x * 2.0, np.ones(0))


def test_equal_lengths_share_a_symbol():
    graph = adjit.make_graph(lambda x, y: x @ y)(np.ones((3, 4)), np.ones((4, 3)))
    assert [str(v.aval) for v in graph.invars] == ["f64[n0,n1]", "f64[n1,n0]"]


def test_one_graph_serves_several_sizes():
    fun = lambda x, y: anp.sum(anp.sin(x) * y[None, :], axis=1) + x[:, 0]
    graph = adjit.make_graph(fun)(np.ones((3, 4)), np.ones(4))
    for m, n in [(3, 4), (2, 9), (6, 2)]:
        x, y = np.random.default_rng(m).standard_normal((m, n)), np.arange(float(n))
        (out,) = interpret(graph, [], [x, y])
        np.testing.assert_allclose(out, np.sum(np.sin(x) * y, axis=1) + x[:, 0])


def test_one_gradient_graph_serves_several_sizes():
    fun = adjit.grad(lambda x: anp.sum(x[1:] * x[:-1]))
    graph = adjit.make_graph(fun)(np.ones(5))
    assert graph.symbols() == ["n0"]
    for n in (2, 3, 8):
        x = np.arange(1.0, n + 1)
        (g,) = interpret(graph, [], [x])
        expected = np.zeros(n)
        expected[1:] += x[:-1]
        expected[:-1] += x[1:]
        np.testing.assert_allclose(g, expected)


def test_inconsistent_lengths_are_an_error():
    graph = adjit.make_graph(lambda x, y: x + y)(np.ones(3), np.ones(3))
    with pytest.raises(adjit.AdjitValueError, match="inconsistent lengths"):
        interpret(graph, [], [np.ones(3), np.ones(4)])


def test_reading_a_length_fixes_it():
    # Python code that needs the number gets it, and the graph is specialized to it.
    unrolled = lambda x: sum(x[i] * i for i in range(x.shape[0]))
    graph = adjit.make_graph(unrolled)(np.ones(4))
    assert "a:f64[4]" in str(graph) and "n0" not in str(graph)
    f = adjit.jit(unrolled)
    assert f(np.ones(4)) == 6.0
    assert f(np.ones(6)) == 15.0


def test_a_length_used_as_a_number_stays_symbolic():
    graph = adjit.make_graph(lambda x: x * x.shape[0])(np.ones(4))
    assert "shape_size[dims=(n0,)" in str(graph)
    f = adjit.jit(lambda x: x * x.shape[0])
    np.testing.assert_allclose(f(np.ones(4)), 4.0)
    np.testing.assert_allclose(f(np.ones(6)), 6.0)


def test_mean_divides_by_the_length_at_run_time():
    graph = adjit.make_graph(anp.mean)(np.ones(4))
    assert "shape_size" in str(graph)
    for n in (2, 5):
        (out,) = interpret(graph, [], [np.arange(float(n))])
        assert out == np.mean(np.arange(float(n)))


# --------------------------------------------------------------------------- pickling


def test_a_graph_pickles_and_its_variables_are_new_in_the_receiving_process():
    # adjit.dask ships optimized graphs to workers pickled; a graph carrying a graph (a scan's
    # body) keeps its structure, and unpickled variables get fresh ids (passes key dicts by
    # id, so one colliding with a variable made in the receiving process would be wrong).
    import pickle

    from adjit.passes import optimize

    def f(x):
        return adjit.scan(lambda c, xi: (c * anp.sin(xi), c), 1.0, x)[0]

    graph = optimize(adjit.make_graph(adjit.grad(f))(np.linspace(0.1, 1.0, 5)))
    copy = pickle.loads(pickle.dumps(graph))
    assert str(copy) == str(graph)
    ids = lambda g: {v.id for e in g.eqns for v in e.outs} | {v.id for v in g.invars}
    assert not ids(copy) & ids(graph)
    x = np.linspace(0.1, 1.0, 5)
    np.testing.assert_array_equal(interpret(copy, [], [x])[0], interpret(graph, [], [x])[0])
