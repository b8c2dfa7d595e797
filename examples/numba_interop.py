"""adjit derivatives inside your own Numba code: ``adjit.to_numba`` gives a function that
``@numba.njit`` code calls directly, with no Python in between.

1. Newton's method on a scalar equation, g and g' from adjit, the loop in Numba.
2. A chain of 64 anharmonic oscillators (Fermi-Pasta-Ulam-Tsingou) integrated with leapfrog in
   Numba, the forces -grad V(q) from adjit: the energy stays put, as a symplectic integrator's
   should.
"""

import numba
import numpy as np

import adjit
import adjit.numpy as anp

# --------------------------------------------------------------------------- 1. Newton


def g(x):
    return anp.cos(x) - x**3


g_nb = adjit.to_numba(g, 0.0)
dg_nb = adjit.to_numba(adjit.grad(g), 0.0)


@numba.njit
def newton(x):
    for it in range(50):
        step = g_nb(x) / dg_nb(x)
        x -= step
        if abs(step) < 1e-15:
            return x, it + 1
    return x, 50


root, iters = newton(1.0)
print(f"newton: root = {root:.15f} after {iters} steps, g(root) = {float(g(root)):.3e}")

# --------------------------------------------------------------------------- 2. FPUT chain


def potential(q):
    """Springs between neighbours (fixed ends): sum of d^2/2 + beta d^4/4."""
    d = anp.concatenate([q[:1], q[1:] - q[:-1], -q[-1:]])
    return anp.sum(0.5 * d**2 + 0.25 * d**4)


grad_V = adjit.to_numba(adjit.grad(potential), np.zeros(64))
V = adjit.to_numba(potential, np.zeros(64))


@numba.njit
def leapfrog(q, p, dt, steps):
    force = -grad_V(q)
    for _ in range(steps):
        p = p + 0.5 * dt * force
        q = q + dt * p
        force = -grad_V(q)
        p = p + 0.5 * dt * force
    return q, p


@numba.njit
def energy(q, p):
    return 0.5 * np.sum(p * p) + V(q)


n = 64
q0 = np.sin(np.pi * np.arange(1, n + 1) / (n + 1))  # the lowest mode
p0 = np.zeros(n)
e0 = energy(q0, p0)
q, p = leapfrog(q0, p0, 0.01, 20_000)
e1 = energy(q, p)
print(f"fput: energy {e0:.12f} -> {e1:.12f} after 20000 leapfrog steps, "
      f"relative drift = {abs(e1 - e0) / e0:.3e}")
