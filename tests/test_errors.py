"""Each user error raises an AdjitError subclass whose message says what went wrong and how to
fix it."""

from __future__ import annotations

import math

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.primitives import registry
from adjit.primitives.structural import bind


def _branchy(x):
    if x > 0:  # the line the error must point at
        return x
    return -x


def test_python_if_on_traced_value():
    with pytest.raises(adjit.ConcretizationError) as info:
        adjit.grad(_branchy)(1.0)
    message = str(info.value)
    assert isinstance(info.value, adjit.AdjitError) and isinstance(info.value, TypeError)
    assert "bool[]" in message                               # which value
    assert "computed by 'gt'" in message
    assert "test_errors.py" in message and "if x > 0:" in message   # the user's line
    assert "adjit.numpy.where" in message                    # the way out
    assert "control-flow" in message


def test_python_if_on_traced_array_under_jit():
    with pytest.raises(adjit.ConcretizationError, match=r"bool\[n0\].*if x > 0:"):
        adjit.jit(_branchy)(np.ones(3))


def test_python_if_on_input_names_the_input():
    with pytest.raises(adjit.ConcretizationError, match="an input of the function"):
        adjit.grad(lambda x: x if x else -x)(1.0)


@pytest.mark.parametrize("x", [3, np.arange(3), np.int32(2), True])
def test_grad_of_integer_input(x):
    with pytest.raises(adjit.AdjitTypeError, match="floating-point inputs.*argument 0") as info:
        adjit.grad(lambda x: anp.sum(x * 2.0))(x)
    assert isinstance(info.value, TypeError)
    assert "argnums" in str(info.value)


def test_grad_of_integer_input_in_a_pytree():
    with pytest.raises(adjit.AdjitTypeError, match="argument 1 has dtype int64"):
        adjit.grad(lambda x, p: x * p["n"], argnums=(0, 1))(1.0, {"n": 2})


@pytest.mark.parametrize("fun, what", [
    (lambda x: x * 2.0, r"f64\[n0\]"),
    (lambda x: (anp.sum(x), anp.sum(x)), "tuple"),
    (lambda x: [anp.sum(x)], "list"),
    (lambda x: anp.sum(x) > 0, r"bool\[\]"),
])
def test_grad_of_non_scalar_output(fun, what):
    with pytest.raises(adjit.AdjitTypeError, match=what) as info:
        adjit.grad(fun)(np.ones(3))
    assert "scalar" in str(info.value) and "vjp" in str(info.value)


def test_value_and_grad_of_non_scalar_output():
    with pytest.raises(adjit.AdjitTypeError, match="value_and_grad needs a function returning"):
        adjit.value_and_grad(lambda x: x)(np.ones(2))


def test_math_function_on_tracer():
    with pytest.raises(adjit.ConcretizationError) as info:
        adjit.grad(lambda x: math.sin(x))(1.0)
    message = str(info.value)
    assert "float()" in message and "math.sin" in message and "adjit.numpy" in message
    assert "test_errors.py" in message


@pytest.mark.parametrize("fun, name", [
    (lambda x: anp.sum(np.fft.hfft(x)), "numpy.fft.hfft"),
    (lambda x: anp.sum(np.linalg.eig(x)[0]), "numpy.linalg.eig"),
    (lambda x: np.unique(x)[0], "numpy.unique"),
    (lambda x: np.add.accumulate(x)[0], "numpy.add.accumulate"),
])
def test_unsupported_numpy_function(fun, name):
    with pytest.raises(adjit.AdjitTypeError, match=name.replace(".", r"\.")) as info:
        adjit.grad(fun)(np.eye(2) + 1.0 if "linalg" in name else np.array([2.0, 1.0]))
    assert "not supported" in str(info.value)


def test_missing_rule_names_the_primitive(monkeypatch):
    monkeypatch.setattr(adjit.config, "jit", False)  # a test primitive has no kernel lowering
    name = "test_only_square"
    registry.defprim(name, lambda x: x, lambda x: x * x)
    try:
        assert registry.missing_rules() == {name: ["jvp"]}
        # Evaluating needs no derivative rule ...
        assert adjit.jit(lambda x: bind(name, x))(3.0) == 9.0
        # ... differentiating does, in either mode.
        for transform in (adjit.grad, lambda f: (lambda x: adjit.jvp(f, (x,), (1.0,)))):
            with pytest.raises(adjit.MissingRuleError, match=f"'{name}' has no jvp rule") as info:
                transform(lambda x: bind(name, x))(3.0)
            assert isinstance(info.value, adjit.AdjitError)
            assert isinstance(info.value, NotImplementedError)
    finally:
        registry.abstract_rules.pop(name)
        registry.impl_rules.pop(name)
    assert registry.missing_rules() == {}


