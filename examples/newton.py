"""Newton's method with ``adjit.hessian`` and ``adjit.grad``: the Rosenbrock function from the
classic starting point (-1.2, 1.0) to its minimum at (1, 1).

Each step solves H(x) dx = -grad f(x); both derivatives are compiled once and reused.
"""

import numpy as np

import adjit


def rosenbrock(x):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


grad = adjit.grad(rosenbrock)
hess = adjit.hessian(rosenbrock)

x = np.array([-1.2, 1.0])
print(f"iter  0: x = [{x[0]: .12f}, {x[1]: .12f}]  f = {float(rosenbrock(x)):.3e}")
for it in range(1, 51):
    g = np.asarray(grad(x))
    step = np.linalg.solve(np.asarray(hess(x)), -g)
    x = x + step
    print(f"iter {it:2d}: x = [{x[0]: .12f}, {x[1]: .12f}]  f = {float(rosenbrock(x)):.3e}"
          f"  |grad| = {np.linalg.norm(g):.3e}")
    if np.linalg.norm(step) < 1e-12:
        break
print("converged to", x.tolist(), "after", it, "iterations")
assert np.allclose(x, [1.0, 1.0], atol=1e-10)
