"""ADBench's Gaussian mixture model (GMM) objective: the data files, the generator, the objective
written once for any NumPy-like module (``adjit.numpy`` or ``jax.numpy``, as a user of either
would write it), and a hand-written Numba objective.

Formulas and file format: ``../shared/docs/BENCHMARKS.md`` section 2.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.special import multigammaln


def read(path: str):
    """(alphas (K), means (K, d), icf (K, d(d+1)/2), x (n, d), gamma, m) from an ADBench file."""
    with open(path) as fh:
        tokens = fh.read().split()
    d, k, n = (int(t) for t in tokens[:3])
    vals = np.array(tokens[3:], dtype=np.float64)
    sizes = (k, k * d, k * d * (d + 1) // 2, n * d)
    parts, pos = [], 0
    for s in sizes:
        parts.append(vals[pos:pos + s])
        pos += s
    gamma, m = vals[pos], int(vals[pos + 1])
    return (parts[0], parts[1].reshape(k, d), parts[2].reshape(k, -1), parts[3].reshape(n, d),
            float(gamma), m)


def generate(d: int, k: int, n: int, seed: int = 0):
    """ADBench's generator: alphas, icf, x from N(0, 1), means from U(0, 1); gamma 1, m 0."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(k), rng.uniform(0.0, 1.0, (k, d)),
            rng.standard_normal((k, d * (d + 1) // 2)), rng.standard_normal((n, d)), 1.0, 0)


def lower_index(d: int) -> np.ndarray:
    """Flat (d*d) gather index of l into the strictly lower triangle of Q, filled column by
    column; entries on and above the diagonal point at an appended zero (index d(d-1)/2)."""
    lower = np.full((d, d), d * (d - 1) // 2, dtype=np.int64)
    idx = 0
    for i in range(d):
        for j in range(i + 1, d):
            lower[j, i] = idx
            idx += 1
    return lower.reshape(-1)


def log_wishart_constant(d: int, gamma: float, m: int) -> float:
    """C = n'd(log gamma - log(2)/2) - multigammaln(n'/2, d), n' = d + m + 1."""
    n_prime = d + m + 1
    return n_prime * d * (math.log(gamma) - 0.5 * math.log(2.0)) - multigammaln(0.5 * n_prime, d)


def make_objective(xp, logsumexp, d: int, gamma: float = 1.0, m: int = 0):
    """The GMM log-likelihood with the Wishart prior, in ``xp`` (adjit.numpy or jax.numpy).

    ``objective(alphas, means, icf, x)``; Q_k (x_i - mu_k) is the diagonal part exp(q_k) times
    the centred point plus an einsum with the strictly lower triangle gathered from l_k."""
    flat = lower_index(d)
    tail = -0.5 * math.log(2.0 * math.pi) * d  # per point
    wishart = log_wishart_constant(d, gamma, m)

    def objective(alphas, means, icf, x):
        n, k = x.shape[0], alphas.shape[0]
        q, l_ = icf[:, :d], icf[:, d:]
        ltri = xp.take(xp.concatenate([l_, xp.zeros((k, 1))], axis=1), flat,
                       axis=1).reshape(k, d, d)
        xc = x[:, None, :] - means[None, :, :]  # (n, K, d)
        qx = xp.exp(q)[None, :, :] * xc + xp.einsum("kij,nkj->nki", ltri, xc)
        main = alphas[None, :] + xp.sum(q, axis=1)[None, :] - 0.5 * xp.sum(qx * qx, axis=2)
        prior = (0.5 * gamma * gamma * (xp.sum(xp.exp(2.0 * q)) + xp.sum(l_ * l_))
                 - m * xp.sum(q))
        return (n * tail + xp.sum(logsumexp(main, axis=1)) - n * logsumexp(alphas) + prior
                - k * wishart)

    return objective


def objective_numpy(alphas, means, icf, x, gamma=1.0, m=0):
    """The reference value in plain NumPy (float64), for checks."""
    from scipy.special import logsumexp

    return float(make_objective(np, logsumexp, x.shape[1], gamma, m)(alphas, means, icf, x))


@njit(fastmath=True)
def _hand(alphas, means, icf, x, gamma, m, wishart):
    n, d = x.shape
    k = alphas.shape[0]
    qdiag = np.exp(icf[:, :d])
    sum_q = np.empty(k)
    prior = 0.0
    for c in range(k):
        s = 0.0
        for j in range(d):
            s += icf[c, j]
            prior += 0.5 * gamma * gamma * qdiag[c, j] * qdiag[c, j]
        sum_q[c] = s
        prior -= m * s
        for j in range(d, icf.shape[1]):
            prior += 0.5 * gamma * gamma * icf[c, j] * icf[c, j]
    amax = alphas.max()
    sa = 0.0
    for c in range(k):
        sa += math.exp(alphas[c] - amax)
    lse_alpha = math.log(sa) + amax
    main = np.empty(k)
    xc = np.empty(d)
    total = 0.0
    for i in range(n):
        for c in range(k):
            for j in range(d):
                xc[j] = x[i, j] - means[c, j]
            # ||Q_k xc||^2 with Q_k lower triangular: row r is l's entries of row r, then
            # exp(q_r) on the diagonal; l is stored column by column.
            sq = 0.0
            for r in range(d):
                acc = qdiag[c, r] * xc[r]
                for col in range(r):
                    # index of Q[r, col] in l: the columns before col hold sum_{t<col} d-1-t
                    acc += icf[c, d + col * (2 * d - col - 1) // 2 + (r - col - 1)] * xc[col]
                sq += acc * acc
            main[c] = alphas[c] + sum_q[c] - 0.5 * sq
        mx = main.max()
        s = 0.0
        for c in range(k):
            s += math.exp(main[c] - mx)
        total += math.log(s) + mx
    return (-0.5 * n * d * math.log(2.0 * math.pi) + total - n * lse_alpha + prior
            - k * wishart)


@njit(fastmath=True)
def _hand_grad(alphas, means, icf, x, gamma, m):
    n, d = x.shape
    k = alphas.shape[0]
    qdiag = np.exp(icf[:, :d])
    sum_q = np.zeros(k)
    for c in range(k):
        for j in range(d):
            sum_q[c] += icf[c, j]
    d_alphas = np.zeros(k)
    d_means = np.zeros((k, d))
    d_icf = np.zeros_like(icf)
    main = np.empty(k)
    qx = np.empty((k, d))
    xc = np.empty((k, d))
    for i in range(n):
        for c in range(k):
            sq = 0.0
            for r in range(d):
                xc[c, r] = x[i, r] - means[c, r]
            for r in range(d):
                acc = qdiag[c, r] * xc[c, r]
                for col in range(r):
                    acc += icf[c, d + col * (2 * d - col - 1) // 2 + (r - col - 1)] * xc[c, col]
                qx[c, r] = acc
                sq += acc * acc
            main[c] = alphas[c] + sum_q[c] - 0.5 * sq
        mx = main.max()
        s = 0.0
        for c in range(k):
            main[c] = math.exp(main[c] - mx)
            s += main[c]
        for c in range(k):
            w = main[c] / s  # d logsumexp / d main[c]
            d_alphas[c] += w
            for r in range(d):
                d_icf[c, r] += w  # through sum(q_k)
                g = -w * qx[c, r]  # d/d(Q_k xc)_r
                d_icf[c, r] += g * qdiag[c, r] * xc[c, r]
                d_means[c, r] -= g * qdiag[c, r]
                for col in range(r):
                    li = d + col * (2 * d - col - 1) // 2 + (r - col - 1)
                    d_icf[c, li] += g * xc[c, col]
                    d_means[c, col] -= g * icf[c, li]
    amax = alphas.max()
    sa = 0.0
    for c in range(k):
        sa += math.exp(alphas[c] - amax)
    for c in range(k):
        d_alphas[c] -= n * math.exp(alphas[c] - amax) / sa
        for j in range(d):
            d_icf[c, j] += gamma * gamma * qdiag[c, j] * qdiag[c, j] - m
        for j in range(d, icf.shape[1]):
            d_icf[c, j] += gamma * gamma * icf[c, j]
    return d_alphas, d_means, d_icf


def hand_gradient(alphas, means, icf, x, gamma=1.0, m=0):
    """Hand-written Numba gradient (alphas, means, icf): the forward pass per point, then the
    softmax weights pushed back through Q_k (x_i - mu_k) at once, one pass over the points."""
    return _hand_grad(alphas, means, icf, x, gamma, m)


def hand_objective(alphas, means, icf, x, gamma=1.0, m=0):
    """Hand-written Numba objective (one pass over points and components, no temporaries)."""
    return _hand(alphas, means, icf, x, gamma, m, log_wishart_constant(x.shape[1], gamma, m))
