"""The optimization passes, one at a time (golden text of a graph before and after each), every
rewrite rule of the simplifier, the pipeline, and fusion (the loop count of a kernel)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.backend.numba_cpu.codegen import RUNNING_NEST_MIN
from adjit.backend.numba_cpu.runner import CompiledGraph
from adjit.config import config
from adjit.passes import PIPELINE, fusion, optimize
from adjit.passes.cse import cse
from adjit.passes.dce import dce
from adjit.passes.fold import fold_constants
from adjit.passes.fusion import LoopNest, fuse
from adjit.passes.simplify import RULES, simplify
from adjit.primitives import elementwise as ew
from adjit.primitives import structural as st


def _graph(fun, *args):
    return adjit.make_graph(fun)(*args)


def _before_after(run, fun, *args):
    graph = _graph(fun, *args)
    return str(graph), str(run(graph))


# --------------------------------------------------------------------------- the named passes


def test_pipeline_names():
    names = [name for name, _ in PIPELINE]
    order = [names.index(n) for n in ["dce", "fold_constants", "simplify", "cse"]]
    assert order == sorted(order)
    assert names[-1] == "dce"


def test_dce():
    before, after = _before_after(dce, lambda x: (anp.sin(x), anp.cos(x))[0] * 2.0, 1.0)
    assert before == """\
{ lambda ; a:f64[] .
    b:f64[] = sin a
    c:f64[] = cos a
    d:f64[] = mul b 2.0:f64
  in (d) }"""
    assert after == """\
{ lambda ; a:f64[] .
    b:f64[] = sin a
    c:f64[] = mul b 2.0:f64
  in (c) }"""


def test_fold_constants():
    before, after = _before_after(fold_constants,
                                  lambda x: x * (anp.sin(anp.asarray(2.0)) + 1.0), 1.0)
    assert before == """\
{ lambda ; a:f64[] .
    b:f64[] = sin 2.0:f64
    c:f64[] = add b 1.0:f64
    d:f64[] = mul a c
  in (d) }"""
    assert after == """\
{ lambda ; a:f64[] .
    b:f64[] = mul a 1.9092974268256817:f64
  in (b) }"""


def test_fold_keeps_symbolic_lengths():
    # A mean's 1/n is read from the runtime shape, never folded into the graph.
    graph = optimize(_graph(anp.mean, np.ones(4)))
    assert "shape_size" in str(graph)


def test_cse():
    before, after = _before_after(
        cse, lambda x: anp.sin(x) * anp.cos(x) + anp.sin(x) * anp.cos(x), 1.0)
    assert before == """\
{ lambda ; a:f64[] .
    b:f64[] = sin a
    c:f64[] = cos a
    d:f64[] = mul b c
    e:f64[] = sin a
    f:f64[] = cos a
    g:f64[] = mul e f
    h:f64[] = add d g
  in (h) }"""
    assert after == """\
{ lambda ; a:f64[] .
    b:f64[] = sin a
    c:f64[] = cos a
    d:f64[] = mul b c
    e:f64[] = add d d
  in (e) }"""


def test_cse_merges_commutative_operands_in_either_order():
    before, after = _before_after(cse, lambda x, y: x * y + y * x - (x + y) * (y + x), 1.0, 2.0)
    assert before.count(" mul ") == 3 and before.count(" add ") == 3
    assert after == """\
{ lambda ; a:f64[], b:f64[] .
    c:f64[] = mul a b
    d:f64[] = add c c
    e:f64[] = add a b
    f:f64[] = mul e e
    g:f64[] = sub d f
  in (g) }"""
    # sub is not commutative: x - y and y - x stay two equations
    assert str(cse(_graph(lambda x, y: (x - y) * (y - x), 1.0, 2.0))).count(" sub ") == 2


def test_cse_distinguishes_params():
    graph = cse(_graph(lambda x: anp.sum(x, axis=0) + anp.sum(x, axis=1), np.ones((3, 3))))
    assert str(graph).count("reduce_sum") == 2


def test_simplify_and_full_pipeline():
    before, after = _before_after(simplify, lambda x: (x * 1.0 + 0.0) * anp.negative(-x), 1.0)
    assert before == """\
{ lambda ; a:f64[] .
    b:f64[] = mul a 1.0:f64
    c:f64[] = add b 0.0:f64
    d:f64[] = neg a
    e:f64[] = neg d
    f:f64[] = mul c e
  in (f) }"""
    # simplify drops the `neg` its rewrites left unread (its rules count live readers).
    assert after == """\
{ lambda ; a:f64[] .
    b:f64[] = integer_pow[y=2] a
  in (b) }"""
    trail = []
    optimize(_graph(lambda x: (x * 1.0 + 0.0) * anp.negative(-x), 1.0), trail)
    assert [name for name, _ in trail] == [name for name, _ in PIPELINE]
    assert str(trail[-1][1]) == """\
{ lambda ; a:f64[] .
    b:f64[] = integer_pow[y=2] a
  in (b) }"""


# --------------------------------------------------------------------------- each rewrite rule

# (rule, function, argument, the equations left after simplify + dce)
REWRITES = [
    ("mul", "x * 1 -> x", lambda x: x * 1.0, 1.0, []),
    ("mul", "1 * x -> x", lambda x: 1.0 * x, 1.0, []),
    ("mul", "x * broadcast(1) -> x", lambda x: x * anp.ones(3), np.ones(3), []),
    ("add", "x + 0 -> x", lambda x: x + 0.0, 1.0, []),
    ("add", "0 + x -> x", lambda x: 0.0 + x, 1.0, []),
    ("sub", "x - 0 -> x", lambda x: x - 0.0, 1.0, []),
    ("div", "x / 1 -> x", lambda x: x / 1.0, 1.0, []),
    ("neg", "-(-x) -> x", lambda x: anp.negative(-x), 1.0, []),
    ("integer_pow", "x ** 1 -> x", lambda x: ew.integer_pow(x, y=1), 1.0, []),
    ("mul", "x * x -> x ** 2", lambda x: x * x, 1.0, ["integer_pow"]),
    ("select", "select(p, x, x) -> x", lambda x: anp.where(x > 0, x, x), 1.0, []),
    ("stop_gradient", "stop_gradient(x) -> x", lambda x: adjit.stop_gradient(x) * x, 1.0,
     ["integer_pow"]),
    # the transposes of a vector's slices, summed (lengths 1: known, not symbolic)
    ("add", "pad(a) + pad(b) side by side -> pad(concatenate(a, b))",
     lambda x: st.pad(x, (0,), (3,), (0,)) + st.pad(2.0 * x, (1,), (2,), (0,)), np.ones(1),
     ["broadcast_in_dim", "mul", "concatenate", "pad"]),
    ("add", "pad(a) + pad(b) tiling the whole -> concatenate(a, b)",
     lambda x: st.pad(x, (0, 0), (0, 1), (0, 0)) + st.pad(-x, (0, 1), (0, 0), (0, 0)),
     np.ones((1, 1)), ["neg", "concatenate"]),
    ("concatenate", "concatenate(concatenate(a, b), c) -> concatenate(a, b, c)",
     lambda x: anp.concatenate([anp.concatenate([x, 2.0 * x]), x]), np.arange(2.0),
     ["broadcast_in_dim", "mul", "concatenate"]),
    # the operand read transposed is read in its source
    ("transpose", "(x @ y)^T -> y^T @ x^T",
     lambda x: anp.transpose(anp.matmul(anp.transpose(x, (0, 2, 1)), 2.0 * x), (0, 2, 1)),
     np.arange(12.0).reshape(2, 3, 2), ["broadcast_in_dim", "mul", "transpose", "matmul"]),
    # a sum over a product's rows, through a sum and a negation: one row times the matrix
    ("reduce_sum", "sum_i -(x @ y + z)[i] -> -((sum_i x[i]) @ y + sum_i z[i])",
     lambda x: anp.sum(-(anp.matmul(x, x[:3] * 2.0) + x), axis=0),
     np.arange(12.0).reshape(4, 3) / 7.0,
     ["slice", "broadcast_in_dim", "mul", "reduce_sum", "reshape", "matmul", "reshape",
      "reduce_sum", "add", "neg"]),
    # ... over a batch of products' columns: matrices times a vector
    ("reduce_sum", "sum_j (x @ y)[:, j] -> x @ sum_j y[:, j]",
     lambda x: anp.sum(anp.matmul(x, anp.exp(x)), axis=2),
     np.arange(12.0).reshape(3, 2, 2) / 7.0,
     ["exp", "reduce_sum", "reshape", "matmul", "reshape"]),
    # ... read through a transpose (of a negation: (x @ y)^T is rewritten first otherwise)
    ("reduce_sum", "sum_i (-(x @ y))^T[:, i] -> -(sum_i x[i]) @ y",
     lambda x: anp.sum(anp.transpose(-anp.matmul(x, anp.exp(x))), axis=1),
     np.arange(9.0).reshape(3, 3) / 7.0,
     ["exp", "reduce_sum", "reshape", "matmul", "reshape", "neg"]),
    # a factor the same along the summed axis is taken out: one product per sum
    ("reduce_sum", "sum_i y[i] * a -> (sum_i y[i]) * a",
     lambda x: anp.sum(anp.exp(x) * x[0], axis=0), np.arange(12.0).reshape(4, 3) / 7.0,
     ["exp", "slice", "reshape", "reduce_sum", "mul"]),
    # ... a divisor, broadcast from a length-1 axis along the summed one, transposed (as AD
    # and the layout pass write it)
    ("reduce_sum", "sum_j y[:, j] / a^T[:, 0] -> (sum_j y[:, j]) / a",
     lambda x: anp.sum(anp.exp(x) / anp.transpose(st.broadcast_in_dim(
         anp.transpose(x[:, 1:2]), (x.shape[1], x.shape[0]), (0, 1))), axis=1),
     np.arange(1.0, 13.0).reshape(4, 3) / 7.0,
     ["exp", "slice", "transpose", "reshape", "reduce_sum", "div"]),
    # a sum of a transpose sums the source, so that CSE sees one sum in either layout
    ("reduce_sum", "sum_i (x^T)[i] + sum_j x[:, j] -> 2 sum_j x[:, j]",
     lambda x: anp.sum(anp.transpose(anp.exp(x)), axis=0) + anp.sum(anp.exp(x), axis=1),
     np.arange(6.0).reshape(2, 3) / 7.0, ["exp", "reduce_sum", "exp", "reduce_sum", "add"]),
    ("reduce_sum", "sum_j (x^T)[:, :, j] -> sum_j x[j]^T",
     lambda x: anp.sum(anp.transpose(anp.exp(x), (2, 1, 0)), axis=2),
     np.arange(24.0).reshape(2, 3, 4) / 7.0, ["exp", "reduce_sum", "transpose"]),
]


@pytest.mark.parametrize("prim, identity, fun, arg, left", REWRITES,
                         ids=[r[1] for r in REWRITES])
def test_rewrite_rule(prim, identity, fun, arg, left):
    graph = _graph(fun, arg)
    assert prim in {e.prim for e in graph.eqns}, identity
    out = dce(simplify(graph))
    assert [e.prim for e in out.eqns] == left, identity
    np.testing.assert_allclose(adjit.jit(fun)(arg), fun(arg) if prim != "integer_pow" else arg)


def test_every_rule_is_exercised():
    assert {r[0] for r in REWRITES} == set(RULES)
    assert sum(len(rules) for rules in RULES.values()) <= len(REWRITES)


@pytest.mark.parametrize("fun", [
    lambda x: x * 0.0,   # x * 0 is not 0 for inf and nan
    lambda x: x - x,     # nor is x - x
    lambda x: x / x,     # nor x / x 1
])
def test_inexact_identities_are_not_rewritten(fun):
    graph = _graph(fun, 1.0)
    assert str(dce(simplify(graph))) == str(graph)


def test_a_sum_is_not_moved_into_a_product_read_elsewhere():
    """The product is computed anyway where another equation reads it (or a term of the sum):
    moving the sum inside would add a product, not remove one."""
    def f(x):
        p = anp.matmul(x, x.T)
        return [anp.sum(p + 1.0, axis=0), anp.sum(-(p - x[:, :2]), axis=1)], p

    graph = _graph(lambda x: f(x)[0], np.ones((2, 3)))
    prims = [e.prim for e in dce(simplify(graph)).eqns]
    assert prims.count("matmul") == 1 and prims.count("reduce_sum") == 2, prims


def test_a_factor_varying_along_the_sum_stays_inside():
    """Only a factor the same along every summed axis comes out of the sum; and not out of a
    product another equation reads (the product is computed for it anyway)."""
    def read_twice(x):
        p = anp.exp(x) * x[0]
        return anp.sum(p, axis=0) + p

    x = np.arange(12.0).reshape(4, 3) / 7.0
    for fun, arg in [(lambda x: anp.sum(anp.exp(x) * x[:, 0:1], axis=0), x),  # varies on 0
                     (lambda x: anp.sum(anp.exp(x) * x, axis=1), x),
                     (lambda x: anp.sum(x[0] / anp.exp(x), axis=0), x),        # a dividend
                     (read_twice, x),
                     # integer division does not distribute: 1 // 2 + 1 // 2 != 2 // 2
                     (lambda x: anp.sum(x // x[0], axis=0), np.arange(1, 13).reshape(4, 3))]:
        graph = _graph(fun, arg)
        assert str(dce(simplify(graph))) == str(dce(graph))


def test_a_factor_comes_out_only_of_sums_that_have_terms():
    """A sum of no terms is 0 even where its factor is inf or NaN (inf * 0 would be NaN): at 0
    rows (a length traced as a number) the products stay inside the sums; at 4 rows (a symbol,
    2 or more) they come out. Compiled results equal NumPy's both ways, inf and NaN included."""
    def f(x, a):
        return anp.sum(x * a, axis=0) + anp.sum(x / a, axis=0)

    a = np.array([1.0, np.inf, np.nan])
    for n, factored in ((4, True), (0, False)):
        x = np.arange(3.0 * n).reshape(n, 3)
        graph = dce(simplify(_graph(f, x, a)))
        made = {e.out.id: e.prim for e in graph.eqns}
        summed = [made.get(e.inputs[0].id) for e in graph.eqns if e.prim == "reduce_sum"]
        assert summed == ([None, None] if factored else ["mul", "div"]), (n, str(graph))
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(adjit.jit(f)(x, a), f(x, a))


