"""Fit the hyperparameters of a Gaussian process by its log marginal likelihood: an RBF kernel
plus noise, the likelihood from a Cholesky factor and a triangular solve, its gradient with
respect to the (log) length scale, signal variance and noise variance by adjit in reverse mode
(through the Cholesky decomposition and the solve), and a few steps of gradient ascent.

    log p(y | X, theta) = -1/2 y^T K^-1 y - sum(log diag L) - n/2 log(2 pi),   K = L L^T

    python examples/gp_marginal_likelihood.py
"""

import math

import numpy as np
import scipy.stats

import adjit
import adjit.numpy as anp
import adjit.scipy.linalg as asl


def kernel(log_params, x):
    """RBF covariance of the inputs plus the noise variance on the diagonal."""
    log_ell, log_sf2, log_sn2 = log_params[0], log_params[1], log_params[2]
    sq_dist = (x[:, None] - x[None, :]) ** 2
    n = x.shape[0]
    return anp.exp(log_sf2) * anp.exp(-0.5 * sq_dist / anp.exp(2.0 * log_ell)) + \
        anp.exp(log_sn2) * anp.eye(n)


def log_marginal_likelihood(log_params, x, y):
    chol = anp.linalg.cholesky(kernel(log_params, x))
    alpha = asl.solve_triangular(chol, y, lower=True)  # L^-1 y, so y^T K^-1 y = |alpha|^2
    log_det_half = anp.sum(anp.log(anp.sum(chol * anp.eye(x.shape[0]), axis=1)))
    return -0.5 * anp.sum(alpha ** 2) - log_det_half - 0.5 * x.shape[0] * math.log(2 * math.pi)


def main():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0.0, 6.0, 40))
    y = np.sin(1.5 * x) + 0.1 * rng.standard_normal(x.shape)

    value_and_grad = adjit.value_and_grad(log_marginal_likelihood)
    params = np.log(np.array([2.0, 0.5, 0.5]))  # length scale, signal and noise variances
    start, _ = value_and_grad(params, x, y)
    # The value against SciPy's multivariate normal density of y under the kernel matrix.
    cov = kernel(params, x)  # adjit.numpy on NumPy arrays computes eagerly
    reference = scipy.stats.multivariate_normal(np.zeros(len(x)), cov).logpdf(y)
    print(f"initial log marginal likelihood = {float(start):.6f} (scipy: {reference:.6f})")

    # Gradient ascent on the log hyperparameters, each step at most 0.3 in every coordinate.
    for _ in range(60):
        value, grad = value_and_grad(params, x, y)
        params = params + np.clip(0.02 * grad, -0.3, 0.3)
    value, grad = value_and_grad(params, x, y)
    print(f"final log marginal likelihood = {float(value):.6f}")
    ell, sf2, sn2 = np.exp(params)
    print(f"fitted length scale, signal variance, noise variance = {ell:.4f} {sf2:.4f} "
          f"{sn2:.6f}")

    # The gradient against central finite differences of the likelihood.
    def f(p, x, y):
        return value_and_grad(p, x, y)[0]

    h = 1e-5
    numeric = np.array([(f(params + h * e, x, y) - f(params - h * e, x, y)) / (2 * h)
                        for e in np.eye(3)])
    print(f"gradient = {np.array2string(grad, precision=6)}")
    print(f"gradient vs finite differences: max abs difference = "
          f"{np.max(np.abs(grad - numeric)):.1e}")


if __name__ == "__main__":
    main()
