"""Derivatives of the seed f(x) = x**2 + sin(x) written by hand in Numba: the baseline adjit
must match. f'(x) = 2x + cos(x).

Flags: the scalar derivative uses plain ``@njit`` (nothing to vectorise); the array kernels use
``@njit(fastmath=True)``, i.e. all of LLVM's fast-math flags (nnan ninf nsz arcp contract afn
reassoc), which lets LLVM reassociate the sum and vectorise the loop. The float32 kernels use
float32 constants and a float32 accumulator, so they never compute in float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit
def df_scalar(x):
    return 2.0 * x + math.cos(x)


@njit(fastmath=True)
def value_and_grad_f64(x):
    """One pass over x: the value sum(x**2 + sin x) and the gradient 2x + cos x together."""
    n = x.shape[0]
    g = np.empty(n, np.float64)
    s = 0.0
    for i in range(n):
        xi = x[i]
        s += xi * xi + math.sin(xi)
        g[i] = 2.0 * xi + math.cos(xi)
    return s, g


@njit(fastmath=True)
def value_and_grad_f32(x):
    n = x.shape[0]
    g = np.empty(n, np.float32)
    s = np.float32(0.0)
    two = np.float32(2.0)
    for i in range(n):
        xi = x[i]
        s += xi * xi + math.sin(xi)
        g[i] = two * xi + math.cos(xi)
    return s, g


@njit(fastmath=True)
def grad_f64(x):
    """The elementwise derivative 2x + cos x (the gradient of sum(f(x)))."""
    n = x.shape[0]
    g = np.empty(n, np.float64)
    for i in range(n):
        xi = x[i]
        g[i] = 2.0 * xi + math.cos(xi)
    return g


@njit(fastmath=True)
def grad_f32(x):
    n = x.shape[0]
    g = np.empty(n, np.float32)
    two = np.float32(2.0)
    for i in range(n):
        xi = x[i]
        g[i] = two * xi + math.cos(xi)
    return g


# ------------------------------------------------------------ compile-latency variants
# Small functions that are all new to every library when row 3 runs (the seed itself has been
# compiled by rows 1, 2 and 4 already). Each: (value, derivative), written in terms of ``m``,
# which is math for Numba, numpy for the reference check, adjit.numpy for adjit and
# jax.numpy for JAX.
VARIANTS = [
    ("x**3 + m.sin(x)", "3.0 * x**2 + m.cos(x)"),
    ("x**2 + m.cos(x)", "2.0 * x - m.sin(x)"),
    ("x**2 + m.exp(x)", "2.0 * x + m.exp(x)"),
    ("x**2 + m.tanh(x)", "2.0 * x + (1.0 - m.tanh(x)**2)"),
    ("x * m.sin(x)", "m.sin(x) + x * m.cos(x)"),
]

_ARRAY_TEMPLATE = """
def kernel(xs):
    n = xs.shape[0]
    g = np.empty(n, np.float64)
    s = 0.0
    for i in range(n):
        x = xs[i]
        s += {value}
        g[i] = {deriv}
    return s, g
"""


def scalar_variant(k: int):
    """A new (not yet compiled) njit dispatcher for variant k's derivative at a float."""
    _, deriv = VARIANTS[k]
    return njit(eval(f"lambda x: {deriv}", {"m": math}))


def array_variant(k: int):
    """A new njit single-loop value_and_grad kernel for sum(variant k) over a float64 array."""
    value, deriv = VARIANTS[k]
    namespace = {"m": math, "np": np}
    exec(_ARRAY_TEMPLATE.format(value=value, deriv=deriv), namespace)
    return njit(fastmath=True)(namespace["kernel"])
