"""Complex numbers: values against NumPy (interpreted and compiled), type promotion, and every
derivative convention (grad with and without holomorphic=True, jvp, vjp, vmap, jacfwd, jacrev)
against JAX, which defines them."""

from __future__ import annotations

import numpy as np
import pytest

import adjit
import adjit.numpy as anp

Z = np.array([1.0 + 2.0j, -0.5 + 0.3j, 2.0 - 1.0j, 0.4 - 0.7j])
W = np.array([0.3 - 1.1j, 1.5 + 0.2j, -0.8 - 0.6j, 0.9 + 0.9j])
M = np.array([[1.0 + 1.0j, 2.0 - 0.5j, 0.3j], [-1.0 + 0.2j, 0.5, 1.0 - 1.0j]])


# --------------------------------------------------------------------------- values

# (name, function of (z, w) over a numpy-like namespace); every elementwise function NumPy
# defines on complex numbers that adjit has, the parts, reductions and products.
VALUES = [
    ("add", lambda np_, z, w: z + w), ("sub", lambda np_, z, w: z - w),
    ("mul", lambda np_, z, w: z * w), ("div", lambda np_, z, w: z / w),
    ("neg", lambda np_, z, w: -z), ("exp", lambda np_, z, w: np_.exp(z)),
    ("log", lambda np_, z, w: np_.log(z)), ("sin", lambda np_, z, w: np_.sin(z)),
    ("cos", lambda np_, z, w: np_.cos(z)), ("tan", lambda np_, z, w: np_.tan(z)),
    ("sinh", lambda np_, z, w: np_.sinh(z)), ("cosh", lambda np_, z, w: np_.cosh(z)),
    ("tanh", lambda np_, z, w: np_.tanh(z)), ("sqrt", lambda np_, z, w: np_.sqrt(z)),
    ("power", lambda np_, z, w: np_.power(z, w)), ("pow_float", lambda np_, z, w: z ** 2.5),
    ("integer_pow", lambda np_, z, w: z ** 3), ("pow_neg", lambda np_, z, w: z ** -2),
    ("reciprocal", lambda np_, z, w: np_.reciprocal(z)),
    ("square", lambda np_, z, w: np_.square(z)), ("expm1", lambda np_, z, w: np_.expm1(w)),
    ("log1p", lambda np_, z, w: np_.log1p(w)), ("arcsin", lambda np_, z, w: np_.arcsin(z)),
    ("arccos", lambda np_, z, w: np_.arccos(z)), ("arctan", lambda np_, z, w: np_.arctan(z)),
    ("arcsinh", lambda np_, z, w: np_.arcsinh(z)),
    ("arccosh", lambda np_, z, w: np_.arccosh(z)),
    ("arctanh", lambda np_, z, w: np_.arctanh(z)),
    ("real", lambda np_, z, w: np_.real(z)), ("imag", lambda np_, z, w: np_.imag(z)),
    ("conj", lambda np_, z, w: np_.conj(z)), ("angle", lambda np_, z, w: np_.angle(z)),
    ("angle_deg", lambda np_, z, w: np_.angle(z, deg=True)),
    ("abs", lambda np_, z, w: np_.abs(z)), ("weak_scalar", lambda np_, z, w: 1j * z + 2.0),
    ("sum", lambda np_, z, w: np_.sum(z * w)), ("prod", lambda np_, z, w: np_.prod(z)),
    ("mean", lambda np_, z, w: np_.mean(z)), ("var", lambda np_, z, w: np_.var(z)),
    ("vdot", lambda np_, z, w: np_.vdot(z, w)), ("dot", lambda np_, z, w: np_.dot(z, w)),
    ("outer_matmul", lambda np_, z, w: np_.outer(z, w) @ np_.outer(w, z)),
    ("einsum", lambda np_, z, w: np_.einsum("i,j->ij", z, w)),
    ("where", lambda np_, z, w: np_.where(np_.abs(z) > 1.0, z, w)),
    ("isfinite", lambda np_, z, w: np_.isfinite(z / w)),
    ("equal", lambda np_, z, w: np_.equal(z, np_.conj(np_.conj(z)))),
]


def _all_values(np_, z, w):
    return tuple(fn(np_, z, w) for _, fn in VALUES)


def _check_values(got, z, w, rtol):
    for (name, fn), value in zip(VALUES, got):
        want = fn(np, z, w)
        assert np.asarray(value).dtype == np.asarray(want).dtype, name
        np.testing.assert_allclose(value, want, rtol=rtol, atol=rtol, err_msg=name)


