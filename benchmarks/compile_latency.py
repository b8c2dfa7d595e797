"""Issue 11's row 12: the first call's wait, stage by stage, and how it grows with the program.

Each program's first call runs in a fresh process that has already compiled another function
(as a user's process has), with an empty adjit disk cache; its stages are timed there:

- trace: the user's function (and the transform) traced into a graph (``trace_symbolic``);
- passes: the optimization pipeline (``adjit.passes.optimize``);
- codegen: fusion and the kernel's source text (``fuse``, ``generate``);
- typing, lowering: Numba's type inference and native lowering of the kernel (its
  ``numba.core.event`` pass events), the overloads they compile included; LLVM: the time
  Numba held LLVM's lock (building and optimizing modules, inside lowering mostly);
- other: the rest of the call (Numba's other passes, loading, the run itself).

Programs: the seed function's scalar gradient, the 784-256-10 tanh MLP's gradient (batch
512), ADBench's GMM gradient (d=10, K=25, n=1000), and a family of k independent terms
(``sum_i sin(x * c_i)`` for i < k: about 3k traced equations) for k = 10, 100, 1000, whose
times make the growth curve. JAX's ``jit(grad)`` first call of the same program in a fresh
process is the peer where JAX is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness import Line, log

_SCRIPT = r'''
import json, math, sys, time
import numpy as np
from collections import defaultdict

program, peer = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])  # benchmarks/, for gpu.gmm_objective


def make(np_, anp):
    """(function to differentiate, its arguments) for ``program`` over a NumPy namespace."""
    rng = np.random.default_rng(0)
    if program == "seed":
        return (lambda x: x ** 2 + anp.sin(x)), (0.5,)
    if program == "mlp":
        x = rng.standard_normal((512, 784))
        y = np.eye(10)[rng.integers(0, 10, 512)]
        params = (rng.standard_normal((784, 256)) * 0.05, np.zeros(256),
                  rng.standard_normal((256, 10)) * 0.05, np.zeros(10))

        def loss(p):
            w1, b1, w2, b2 = p
            z = anp.tanh(x @ w1 + b1) @ w2 + b2
            z = z - anp.max(z, axis=1, keepdims=True)
            return -anp.sum(y * (z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True)))) / 512
        return loss, (params,)
    if program == "gmm":
        import gpu
        gpu.anp = anp
        d, k, n = 10, 25, 1000
        alphas, means, icf, x = gpu.gmm_data(d, k, n)
        objective = gpu.gmm_objective(d)
        return (lambda a, m, q: objective(a, m, q, x)), (alphas, means, icf)
    k = int(program[len("terms"):])
    cs = np.linspace(0.5, 1.5, k)

    def terms(x):
        total = 0.0
        for c in cs:
            total = total + anp.sum(anp.sin(x * float(c)))
        return total
    return terms, (rng.standard_normal(16),)


if peer == "jax":
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    jax.jit(jax.grad(lambda x: jnp.sum(jnp.cos(x) * x)))(jnp.ones(3))  # something else first
    fun, args = make(np, jnp)
    if program == "gmm":
        import gpu
        gpu.anp = jnp
        fun, args = make(np, jnp)
    f = jax.jit(jax.grad(fun, argnums=tuple(range(len(args)))))
    t = time.perf_counter()
    jax.block_until_ready(f(*args))
    print(json.dumps({"total": time.perf_counter() - t}))
    raise SystemExit

import adjit
import adjit.numpy as anp
from numba.core import event
import adjit.backend.numba_cpu.runner as runner
import adjit.dispatch as dispatch

adjit.jit(adjit.grad(lambda x: anp.sum(anp.cos(x) * x)))(np.ones(3))  # something else first
stages = defaultdict(float)


def timed(stage, fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            stages[stage] += time.perf_counter() - t
    return wrapper


dispatch.trace_symbolic = timed("trace", dispatch.trace_symbolic)
runner.optimize = timed("passes", runner.optimize)
runner.fuse = timed("codegen", runner.fuse)
runner.generate = timed("codegen", runner.generate)
fun, args = make(np, anp)
f = adjit.grad(fun, argnums=tuple(range(len(args))))


def outermost(buffer, want):
    total, depth, start = 0.0, 0, 0.0
    for t, ev in buffer:
        if want is not None and not ev.data["name"].startswith(want):
            continue
        if ev.is_start:
            depth += 1
            start = t if depth == 1 else start
        else:
            depth -= 1
            total += t - start if depth == 0 else 0.0
    return total


with event.install_recorder("numba:run_pass") as passes, \
        event.install_recorder("numba:llvm_lock") as llvm:
    t = time.perf_counter()
    f(*args)
    total = time.perf_counter() - t
stages["typing"] = outermost(passes.buffer, "nopython_type_inference [kernel]")
stages["lowering"] = outermost(passes.buffer, "native_lowering [kernel]")
stages["llvm"] = outermost(llvm.buffer, None)
stages["total"] = total
info = adjit.inspect(adjit.grad(fun, argnums=tuple(range(len(args)))), *args)
stages["equations"] = len(info.graph.eqns)
stages["kernel_lines"] = info.source.count("\n")
print(json.dumps(stages))
'''

PROGRAMS = [("seed", "seed function, scalar grad"),
            ("mlp", "784-256-10 tanh MLP grad, batch 512"),
            ("gmm", "ADBench GMM grad, d=10 K=25 n=1000"),
            ("terms10", "k = 10 independent terms"),
            ("terms100", "k = 100 independent terms"),
            ("terms1000", "k = 1000 independent terms")]


def _run(ctx, program: str, peer: str) -> dict | None:
    env = dict(os.environ, PYTHONPATH=ctx.adjit_root,
               ADJIT_CACHE_DIR=os.path.join(ctx.tmp_dir, f"latency-{program}-{peer}"))
    # Run in the adjit folder: ``python -c`` puts the working folder first on sys.path, so
    # from elsewhere (a checkout) it would import that folder's adjit, not --adjit-path's.
    run = subprocess.run([sys.executable, "-c", _SCRIPT, program, peer, ctx.bench_dir],
                         capture_output=True, text=True, env=env, timeout=1800,
                         cwd=ctx.adjit_root)
    if run.returncode:
        log(f"  {program} ({peer}) failed: {run.stderr[-600:]}")
        ctx.report.notes.append(f"Row 12: {program} ({peer}) failed: {run.stderr[-200:]}")
        return None
    return json.loads(run.stdout.strip().splitlines()[-1])


def row12_compile_latency(ctx) -> None:
    log("row 12: first-call compile latency by stage")
    jax_ok = "jax" in ctx.peers
    table = ["| program | traced eqns | kernel lines | trace | passes | codegen | Numba typing "
             "| Numba lowering (LLVM) | other | total | JAX `jit(grad)` |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    totals = {}
    for program, what in PROGRAMS:
        s = _run(ctx, program, "adjit")
        j = _run(ctx, program, "jax") if jax_ok else None
        if s is None:
            continue
        totals[program] = s["total"]
        other = s["total"] - sum(s.get(k, 0.0) for k in ("trace", "passes", "codegen",
                                                        "typing", "lowering"))
        jt = f"{j['total'] * 1e3:.0f} ms" if j else "—"
        table.append(f"| {what} | {s['equations']} | {s['kernel_lines']} | "
                     + " | ".join(f"{s.get(k, 0.0) * 1e3:.0f} ms" for k in
                                  ("trace", "passes", "codegen", "typing"))
                     + f" | {s['lowering'] * 1e3:.0f} ms ({s['llvm'] * 1e3:.0f} ms) | "
                       f"{other * 1e3:.0f} ms | {s['total'] * 1e3:.0f} ms | {jt} |")
        log(f"  {what}: {s['total']:.2f} s" + (f", JAX {j['total']:.2f} s" if j else ""))
        if program in ("seed", "mlp", "gmm"):
            goal, ok = (("no slower than JAX", lambda r, a, o: r <= 1.0) if program == "seed"
                        else ("within 2x of JAX", lambda r, a, o: r <= 2.0))
            ctx.report.lines.append(Line(
                "12", f"first call (compile) of the {what}", "JAX `jit(grad)` first call",
                s["total"], j["total"] if j else None, goal, ok,
                f"{s['equations']} traced equations; stages in the details"))
    if "terms100" in totals and "terms1000" in totals:
        growth = totals["terms1000"] / totals["terms100"]
        ctx.report.lines.append(Line(
            "12", "compile time growth, k = 1000 against k = 100 independent terms",
            "k = 100", totals["terms1000"], totals["terms100"], "≤ 10x (linear)",
            lambda r, a, o: r <= 10.0, f"k = 10: {totals.get('terms10', 0.0):.2f} s"))
        log(f"  growth k=100 -> 1000: {growth:.1f}x")
    ctx.report.detail("12", "\n".join(table))
