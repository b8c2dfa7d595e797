"""The 784-256-10 tanh MLP with softmax cross-entropy on a batch of 512 (float64), as rows 12
(compile latency) and 15 (dense linear algebra) use it."""

from __future__ import annotations

import numpy as np


def make(xp, rng):
    """(loss(params) over the namespace ``xp``, params, the gradient written by hand in NumPy):
    data and parameters drawn from ``rng``."""
    x = rng.standard_normal((512, 784))
    y = np.eye(10)[rng.integers(0, 10, 512)]
    params = (rng.standard_normal((784, 256)) * 0.05, np.zeros(256),
              rng.standard_normal((256, 10)) * 0.05, np.zeros(10))

    def loss(p):
        w1, b1, w2, b2 = p
        z = xp.tanh(x @ w1 + b1) @ w2 + b2
        z = z - xp.max(z, axis=1, keepdims=True)
        return -xp.sum(y * (z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True)))) / 512

    def by_hand(p):
        w1, b1, w2, b2 = p
        h = np.tanh(x @ w1 + b1)
        z = h @ w2 + b2
        e = np.exp(z - z.max(axis=1, keepdims=True))
        dz = (e / e.sum(axis=1, keepdims=True) * y.sum(axis=1, keepdims=True) - y) / 512
        da = (dz @ w2.T) * (1.0 - h * h)
        return (x.T @ da, da.sum(axis=0), h.T @ dz, dz.sum(axis=0))

    return loss, params, by_hand
