"""adjit.numpy.linalg and adjit.scipy.linalg: values against NumPy and SciPy (single matrices
and stacks), derivatives to second order in both modes, compiled against interpreted, JAX's
gradients, and the errors for inputs that do not fit.

The primitives' own rules are checked by the case table (tests/test_primitives.py); this
checks the functions built over them and their NumPy/SciPy semantics.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl

import adjit
import adjit.numpy as anp
import adjit.scipy.linalg as asl
from adjit.config import config
from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.testing import check_grads

rng = np.random.default_rng(0)


def _spd(*shape):
    x = rng.standard_normal(shape)
    return x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])


def _wellcond(*shape):
    return rng.standard_normal(shape) + shape[-1] * np.eye(shape[-1])


A = _wellcond(4, 4)
AS = _wellcond(2, 3, 4, 4)     # a stack of stacks
S = _spd(4, 4)
SS = _spd(3, 4, 4)
TALL = rng.standard_normal((5, 3))
WIDE = rng.standard_normal((2, 3, 5))
B = rng.standard_normal((4, 2))
b = rng.standard_normal(4)


@pytest.fixture(autouse=True)
def _interpreted(monkeypatch):
    # Values and rules on the reference interpreter; the compiled tests switch it back on.
    monkeypatch.setattr(config, "jit", False)


def _run(fn, *args):
    return adjit.jit(fn)(*args)


def _close(got, want, rtol=1e-10, atol=1e-10):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("x", [A, AS], ids=["matrix", "stack"])
def test_inverse_determinant(x):
    _close(_run(anp.linalg.inv, x), np.linalg.inv(x))
    _close(_run(anp.linalg.det, x), np.linalg.det(x))
    sign, logdet = _run(anp.linalg.slogdet, x)
    want = np.linalg.slogdet(x)
    _close(sign, want.sign)
    _close(logdet, want.logabsdet)


@pytest.mark.parametrize("a, rhs", [
    (A, b), (A, B), (AS, b), (AS, rng.standard_normal((3, 4, 2))),  # batch axes broadcast
    (A, rng.standard_normal((2, 4, 3))),
], ids=["vector", "matrix", "stack-vector", "stack-broadcast", "matrix-stack"])
def test_solve(a, rhs):
    _close(_run(anp.linalg.solve, a, rhs), np.linalg.solve(a, rhs))


def test_factorizations():
    for x in (S, SS):
        _close(_run(anp.linalg.cholesky, x), np.linalg.cholesky(x))
        _close(_run(lambda a: anp.linalg.cholesky(a, upper=True), x),
               np.linalg.cholesky(x, upper=True))
        w, v = _run(anp.linalg.eigh, x)
        ref_w, ref_v = np.linalg.eigh(x)
        _close(w, ref_w)
        _close(np.abs(v), np.abs(ref_v))  # eigenvector signs are arbitrary
        _close(_run(anp.linalg.eigvalsh, x), np.linalg.eigvalsh(x))
    # Only the named triangle is read, as in NumPy.
    skewed = S + np.triu(rng.standard_normal((4, 4)), 1)
    _close(_run(anp.linalg.cholesky, skewed), np.linalg.cholesky(skewed))
    _close(_run(lambda a: anp.linalg.eigh(a, UPLO="U")[0], skewed.T),
           np.linalg.eigh(skewed.T, UPLO="U")[0])
    for x in (TALL, WIDE, A):
        u, s, vh = _run(lambda a: anp.linalg.svd(a, full_matrices=False), x)
        _close(u * s[..., None, :] @ vh, x)
        _close(s, np.linalg.svd(x, compute_uv=False))
        _close(_run(lambda a: anp.linalg.svd(a, compute_uv=False), x),
               np.linalg.svd(x, compute_uv=False))
        q, r = _run(anp.linalg.qr, x)
        ref_q, ref_r = np.linalg.qr(x)
        _close(np.abs(q), np.abs(ref_q))
        _close(np.abs(r), np.abs(ref_r))
        _close(q @ r, x)
        _close(np.triu(r), r)
    _close(np.abs(_run(lambda a: anp.linalg.qr(a, mode="r"), TALL)),
           np.abs(np.linalg.qr(TALL, "r")))
    u, s, vh = _run(anp.linalg.svd, A)  # full_matrices=True is the reduced SVD for a square one
    _close(u * s @ vh, A)


def test_pinv_and_matrix_power():
    deficient = TALL @ rng.standard_normal((3, 2)) @ rng.standard_normal((2, 4))  # rank 2
    for x in (TALL, WIDE, A, deficient):
        _close(_run(anp.linalg.pinv, x), np.linalg.pinv(x), atol=1e-9)
    _close(_run(lambda a: anp.linalg.pinv(a, rcond=0.5), TALL), np.linalg.pinv(TALL, rcond=0.5))
    for n in (0, 1, 2, 3, 5, -1, -2):
        _close(_run(lambda a, n=n: anp.linalg.matrix_power(a, n), AS),
               np.linalg.matrix_power(AS, n), rtol=1e-9)


def test_svdvals_multi_dot_cond():
    _close(_run(anp.linalg.svdvals, WIDE), np.linalg.svdvals(WIDE))
    mats = [TALL, rng.standard_normal((3, 4)), A, b]
    _close(_run(lambda *m: anp.linalg.multi_dot(m), *mats), np.linalg.multi_dot(mats))
    for p in (None, 2, -2, "fro", "nuc", 1, np.inf):
        _close(_run(lambda a, p=p: anp.linalg.cond(a, p), AS), np.linalg.cond(AS, p))
    _close(_run(lambda a: anp.linalg.matrix_norm(a, ord="nuc", keepdims=True), AS),
           np.linalg.matrix_norm(AS, ord="nuc", keepdims=True))


@pytest.mark.parametrize("ord", [None, "fro", "nuc", 2, -2, 1, -1, np.inf, -np.inf])
def test_matrix_norms(ord):
    _close(_run(lambda a: anp.linalg.norm(a, ord), A), np.linalg.norm(A, ord))
    x = rng.standard_normal((3, 2, 4))
    for axis in [(0, 2), (2, 0), (-1, 1)]:
        for keepdims in (False, True):
            _close(_run(lambda a: anp.linalg.norm(a, ord, axis, keepdims), x),
                   np.linalg.norm(x, ord, axis, keepdims))


def test_scipy_linalg():
    for lower in (True, False):
        for trans in (0, 1, 2, "N", "T", "C"):
            for unit in (False, True):
                for rhs in (b, B):
                    _close(_run(lambda a, r: asl.solve_triangular(
                        a, r, trans=trans, lower=lower, unit_diagonal=unit), A, rhs),
                        sl.solve_triangular(A, rhs, trans=trans, lower=lower,
                                            unit_diagonal=unit))
        c, low = _run(lambda a: asl.cho_factor(a, lower=lower), S)
        ref_c, _ = sl.cho_factor(S, lower=lower)
        assert bool(low) is lower
        tri = np.tril if lower else np.triu
        _close(tri(c), tri(ref_c))
        _close(_run(lambda a, r: asl.cho_solve(asl.cho_factor(a, lower=lower), r), S, B),
               sl.cho_solve((ref_c, lower), B))
        _close(_run(lambda a: asl.cholesky(a, lower=lower), S), sl.cholesky(S, lower=lower))
    # A stack of triangular systems (NumPy's batching rule).
    _close(_run(lambda a, r: asl.solve_triangular(a, r, lower=True), AS, b),
           np.linalg.solve(np.tril(AS), b))
    _close(_run(asl.inv, A), sl.inv(A))
    _close(_run(asl.det, A), sl.det(A))
    _close(_run(asl.solve, A, B), sl.solve(A, B))


def test_numpy_functions_on_traced_arrays():
    # np.linalg.* on a traced array dispatches here (NumPy's __array_function__).
    f = adjit.grad(lambda a: np.linalg.slogdet(np.linalg.inv(a) @ a @ a)[1])
    _close(f(A), np.linalg.inv(A).T)


# --------------------------------------------------------------------------- derivatives

GRAD_CASES = {
    "inv-stack": (anp.linalg.inv, (AS[0, :2],)),
    "det-stack": (anp.linalg.det, (AS[0, :2],)),
    "solve-broadcast": (anp.linalg.solve, (AS[0, :2], b)),
    "cholesky-upper": (lambda a: anp.linalg.cholesky(a, upper=True), (S,)),
    "eigvalsh": (anp.linalg.eigvalsh, (SS[:2],)),
    "eigh-U": (lambda a: anp.linalg.eigh(a, UPLO="U")[1] ** 2, (S,)),
    "eigh-stack": (lambda a: (lambda w, v: w[..., None] * v ** 2)(*anp.linalg.eigh(a)), (SS,)),
    "cholesky-stack": (anp.linalg.cholesky, (SS[:2],)),
    "svd-wide": (lambda a: (lambda u, s, vh: (u ** 2, s, vh ** 2))(
        *anp.linalg.svd(a, full_matrices=False)), (WIDE,)),
    "svd-tall-stack": (lambda a: (lambda u, s, vh: (u ** 2, s, vh ** 2))(
        *anp.linalg.svd(a, full_matrices=False)), (np.swapaxes(WIDE, -1, -2),)),
    "svd-values": (lambda a: anp.linalg.svd(a, compute_uv=False), (WIDE,)),
    "qr-square": (lambda a: anp.linalg.qr(a)[1], (A,)),
    "pinv-tall": (anp.linalg.pinv, (TALL,)),
    "pinv-wide": (anp.linalg.pinv, (WIDE[0],)),
    "matrix_power": (lambda a: anp.linalg.matrix_power(a, 3), (A / 4,)),
    "matrix_power-neg": (lambda a: anp.linalg.matrix_power(a, -2), (A,)),
    "norm-nuc": (lambda a: anp.linalg.norm(a, "nuc"), (TALL,)),
    "norm-2": (lambda a: anp.linalg.norm(a, 2, axis=(1, 2)), (WIDE,)),
    "norm--2": (lambda a: anp.linalg.norm(a, -2), (A,)),
    "cond": (anp.linalg.cond, (A,)),
    "cond-1": (lambda a: anp.linalg.cond(a, 1), (A,)),
    "solve_triangular-stack": (lambda a, r: asl.solve_triangular(a, r, trans="T"), (AS[0, :2], B)),
    "cho_solve": (lambda a, r: asl.cho_solve(asl.cho_factor(a), r), (S, b)),
    "cho_solve-lower": (lambda a, r: asl.cho_solve(asl.cho_factor(a, lower=True), r), (SS, B)),
    "gaussian-logpdf": (lambda s, x: -0.5 * anp.sum(asl.solve_triangular(
        anp.linalg.cholesky(s), x, lower=True) ** 2) - 0.5 * anp.linalg.slogdet(s)[1], (S, b)),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_grads(name):
    fn, args = GRAD_CASES[name]
    check_grads(fn, args, order=2)


def test_repeated_eigenvalues():
    # Eigenvalue derivatives stay finite where eigenvalues repeat; eigenvector derivatives
    # divide by the gaps, so there they are not finite (JAX's behaviour).
    eye = np.eye(3)
    _close(adjit.grad(lambda a: anp.sum(anp.linalg.eigvalsh(a) ** 2))(eye), 2 * eye)
    with np.errstate(invalid="ignore"):  # inf * 0 in the product with the eigenvectors
        _, t = adjit.jvp(lambda a: anp.linalg.eigh(a)[1], (eye,), (np.ones((3, 3)),))
    assert not np.all(np.isfinite(t))


# --------------------------------------------------------------------------- compiled


def _suite(a, s, x, r):
    """The functions built over the primitives (each primitive alone is compiled by
    test_compiled and test_batching_compiled), on stacks, so one kernel covers them."""
    return (anp.linalg.pinv(x), anp.linalg.norm(x, "nuc", axis=(-2, -1)),
            anp.linalg.matrix_power(a, -2), asl.cho_solve(asl.cho_factor(s), r),
            asl.solve_triangular(s, r, trans=1, unit_diagonal=True))


def _suite_and_grad(a, s, x, r):
    grads = adjit.grad(lambda *args: sum(anp.sum(anp.sin(o)) for o in _suite(*args)),
                       argnums=(0, 1, 2, 3))(a, s, x, r)
    return (*_suite(a, s, x, r), *grads)


@pytest.mark.slow
def test_compiled_matches_interpreted():
    # Stacks, so every lowering runs its loop over the batch axes; one kernel.
    args = (AS, SS[:2], WIDE, rng.standard_normal((2, 4, 3)))  # AS: two batch axes
    want = _run(_suite_and_grad, *args)
    config.jit = True
    got = _run(_suite_and_grad, *args)
    for g, w in zip(got, want, strict=True):
        _close(g, w, rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------- JAX


def _sym(g):
    return (g + np.swapaxes(g, -1, -2)) / 2


@pytest.mark.slow  # importing JAX and compiling its functions takes seconds
def test_gradients_match_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    # adjit, as NumPy, reads one triangle of a symmetric input; JAX symmetrizes it: the
    # gradients agree on symmetric matrices, JAX's being the symmetric part of adjit's.
    cases = [
        (lambda m: anp.linalg.slogdet(m)[1], lambda m: jnp.linalg.slogdet(m)[1], A, False),
        (lambda m: anp.sum(anp.linalg.inv(m) ** 2), lambda m: jnp.sum(jnp.linalg.inv(m) ** 2),
         A, False),
        (lambda m: anp.linalg.norm(m, "nuc"), lambda m: jnp.linalg.norm(m, "nuc"), TALL, False),
        (lambda m: anp.sum(anp.sin(anp.linalg.pinv(m))),
         lambda m: jnp.sum(jnp.sin(jnp.linalg.pinv(m))), WIDE[0], False),
        (lambda m: anp.sum(anp.linalg.qr(m)[1] ** 3), lambda m: jnp.sum(jnp.linalg.qr(m)[1] ** 3),
         TALL, False),
        (lambda m: anp.sum(anp.sin(anp.linalg.cholesky(m))),
         lambda m: jnp.sum(jnp.sin(jnp.linalg.cholesky(m))), S, True),
        (lambda m: anp.sum(anp.linalg.eigh(m)[1] ** 4 * anp.linalg.eigh(m)[0]),
         lambda m: jnp.sum(jnp.linalg.eigh(m)[1] ** 4 * jnp.linalg.eigh(m)[0]), S, True),
    ]
    for ours, theirs, x, symmetric in cases:
        got = adjit.grad(ours)(x)
        want = np.asarray(jax.grad(theirs)(jnp.asarray(x)))
        _close(_sym(got) if symmetric else got, want, rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("fn, args, message", [
    (anp.linalg.inv, (np.ones((2, 3)),), "square"),
    (anp.linalg.det, (np.ones(3),), "at least 2 dimensions"),
    (anp.linalg.cholesky, (np.ones((3, 2, 4)),), "square"),
    (anp.linalg.solve, (A, np.ones(3)), "does not fit"),
    (anp.linalg.solve, (AS, np.ones((4, 4, 2))), "do not broadcast"),
    (asl.solve_triangular, (A, np.ones((2, 4))), "does not fit"),
    (lambda a: asl.solve_triangular(a, b, trans=3), (A,), "trans"),
    (lambda a: anp.linalg.svd(a), (TALL,), "full_matrices=False"),
    (lambda a: anp.linalg.qr(a, mode="raw"), (TALL,), "mode"),
    (lambda a: anp.linalg.eigh(a, UPLO="X"), (S,), "UPLO"),
    (lambda a: anp.linalg.matrix_power(a, 1.5), (A,), "integer"),
    (lambda a: anp.linalg.norm(a, "bad"), (A,), "not a matrix norm"),
    (lambda a: adjit.jvp(lambda m: anp.linalg.qr(m)[0], (a,), (a,)), (WIDE[0],), "m >= n"),
])
def test_errors(fn, args, message):
    with pytest.raises(AdjitValueError, match=message):
        _run(fn, *args)


def test_integer_matrices_are_promoted():
    _close(_run(anp.linalg.inv, np.array([[2, 1], [1, 3]])), np.linalg.inv([[2, 1], [1, 3]]))


def test_integer_dtype_is_rejected_by_the_primitive():
    from adjit.primitives import decompositions as dec

    with pytest.raises(AdjitTypeError, match="floating-point"):
        _run(dec.cholesky, np.eye(2, dtype=np.int64))
