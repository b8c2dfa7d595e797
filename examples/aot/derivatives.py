"""The functions examples/aot exports: a potential, its derivative, and the derivative mapped
over an array. ``python -m adjit aot derivatives:df ...`` reads ``<name>_example_args``."""

import numpy as np

import adjit


def potential(x):
    """A double well with a tilt: V(x) = x^4 - 2 x^2 + 0.3 x."""
    return x**4 - 2.0 * x**2 + 0.3 * x


V = potential
V_example_args = (0.0,)
dV = adjit.grad(potential)                 # double dV(double x)
dV_example_args = (0.0,)
d2V = adjit.grad(adjit.grad(potential))    # double d2V(double x)
d2V_example_args = (0.0,)
vdV = adjit.vmap(adjit.grad(potential))    # int vdV(const double *x, int64_t x_dim0, double *out)
vdV_example_args = (np.zeros(4),)
