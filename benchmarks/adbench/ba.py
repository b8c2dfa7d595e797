"""ADBench's bundle adjustment (BA): the data files, the generator, the per-observation
reprojection error written once for any NumPy-like module (``adjit.numpy`` or ``jax.numpy``),
the sparse Jacobian's CSR structure, and a hand-written Numba objective.

Formulas and file format: ``../shared/docs/BENCHMARKS.md`` section 3. The Jacobian has 2p
reprojection rows with 15 non-zeros each (11 camera, 3 point, 1 weight column) and p weight
rows with one (-2 w); columns are the n cameras' 11 parameters, the m points' 3, the p weights.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

N_CAM, N_PT = 11, 3
BLOCK = N_CAM + N_PT + 1  # non-zeros of one reprojection row


def read(path: str):
    """(cams (n, 11), points (m, 3), weights (p,), features (p, 2), obs (p, 2)): the file holds
    one camera, point, weight and feature, replicated with obs[i] = (i % n, i % m)."""
    with open(path) as fh:
        tokens = fh.read().split()
    n, m, p = (int(t) for t in tokens[:3])
    vals = np.array(tokens[3:3 + N_CAM + N_PT + 1 + 2], dtype=np.float64)
    return replicate(vals[:N_CAM], vals[N_CAM:N_CAM + N_PT], vals[N_CAM + N_PT],
                     vals[N_CAM + N_PT + 1:], n, m, p)


def replicate(cam, point, weight, feature, n: int, m: int, p: int):
    """ADBench's instance of any size: every camera, point, weight and feature the same."""
    i = np.arange(p)
    return (np.tile(cam, (n, 1)), np.tile(point, (m, 1)), np.full(p, float(weight)),
            np.tile(feature, (p, 1)), np.stack([i % n, i % m], axis=1))


def generate(n: int, m: int, p: int):
    """An instance of another size from ba1's camera, point, weight and feature (ADBench's
    generator replicates the same values)."""
    cam = np.array([-0.758453, -1.109613, -0.845551, 34.556073, 39.676747, 53.881673,
                    419.194514, 5.864426, -8.518870, 0.087812, 0.002739])
    return replicate(cam, np.array([7.203245, 0.001144, 3.023326]), 0.417022,
                     np.array([271.760969, 834.209256]), n, m, p)


def make_residual(xp):
    """``residual(cam (11), X (3), w, feature (2)) -> (2,)``: w (project(cam, X) - feature),
    written per observation as a user would, to be vmapped."""

    def cross(a, b):
        return xp.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2],
                         a[0] * b[1] - a[1] * b[0]])

    def rodrigues(r, x):
        t2 = xp.sum(r * r)
        small = t2 == 0.0
        # The small-angle branch is taken at r = 0 exactly; a safe t2 keeps the other branch's
        # derivative finite there (where would otherwise select a NaN tangent's neighbour).
        theta = xp.sqrt(xp.where(small, 1.0, t2))
        v = r / theta
        c, s = xp.cos(theta), xp.sin(theta)
        rotated = x * c + cross(v, x) * s + v * (xp.sum(v * x) * (1.0 - c))
        return xp.where(small, x + cross(r, x), rotated)

    def residual(cam, x, w, feature):
        y = rodrigues(cam[0:3], x - cam[3:6])
        u = y[0:2] / y[2]
        r2 = xp.sum(u * u)
        distorted = u * (1.0 + cam[9] * r2 + cam[10] * r2 * r2)
        return w * (distorted * cam[6] + cam[7:9] - feature)

    return residual


def make_block(xp, jacrev, residual):
    """One observation's 2 x 15 Jacobian block [d/dcam | d/dX | d/dw] of ``residual``, by
    ``jacrev`` (two outputs, fifteen inputs: reverse mode needs two sweeps)."""
    jac = jacrev(residual, argnums=(0, 1, 2))

    def block(cam, x, w, feature):
        jc, jx, jw = jac(cam, x, w, feature)
        return xp.concatenate([jc, jx, jw[:, None]], axis=1)

    return block