def test_values_interpreted(interpreted):
    _check_values(_all_values(anp, Z, W), Z, W, 1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_values_compiled(dtype):
    # One kernel for all of them (about 10 s to compile); the cases of test_primitives and
    # test_compiled_derivatives_equal_interpreted compile complex kernels in the quick suite.
    z, w = Z.astype(dtype), W.astype(dtype)
    got = adjit.jit(lambda z, w: _all_values(anp, z, w))(z, w)
    _check_values(got, z, w, 1e-12 if dtype == np.complex128 else 2e-5)


def test_promotion(interpreted):
    f32, c64 = np.ones(2, np.float32), np.ones(2, np.complex64)
    assert (f32 * 1j).dtype == np.complex64  # a weak complex keeps float32's precision
    assert (anp.asarray(f32) * 1j).dtype == np.complex64
    assert anp.multiply(np.arange(2), 1j).dtype == np.complex128
    assert anp.multiply(c64, 2.0).dtype == np.complex64
    assert anp.add(c64, np.ones(2)).dtype == np.complex128  # as NumPy
    assert anp.add(f32, c64).dtype == np.complex64
    assert anp.abs(c64).dtype == np.float32
    assert anp.real(c64).dtype == np.float32
    assert anp.zeros(2, anp.complex64).dtype == np.complex64
    np.testing.assert_array_equal(anp.imag(np.arange(3.0)), np.zeros(3))


def test_ordering_is_an_error(interpreted):
    for fn in (lambda z: anp.maximum(z, z), lambda z: anp.sort(z), lambda z: anp.floor(z),
               lambda z: anp.argmax(z), lambda z: z < z, lambda z: anp.max(z),
               lambda z: anp.sign(z), lambda z: anp.clip(z, 0.0, 1.0)):
        with pytest.raises(adjit.AdjitTypeError, match="not defined for complex"):
            adjit.jit(fn)(Z)
    with pytest.raises(adjit.AdjitTypeError, match="real\\(\\) or abs\\(\\)"):
        anp.astype(Z, np.float64)


def test_wider_complex_is_refused():
    with pytest.raises(adjit.AdjitTypeError, match="complex64 and complex128"):
        adjit.jit(anp.sin)(np.ones(2, np.clongdouble))


# --------------------------------------------------------------------------- derivatives

# Real-valued functions of complex inputs: grad follows JAX's convention (the conjugate of
# df/dRe + i df/dIm), which the transposes of real, imag, conj and abs produce.
REAL_OF_COMPLEX = [
    lambda np_, z: np_.sum(np_.abs(z) ** 2),
    lambda np_, z: np_.sum(np_.real(np_.sin(z) * np_.exp(z)) + np_.imag(z ** 3 / (z + 1j))),
    lambda np_, z: np_.abs(np_.prod(z)) + np_.sum(np_.angle(z)),
    lambda np_, z: np_.real(np_.sum(np_.conj(z) * np_.log(z) * np_.sqrt(z))),
    lambda np_, z: np_.sum(np_.abs(np_.tanh(z) + np_.cosh(z) - np_.arcsinh(z))),
    lambda np_, z: np_.real(np_.vdot(z, z * 2.0)) + np_.var(z),
    lambda np_, z: np_.sum(np_.real(np_.outer(z, z) @ np_.conj(np_.outer(z, z)))),
]

HOLOMORPHIC = [
    lambda np_, z: np_.sum(np_.sin(z) * z),
    lambda np_, z: np_.prod(np_.exp(z) / (z + 2.0)) + np_.mean(np_.log1p(z) ** 3),
    lambda np_, z: np_.sum(np_.tan(z) ** 0.5 + np_.arctanh(z * 0.2) * np_.sqrt(z)),
]


@pytest.mark.parametrize("k", range(len(REAL_OF_COMPLEX)))
def test_grad_real_of_complex_matches_jax(interpreted, jax_np, k):
    jax, jnp = jax_np
    fn = REAL_OF_COMPLEX[k]
    want = jax.grad(lambda z: fn(jnp, z))(Z)
    np.testing.assert_allclose(adjit.grad(lambda z: fn(anp, z))(Z), want, rtol=1e-10)
    value, g = adjit.value_and_grad(lambda z: fn(anp, z))(Z)
    np.testing.assert_allclose(value, fn(np, Z), rtol=1e-12)
    np.testing.assert_allclose(g, want, rtol=1e-10)
    # The Jacobian of a real function by reverse mode is the same convention, row by row.
    np.testing.assert_allclose(adjit.jacrev(lambda z: fn(anp, z))(Z),
                               jax.jacrev(lambda z: fn(jnp, z))(Z), rtol=1e-10)


@pytest.mark.parametrize("k", range(len(HOLOMORPHIC)))
def test_holomorphic_matches_jax(interpreted, jax_np, k):
    jax, jnp = jax_np
    fn = HOLOMORPHIC[k]
    z = Z * 0.5
    want = jax.grad(lambda z: fn(jnp, z), holomorphic=True)(z)
    np.testing.assert_allclose(adjit.grad(lambda z: fn(anp, z), holomorphic=True)(z), want,
                               rtol=1e-10)
    # jvp and vjp with complex tangents and cotangents
    t = W
    _, tangent = adjit.jvp(lambda z: fn(anp, z), (z,), (t,))
    np.testing.assert_allclose(tangent, jax.jvp(lambda z: fn(jnp, z), (z,), (t,))[1],
                               rtol=1e-10)
    ct = 0.3 - 0.8j
    _, f_vjp = adjit.vjp(lambda z: fn(anp, z), z)
    np.testing.assert_allclose(f_vjp(ct)[0], jax.vjp(lambda z: fn(jnp, z), z)[1](ct)[0],
                               rtol=1e-10)
    for ours, theirs in ((adjit.jacfwd, jax.jacfwd), (adjit.jacrev, jax.jacrev)):
        elementwise = lambda np_: lambda z: np_.sin(z) * z ** 2 + np_.exp(z) / z  # noqa: E731
        np.testing.assert_allclose(ours(elementwise(anp), holomorphic=True)(z),
                                   theirs(elementwise(jnp), holomorphic=True)(z), rtol=1e-10)


def test_vmap_of_grad_matches_jax(interpreted, jax_np):
    jax, jnp = jax_np
    zs = np.stack([Z, W, Z * W])
    fn = REAL_OF_COMPLEX[1]
    want = jax.vmap(jax.grad(lambda z: fn(jnp, z)))(zs)
    np.testing.assert_allclose(adjit.vmap(adjit.grad(lambda z: fn(anp, z)))(zs), want,
                               rtol=1e-10)
    hol = HOLOMORPHIC[0]
    np.testing.assert_allclose(
        adjit.vmap(adjit.grad(lambda z: hol(anp, z), holomorphic=True))(zs),
        jax.vmap(jax.grad(lambda z: hol(jnp, z), holomorphic=True))(zs), rtol=1e-10)


def test_real_parameters_through_complex_values(interpreted, jax_np):
    # Real inputs, a complex intermediate, a real output: an ordinary gradient, and jacfwd of
    # a real-to-complex map (allowed without holomorphic=True, as in JAX).
    jax, jnp = jax_np
    x = np.array([0.3, 1.2, -0.7])

    def loss(np_, x):
        z = np_.exp(1j * x) * (x + 2.0j)
        return np_.sum(np_.abs(z * z - 1.0))

    np.testing.assert_allclose(adjit.grad(lambda x: loss(anp, x))(x),
                               jax.grad(lambda x: loss(jnp, x))(x), rtol=1e-10)
    np.testing.assert_allclose(adjit.jacfwd(lambda x: anp.exp(1j * x) * x)(x),
                               jax.jacfwd(lambda x: jnp.exp(1j * x) * x)(x), rtol=1e-10)
    np.testing.assert_allclose(adjit.hessian(lambda x: loss(anp, x))(x),
                               jax.hessian(lambda x: loss(jnp, x))(x), rtol=1e-9)


def test_compiled_derivatives_equal_interpreted(jax_np):
    # One compiled kernel per transform, against JAX (so against the interpreter too).
    jax, jnp = jax_np
    fn, hol = REAL_OF_COMPLEX[3], HOLOMORPHIC[1]
    np.testing.assert_allclose(adjit.grad(lambda z: fn(anp, z))(Z),
                               jax.grad(lambda z: fn(jnp, z))(Z), rtol=1e-10)
    z64 = (Z * 0.5).astype(np.complex64)
    got = adjit.grad(lambda z: hol(anp, z), holomorphic=True)(z64)
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got, jax.grad(lambda z: hol(jnp, z), holomorphic=True)(
        z64.astype(np.complex128)), rtol=1e-4)