def test_pads_apart_or_overlapping_are_not_joined():
    for lo in [(3,), (0,)]:  # a gap between the two regions, or the same region
        graph = _graph(lambda x: st.pad(x, (0,), (3,), (0,)) + st.pad(x, lo, (3 - lo[0],), (0,)),
                       np.ones(1))
        assert [e.prim for e in dce(simplify(graph)).eqns] == ["pad", "pad", "add"]


def test_rewrite_keeps_broadcasting():
    # x[3] * ones((2, 3)) must stay a (2, 3) array: the rule may not replace it by x.
    f = adjit.jit(lambda x: x * anp.ones((2, 3)))
    assert f(np.arange(3.0)).shape == (2, 3)
    g = adjit.jit(lambda x: x + anp.zeros((2, 3)))
    assert g(np.arange(3.0)).shape == (2, 3)


def test_non_finite_stays_non_finite():
    f = adjit.jit(lambda x: x * 0.0 + x - x)
    assert np.isnan(f(np.inf))


# --------------------------------------------------------------------------- fusion


def _compiled(fun, *args):
    return CompiledGraph(_graph(fun, *args))


def _pulled(x, w):
    """Two reductions over the rows of one nest's values, with a step reading the first
    between them (it closes the nest), and a value read by a matrix product after."""
    y = anp.sin(x)
    first = anp.sum(y, axis=0) * 2.0
    second = anp.sum(anp.cos(y) * x, axis=0)
    return [first + second, anp.exp(y) @ w]


