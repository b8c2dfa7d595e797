"""adjit.numpy.fft and adjit.scipy.fft: values against numpy.fft (interpreted and compiled
through rocket-fft), the transposes by the inner-product identity of each transform,
derivatives against JAX, batching, and the errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
import adjit.scipy.fft as asf
from adjit.config import config

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 6))
Z = X + 1j * RNG.standard_normal((3, 6))
X3 = RNG.standard_normal((2, 3, 5))


# (name, function of a numpy-like fft namespace): every function, with n/s, axes and norms.
VALUES = [
    ("fft", lambda f: f.fft(Z)), ("fft_n_axis", lambda f: f.fft(Z, n=4, axis=0)),
    ("fft_pad", lambda f: f.fft(X, n=9)), ("ifft", lambda f: f.ifft(Z, norm="ortho")),
    ("ifft_forward", lambda f: f.ifft(Z, n=8, norm="forward")),
    ("rfft", lambda f: f.rfft(X)), ("rfft_n", lambda f: f.rfft(X, n=5, axis=0)),
    ("irfft", lambda f: f.irfft(Z)), ("irfft_odd", lambda f: f.irfft(Z, n=7, norm="ortho")),
    ("fft2", lambda f: f.fft2(Z)), ("ifft2", lambda f: f.ifft2(Z, s=(4, 4))),
    ("fftn", lambda f: f.fftn(X3, axes=(0, 2))), ("ifftn", lambda f: f.ifftn(X3, norm="forward")),
    ("rfftn", lambda f: f.rfftn(X3)), ("rfftn_axes", lambda f: f.rfftn(X3, axes=(2, 0))),
    ("irfftn", lambda f: f.irfftn(f.rfftn(X3), s=X3.shape, axes=(0, 1, 2))),
    ("irfftn_s", lambda f: f.irfftn(Z, s=(3, 7), axes=(0, 1))),
    ("fftshift", lambda f: f.fftshift(X3)), ("fftshift_axis", lambda f: f.fftshift(Z, axes=1)),
    ("ifftshift", lambda f: f.ifftshift(X3, axes=(0, 2))),
    ("roundtrip", lambda f: f.ifftshift(f.fftshift(X3))),
]


def _check(got, want, name, rtol):
    got = np.asarray(got)
    assert got.shape == want.shape and got.dtype == want.dtype, (name, got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=name)


@pytest.mark.parametrize("name,fn", VALUES, ids=[v[0] for v in VALUES])
def test_values_interpreted(interpreted, name, fn):
    _check(fn(anp.fft), fn(np.fft), name, 1e-12)
    _check(fn(asf), fn(np.fft), name, 1e-12)


@pytest.mark.slow
def test_values_compiled():
    pytest.importorskip("rocket_fft")
    # One kernel for every case (about 20 s to compile); the quick suite compiles FFTs in
    # test_compiled_grad_equals_interpreted and the fft cases of tests/test_compiled.py.
    got = adjit.jit(lambda: tuple(fn(anp.fft) for _, fn in VALUES))()
    for (name, fn), value in zip(VALUES, got):
        _check(value, fn(np.fft), name, 1e-12)


def test_plain_numpy_code_traces(interpreted, jax_np):
    # np.fft.* and np.real/np.conj on traced arrays run adjit's (the NumPy protocols).
    def loss(m, x):
        return m.sum(m.abs(m.fft.rfft(x)) ** 2) + m.real(m.sum(m.conj(m.fft.fft(x))))

    np.testing.assert_allclose(adjit.grad(lambda x: loss(np, x))(X),
                               adjit.grad(lambda x: loss(anp, x))(X), rtol=1e-12)
    np.testing.assert_allclose(adjit.grad(lambda x: loss(np, x))(X),
                               jax_np[0].grad(lambda x: loss(jax_np[1], x))(X), rtol=1e-12)


def test_single_precision_is_kept(interpreted):
    x = X.astype(np.float32)
    assert anp.fft.rfft(x).dtype == np.complex64
    assert anp.fft.irfft(anp.fft.rfft(x)).dtype == np.float32
    assert anp.fft.fft(x).dtype == np.complex64
    np.testing.assert_allclose(anp.fft.fft(x), np.fft.fft(x), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- transposes
# JAX's transposes are the plain (bilinear) ones: Re sum(u * L v) == Re sum(L^T u * v) for the
# R-linear rfft and irfft as well as the C-linear fft and ifft.

LINEAR = [
    ("fft", lambda v: anp.fft.fft(v), True, True),
    ("ifft_ortho", lambda v: anp.fft.ifft(v, norm="ortho"), True, True),
    ("fftn_n", lambda v: anp.fft.fftn(v, s=(4, 5)), True, True),
    ("rfft_even", lambda v: anp.fft.rfft(v, n=6), False, True),
    ("rfft_odd", lambda v: anp.fft.rfft(v, n=7), False, True),
    ("rfftn", lambda v: anp.fft.rfftn(v), False, True),
    ("irfft_even", lambda v: anp.fft.irfft(v, n=6), True, False),
    ("irfft_odd", lambda v: anp.fft.irfft(v, n=5), True, False),
    ("irfftn", lambda v: anp.fft.irfftn(v, s=(3, 8)), True, False),
]


def _random(shape, complex_):
    v = RNG.standard_normal(shape)
    return v + 1j * RNG.standard_normal(shape) if complex_ else v


@pytest.mark.parametrize("name,fn,complex_in,complex_out", LINEAR, ids=[v[0] for v in LINEAR])
def test_inner_product_identity(interpreted, name, fn, complex_in, complex_out):
    v = _random((3, 5), complex_in)
    out = fn(v)
    u = _random(out.shape, complex_out)
    _, lv = adjit.jvp(fn, (v,), (v,))  # linear: the JVP at any point is the map itself
    np.testing.assert_allclose(lv, out, rtol=1e-12, atol=1e-12)
    _, f_vjp = adjit.vjp(fn, v)
    (ltu,) = f_vjp(u)
    assert ltu.shape == v.shape
    lhs, rhs = np.real(np.sum(u * lv)), np.real(np.sum(ltu * v))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10)


def test_transposes_match_jax(interpreted, jax_np):
    jax, jnp = jax_np
    pairs = [
        (lambda f, v: f.fft.rfft(v, n=6), X), (lambda f, v: f.fft.irfft(v, n=7), Z),
        (lambda f, v: f.fft.irfft(v), Z), (lambda f, v: f.fft.ifft2(v, norm="ortho"), Z),
        (lambda f, v: f.fft.rfftn(v, axes=(0, 1)), X),
    ]
    for fn, v in pairs:
        out = fn(np, v)
        u = _random(out.shape, np.iscomplexobj(out))
        ours = adjit.vjp(lambda v: fn(anp, v), v)[1](u)[0]
        theirs = jax.vjp(lambda v: fn(jnp, v), v)[1](u)[0]
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- derivatives

LOSSES = [
    lambda m, x: m.sum(m.abs(m.fft.fft(x, axis=1)) ** 2 * m.cos(x)),
    lambda m, x: m.sum(m.fft.irfft(m.fft.rfft(x) * (1 + 2j), n=6) ** 3),
    lambda m, x: m.sum(m.sin(m.fft.irfft(x[:, :4] + 0.5j * x[:, 1:5], n=7))),
    lambda m, x: m.sum(m.abs(m.fft.ifft2(x + 1j, norm="ortho"))),
    lambda m, x: m.sum(m.fft.fftshift(m.fft.irfftn(m.fft.rfftn(x) ** 2, s=(3, 6))) * x),
]


@pytest.mark.parametrize("k", range(len(LOSSES)))
def test_grad_matches_jax(interpreted, jax_np, k):
    jax, jnp = jax_np
    fn = LOSSES[k]
    np.testing.assert_allclose(adjit.grad(lambda x: fn(anp, x))(X),
                               jax.grad(lambda x: fn(jnp, x))(X), rtol=1e-10, atol=1e-12)


def test_complex_inputs_match_jax(interpreted, jax_np):
    jax, jnp = jax_np
    for fn in (lambda m, z: m.sum(m.abs(m.fft.fft(z)) ** 2 * m.abs(z)),
               lambda m, z: m.sum(m.fft.irfft(z, n=10) ** 2),
               lambda m, z: m.sum(m.fft.irfft(z, n=11) ** 2)):
        np.testing.assert_allclose(adjit.grad(lambda z: fn(anp, z))(Z),
                                   jax.grad(lambda z: fn(jnp, z))(Z), rtol=1e-10, atol=1e-12)
    hol = lambda m, z: m.sum(m.fft.fft(m.sin(z)) * m.fft.ifft(z))  # noqa: E731
    np.testing.assert_allclose(adjit.grad(lambda z: hol(anp, z), holomorphic=True)(Z),
                               jax.grad(lambda z: hol(jnp, z), holomorphic=True)(Z),
                               rtol=1e-10, atol=1e-12)


def test_grad_matches_finite_differences(interpreted):
    loss = lambda x: LOSSES[1](anp, x)  # noqa: E731
    g = adjit.grad(loss)(X)
    eps, numeric = 1e-6, np.zeros_like(X)
    for i in np.ndindex(X.shape):
        e = np.zeros_like(X)
        e[i] = eps
        numeric[i] = (loss(X + e) - loss(X - e)) / (2 * eps)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-6)


def test_vmap(interpreted):
    xs = RNG.standard_normal((4, 3, 6))
    for fn in (lambda x: anp.fft.rfft(x), lambda x: anp.fft.fft2(x),
               lambda x: anp.fft.irfft(anp.fft.fft(x, axis=0), n=5)):
        np.testing.assert_allclose(adjit.vmap(fn)(xs), np.stack([fn(x) for x in xs]),
                                   rtol=1e-12, atol=1e-12)
    g = adjit.vmap(adjit.grad(lambda x: LOSSES[0](anp, x)))(xs)
    np.testing.assert_allclose(g, np.stack([adjit.grad(lambda x: LOSSES[0](anp, x))(x)
                                            for x in xs]), rtol=1e-12, atol=1e-12)


def test_compiled_grad_equals_interpreted():
    pytest.importorskip("rocket_fft")
    loss = lambda x: LOSSES[2](anp, x) + LOSSES[3](anp, x)  # noqa: E731
    compiled = adjit.grad(loss)(X)
    config.update("jit", False)
    try:
        interp = adjit.grad(loss)(X)
    finally:
        config.update("jit", True)
    np.testing.assert_allclose(compiled, interp, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- errors


def test_errors(interpreted):
    with pytest.raises(adjit.AdjitTypeError, match="rfft takes a real array"):
        anp.fft.rfft(Z)
    with pytest.raises(adjit.AdjitValueError, match="invalid norm"):
        anp.fft.fft(Z, norm="unitary")
    with pytest.raises(adjit.AdjitValueError, match="out of bounds"):
        anp.fft.fft(Z, axis=2)
    with pytest.raises(adjit.AdjitValueError, match="repeated axes"):
        anp.fft.fftn(Z, axes=(0, 0))
    with pytest.raises(adjit.AdjitValueError, match="invalid FFT length"):
        anp.fft.fft(Z, n=0)


def test_without_rocket_fft_compiling_is_an_adjit_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "rocket_fft", None)  # import rocket_fft now fails
    with pytest.raises(adjit.AdjitError, match="rocket-fft"):
        adjit.jit(lambda x: anp.fft.fft(x * 2.0))(X3)
    monkeypatch.setattr(config, "jit", False)
    np.testing.assert_allclose(anp.fft.fft(X3 * 2.0), np.fft.fft(X3 * 2.0))


def test_cuda_declines_fft():
    from adjit.backend.numba_cuda.lowering import DECLINED

    assert "fft" in DECLINED