def test_errors_follow_jax(interpreted):
    with pytest.raises(adjit.AdjitTypeError, match="real-valued output.*holomorphic=True"):
        adjit.grad(lambda z: anp.sum(anp.sin(z)))(Z)
    with pytest.raises(adjit.AdjitTypeError, match="holomorphic=True needs complex inputs"):
        adjit.grad(lambda x: anp.sum(anp.sin(x)), holomorphic=True)(np.ones(3))
    with pytest.raises(adjit.AdjitTypeError, match="holomorphic=True needs a complex output"):
        adjit.grad(lambda z: anp.sum(anp.abs(z)), holomorphic=True)(Z)
    with pytest.raises(adjit.AdjitTypeError, match="jacfwd needs floating-point inputs"):
        adjit.jacfwd(anp.sin)(Z)
    with pytest.raises(adjit.AdjitTypeError, match="jacrev needs a real-valued output"):
        adjit.jacrev(anp.sin)(Z)


def test_python_complex_scalars():
    # A Python complex is a complex128 input, compiled like a float is.
    assert adjit.jit(lambda z: z * z + 1.0)(1 + 2j) == -2 + 4j
    g = adjit.grad(lambda z: anp.sin(z) * z, holomorphic=True)(0.5 + 0.25j)
    z = 0.5 + 0.25j
    np.testing.assert_allclose(g, np.cos(z) * z + np.sin(z), rtol=1e-12)
    np.testing.assert_allclose(adjit.grad(lambda z: anp.abs(z) ** 2)(3.0 + 4.0j), 6.0 - 8.0j)