def test_a_later_reduction_of_a_nest_joins_it():
    """A reduction of a nest's values that comes after a step closing the nest is pulled
    into it (``fusion.fuse``'s pull): both sums are one loop over x, and cos(y) is never
    stored. exp(y), read by the product, stays behind in a nest of its own (pulled, it would
    be stored and read back all the same). Compiled equals interpreted at two lengths of one
    kernel."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((7, 300)), rng.standard_normal((300, 4))
    cg = _compiled(_pulled, x, w)
    nests = [n for n in cg.schedule.units() if isinstance(n, LoopNest) and len(n.shape) == 2]
    first = nests[0]
    assert sum(fusion.is_reduction(e.prim) for e in first.eqns) == 2, cg.source.plain
    assert len(nests) == 2 and [e.prim for e in nests[1].eqns] == ["exp"], cg.source.plain
    for rows in (7, 3):
        args = x[:rows], w
        for got, want in zip(adjit.jit(_pulled)(*args), _pulled(*args)):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def _recomputed(x, y):
    """x * y: cheap, read by the nest of its row sums and, at its own index, by a later nest
    (which reads the sums, so it cannot be the same nest)."""
    v = x * y
    return v * anp.sum(v * v, axis=1)[:, None]


def _recomputed_chain(x, y):
    """A cheap value of a cheap value: the second is stored (its operand is not)."""
    v = x * y
    w = v - y
    return (v + w) * anp.sum(v * w, axis=1)[:, None]


def test_a_cheap_value_is_computed_again_where_it_is_read():
    """x * y is computed again by the nest reading it after the sums (``recompute_cheap``),
    from x and y it reads anyway, instead of stored by the first nest and read back: the only
    array over (n, m) is the output. Compiled equals interpreted at two lengths, and so does
    a chain of two cheap values."""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((6, 300)), rng.standard_normal((6, 300))
    cg = _compiled(_recomputed, x, y)
    arrays = re.findall(r"rt\.(?:empty|full)\(\((n0, n1|c\d+, c\d+)\)", cg.source.plain)
    assert len(arrays) == 1, cg.source.plain
    assert cg.source.plain.count(" * ") >= 2, cg.source.plain
    for fn in (_recomputed, _recomputed_chain):
        for rows in (6, 2):
            args = x[:rows], y[:rows]
            np.testing.assert_allclose(adjit.jit(fn)(*args), fn(*args), rtol=1e-13,
                                       atol=1e-13)


def test_value_and_grad_is_one_loop():
    cg = _compiled(adjit.value_and_grad(lambda x: anp.sum(x ** 2 + anp.sin(x))), np.ones(5))
    assert cg.schedule.loop_count == 1
    assert cg.source.n_loops == 1
    text = cg.source.plain
    assert text.count("math.sin(") == 1
    assert text.count("math.cos(") == 1
    # And it computes the right thing.
    x = np.linspace(-1.0, 2.0, 7)
    value, g = adjit.value_and_grad(lambda x: anp.sum(x ** 2 + anp.sin(x)))(x)
    np.testing.assert_allclose(value, np.sum(x ** 2 + np.sin(x)))
    np.testing.assert_allclose(g, 2 * x + np.cos(x))


def test_fusion_closes_nest_before_reading_a_reduction():
    # x - mean(x) needs the whole sum first: two passes over x.
    schedule = fuse(optimize(_graph(lambda x: x - anp.mean(x), np.ones(4))))
    nests = [it for it in schedule.items if isinstance(it, LoopNest) and it.shape]
    assert len(nests) == 2


def test_long_nest_is_split_in_demand_order(monkeypatch):
    # A sum of many terms: each part computes its terms and adds them to the running sum,
    # which alone crosses to the next part; the result is unchanged.
    monkeypatch.setattr(fusion, "MAX_NEST_EQNS", 8)
    cs = np.linspace(0.5, 1.5, 12)

    def terms(x):
        total = 0.0
        for c in cs:
            total = total + anp.sum(anp.sin(x * float(c)))
        return total

    x = np.linspace(-1.0, 1.0, 5)
    grad = adjit.grad(terms)
    schedule = fuse(optimize(_graph(grad, x)))
    nests = [it for it in schedule.items if isinstance(it, LoopNest)]
    assert len(nests) > 2 and all(len(n.eqns) <= 8 for n in nests)
    crossing = {a.id for i, n in enumerate(nests) for e in n.eqns for a in e.inputs
                if any(a in (f.out for f in m.eqns) for m in nests[:i])}
    assert len(crossing) <= 2 * len(nests)
    expected = sum(c * np.cos(c * x) for c in cs)
    np.testing.assert_allclose(adjit.jit(grad)(x), expected, rtol=1e-12)


def test_reductions_along_the_inner_loops_accumulate_in_a_scalar():
    """A reduction whose result element stays the same through the innermost loops (a sum
    over the last axes) adds into a scalar kept in a register, written back once after those
    loops, so LLVM can vectorize them; one over the outer axis adds into its array, as does one
    through a few elements of known number in a small nest (RUNNING_MIN, RUNNING_NEST_MIN).
    Compiled equals the interpreter, a NaN winning the max, at two lengths of one kernel."""
    def f(x):
        e = anp.exp(x)
        return [anp.sum(e, axis=2), anp.max(x, axis=(1, 2)), anp.prod(x, axis=2),
                anp.min(x, axis=2), anp.sum(e, axis=0), e * 2.0]

    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4, 3))
    x[1, 2, 0] = np.nan
    cg = _compiled(f, x)
    text = cg.source.plain
    updates = [line for line in text.splitlines() if "+=" in line or "*=" in line
               or "= rt.select(" in line]  # max, min: a select (runtime.py), no branch
    running = re.compile(r"\brun\d")  # the scalar a reduction runs in (codegen: run<n>)
    in_scalars = [line for line in updates if running.search(line)]
    assert len(in_scalars) == 4 and len(updates) == 5, text  # axis 0: into its array
    assert text.count(" = run") == 4, text  # each written back once
    # Through inner loops of few elements, known: in memory in a small nest, in a scalar in a
    # large one (RUNNING_NEST_MIN elements, known here: the slices fix the lengths) or in one
    # of symbolic length.
    def few(x):
        return anp.sum(anp.exp(x[:, :, :3]), axis=2)

    short = _compiled(lambda x: [few(x[:2, :2])], x).source.plain
    assert not running.search(short) and "+=" in short, short
    big = rng.standard_normal((1 << 12, 4, 3))
    rows = -(-RUNNING_NEST_MIN // 12)  # the fewest (rows, 4, 3) of RUNNING_NEST_MIN or more
    below = _compiled(lambda x: [few(x[:rows - 1, :4])], big).source.plain
    assert not running.search(below), below
    for text in (_compiled(lambda x: [few(x[:rows, :4])], big).source.plain,
                 _compiled(lambda x: [few(x)], x).source.plain):
        assert running.search(text) and text.count(" = run") == 1, text
    np.testing.assert_allclose(adjit.jit(few)(big[:rows]), few(big[:rows]), rtol=1e-14)
    for rows in (5, 2):
        for got, want in zip(adjit.jit(f)(x[:rows]), f(x[:rows])):
            np.testing.assert_allclose(got, want, rtol=1e-14)


def test_pads_and_concatenations_are_read_in_their_readers_nest():
    """A pad or a concatenation along axes of known length is computed element by element in
    the nest that reads it (a clamped read kept or zeroed), not written into an array first;
    along a symbolic axis (whose length may be 0) it stays a whole-array step."""
    def f(x, y, z):
        return [st.pad(x, (0, 2), (0, 3), (0, 1)) * 2.0 + 1.0,   # before, after, between
                st.pad(x, (0, 1), (0, 0), (0, 2)) + 1.0,
                anp.sum(anp.concatenate([x, anp.sin(y), x * 2.0], axis=1), axis=1),
                anp.concatenate([x, y[:, :1]], axis=1)[::-1] * 3.0,
                adjit.grad(lambda z: anp.sum(anp.sin(z[1:])))(z) * 2.0]  # pads n - 1 rows

    rng = np.random.default_rng(0)
    x, y, z = (rng.standard_normal(shape) for shape in [(5, 3), (5, 2), (7, 2)])
    cg = _compiled(f, x, y, z)
    assert [it.prim for it in cg.schedule.items
            if not isinstance(it, (LoopNest, fusion.SharedLoop))] == ["pad"], cg.source.plain
    text = cg.source.plain
    assert text.count("rt.zeros(") + text.count(".fill(0)") == 1, text  # the whole-array pad
    for n in (5, 1):  # the same kernel at another length
        args = x[:n], y[:n], z[:n + 2]
        for got, want in zip(adjit.jit(f)(*args), f(*args)):  # f(*args): the interpreter
            np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-15)


def per_example(a, b):
    """A function of one example (a 3-vector and a 2-vector), written for vmap as a user
    would: slices, a stack, a concatenation, sums and a sine."""
    r = anp.sum(a * a)
    c = anp.stack([a[1] * b[0], a[2] * b[1] - a[0], anp.sin(r)])
    return c * r + anp.concatenate([b, b[:1]]) * anp.sum(c)


def per_example_jacobians(x, y):
    """The Jacobians of ``per_example`` for each row of x and y, their total (a reduction over
    the examples), and the values less their sum over the examples (read after the loop)."""
    ja, jb = adjit.vmap(adjit.jacrev(per_example, argnums=(0, 1)))(x, y)
    z = adjit.vmap(per_example)(x, y)
    return [ja, jb, anp.sum(ja), z - anp.sum(z, axis=0)]


def test_per_example_nests_share_their_first_loop():
    """Under vmap, the small nests of each example run in one loop over the examples: what
    an example computes lives in buffers of one example's size (or scalars), and only the
    outputs are arrays over the examples. A nest reading a reduction over the examples (the
    sum) is not in that loop. Compiled equals interpreted, at two lengths of one kernel."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    cg = _compiled(per_example_jacobians, x, y)
    shared = [it for it in cg.schedule.items if isinstance(it, fusion.SharedLoop)]
    assert len(shared) == 1 and len(shared[0].nests) > 5, cg.source.plain
    centred = cg.optimized.outvars[3]
    assert not any(eqn.out is centred for nest in shared[0].nests for eqn in nest.eqns)
    n = next(d for d in cg.optimized.invars[0].aval.shape)
    over_examples = [line for line in cg.source.plain.splitlines()
                     if f"rt.empty(({n.name}," in line or f"rt.full(({n.name}," in line]
    assert len(over_examples) <= 4, over_examples  # the outputs and z (read after the loop)
    assert _loop_bodies(cg.source.plain, n.name)[0] == [], cg.source.plain  # written out
    # ... reading each kept scalar as it is: no statement copying one name into another
    assert not re.search(r"^\s+[et]\d+ = [A-Za-z_]\w*$", cg.source.plain, re.M), cg.source.plain
    for rows in (9, 2):
        args = x[:rows], y[:rows]
        for got, want in zip(adjit.jit(per_example_jacobians)(*args),
                             per_example_jacobians(*args)):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_shared_loops_keep_each_dtype():
    """Per-example values of every dtype in a shared loop written out element by element:
    float32 stays float32; complex, integer and boolean scalars per element compute as the
    interpreter does."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    for got, want in zip(adjit.jit(per_example_jacobians)(x32, y32),
                         per_example_jacobians(x32, y32)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)

    def f(z, k, x):
        def per(a, m, r):
            b = a * a + anp.conj(a)[::-1]
            c = anp.stack([b[0] * m, b[1] + m, anp.where(anp.abs(b[2]) > 1.0, b[2], -b[2])])
            i = (r * 10.0).astype(np.int64)
            return (anp.concatenate([c, b[:1]]) * anp.sum(c),
                    anp.stack([i[0] + i[1], i[2] * 2, anp.sum(i)]) * (r > 0.0))
        return adjit.vmap(per)(z, k, x)

    z = rng.standard_normal((6, 3)) + 1j * rng.standard_normal((6, 3))
    k = rng.integers(0, 5, 6)
    cg = _compiled(f, z, k, x)
    assert any(isinstance(it, fusion.SharedLoop) for it in cg.schedule.items)
    for got, want in zip(adjit.jit(f)(z, k, x), f(z, k, x)):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-14)


def _loop_bodies(text: str, length: str) -> list:
    """The loops nested in each top-level loop over ``length`` of a kernel's source."""
    bodies, lines = [], text.splitlines()
    for k, line in enumerate(lines):
        if line.startswith("    for ") and line.endswith(f"in range({length}):"):
            body = []
            for inner in lines[k + 1:]:
                if not inner.startswith("        "):
                    break
                if inner.lstrip().startswith("for "):
                    body.append(inner.strip())
            bodies.append(body)
    return bodies


