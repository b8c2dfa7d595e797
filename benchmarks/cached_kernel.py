"""Hand-written Numba kernels with Numba's own disk cache (``cache=True``), in a file module.

Row 3 imports this in a fresh process to compare adjit's disk cache with Numba's. The code is
the same as in hand_numba.py.
"""

import math

import numpy as np
from numba import njit


@njit(cache=True)
def df_scalar(x):
    return 2.0 * x + math.cos(x)


@njit(cache=True, fastmath=True)
def value_and_grad_f64(x):
    n = x.shape[0]
    g = np.empty(n, np.float64)
    s = 0.0
    for i in range(n):
        xi = x[i]
        s += xi * xi + math.sin(xi)
        g[i] = 2.0 * xi + math.cos(xi)
    return s, g
