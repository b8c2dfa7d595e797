"""Control flow: cond/switch, scan/fori_loop and while_loop.

The case table (tests/test_primitives.py) already takes one case of each through check_grads to
second order, vmap against a loop, and compiled against interpreted (value, JVP, VJP, HVP).
Here: the behaviour around them — pytrees, closures over traced values, nesting, errors, a
while loop stopping at different steps per example, loops lowered as loops (the kernel does
not grow with the trip count), and reverse mode through long loops.
"""

import re

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.config import config
from adjit.errors import AdjitTypeError, ConcretizationError
from adjit.testing import check_grads
from adjit.testing import numerical_grad as _fd_grad


@pytest.fixture(params=[True, False], ids=["compiled", "interpreted"])
def jit(request, monkeypatch):
    monkeypatch.setattr(config, "jit", request.param)
    return request.param


# --------------------------------------------------------------------------- values


def test_fori_loop_equals_a_python_loop(jit):
    def f(x):
        return adjit.fori_loop(0, 30, lambda i, v: v + 0.01 * anp.sin(v) * i, x)

    x = np.linspace(-1.0, 1.0, 5)
    v = x.copy()
    for i in range(30):
        v = v + 0.01 * np.sin(v) * i
    np.testing.assert_allclose(adjit.jit(f)(x), v, rtol=1e-13)
    g = adjit.grad(lambda x: anp.sum(f(x)))(x)
    np.testing.assert_allclose(g, _fd_grad(lambda x: np.sum(f(x)), x), rtol=1e-6)


def test_scan_pytrees_closures_and_reverse(jit):
    w = np.array([0.5, -0.3])

    def f(scale, xs):
        # The body closes over a traced value (scale) and an array (w); carry is a dict.
        def step(carry, x):
            h = anp.tanh(carry["h"] * scale + x * w)
            return {"h": h, "n": carry["n"] + 1}, (h[0], h * x)

        carry, (firsts, prods) = adjit.scan(step, {"h": np.zeros(2), "n": 0}, xs, reverse=True)
        return anp.sum(carry["h"]) + anp.sum(firsts) + anp.sum(prods), carry["n"]

    xs = np.linspace(0.1, 0.9, 6)
    value, count = adjit.jit(f)(1.3, xs)
    h = np.zeros(2)
    firsts, prods = [], []
    for x in xs[::-1]:
        h = np.tanh(h * 1.3 + x * w)
        firsts.append(h[0])
        prods.append(h * x)
    np.testing.assert_allclose(value, h.sum() + sum(firsts) + np.sum(prods), rtol=1e-13)
    assert count == 6
    grad = adjit.grad(lambda s, xs: f(s, xs)[0], argnums=(0, 1))(1.3, xs)
    np.testing.assert_allclose(grad[0], _fd_grad(lambda s: f(float(s), xs)[0], 1.3), rtol=1e-6)
    np.testing.assert_allclose(grad[1], _fd_grad(lambda v: f(1.3, v)[0], xs), rtol=1e-6)


def test_switch_clamps_its_index(jit):
    branches = [lambda x: x + 1.0, lambda x: x * 10.0, lambda x: -x]
    f = adjit.jit(lambda i, x: adjit.switch(i, branches, x))
    assert [float(f(i, 2.0)) for i in (-5, 0, 1, 2, 7)] == [3.0, 3.0, 20.0, -2.0, -2.0]


def test_cond_on_a_concrete_predicate_outside_a_trace():
    assert adjit.cond(True, lambda x: x * 2, lambda x: x, 3.0) == 6.0


# --------------------------------------------------------------------------- nesting