def test_shared_loop_reading_a_kept_value_at_a_computed_index_keeps_its_loops():
    """An example's values read at an index computed at run time (a gather at constant
    indices, a (3,) array the kernel reads) cannot be one scalar per element: the shared loop
    keeps its nests' loops and per-example buffers, and computes the same."""
    idx = np.array([2, 0, 1])

    def f(x, y):
        def per(a, b):
            s = anp.sin(a) * b[0]
            return anp.stack([s[0], s[1] * b[1], s[2]])[idx] * anp.sum(s)
        return adjit.vmap(per)(x, y)

    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    cg = _compiled(f, x, y)
    assert [type(it).__name__ for it in cg.schedule.items].count("SharedLoop") == 1
    n = cg.optimized.invars[0].aval.shape[0]
    assert all(len(body) >= 3 for body in _loop_bodies(cg.source.plain, n.name)), \
        cg.source.plain
    np.testing.assert_allclose(adjit.jit(f)(x, y), f(x, y), rtol=1e-14)
    x[3, 1] = 1e7  # beyond the vectorizable sine's reduction: the loop runs again with libm
    np.testing.assert_allclose(adjit.jit(f)(x, y), f(x, y), rtol=1e-14)


def test_shared_loop_with_many_branches_keeps_its_loops():
    """Written out element by element, each logical ``and`` would be one branch per element
    (Numba's SSA reconstruction recurses along chains of branches): past UNROLLED_BRANCHES
    the nests keep their loops. A maximum is no branch (``rt.select``): as many maxima are
    written out."""
    def chain(start, step):
        def f(x):
            def per(a):
                top = start(a)
                for k in range(90):
                    top = step(top, a * (0.01 * k - 0.3))
                kept = anp.where(top, a, -a) if top.dtype == bool else top
                return anp.stack([kept[0] * a[1], kept[1], kept[2] * a[0]])
            return adjit.vmap(per)(x)
        return f

    x = np.random.default_rng(3).standard_normal((5, 3))
    logical = chain(lambda a: a > 0.0, lambda top, b: anp.logical_and(top, b < 0.25))
    maxima = chain(lambda a: a, anp.maximum)
    for f, loops in ((logical, True), (maxima, False)):
        cg = _compiled(f, x)
        n = cg.optimized.invars[0].aval.shape[0]
        assert any(_loop_bodies(cg.source.plain, n.name)) == loops, cg.source.plain
        np.testing.assert_allclose(adjit.jit(f)(x), f(x), rtol=1e-14)


