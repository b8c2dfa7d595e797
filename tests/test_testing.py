"""adjit.testing.check_grads: each mode is checked against finite differences, so a custom rule
wrong by 1% fails in the mode that uses it, and the tolerances follow the dtype."""

from __future__ import annotations

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.config import config
from adjit.testing import check_grads, check_modes_agree, default_tolerances

X = np.array([0.3, -1.2, 0.8])


@pytest.fixture(autouse=True)
def _interpreted(monkeypatch):
    monkeypatch.setattr(config, "jit", False)


def _custom_vjp(scale):
    @adjit.custom_vjp
    def f(x):
        return anp.sin(x)

    f.defvjp(lambda x: (anp.sin(x), anp.cos(x)), lambda c, ct: (ct * c * scale,))
    return f


def _custom_jvp(scale):
    @adjit.custom_jvp
    def f(x):
        return anp.sin(x)

    @f.defjvp
    def _(primals, tangents):
        (x,), (x_dot,) = primals, tangents
        return anp.sin(x), x_dot * anp.cos(x) * scale

    return f


@pytest.mark.parametrize("make,mode", [(_custom_vjp, "rev"), (_custom_jvp, "fwd")])
def test_a_rule_wrong_by_one_percent_fails(make, mode):
    check_grads(make(1.0), (X,), order=1, modes=(mode,))  # the right rule passes
    with pytest.raises(AssertionError, match="finite differences"):
        check_grads(make(1.01), (X,), order=1, modes=(mode,))


def test_a_wrong_custom_vjp_fails_in_reverse_mode_alone():
    # Forward mode through a custom_vjp comes from the same (wrong) bwd rule, so comparing
    # the two modes would pass; finite differences do not.
    f = _custom_vjp(1.01)
    with pytest.raises(AssertionError):
        check_grads(lambda x: anp.sum(f(x) * x), (X,), order=1, modes=("rev",))


def test_a_derivative_wrong_by_a_tenth_of_a_percent_fails_in_float64():
    with pytest.raises(AssertionError):
        check_grads(_custom_jvp(1.001), (X,), order=1, modes=("fwd",))


def test_second_order_is_checked_against_finite_differences():
    # Right first derivative, wrong second: the bwd rule's own derivative is 2% off.
    @adjit.custom_vjp
    def f(x):
        return anp.sin(x)

    f.defvjp(lambda x: (anp.sin(x), x),
             lambda x, ct: (ct * (anp.cos(x) + 0.02 * (x - anp.stop_gradient(x))),))
    check_grads(f, (X,), order=1, modes=("rev",))
    with pytest.raises(AssertionError):
        check_grads(f, (X,), order=2, modes=("rev",))


def test_tolerances_follow_the_dtype():
    assert default_tolerances((X,)) == default_tolerances((X,), X)
    eps64, atol64, rtol64 = default_tolerances((X,))
    eps32, atol32, rtol32 = default_tolerances((X.astype(np.float32),))
    assert eps32 > eps64 and atol32 > atol64 and rtol32 > rtol64
    assert rtol64 <= 1e-5
    # A float32 output of float64 inputs is as precise as float32.
    assert default_tolerances((X,), X.astype(np.float32)) == (eps32, atol32, rtol32)
    check_grads(lambda x: anp.tanh(x) * x, (X.astype(np.float32),), order=2)


def test_pytrees_and_integer_leaves():
    def f(p, n):
        return {"y": anp.sin(p["w"]) * p["b"] + n}

    check_grads(f, ({"w": X, "b": X[::-1].copy()}, np.arange(3)), order=2)


def test_modes_agree_at_a_kink_and_catch_a_wrong_transpose(monkeypatch):
    """check_modes_agree compares reverse with forward mode (no finite differences): it holds
    at a kink, and fails where one mode alone is wrong (here neg's transpose, sign flipped)."""
    from adjit.ir.rules import transpose_rules

    def kinked(x):
        return anp.maximum(x, 0.0) * anp.sin(x) - x

    check_modes_agree(kinked, (np.array([0.0, 0.5, -0.7]),))
    monkeypatch.setitem(transpose_rules, "neg", lambda ct, x: [ct])
    with pytest.raises(AssertionError, match="vjp vs jvp"):
        check_modes_agree(kinked, (np.array([0.0, 0.5, -0.7]),))
