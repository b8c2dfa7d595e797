"""Issue 10's row 15: gradients of dense linear algebra against JAX and NumPy by hand.

Workloads (float64): the gradient of the least-squares loss ``sum((X @ w - y)**2)`` with X
2000x1000, and the gradient of a 784-256-10 tanh MLP with softmax cross-entropy on a batch of
512 (all four parameters). Peers: JAX ``jit(grad)`` and the gradient written by hand in NumPy
(``2 X^T (X w - y)``; the MLP's backward pass), each checked against adjit's result before it
is timed, the three alternating in two rounds of half the budget each (the minimum of the
two kept). Goal (issue 10): adjit within 1.2x of the best of the two.

Like every row, it runs without the machine's ``OPENBLAS_CORETYPE`` (``openblas.py``); the
notes name the kernels OpenBLAS chose. Every library uses its default threads.
"""

from __future__ import annotations

import os
import sys

from harness import Line, fmt_time, log, run_json

_SCRIPT = r'''
import json, sys
import numpy as np

budget, bench_dir = float(sys.argv[1]), sys.argv[2]
sys.path.insert(0, bench_dir)
import adjit
import adjit.numpy as anp
from harness import check_close, time_per_call

rng = np.random.default_rng(0)
results = {}


def least_squares(np_):
    X, y = rng.standard_normal((2000, 1000)), rng.standard_normal(2000)
    w = rng.standard_normal(1000)

    def by_hand(w):
        return 2.0 * (X.T @ (X @ w - y))
    return (lambda w: np_.sum((X @ w - y) ** 2)), by_hand, (w,), (X, y)


def mlp(np_):
    import mlp as workload

    loss, params, by_hand = workload.make(np_, rng)
    return loss, by_hand, (params,), None


def flat(r):
    r = r if isinstance(r, tuple) else (r,)
    return [np.asarray(b) for a in r for b in (a if isinstance(a, tuple) else (a,))]


jax = None
try:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
except ImportError:
    pass

for name, make in (("least_squares", least_squares), ("mlp", mlp)):
    loss, by_hand, args, _ = make(anp)
    g = adjit.grad(loss)
    expected = flat(g(*args))
    tools = {"adjit": g, "numpy": by_hand}
    if jax is not None:
        rng = np.random.default_rng(0)  # the same data for JAX's copy of the loss
        jloss, _, jargs, _ = make(jnp)
        jg = jax.jit(jax.grad(jloss))
        jargs = jax.tree_util.tree_map(jnp.asarray, jargs)
        tools["jax"] = lambda *_, f=jg, a=jargs: jax.block_until_ready(f(*a))
        rng = np.random.default_rng(0)
    for tool, fn in tools.items():
        for got, want in zip(flat(fn(*args)), expected):
            check_close(f"{name} {tool}", got, want, rtol=1e-9, atol=1e-12)
    for _ in range(2):  # rounds of half the budget: a slow stretch of the machine hits all
        for tool, fn in tools.items():
            t = time_per_call(lambda a: fn(*a), args, budget / 2)[0]
            results[f"{name}/{tool}"] = min(t, results.get(f"{name}/{tool}", t))


print(json.dumps(results))
'''

_WHAT = {"least_squares": "`grad` of `sum((X @ w - y)**2)`, X 2000x1000 float64",
         "mlp": "`grad` of a 784-256-10 tanh MLP, softmax cross-entropy, batch 512, float64"}


def row15_dense(ctx) -> None:
    log("row 15: dense linear algebra (least squares, MLP) against JAX and NumPy by hand")
    env = dict(os.environ, PYTHONPATH=ctx.adjit_root,
               ADJIT_CACHE_DIR=os.path.join(ctx.tmp_dir, "dense"))
    r = run_json(ctx, [sys.executable, "-c", _SCRIPT, str(ctx.budget_s), ctx.bench_dir], env,
                 "Row 15")
    if r is None:
        return
    for name, what in _WHAT.items():
        best = min(t for t in (r.get(f"{name}/numpy"), r.get(f"{name}/jax")) if t is not None)
        note = (f"NumPy by hand {fmt_time(r[f'{name}/numpy'])}, JAX `jit(grad)` "
                f"{fmt_time(r.get(f'{name}/jax'))}")
        ctx.report.lines.append(Line(
            "15", what, "best of NumPy by hand and JAX", r[f"{name}/adjit"], best,
            "within 1.2x (≤ 1.2x)", lambda ratio, a, o: ratio <= 1.2, note))
        if f"{name}/jax" in r:
            ctx.report.lines.append(Line(
                "15", what, "JAX `jit(grad)`", r[f"{name}/adjit"], r[f"{name}/jax"], "", None,
                "OpenBLAS: see the header"))