def test_concatenated_parts_are_written_in_their_place():
    """A concatenation along the first axis of arrays the kernel computes allocates its result
    once, and each part's nest writes into its rows (a slice of the result): no loop copies
    them. A part that is also an output keeps its own array (the two would share memory) and
    is copied; so is a part the kernel does not compute (an input), and one joined twice.
    Compiled equals interpreted."""
    def assembled(x):
        return anp.concatenate([anp.sin(x) * 2.0, anp.cos(x), x * x])

    def shared(x):
        s, c = anp.sin(x), anp.cos(x) * 3.0
        return [anp.concatenate([s, anp.cos(x)]), s, anp.concatenate([x, anp.exp(x)]),
                anp.concatenate([c, anp.tanh(x), c])]

    x = np.random.default_rng(3).standard_normal((7, 3))
    cg = _compiled(assembled, x)  # (joined along a symbolic axis, the lengths are fixed)
    text = cg.source.plain
    assert "[0:7]" in text and "[14:21]" in text, text
    assert len(re.findall(r"^    for ", text, re.M)) == 1, text  # one loop over x, no copy
    cg = _compiled(shared, x)
    assert "[0:7]" not in cg.source.plain, cg.source.plain
    for rows in (7, 2):
        np.testing.assert_allclose(adjit.jit(assembled)(x[:rows]), assembled(x[:rows]),
                                   rtol=1e-14)
        for got, want in zip(adjit.jit(shared)(x[:rows]), shared(x[:rows])):
            np.testing.assert_allclose(got, want, rtol=1e-14)
        got = adjit.jit(shared)(x[:rows])
        got[1][0, 0] = 5.0  # the output s is an array of its own
        assert got[0][0, 0] != 5.0


