"""Per-example gradients: ``vmap(grad(loss), in_axes=(None, 0, 0))`` of a logistic-regression
loss, against a Python loop over the examples (and the closed form (sigmoid(x.w) - y) x).

The vmapped gradient is one compiled kernel whose loop runs over the batch; the loop calls the
compiled gradient once per example.
"""

import time

import numpy as np

import adjit
import adjit.numpy as anp


def loss(w, x, y):
    """Logistic loss of one example: log(1 + e^z) - y z, with z = x . w."""
    z = anp.dot(x, w)
    return anp.logaddexp(0.0, z) - y * z


rng = np.random.default_rng(0)
n, d = 2000, 10
X = rng.standard_normal((n, d))
w = 0.5 * rng.standard_normal(d)
Y = (X @ w + 0.3 * rng.standard_normal(n) > 0).astype(np.float64)

per_example = adjit.vmap(adjit.grad(loss), in_axes=(None, 0, 0))
grad_one = adjit.grad(loss)


def loop(w, X, Y):
    return np.stack([grad_one(w, X[i], Y[i]) for i in range(len(X))])


def best_time(fn, *args, repeats=5):
    fn(*args)  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


G = per_example(w, X, Y)
G_loop = loop(w, X, Y)
G_exact = (1.0 / (1.0 + np.exp(-(X @ w))) - Y)[:, None] * X
print("per-example gradients:", G.shape)
print("max |vmap - loop|        =", float(np.max(np.abs(G - G_loop))))
print("max |vmap - closed form| =", float(np.max(np.abs(G - G_exact))))
t_vmap = best_time(per_example, w, X, Y)
t_loop = best_time(loop, w, X, Y, repeats=2)
print(f"vmap(grad(loss)): {t_vmap * 1e3:.3f} ms; Python loop of grad(loss): {t_loop * 1e3:.1f} ms "
      f"({t_loop / t_vmap:.0f}x slower)")