def test_nested_loops_cond_in_loop_and_loop_in_cond(jit):
    def f(x):
        def outer(i, v):
            inner = adjit.fori_loop(0, 3, lambda j, u: u * 0.9 + anp.sin(u) * 0.1, v)
            return adjit.cond(i % 2 == 0, lambda a: a + inner, lambda a: a * anp.cos(inner), v)

        looped = adjit.fori_loop(0, 4, outer, x)
        return adjit.cond(anp.sum(x) > 0,
                          lambda a: adjit.fori_loop(0, 2, lambda i, b: b * b * 0.5, a),
                          lambda a: a, looped)

    def reference(x):
        v = x.copy()
        for i in range(4):
            u = v.copy()
            for _ in range(3):
                u = u * 0.9 + np.sin(u) * 0.1
            v = v + u if i % 2 == 0 else v * np.cos(u)
        if np.sum(x) > 0:
            for _ in range(2):
                v = v * v * 0.5
        return v

    for x in (np.array([0.3, 0.7]), np.array([-0.3, -0.7])):
        np.testing.assert_allclose(adjit.jit(f)(x), reference(x), rtol=1e-13)
        g = adjit.grad(lambda x: anp.sum(f(x)))(x)
        np.testing.assert_allclose(g, _fd_grad(lambda x: np.sum(reference(x)), x), rtol=1e-5)


def test_grad_of_grad_through_a_loop():
    f = lambda x: adjit.fori_loop(0, 5, lambda i, v: v - 0.1 * v ** 3, x)  # noqa: E731
    check_grads(f, (0.7,), order=2)
    second = adjit.grad(adjit.grad(f))(0.7)
    first = adjit.grad(f)
    np.testing.assert_allclose(second, (first(0.7 + 1e-5) - first(0.7 - 1e-5)) / 2e-5,
                               rtol=1e-6)


def test_loops_inside_vmap_inside_grad(jit):
    def per_example(x, a):
        return adjit.fori_loop(0, 4, lambda i, v: v + a * anp.sin(v), x)

    def loss(a, xs):
        return anp.sum(adjit.vmap(per_example, in_axes=(0, None))(xs, a))

    xs = np.linspace(-0.5, 1.2, 4)
    g = adjit.grad(loss)(0.3, xs)
    np.testing.assert_allclose(g, _fd_grad(lambda a: loss(float(a), xs), 0.3), rtol=1e-6)


# --------------------------------------------------------------------------- while_loop


def test_newton_iteration_while_loop_forward_mode(jit):
    """sqrt(a) by Newton's method, stopping when the step is small: the trip count depends on
    the input. Forward mode differentiates through it: d sqrt(a) / da = 1 / (2 sqrt(a))."""
    def newton_sqrt(a):
        def cond(state):
            x, step = state
            return anp.abs(step) > 1e-12

        def body(state):
            x, _ = state
            new = 0.5 * (x + a / x)
            return new, new - x

        return adjit.while_loop(cond, body, (a, 1.0))[0]

    for a in (2.0, 9.0, 1e4):
        value, tangent = adjit.jvp(newton_sqrt, (a,), (1.0,))
        np.testing.assert_allclose(value, np.sqrt(a), rtol=1e-14)
        np.testing.assert_allclose(tangent, 0.5 / np.sqrt(a), rtol=1e-8)


def test_batched_while_loop_stops_per_example(jit):
    def count_halvings(x):
        return adjit.while_loop(lambda c: c[0] > 1.0, lambda c: (c[0] * 0.5, c[1] + 1), (x, 0))

    xs = np.array([0.5, 3.0, 100.0, 17.0])
    values, counts = adjit.vmap(count_halvings)(xs)
    expected = [(x / 2 ** n, n) for x, n in
                [(x, int(np.ceil(np.log2(x))) if x > 1 else 0) for x in xs]]
    np.testing.assert_allclose(values, [v for v, _ in expected])
    np.testing.assert_array_equal(counts, [n for _, n in expected])