def test_per_example_jacobians_flattened_into_one_vector():
    """Per-example Jacobians flattened and joined with a per-example gradient into one vector
    (a sparse Jacobian's values, as the BA benchmark assembles them): the flattening fixes the
    number of examples, and the per-example nests still share one loop over that many
    examples (from SHARED_KNOWN_MIN of them, or up to SHARED_SMALL_MAX), writing the blocks
    into the vector itself. Equals the interpreter, and the blocks equal jacfwd's."""
    def values(x, y):
        blocks = adjit.vmap(adjit.jacrev(per_example))(x, y)
        tail = adjit.vmap(adjit.grad(lambda a: anp.sum(anp.sin(a))))(y)
        return anp.concatenate([anp.reshape(blocks, (-1,)), anp.reshape(tail, (-1,))])

    rng = np.random.default_rng(4)
    n = fusion.SHARED_KNOWN_MIN
    x, y = rng.standard_normal((n, 3)), rng.standard_normal((n, 2))
    cg = _compiled(values, x, y)
    assert [type(it).__name__ for it in cg.schedule.items].count("SharedLoop") == 1
    assert f"[0:{9 * n}], ({n}, 3, 3))" in cg.source.plain, cg.source.plain
    got = adjit.jit(values)(x, y)
    np.testing.assert_allclose(got, values(x, y), rtol=1e-13, atol=1e-13)
    blocks = adjit.jit(adjit.vmap(adjit.jacfwd(per_example)))(x, y)
    np.testing.assert_allclose(got[:9 * n].reshape(n, 3, 3), blocks, rtol=1e-12, atol=1e-12)
    # Fewer examples: shared only up to SHARED_SMALL_MAX (each has at most SHARED_SMALL_INNER
    # elements per nest here), separate nests from there.
    few = _compiled(values, x[:300], y[:300])
    assert [type(it).__name__ for it in few.schedule.items].count("SharedLoop") == 1
    np.testing.assert_allclose(adjit.jit(values)(x[:300], y[:300]), values(x[:300], y[:300]),
                               rtol=1e-13, atol=1e-13)
    m = fusion.SHARED_SMALL_MAX + 1
    more = _compiled(values, x[:m], y[:m])
    assert "SharedLoop" not in [type(it).__name__ for it in more.schedule.items]


