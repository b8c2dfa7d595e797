"""Fit a logistic regression to data spread over Dask workers: the loss is a sum over the rows,
so ``adjit.dask.value_and_grad`` computes each block's value and gradient where the block lives
(with the kernel adjit compiles there from the shipped graph) and sums them in a tree; only
parameter-sized gradients travel. SciPy's L-BFGS-B drives the fit with ``jac=True``, and the
same fit in one process with ``adjit.value_and_grad`` on the whole arrays checks it.

    pip install 'adjit[dask]'
    python examples/dask_gradient.py
"""

import numpy as np
import scipy.optimize

import adjit
import adjit.dask
import adjit.numpy as anp

N, D, CHUNK = 200_000, 5, 50_000
L2 = 1e-4


def nll(params, X, y):
    """Logistic regression's negative log-likelihood, a sum over the rows (the L2 penalty is
    added once, outside: inside it would be added once per block)."""
    z = anp.sum(X * params["w"], axis=1) + params["b"]
    return anp.sum(anp.logaddexp(0.0, z) - y * z)


def fit(value_and_grad, X, y):
    """L-BFGS-B on the flat vector (w, b): the mean loss, penalised, and its gradient."""
    def objective(theta):
        params = {"w": theta[:D], "b": theta[D]}
        value, grads = value_and_grad(params, X, y)
        value = value / N + 0.5 * L2 * theta[:D] @ theta[:D]
        return value, np.append(grads["w"] / N + L2 * theta[:D], grads["b"] / N)

    result = scipy.optimize.minimize(objective, np.zeros(D + 1), jac=True, method="L-BFGS-B",
                                     options={"gtol": 1e-9, "ftol": 1e-15})
    return result.x, result.nit


def main():
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    rng = np.random.default_rng(0)
    w_true, b_true = np.array([1.5, -2.0, 0.5, 0.0, 1.0]), -0.5
    X = rng.standard_normal((N, D))
    y = (rng.random(N) < 1.0 / (1.0 + np.exp(-(X @ w_true + b_true)))).astype(np.float64)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        # Persisted: the blocks stay on the workers between gradient evaluations.
        Xd = da.from_array(X, chunks=(CHUNK, D)).persist()
        yd = da.from_array(y, chunks=CHUNK).persist()
        print(f"data: {N} rows x {D} features in {Xd.numblocks[0]} blocks of {CHUNK} rows on "
              f"{len(client.scheduler_info()['workers'])} workers")

        dask_vg = adjit.dask.value_and_grad(nll)
        local_vg = adjit.value_and_grad(nll)
        p0 = {"w": np.full(D, 0.1), "b": 0.2}
        (v, g), (v1, g1) = dask_vg(p0, Xd, yd), local_vg(p0, X, y)
        print(f"value at p0: dask {v:.10f}, one process {v1:.10f}")
        rel = max(abs(v - v1) / abs(v1), np.max(np.abs(g["w"] - g1["w"])) / np.max(np.abs(g1["w"])))
        print(f"gradient at p0: max relative |dask - one process| = {rel:.2e}")

        theta, steps = fit(dask_vg, Xd, yd)
        built = client.run(adjit.dask.worker_info)
    theta1, steps1 = fit(local_vg, X, y)
    np.set_printoptions(precision=6, suppress=True)
    print(f"fitted (dask, {steps} L-BFGS steps)        = {theta}")
    print(f"fitted (one process, {steps1} L-BFGS steps) = {theta1}")
    print(f"max |dask fit - one-process fit| = {np.max(np.abs(theta - theta1)):.2e}")
    print(f"true (w, b) = {np.append(w_true, b_true)}")
    print("kernels built per worker =", sorted(info["kernels"] for info in built.values()))


if __name__ == "__main__":  # the worker processes import this file: no cluster from them
    main()