def test_reverse_mode_through_a_while_loop_with_a_data_dependent_trip_count(jit):
    """The Newton iteration again, in reverse mode: the steps are counted running forward,
    then reversed on Revolve's schedule for that count (at most `snapshots` carries)."""
    def newton_sqrt(a, snapshots):
        def body(state):
            x, _ = state
            new = 0.5 * (x + a / x)
            return new, new - x

        return adjit.while_loop(lambda s: anp.abs(s[1]) > 1e-12, body, (a, 1.0),
                                snapshots=snapshots)[0]

    for a in (2.0, 9.0, 1e4):
        for snapshots in (1, 3, 32):
            g = adjit.grad(lambda a, s=snapshots: newton_sqrt(a, s))(a)
            np.testing.assert_allclose(g, 0.5 / np.sqrt(a), rtol=1e-9)
    # A carried array and a constant read each step, against a Python loop's gradient.
    w = np.array([0.3, -0.2, 0.5])

    def f(x, scale):
        _, v = adjit.while_loop(lambda c: c[0] < 7, lambda c: (c[0] + 1, anp.sin(c[1]) * scale
                                                               + w), (0, x))
        return anp.sum(v * v)

    def reference(x, scale):
        for _ in range(7):
            x = np.sin(x) * scale + w
        return np.sum(x * x)

    x = np.array([0.1, 0.7, -0.4])
    gx, gs = adjit.grad(f, argnums=(0, 1))(x, 1.3)
    np.testing.assert_allclose(gx, _fd_grad(lambda v: reference(v, 1.3), x), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(gs, _fd_grad(lambda s: reference(x, float(s)), 1.3), rtol=1e-6)


def test_reverse_mode_through_while_loop_runs_revolve_steps(monkeypatch):
    from adjit.control.loops import revolve_extra_steps

    monkeypatch.setattr(config, "jit", False)
    count = _count_sin(monkeypatch)
    f = lambda x: anp.sum(adjit.while_loop(  # noqa: E731
        lambda c: c[0] < 40, lambda c: (c[0] + 1, c[1] + 0.01 * anp.sin(c[1])), (0, x),
        snapshots=4)[1])
    adjit.grad(f)(np.array([0.5, 1.0]))
    # the forward run, Revolve's recomputations for 40 steps and 4 carries, each step again
    assert count[0] == 2 * 40 + revolve_extra_steps(40, 4)


# --------------------------------------------------------------------------- errors


def test_branches_of_different_types_are_an_error():
    message = r"branch 0 returns \(f64\[2\]\), branch 1 \(f64\[n0\]\)"
    with pytest.raises(AdjitTypeError, match=message):
        adjit.jit(lambda x: adjit.cond(x[0] > 0, lambda a: a, lambda a: a[:2], x))(np.ones(3))
    with pytest.raises(AdjitTypeError, match="different structures"):
        adjit.jit(lambda x: adjit.cond(x > 0, lambda a: (a, a), lambda a: a, x))(1.0)


def test_carry_changing_type_is_an_error():
    with pytest.raises(AdjitTypeError, match="changes the carry's types"):
        adjit.jit(lambda x: adjit.fori_loop(0, 3, lambda i, v: v.astype(np.float32), x))(1.0)
    with pytest.raises(AdjitTypeError, match="carry of the structure"):
        adjit.jit(lambda x: adjit.scan(lambda c, x: ((c, c), x), x, np.ones(3)))(1.0)


def test_python_control_flow_on_a_tracer_names_the_primitives():
    def f(x):
        if x > 0:
            return x
        return -x

    with pytest.raises(ConcretizationError) as info:
        adjit.grad(f)(1.0)
    message = str(info.value)
    assert "adjit.cond(x > 0" in message and "adjit.fori_loop(0, n" in message


# --------------------------------------------------------------------------- loops stay loops


def _kernel(fun, *args):
    return adjit.inspect(fun, *args).source


def test_kernel_does_not_grow_with_the_trip_count():
    def loss(n):
        return lambda x: anp.sum(adjit.fori_loop(0, n, lambda i, v: v + 0.01 * anp.sin(v), x))

    x = np.linspace(0.0, 1.0, 8)
    short = _kernel(adjit.grad(loss(10)), x)
    long = _kernel(adjit.grad(loss(100_000)), x)
    assert re.sub(r"\b10\b", "N", short) == re.sub(r"\b100000\b", "N", long)
    assert short.count("\n") < 120


def test_reverse_mode_through_a_long_loop():
    n = 100_000
    f = lambda x: anp.sum(adjit.fori_loop(0, n, lambda i, v: v - 1e-5 * v ** 3, x))  # noqa: E731
    x = np.array([0.5, 1.0, 1.5])
    v, d = x.copy(), np.ones_like(x)
    for _ in range(n):
        d = d * (1 - 3e-5 * v ** 2)
        v = v - 1e-5 * v ** 3
    np.testing.assert_allclose(adjit.grad(f)(x), d, rtol=1e-10)


# --------------------------------------------------------------------------- checkpointing


def _count_sin(monkeypatch):
    """Counts the elements sin is evaluated on by the interpreter: one per step of the loops
    below, so forward steps run (first pass and recomputation) are counted."""
    from adjit.ir import rules

    count = [0]
    impl = rules.impl_rules["sin"]

    def counting(x):
        count[0] += 1
        return impl(x)

    monkeypatch.setitem(rules.impl_rules, "sin", counting)
    return count


@pytest.mark.parametrize("n", [1, 7, 50, 64])
def test_sqrt_checkpointing_recomputes_each_block_once(n, monkeypatch):
    def loss(x, schedule):
        return anp.sum(adjit.fori_loop(0, n, lambda i, v: v + 0.1 * anp.sin(v) * i, x,
                                       checkpoint=schedule))

    x = np.linspace(0.2, 1.0, 3)
    stored = adjit.grad(lambda x: loss(x, None))(x)
    np.testing.assert_allclose(adjit.grad(lambda x: loss(x, "sqrt"))(x), stored, rtol=1e-12)
    monkeypatch.setattr(config, "jit", False)
    count = _count_sin(monkeypatch)
    adjit.grad(lambda x: loss(x, "sqrt"))(x)
    k = int(np.ceil(np.sqrt(n)))
    assert count[0] == n + (n // k) * k  # every step once, then each full block again
    count[0] = 0
    adjit.grad(lambda x: loss(x, None))(x)
    assert count[0] == n


def test_sqrt_checkpointing_stores_sqrt_many_steps():
    """The stacked values reverse mode keeps: length x state for every step; sqrt(length)
    blocks' entry states and one block's steps with checkpoint='sqrt'."""
    def stacked_sizes(schedule):
        f = lambda x: anp.sum(adjit.fori_loop(  # noqa: E731
            0, 400, lambda i, v: v + 0.01 * anp.sin(v), x, checkpoint=schedule))
        graph = adjit.make_graph(adjit.grad(f))(np.ones(5))
        return [v.aval.shape[0] for e in graph.eqns if e.prim == "scan"
                for v in e.outs if v.aval.ndim == 2]

    assert max(stacked_sizes(None)) == 400
    assert max(stacked_sizes("sqrt")) == 20


def test_checkpoint_recomputes_instead_of_storing(monkeypatch):
    f = adjit.checkpoint(lambda x: anp.sin(anp.sin(x)))
    x = np.array([0.3, 0.9])
    np.testing.assert_allclose(adjit.grad(lambda x: anp.sum(f(x)))(x),
                               np.cos(np.sin(x)) * np.cos(x), rtol=1e-14)
    monkeypatch.setattr(config, "jit", False)
    count = _count_sin(monkeypatch)
    adjit.grad(lambda x: anp.sum(f(x)))(x)
    assert count[0] == 3  # two sins forward, the inner one again for the backward pass
    with pytest.raises(Exception, match="checkpoint"):
        adjit.grad(lambda x: anp.sum(adjit.fori_loop(0, 3, lambda i, v: v, x, checkpoint="x")))(x)


@pytest.mark.parametrize("n, snapshots", [(1, 1), (2, 1), (30, 1), (50, 3), (64, 5), (100, 20)])
def test_binomial_checkpointing_follows_revolve(n, snapshots, monkeypatch):
    """Same gradient as storing every step; the forward steps run are the first pass (n),
    Revolve's recomputations (r n - C(s + r, r - 1)) and each step once more before its
    adjoint (n); at most s carries are kept."""
    from adjit.control.loops import ADVANCE, STORE, revolve_extra_steps, revolve_schedule

    def loss(x, schedule, s=None):
        return anp.sum(adjit.fori_loop(0, n, lambda i, v: v + 0.05 * anp.sin(v + 0.01 * i), x,
                                       checkpoint=schedule, snapshots=s))

    x = np.linspace(0.2, 1.0, 3)
    stored = adjit.grad(lambda x: loss(x, None))(x)
    np.testing.assert_allclose(adjit.grad(lambda x: loss(x, "binomial", snapshots))(x), stored,
                               rtol=1e-12)
    schedule = revolve_schedule(n, snapshots)
    assert schedule[schedule[:, 0] == ADVANCE, 1].sum() == revolve_extra_steps(n, snapshots)
    assert schedule[schedule[:, 0] == STORE, 1].max(initial=0) < snapshots  # slots 0..s-1
    monkeypatch.setattr(config, "jit", False)
    count = _count_sin(monkeypatch)
    np.testing.assert_allclose(adjit.grad(lambda x: loss(x, "binomial", snapshots))(x), stored,
                               rtol=1e-12)
    assert count[0] == 2 * n + revolve_extra_steps(n, snapshots)


def test_revolve_formula_values():
    from adjit.control.loops import revolve_extra_steps

    # t(n, s) = r n - C(s + r, r - 1): one snapshot recomputes from the start for each step
    # (45 = 9 + 8 + ... + 1); with n - 1 snapshots each step is run once more; 10^5 steps
    # and 20 snapshots take r = 6 repetitions: 6 * 10^5 - C(26, 5).
    assert revolve_extra_steps(10, 1) == 45
    assert revolve_extra_steps(10, 9) == 9
    assert revolve_extra_steps(100_000, 20) == 6 * 100_000 - 65_780


def test_binomial_checkpointing_memory_is_a_fiftieth(monkeypatch):
    """Peak memory allocated while taking the gradient (NumPy's allocations, counted by
    tracemalloc in the interpreter) with 20 snapshots against storing every step."""
    import tracemalloc

    monkeypatch.setattr(config, "jit", False)
    n, x = 2000, np.linspace(0.0, 1.0, 2000)

    def peak(schedule, s=None):
        f = adjit.grad(lambda x: anp.sum(adjit.fori_loop(
            0, n, lambda i, v: v - 1e-3 * anp.sin(v), x, checkpoint=schedule, snapshots=s)))
        f(x)  # traced (and its schedule made) before memory is counted
        tracemalloc.start()
        try:
            grad = f(x)
            return tracemalloc.get_traced_memory()[1], grad
        finally:
            tracemalloc.stop()

    stored, g_stored = peak(None)
    binomial, g_binomial = peak("binomial", 20)
    np.testing.assert_allclose(g_binomial, g_stored, rtol=1e-12)
    assert stored > n * x.nbytes  # at least one value per step was kept
    assert binomial * 50 <= stored


def test_vmap_of_grad_through_binomial_checkpointing(jit):
    def loss(x, a):
        return anp.sum(adjit.fori_loop(0, 12, lambda i, v: v + a * anp.sin(v), x,
                                       checkpoint="binomial", snapshots=3))

    xs = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    batched = adjit.vmap(adjit.grad(loss, argnums=(0, 1)), in_axes=(0, None))(xs, 0.2)
    for x, gx, ga in zip(xs, *batched):
        expected = adjit.grad(lambda x, a: anp.sum(adjit.fori_loop(
            0, 12, lambda i, v: v + a * anp.sin(v), x)), argnums=(0, 1))(x, 0.2)
        np.testing.assert_allclose(gx, expected[0], rtol=1e-12)
        np.testing.assert_allclose(ga, expected[1], rtol=1e-12)



def _newton_sqrt(a):
    """sqrt(a) by Newton's iteration to a tolerance: a trip count that depends on the input."""
    def body(c):
        x, _ = c
        new = 0.5 * (x + a / x)
        return new, anp.abs(new - x)

    return adjit.while_loop(lambda c: anp.max(c[1]) > 1e-12, body, (a, anp.ones_like(a)))[0]


@pytest.mark.parametrize("checkpoint", ["binomial", "while"])
def test_second_derivatives_through_revolve_sweeps(checkpoint, jit):
    """A Revolve sweep (binomial checkpointing, a while loop's reverse mode) differentiated
    again: forward over reverse keeps the schedule, reverse over reverse writes the sweep as
    loops; both equal the store-every-step scan's and the closed form's."""
    if checkpoint == "while":
        def f(a):
            return anp.sum(_newton_sqrt(a) * a)

        def hess_closed(a):  # d2/da2 of a^1.5 = 0.75 / sqrt(a)
            return np.diag(0.75 / np.sqrt(a))
        x = np.array([0.7, 2.0, 5.0])
    else:
        def f(x, stored=False):
            return anp.sum(adjit.fori_loop(0, 9, lambda i, v: v * anp.cos(v) + 0.3 * v, x,
                                           **({} if stored else dict(checkpoint="binomial",
                                                                     snapshots=3))))

        def hess_closed(x):
            return adjit.jacfwd(adjit.jacrev(lambda x: f(x, stored=True)))(x)
        x = np.array([0.3, -0.4, 0.8])
    expected = hess_closed(x)
    fwd_over_rev = adjit.jacfwd(adjit.grad(f))(x)
    rev_over_rev = adjit.jacrev(adjit.grad(f))(x)
    np.testing.assert_allclose(fwd_over_rev, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rev_over_rev, expected, rtol=1e-9, atol=1e-12)


def test_revolve_schedule_is_optimal():
    """The advances of the schedule equal the optimum of the recurrence
    T(l, c) = min over m of m + T(m, c) + T(l - m, c - 1), T(1, c) = 0, T(l, 1) = l (l - 1) / 2
    (c carries kept, the start's included), found by a dynamic program."""
    from functools import lru_cache

    from adjit.control.loops import ADVANCE, revolve_extra_steps, revolve_schedule

    @lru_cache(None)
    def best(steps, kept):
        if steps == 1:
            return 0
        if kept == 1:
            return steps * (steps - 1) // 2
        return min(m + best(m, kept) + best(steps - m, kept - 1) for m in range(1, steps))

    for kept in range(1, 6):
        for steps in range(1, 41):
            schedule = revolve_schedule(steps, kept)
            assert schedule[schedule[:, 0] == ADVANCE, 1].sum() == best(steps, kept)
            assert schedule[schedule[:, 0] == ADVANCE, 1].sum() == revolve_extra_steps(
                steps, kept)


@pytest.mark.parametrize("per_step", ["new", "old", "none"])
def test_binomial_checkpointing_of_constants_and_per_step_outputs(per_step, jit):
    """The gradient with respect to a value every step reads (a constant of the scan), with
    the per-step outputs the new carry, the old one, or nothing, and a loop inside each step."""
    def loss(p, x0, schedule, s=None):
        def observe(state, _):
            new = adjit.fori_loop(0, 3, lambda i, v: v + 0.1 * anp.sin(v) * p, state)
            y = {"new": new, "old": state, "none": 0.0 * state}[per_step]
            return new, y

        carry, ys = adjit.scan(observe, x0, None, length=7, checkpoint=schedule, snapshots=s)
        return anp.sum(ys ** 2) + anp.sum(carry)

    x0 = np.array([1.0, 2.0])
    stored = adjit.value_and_grad(lambda p, x: loss(p, x, None), argnums=(0, 1))(0.7, x0)
    binomial = adjit.value_and_grad(lambda p, x: loss(p, x, "binomial", 2),
                                    argnums=(0, 1))(0.7, x0)
    np.testing.assert_allclose(binomial[0], stored[0], rtol=1e-14)
    for b, s in zip(binomial[1], stored[1]):
        np.testing.assert_allclose(b, s, rtol=1e-12)


def test_loop_invariant_values_are_not_stored_per_step():
    """0.01 * ones (a broadcast constant) and the weights' exp are the same at every step:
    reverse mode recomputes them from the loop's constants instead of stacking copies."""
    def f(x, w):
        return anp.sum(adjit.fori_loop(0, 50, lambda i, v: v + 0.01 * anp.sin(v) * anp.exp(w),
                                       x))

    x, w = np.linspace(0.0, 1.0, 6), np.linspace(-1.0, 0.0, 6)
    graph = adjit.make_graph(adjit.grad(f, argnums=(0, 1)))(x, w)
    stacked = [v for e in graph.eqns if e.prim == "scan" for v in e.outs
               if v.aval.ndim == 2]
    assert len(stacked) == 2  # cos(v) and 0.01 * sin(v) * exp(w): what differs per step
    g = adjit.grad(f, argnums=(0, 1))(x, w)
    eps = 1e-6
    fd = [(f(x, w + eps * e) - f(x, w - eps * e)) / (2 * eps) for e in np.eye(6)]
    np.testing.assert_allclose(g[1], fd, rtol=1e-6)


def test_loop_kernels_allocate_nothing_per_step():
    """The carry goes into a buffer allocated once (two, swapped), the stored values into
    their rows of the stacked array: no np.empty inside a step."""
    f = lambda x: anp.sum(adjit.fori_loop(0, 40, lambda i, v: v + 0.01 * anp.sin(v), x))  # noqa: E731
    source = _kernel(adjit.grad(f), np.linspace(0.0, 1.0, 8))
    inside, depth = [], None
    for line in source.splitlines():
        indent = len(line) - len(line.lstrip())
        if depth is not None and line.strip() and indent <= depth:
            depth = None
        if depth is not None:
            inside.append(line)
        if re.match(r"\s*for step\d+ in range", line):
            depth = indent
    allocating = ("np.empty", "rt.empty", "np.copy", "rt.copy")
    assert inside and not [line for line in inside if any(f in line for f in allocating)]
    x = np.linspace(0.0, 1.0, 8)
    v, d = x.copy(), np.ones_like(x)
    for _ in range(40):
        d = d * (1 + 0.01 * np.cos(v))
        v = v + 0.01 * np.sin(v)
    np.testing.assert_allclose(adjit.grad(f)(x), d, rtol=1e-13)


def test_scan_with_one_value_as_several_outputs():
    """One computed value returned as two per-step outputs: each gets it (a kernel wrote only
    the first of two equal ys into its row; found by the fuzzer through the Hessian of nested
    loops)."""
    def f(x):
        def step(c, _):
            t = anp.tanh(c) * c
            return c * 0.9 + 0.1, (t, t)

        carry, (a, b) = adjit.scan(step, x, None, length=3)
        return anp.sum(carry) + anp.sum(a * 2.0) + anp.sum(b * 3.0)

    x = np.array([[0.3, -0.5], [1.2, 0.1]])
    compiled = adjit.value_and_grad(f)(x)
    hvp = adjit.jvp(adjit.grad(f), (x,), (np.ones_like(x),))[1]
    config.update("jit", False)
    try:
        interpreted = adjit.value_and_grad(f)(x)
        hvp_interpreted = adjit.jvp(adjit.grad(f), (x,), (np.ones_like(x),))[1]
    finally:
        config.update("jit", True)
    np.testing.assert_allclose(compiled[0], interpreted[0], rtol=1e-14)
    np.testing.assert_allclose(compiled[1], interpreted[1], rtol=1e-14)
    np.testing.assert_allclose(hvp, hvp_interpreted, rtol=1e-13)


# --------------------------------------------------------------------------- found by the fuzzer


def test_interpreter_runs_a_branch_that_needs_an_outside_length(monkeypatch):
    """Neither branch reads the operand y, so the transposed branches make y's (zero)
    cotangent with a length none of their inputs carries: the interpreter takes it from the
    graph around them (it raised KeyError 'n0')."""
    def f(x, y):
        return adjit.cond(x > 0.0, lambda b: x * 2.0, lambda b: x * 3.0, y)

    monkeypatch.setattr(config, "jit", False)
    gx, gy = adjit.grad(f, argnums=(0, 1))(0.5, np.array([1.0, 2.0]))
    assert gx == 2.0 and np.array_equal(gy, [0.0, 0.0])


def test_reverse_over_reverse_through_a_scan_with_a_dead_closure_read(jit):
    def f(x):
        def step(c, row):
            anp.tanh(x) * 0.9  # a dead read of the closure x
            return c + 0.1 * anp.tanh(row), row

        c, ys = adjit.scan(step, x, x)
        return anp.sum(ys) + 0.5 * anp.sum(c)

    x, u = np.array([[0.4], [-0.7]]), np.array([[1.0], [2.0]])
    got = adjit.vjp(lambda x: adjit.vjp(f, x)[1](1.0), x)[1]((u,))[0]
    # The final carry is x + 0.1 * sum_k tanh(x_k), broadcast over x's two rows, so the
    # gradient is 1 + 0.5 (1 + 2 * 0.1 (1 - tanh(x)^2)) and its derivative along u is
    # u * 0.1 * d/dx(1 - tanh^2) = u * -0.2 tanh(x) (1 - tanh(x)^2).
    t = np.tanh(x)
    np.testing.assert_allclose(got, u * -0.2 * t * (1 - t ** 2), rtol=1e-12)


def test_hessian_vector_product_through_an_alternating_loop():
    def f(x0, x1):
        def body(i, a):
            t = anp.log1p(anp.exp(anp.tanh(a * x0[0, 0])))
            return a + 0.1 * anp.tanh(anp.where(i % 2 == 0, t, -t))

        return anp.sum(x0 - adjit.fori_loop(0, 4, body, x1))

    x0 = np.array([[[0.18, -0.92], [0.07, -0.87]]])
    x1 = np.array([[[0.33, -0.004]], [[0.82, -0.47]], [[1.14, -0.06]]])
    v = (np.ones_like(x0), np.full_like(x1, 0.5))
    grad = adjit.grad(f, argnums=(0, 1))
    hvp = adjit.jvp(grad, (x0, x1), v)[1]
    eps = 1e-6
    plus = grad(x0 + eps * v[0], x1 + eps * v[1])
    minus = grad(x0 - eps * v[0], x1 - eps * v[1])
    for h, p, m in zip(hvp, plus, minus):
        np.testing.assert_allclose(h, (p - m) / (2 * eps), rtol=1e-5, atol=1e-8)


def test_vmap_of_grad_through_while_loops_stopping_at_different_steps(jit):
    """Each example's Newton iteration takes its own number of steps: one Revolve sweep of the
    largest count, an example's extra steps leaving its values as they are."""
    xs = np.array([[0.7, 2.0], [5.0, 100.0], [1.0, 1.0]])  # [1, 1] stops after one step
    grads = adjit.vmap(adjit.grad(lambda a: anp.sum(_newton_sqrt(a) * a)))(xs)
    np.testing.assert_allclose(grads, 1.5 * np.sqrt(xs), rtol=1e-10)