def test_short_known_batch_with_few_classes_shares_one_loop():
    """A softmax cross-entropy over a batch whose size and class count the data fix (the MLP
    gradient's): with at most SHARED_SMALL_INNER classes, its row-wise nests (max, sums of
    exponentials, their gradients) are one loop over the rows with no arrays of their own;
    with more, separate nests. Compiled equals interpreted, and the gradient finite
    differences."""
    rng = np.random.default_rng(5)
    for k, shared in ((10, True), (fusion.SHARED_SMALL_INNER + 1, False)):
        x, y = rng.standard_normal((64, 5)), np.eye(k)[rng.integers(0, k, 64)]

        def loss(w):
            z = x @ w
            z = z - anp.max(z, axis=1, keepdims=True)
            return anp.mean(anp.log(anp.sum(anp.exp(z), axis=1)) - anp.sum(z * y, axis=1))

        w = rng.standard_normal((5, k))
        cg = _compiled(adjit.grad(loss), w)
        kinds = [type(it).__name__ for it in cg.schedule.items]
        assert ("SharedLoop" in kinds) is shared, cg.source.plain
        if shared:
            assert kinds.count("LoopNest") == 0 and "rt.full((" not in cg.source.plain, kinds
        got = adjit.jit(adjit.grad(loss))(w)
        with pytest.MonkeyPatch.context() as patch:  # the reference interpreter
            patch.setattr(config, "jit", False)
            want = adjit.grad(loss)(w)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
        step = np.zeros_like(w)
        step[1, 2] = 1e-6
        fd = (loss(w + step) - loss(w - step)) / 2e-6
        np.testing.assert_allclose(got[1, 2], fd, rtol=1e-6, atol=1e-9)