def test_missing_transpose_rule_names_the_primitive(monkeypatch):
    monkeypatch.setattr(adjit.config, "jit", False)
    name = "test_only_double"
    registry.defprim(name, lambda x: x, lambda x: 2 * x)
    registry.defjvp(name, lambda t, x, **_: bind(name, t))
    registry.linear_prims.add(name)
    try:
        assert registry.missing_rules() == {name: ["transpose"]}
        assert adjit.jvp(lambda x: bind(name, x), (1.0,), (1.0,)) == (2.0, 2.0)
        with pytest.raises(adjit.MissingRuleError, match=f"'{name}' has no transpose rule"):
            adjit.grad(lambda x: bind(name, x))(1.0)
    finally:
        for table in (registry.abstract_rules, registry.impl_rules, registry.jvp_rules):
            table.pop(name)
        registry.linear_prims.discard(name)


def test_unknown_primitive():
    with pytest.raises(adjit.MissingRuleError, match="'no_such_prim'"):
        adjit.jit(lambda x: bind("no_such_prim", x))(1.0)


def test_bad_argnums_and_has_aux():
    with pytest.raises(adjit.AdjitValueError, match="argnums=2"):
        adjit.grad(lambda x, y: x * y, argnums=2)(1.0, 2.0)
    with pytest.raises(adjit.AdjitTypeError, match="has_aux=True"):
        adjit.grad(lambda x: x * 2.0, has_aux=True)(1.0)
    with pytest.raises(adjit.AdjitTypeError, match="expects a function"):
        adjit.grad(3.0)


def test_bad_inputs():
    with pytest.raises(adjit.AdjitTypeError, match="str"):
        adjit.grad(lambda x: x)("1.0")
    with pytest.raises(adjit.AdjitTypeError, match="complex"):
        adjit.jit(lambda x: x)(np.ones(2, np.clongdouble))
    with pytest.raises(adjit.AdjitValueError, match="broadcast"):
        adjit.jit(anp.add)(np.ones(3), np.ones(4))
    with pytest.raises(adjit.AdjitTypeError, match="tuples"):
        adjit.jvp(lambda x: x, 1.0, 1.0)


@pytest.mark.parametrize("transform", [adjit.grad, adjit.value_and_grad])
def test_none_argument_names_the_argument(transform):
    with pytest.raises(adjit.AdjitTypeError,
                       match=r"argument 0 is None; expected an array or a number \(or a "
                             r"pytree of them\)") as info:
        transform(lambda x: x * 2.0)(None)
    assert isinstance(info.value, TypeError)
    with pytest.raises(adjit.AdjitTypeError, match="grad argument 1 is None"):
        adjit.grad(lambda x, y: x * y, argnums=(0, 1))(1.0, None)
    # a None the gradient does not need is an empty pytree, as in JAX
    assert adjit.grad(lambda x, y: x * 2.0)(1.0, None) == 2.0


@pytest.mark.parametrize("bad, kind", [("1.0", "str"), (object(), "object"),
                                       ({1, 2}, "set")])
def test_string_or_object_argument_names_the_argument(bad, kind):
    with pytest.raises(adjit.AdjitTypeError, match=f"grad argument 0 is a {kind}"):
        adjit.grad(lambda x: x)(bad)
    with pytest.raises(adjit.AdjitTypeError, match=f"jit argument 1 is a {kind}"):
        adjit.jit(lambda x, y: x)(1.0, {"y": bad})
    with pytest.raises(adjit.AdjitTypeError, match=f"vmap argument 0 is a {kind}"):
        adjit.vmap(lambda x: x)(bad)
    with pytest.raises(adjit.AdjitTypeError, match=f"jvp argument 0 is a {kind}"):
        adjit.jvp(lambda x: x, (bad,), (1.0,))


def test_unknown_target_lists_the_known_ones():
    for make in (lambda: adjit.jit(lambda x: x, target="tpu"),
                 lambda: adjit.grad(target="tpu"),
                 lambda: adjit.vmap(lambda x: x, target="tpu"),
                 lambda: adjit.hessian(lambda x: x, target="tpu"),
                 lambda: adjit.jvp(lambda x: x, (1.0,), (1.0,), target="tpu")):
        with pytest.raises(adjit.AdjitValueError, match="'tpu'.*'cpu'"):
            make()


def test_in_place_assignment_suggests_at():
    def f(x):
        x[0] = 1.0
        return x

    with pytest.raises(adjit.AdjitTypeError, match=r"x\.at\[idx\]\.set"):
        adjit.jit(f)(np.ones(3))


def test_leaked_tracer():
    leaked = []

    def f(x):
        leaked.append(x)
        return x * 2.0

    adjit.jit(f)(1.0)
    with pytest.raises(adjit.TracerLeakError, match="escaped|after its trace ended"):
        adjit.jit(lambda y: y + leaked[0])(1.0)
    with pytest.raises(adjit.TracerLeakError):
        anp.sin(leaked[0])