def residual_numpy(cams, points, weights, features, obs):
    """All reprojection errors (p, 2) and weight errors (p,) in plain NumPy, for checks."""
    res = make_residual(np)
    r = np.stack([res(cams[c], points[q], w, f)
                  for (c, q), w, f in zip(obs, weights, features)])
    return r, 1.0 - weights * weights


def csr_structure(n: int, m: int, p: int, obs):
    """(indptr, indices, shape) of the Jacobian: rows 2i and 2i+1 hold camera obs[i,0]'s 11
    columns, point obs[i,1]'s 3 and weight i's; row 2p+i holds weight i's."""
    cam_cols = obs[:, 0:1] * N_CAM + np.arange(N_CAM)
    pt_cols = N_CAM * n + obs[:, 1:2] * N_PT + np.arange(N_PT)
    w_col = (N_CAM * n + N_PT * m + np.arange(p))[:, None]
    block = np.concatenate([cam_cols, pt_cols, w_col], axis=1)  # (p, 15), increasing
    indices = np.concatenate([np.repeat(block, 2, axis=0).reshape(-1), w_col[:, 0]])
    indptr = np.concatenate([np.arange(0, 2 * p * BLOCK + 1, BLOCK),
                             2 * p * BLOCK + np.arange(1, p + 1)])
    return indptr.astype(np.int64), indices.astype(np.int64), (3 * p, N_CAM * n + N_PT * m + p)


def make_csr_values(xp, vmap, grad, block):
    """``values(cams, points, weights, features, ci, pi)``: the Jacobian's CSR values, the
    (p, 2, 15) blocks of ``block`` row by row and then the weight rows' d(1 - w^2)/dw, as one
    function to compile (observation i's camera and point are rows ci[i] and pi[i])."""
    weight_rows = vmap(grad(lambda w: 1.0 - w * w))

    def values(cams, points, weights, features, ci, pi):
        blocks = vmap(block)(cams[ci], points[pi], weights, features)
        return xp.concatenate([xp.reshape(blocks, (-1,)), weight_rows(weights)])

    return values


@njit(fastmath=True)
def _rodrigues_project(cam, x0, x1, x2):
    x0 -= cam[3]
    x1 -= cam[4]
    x2 -= cam[5]
    r0, r1, r2 = cam[0], cam[1], cam[2]
    t2 = r0 * r0 + r1 * r1 + r2 * r2
    if t2 != 0.0:
        theta = math.sqrt(t2)
        c, s = math.cos(theta), math.sin(theta)
        v0, v1, v2 = r0 / theta, r1 / theta, r2 / theta
        vx = (v0 * x0 + v1 * x1 + v2 * x2) * (1.0 - c)
        y0 = x0 * c + (v1 * x2 - v2 * x1) * s + v0 * vx
        y1 = x1 * c + (v2 * x0 - v0 * x2) * s + v1 * vx
        y2 = x2 * c + (v0 * x1 - v1 * x0) * s + v2 * vx
    else:
        y0 = x0 + r1 * x2 - r2 * x1
        y1 = x1 + r2 * x0 - r0 * x2
        y2 = x2 + r0 * x1 - r1 * x0
    u0, u1 = y0 / y2, y1 / y2
    rr = u0 * u0 + u1 * u1
    dist = 1.0 + cam[9] * rr + cam[10] * rr * rr
    return u0 * dist * cam[6] + cam[7], u1 * dist * cam[6] + cam[8]


@njit(fastmath=True)
def _hand(cams, points, weights, features, obs):
    p = obs.shape[0]
    reproj = np.empty((p, 2))
    werr = np.empty(p)
    for i in range(p):
        cam = cams[obs[i, 0]]
        pt = points[obs[i, 1]]
        w = weights[i]
        a, b = _rodrigues_project(cam, pt[0], pt[1], pt[2])
        reproj[i, 0] = w * (a - features[i, 0])
        reproj[i, 1] = w * (b - features[i, 1])
        werr[i] = 1.0 - w * w
    return reproj, werr


def hand_objective(cams, points, weights, features, obs):
    """Hand-written Numba objective: one loop over the observations, no temporaries."""
    return _hand(cams, points, weights, features, obs)