def test_matmul_is_not_a_loop():
    cg = _compiled(lambda a, b: a @ b, np.ones((2, 3)), np.ones((3, 4)))
    assert cg.schedule.loop_count == 0
    assert "rt.dot(" in cg.source.plain


def test_float32_kernel_has_typed_constants():
    cg = _compiled(lambda x: x * 2.0 + 1.5, np.ones(3, np.float32))
    assert "np.float64" not in cg.source.plain
    assert "np.float32(2.0)" in cg.source.plain


def test_square_has_one_form_so_cse_merges_it():
    # tanh(z)**2 and tanh's derivative 1 - tanh(z)*tanh(z) square the same value: after
    # simplify both are integer_pow[y=2] of it, and CSE keeps one.
    f = adjit.value_and_grad(lambda z: anp.sum(anp.tanh(z) ** 2))
    graph = optimize(adjit.make_graph(f)(np.ones(3)))
    squares = [e for e in graph.eqns if e.prim in ("mul", "integer_pow")
               and len({id(a) for a in e.inputs}) == 1 or e.prim == "integer_pow"]
    assert len(squares) == 1, graph
    value, grad = f(np.linspace(-1.0, 1.0, 3))
    t = np.tanh(np.linspace(-1.0, 1.0, 3))
    np.testing.assert_allclose(value, np.sum(t ** 2))
    np.testing.assert_allclose(grad, 2 * t * (1 - t ** 2))


def test_float64_constants_are_written_where_used_others_named_once():
    """A float64 (or boolean) constant is a literal where it is used, not a variable assigned
    at the top of the kernel (live through every block before its last use: Numba's liveness
    passes cost blocks times such variables); a float32 one is still named once (its
    ``np.float32(...)`` call typed once). Negative literals are parenthesized: the kernels
    compute what the interpreter does."""
    x64 = np.linspace(-1.0, 2.0, 9)

    def f(x):
        return anp.sum(anp.exp(x * -0.75) ** 2 + anp.where(x > 0.5, x, 2.25))

    info = adjit.inspect(adjit.value_and_grad(f), x64)
    assert not re.search(r"^\s+c\d+ = ", info.source, re.M), info.source
    assert "(-0.75)" in info.source and "2.25" in info.source, info.source
    value, grad = adjit.jit(adjit.value_and_grad(f))(x64)
    want = np.sum(np.exp(-0.75 * x64) ** 2 + np.where(x64 > 0.5, x64, 2.25))
    np.testing.assert_allclose(value, want, rtol=1e-14)
    np.testing.assert_allclose(grad, -1.5 * np.exp(-1.5 * x64) + (x64 > 0.5), rtol=1e-13)

    x32 = x64.astype(np.float32)
    info32 = adjit.inspect(adjit.value_and_grad(f), x32)
    assert re.search(r"^\s+c\d+ = np\.float32\(", info32.source, re.M), info32.source
    value32, _ = adjit.jit(adjit.value_and_grad(f))(x32)
    np.testing.assert_allclose(value32, want, rtol=1e-5)
