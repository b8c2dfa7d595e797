"""Issue 15's rows: ``parallel=True`` on all the cores, against the serial kernel and JAX
(row 13), and data-parallel gradients on Dask (row 14, ``benchmarks/dask_bench.py``).

Each thread count runs in a fresh process: one thread pinned to one core (``taskset -c 0``,
XLA told to use one thread), two threads on two cores. Workloads: the seed function's
``value_and_grad(sum f)`` at N = 10^7 float64, and ADBench's GMM gradient (d = 10, K = 25,
n = 10^5; benchmarks/adbench/gmm.py's objective). In each process: adjit's serial kernel, adjit's
``parallel=True`` kernel (``ADJIT_NUM_THREADS`` threads) and JAX's ``jit``, each checked
against the serial kernel before it is timed (minimum per call, as every row).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from harness import Line, fmt_time, installed, log, run_json

_SCRIPT = r'''
import json, os, sys, time
import numpy as np

budget, bench_dir = float(sys.argv[1]), sys.argv[2]
sys.path.insert(0, bench_dir)
sys.path.insert(0, os.path.join(bench_dir, "adbench"))
import adjit
import adjit.numpy as anp
import gmm as adbench_gmm
from harness import check_close, time_per_call

rng = np.random.default_rng(0)
results = {}


def seed(np_):
    return lambda x: np_.sum(x ** 2 + np_.sin(x))


x = rng.uniform(-2, 2, 10 ** 7)
d, k, n = 10, 25, 10 ** 5
alphas, means, icf, data = adbench_gmm.generate(d, k, n)[:4]
gmm = adbench_gmm.make_objective(anp, anp.logsumexp, d)
workloads = {
    "seed": (adjit.value_and_grad(seed(anp)), adjit.value_and_grad(seed(anp), parallel=True),
             (x,)),
    "gmm": (adjit.grad(lambda a, m, q: gmm(a, m, q, data), argnums=(0, 1, 2)),
            adjit.grad(lambda a, m, q: gmm(a, m, q, data), argnums=(0, 1, 2), parallel=True),
            (alphas, means, icf)),
}
jax_fns = {}
try:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    jax_fns["seed"] = jax.jit(jax.value_and_grad(seed(jnp)))
    from jax.scipy.special import logsumexp
    jgmm = adbench_gmm.make_objective(jnp, logsumexp, d)
    jdata = jnp.asarray(data)
    jax_fns["gmm"] = jax.jit(jax.grad(lambda a, m, q: jgmm(a, m, q, jdata), argnums=(0, 1, 2)))
except ImportError:
    pass


def flat(r):
    return [np.asarray(a) for a in (r if isinstance(r, tuple) else (r,))
            for a in (a if isinstance(a, tuple) else (a,))]


for name, (serial, parallel, args) in workloads.items():
    expected = flat(serial(*args))
    tools = {"serial": serial, "parallel": parallel}
    if name in jax_fns:
        jargs = tuple(jnp.asarray(a) for a in args)
        tools["jax"] = lambda *_, f=jax_fns[name], a=jargs: jax.block_until_ready(f(*a))
    for tool, fn in tools.items():
        for got, want in zip(flat(fn(*args)), expected):
            check_close(f"{name} {tool}", got, want, rtol=1e-9, atol=1e-9)
        results[f"{name}/{tool}"] = time_per_call(lambda a: fn(*a), args, budget)[0]
print(json.dumps(results))
'''


def _run(ctx, threads: int) -> dict | None:
    env = dict(os.environ, PYTHONPATH=ctx.adjit_root, ADJIT_NUM_THREADS=str(threads),
               ADJIT_CACHE_DIR=os.path.join(ctx.tmp_dir, "parallel-cache"))
    command = [sys.executable, "-c", _SCRIPT, str(ctx.budget_s), ctx.bench_dir]
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        if shutil.which("taskset"):
            command = ["taskset", "-c", "0", *command]
    return run_json(ctx, command, env, f"Row 13: the {threads}-thread run")


def row13_parallel(ctx) -> None:
    log("row 13: parallel=True on 1 and 2 threads")
    runs = {t: _run(ctx, t) for t in (1, 2)}
    if runs[1] is None or runs[2] is None:
        return
    one, two = runs[1], runs[2]
    table = ["| workload | threads | adjit serial | adjit `parallel=True` | JAX `jit` | "
             "speed-up vs serial (1 thread) |", "|---|---|---|---|---|---|"]
    whats = {"seed": "`value_and_grad(sum(x**2 + sin x))`, N = 10^7 float64",
             "gmm": "ADBench GMM grad, d=10 K=25 n=10^5"}
    for name, what in whats.items():
        for t, r in runs.items():
            jax_t = r.get(f"{name}/jax")
            table.append(f"| {what} | {t} | {fmt_time(r[f'{name}/serial'])} | "
                         f"{fmt_time(r[f'{name}/parallel'])} | {fmt_time(jax_t)} | "
                         f"{one[f'{name}/serial'] / r[f'{name}/parallel']:.2f}x |")
        goal = ("speed-up ≥ 1.8x on 2 cores", lambda r, a, o: r <= 1 / 1.8) \
            if name == "seed" else ("", None)
        ctx.report.lines.append(Line(
            "13", f"{what}: 2 threads against the serial kernel", "adjit serial, 1 thread",
            two[f"{name}/parallel"], one[f"{name}/serial"], goal[0], goal[1],
            f"speed-up {one[f'{name}/serial'] / two[f'{name}/parallel']:.2f}x; on 1 thread "
            f"the parallel kernel takes {fmt_time(one[f'{name}/parallel'])}"))
        if f"{name}/jax" in two:
            ctx.report.lines.append(Line(
                "13", f"{what}: 2 threads", "JAX `jit`, same threads", two[f"{name}/parallel"],
                two[f"{name}/jax"], "faster (< 1x)", lambda r, a, o: r < 1.0,
                f"1 thread each: adjit {fmt_time(one[f'{name}/parallel'])}, JAX "
                f"{fmt_time(one.get(f'{name}/jax'))}"))
    ctx.report.detail("13", "\n".join(table))


def row14_dask(ctx) -> None:
    """benchmarks/dask_bench.py in a subprocess: its table goes into the details."""
    log("row 14: data-parallel value_and_grad on Dask, 1 and 2 workers")
    if not (installed("dask") and installed("distributed")):
        ctx.report.notes.append("Row 14: dask or distributed not installed (skipped).")
        return
    table = os.path.join(ctx.tmp_dir, "dask.md")
    command = [sys.executable, os.path.join(ctx.bench_dir, "dask_bench.py"), "--sizes",
               "1e6,1e7", "--repeats", "3" if ctx.quick else "5", "--output", table]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                         cwd=ctx.adjit_root, env=dict(os.environ, PYTHONPATH=ctx.adjit_root))
    if run.returncode:
        log(f"  failed: {run.stderr[-600:]}")
        ctx.report.notes.append(f"Row 14 failed: {run.stderr[-200:]}")
        return
    with open(table, encoding="utf-8") as fh:
        ctx.report.detail("14", fh.read().strip())
