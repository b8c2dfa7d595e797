"""The ADBench suite (GMM gradient, BA sparse Jacobian, D-LSTM gradient): adjit against its
peers in one process run; writes benchmarks/adbench/RESULTS.md and one log-log PNG per workload.

    python3 benchmarks/adbench/run.py            # full: 1 s per measurement, sizes up to the caps
    python3 benchmarks/adbench/run.py --quick    # 0.2 s per measurement, the data files' sizes
    python3 benchmarks/adbench/run.py --smoke    # one small size per workload (the test's run)

Peers: a hand-written Numba objective, JAX (`jit` of `grad` / of `vmap(jacrev)`), PyTorch and
PyTensor (each skipped with a note when missing). Every derivative is checked against JAX's
(or, without JAX, central differences of the NumPy objective) before it is timed. J/F is the
derivative's time over the best objective time of the run at that size.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import re
import shutil
import sys
import tempfile
import time

ADBENCH_DIR = os.path.dirname(os.path.abspath(__file__))
BENCH_DIR = os.path.dirname(ADBENCH_DIR)
sys.path.insert(0, BENCH_DIR)
import openblas  # noqa: E402  (before NumPy: the machine's OpenBLAS overrides removed)

# isort: split
import numpy as np  # noqa: E402

REPO_ROOT = os.path.dirname(BENCH_DIR)
DATA_DIR = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data", "adbench")
WORKLOADS = ("gmm", "ba", "lstm")

# Sizes per mode. GMM: (d, K, n, data file or None: generated). BA: (n, m, p, file or None).
GMM_SIZES = {
    "smoke": [(2, 5, 1000, "1k_gmm_d2_K5.txt")],
    "quick": [(2, 5, 1000, "1k_gmm_d2_K5.txt"), (10, 25, 1000, "1k_gmm_d10_K25.txt"),
              (20, 50, 1000, "1k_gmm_d20_K50.txt")],
    # The grid at n = 1000, and at n = 10,000 for K in {5, 25} (the data file's
    # d=10, K=25 among them): each size is a new compilation, so the whole grid twice would
    # not fit the 30 minutes. Smallest cost n K d^2 first, so the time cap stops the largest.
    "full": sorted([(d, k, n, "10k_gmm_d10_K25.txt" if (d, k, n) == (10, 25, 10000) else None)
                    for n, ks in ((1000, (5, 25, 50, 100, 200)), (10000, (5, 25)))
                    for d in (2, 10, 20, 32, 64) for k in ks],
                   key=lambda s: s[0] * s[0] * s[1] * s[2]),
}
BA_SIZES = {
    "smoke": [(3, 40, 100, None)],
    "quick": [(49, 7776, 31843, "ba1.txt")],
    "full": [(49, 7776, 31843, "ba1.txt"), (160, 25000, 100000, None),
             (257, 65132, 225911, "ba5.txt"), (800, 250000, 500000, None),
             (1600, 500000, 1000000, None), (3200, 1000000, 2000000, None)],
}
# A tool whose time per call passed this (seconds) is not run at larger sizes of the workload:
# the full run stays under 30 minutes on 2 cores (BA's largest Jacobian takes seconds).
CAP_S = {"gmm": 1.5, "ba": 10.0}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="0.2 s per measurement, file sizes")
    mode.add_argument("--smoke", action="store_true", help="one small size per workload")
    p.add_argument("--output", default=os.path.join(ADBENCH_DIR, "RESULTS.md"))
    p.add_argument("--plots-dir", default=ADBENCH_DIR, help="where the PNG plots go")
    p.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated: gmm,ba,lstm")
    return p.parse_args(argv)


def _load(name: str, path: str):
    """Import benchmarks/<file> under its own name (benchmarks/run.py would clash with this
    file's module name)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Tool:
    """Measurements of one implementation at one size: objective and derivative time."""

    def __init__(self):
        self.f = self.j = None
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if text:
            self.notes.append(text)


class Suite:
    """Everything the run collects, per workload: sizes, per-size tool measurements."""

    def __init__(self, ctx, mode: str):
        self.ctx, self.mode = ctx, mode
        self.results: dict[str, list[tuple[str, float, dict]]] = {w: [] for w in WORKLOADS}
        self.capped: dict[tuple[str, str], str] = {}
        self.notes: list[str] = []
        # The measurements of the size being run, timed again by ``second_round``.
        self.timed: list[tuple[Tool, str, str, object, object]] = []

    def measure(self, workload, tool, kind, label, fn, arg, check, t: Tool):
        """Time ``fn(arg)`` after ``check`` for half the budget (``second_round`` times it
        again); skip it once the tool passed the time cap."""
        from rows import measure

        key = (workload, tool)
        if key in self.capped:
            t.note(f"{kind} skipped: {self.capped[key]}")
            return None
        secs, note = measure(self.ctx, f"{tool} {label}", fn, arg, check,
                             budget_s=self.ctx.budget_s / 2)
        t.note(note and f"{kind} {note}")
        if secs is not None and secs > CAP_S[workload]:
            self.capped[key] = f"over {CAP_S[workload]:g} s per call at a smaller size"
        if secs is not None:
            self.timed.append((t, "f" if kind == "objective" else "j", f"{tool} {label}", fn,
                               arg))
        return secs

    def second_round(self) -> None:
        """Every measurement of this size once more, in the same order, keeping each one's
        minimum: a noisy stretch of the shared machine (0.5 s windows of one kernel differ
        by 20% here) then slows one round of a tool, not its objective or derivative alone."""
        from harness import fmt_time, log, time_per_call

        for t, attr, label, fn, arg in self.timed:
            secs = time_per_call(fn, arg, self.ctx.budget_s / 2)[0]
            log(f"  {label}, second round: {fmt_time(secs)} per call")
            setattr(t, attr, min(getattr(t, attr), secs))
        self.timed.clear()


def _first(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def fd_check(what, f_numpy, args, grads, rng, n_dirs=3, h=1e-6, rtol=1e-5):
    """Without JAX: the directional derivative of the NumPy objective by central differences
    along random directions against the gradient's dot product."""
    from harness import check_close

    for _ in range(n_dirs):
        dirs = [rng.standard_normal(a.shape) for a in args]
        plus = f_numpy(*[a + h * v for a, v in zip(args, dirs)])
        minus = f_numpy(*[a - h * v for a, v in zip(args, dirs)])
        fd = (plus - minus) / (2 * h)
        dot = sum(float(np.sum(g * v)) for g, v in zip(grads, dirs))
        check_close(f"{what} (central differences)", dot, fd, rtol=rtol,
                    atol=rtol * abs(plus))


# --------------------------------------------------------------------------- GMM


def run_gmm(suite: Suite) -> None:
    import gmm
    from harness import check_close, log

    ctx = suite.ctx
    adjit, anp = ctx.adjit, ctx.anp
    rng = np.random.default_rng(0)
    for d, k, n, fname in GMM_SIZES[suite.mode]:
        label = f"d={d}, K={k}, n={n}" + (f" ({fname})" if fname else "")
        log(f"GMM {label}")
        data = (gmm.read(os.path.join(DATA_DIR, fname)) if fname and
                os.path.exists(os.path.join(DATA_DIR, fname)) else gmm.generate(d, k, n))
        alphas, means, icf, x, gamma, wm = data
        args = (alphas, means, icf, x)
        ref = gmm.objective_numpy(*args, gamma, wm)
        tools = {name: Tool() for name in ("adjit", "hand-written Numba", "JAX")}

        def check_value(r, ref=ref):
            check_close("objective", float(np.asarray(r)), ref, rtol=1e-10)

        f_a = gmm.make_objective(anp, anp.logsumexp, d, gamma, wm)
        obj_a, grad_a = adjit.jit(f_a), adjit.grad(f_a, argnums=(0, 1, 2))
        ta = tools["adjit"]
        ta.f = suite.measure("gmm", "adjit", "objective", "objective",
                             lambda a: obj_a(*a), args, check_value, ta)
        th = tools["hand-written Numba"]
        th.f = suite.measure("gmm", "hand-written Numba", "objective", "objective",
                             lambda a: gmm.hand_objective(*a, gamma, wm), args, check_value, th)
        expected = None
        if "jax" in ctx.peers:
            jax, jnp = ctx.peers["jax"]
            import jax.scipy.special as jss

            f_j = gmm.make_objective(jnp, jss.logsumexp, d, gamma, wm)
            obj_j, grad_j = jax.jit(f_j), jax.jit(jax.grad(f_j, argnums=(0, 1, 2)))
            args_j = tuple(jnp.asarray(v) for v in args)
            tj = tools["JAX"]
            tj.f = suite.measure("gmm", "JAX", "objective", "objective",
                                 lambda a: obj_j(*a).block_until_ready(), args_j, check_value,
                                 tj)
            if ("gmm", "JAX") not in suite.capped:
                secs, expected = _first(lambda: [np.asarray(g) for g in grad_j(*args_j)])
                tj.note(f"`jit(grad)` first call {secs:.2f} s")

        def check_grad(r, expected=expected, args=args):
            r = [np.asarray(g) for g in r]
            if expected is None:
                fd_check("GMM gradient", lambda *a: gmm.objective_numpy(*a, x, gamma, wm),
                         args[:3], r, rng)
                return
            for part, got, exp in zip(("alphas", "means", "icf"), r, expected):
                scale = float(np.max(np.abs(exp)))
                check_close(f"d/d{part}", got, exp, rtol=1e-9, atol=1e-11 * scale)

        if ("gmm", "adjit") not in suite.capped:
            try:
                secs, _ = _first(grad_a, *args)
                ta.note(f"`grad` first call {secs:.2f} s")
            except Exception as e:  # reported, and the timing below records the error too
                log(f"  adjit grad: {type(e).__name__}: {e}")
        ta.j = suite.measure("gmm", "adjit", "gradient", "gradient",
                             lambda a: grad_a(*a), args, check_grad, ta)
        th.j = suite.measure("gmm", "hand-written Numba", "gradient", "gradient",
                             lambda a: gmm.hand_gradient(*a, gamma, wm), args, check_grad, th)
        if expected is not None:
            tj = tools["JAX"]
            tj.j = suite.measure("gmm", "JAX", "gradient", "gradient",
                                 lambda a: jax.block_until_ready(grad_j(*a)), args_j,
                                 lambda r: check_grad(r), tj)
        elif "jax" not in ctx.peers:
            tools["JAX"].note("not installed (skipped)")
        suite.second_round()
        suite.results["gmm"].append((label, (f"n = {n:,}", k * (1 + d + d * (d + 1) // 2)), tools))


# --------------------------------------------------------------------------- BA


def run_ba(suite: Suite) -> None:
    import ba
    import scipy.sparse
    from harness import check_close, log

    ctx = suite.ctx
    adjit, anp = ctx.adjit, ctx.anp
    res_a = ba.make_residual(anp)
    block_a = ba.make_block(anp, adjit.jacrev, res_a)

    def objective_a(cams, points, weights, features, ci, pi):
        return (adjit.vmap(res_a)(anp.take(cams, ci, axis=0), anp.take(points, pi, axis=0),
                                  weights, features), 1.0 - weights * weights)

    obj_a = adjit.jit(objective_a)
    jac_a = adjit.jit(ba.make_csr_values(anp, adjit.vmap, adjit.grad, block_a))
    if "jax" in ctx.peers:
        jax, jnp = ctx.peers["jax"]
        res_j = ba.make_residual(jnp)
        block_j = ba.make_block(jnp, jax.jacrev, res_j)
        obj_j = jax.jit(lambda c, p_, w, f, ci, pi: (jax.vmap(res_j)(c[ci], p_[pi], w, f),
                                                      1.0 - w * w))
        jac_j = jax.jit(ba.make_csr_values(jnp, jax.vmap, jax.grad, block_j))
    rng = np.random.default_rng(0)
    first = True
    for n, m, p, fname in BA_SIZES[suite.mode]:
        label = f"n={n}, m={m}, p={p:,}" + (f" ({fname})" if fname else "")
        log(f"BA {label}")
        path = fname and os.path.join(DATA_DIR, fname)
        data = ba.read(path) if path and os.path.exists(path) else ba.generate(n, m, p)
        cams, points, weights, features, obs = data
        args = (cams, points, weights, features, np.ascontiguousarray(obs[:, 0]),
                np.ascontiguousarray(obs[:, 1]))
        ref_r, ref_w = ba.hand_objective(*data)
        indptr, indices, shape = ba.csr_structure(n, m, p, obs)
        tools = {name: Tool() for name in ("adjit", "hand-written Numba", "JAX")}

        def check_value(r, ref_r=ref_r, ref_w=ref_w):
            check_close("reprojection error", np.asarray(r[0]), ref_r, rtol=1e-10, atol=1e-12)
            check_close("weight error", np.asarray(r[1]), ref_w, rtol=1e-12, atol=1e-15)

        if first:  # the hand-written objective against the NumPy formula, once
            want = ba.residual_numpy(cams, points, weights[:50], features[:50], obs[:50])[0]
            check_close("hand-written BA objective", ref_r[:50], want, rtol=1e-12, atol=1e-12)

        ta, th = tools["adjit"], tools["hand-written Numba"]
        ta.f = suite.measure("ba", "adjit", "objective", "objective", lambda a: obj_a(*a),
                             args, check_value, ta)
        th.f = suite.measure("ba", "hand-written Numba", "objective", "objective",
                             lambda a: ba.hand_objective(*a), data, check_value, th)
        expected = None
        if "jax" in ctx.peers:
            args_j = tuple(jnp.asarray(v) for v in args)
            tj = tools["JAX"]
            tj.f = suite.measure("ba", "JAX", "objective", "objective",
                                 lambda a: jax.block_until_ready(obj_j(*a)), args_j,
                                 check_value, tj)
            if ("ba", "JAX") not in suite.capped:
                secs, expected = _first(lambda: np.asarray(jac_j(*args_j)))
                tj.note(f"`jit(vmap(jacrev))` first call {secs:.2f} s")
        else:
            tools["JAX"].note("not installed (skipped)")

        def check_csr(data_, expected=expected, indptr=indptr, indices=indices, shape=shape,
                      first=first):
            if expected is not None:
                check_close("Jacobian's CSR values", data_, expected, rtol=1e-9,
                            atol=1e-12 * float(np.max(np.abs(expected))))
            if first:  # the CSR layout: J v against central differences of the objective
                jmat = scipy.sparse.csr_matrix((data_, indices, indptr), shape=shape)
                v = rng.standard_normal(shape[1])
                sub = min(p, 200)
                h = 1e-6

                def flat(delta):
                    c = cams + delta[:11 * n].reshape(n, 11)
                    q = points + delta[11 * n:11 * n + 3 * m].reshape(m, 3)
                    w = weights + delta[11 * n + 3 * m:]
                    r, we = ba.residual_numpy(c, q, w[:sub], features[:sub], obs[:sub])
                    return np.concatenate([r.reshape(-1), we])

                fd = (flat(h * v) - flat(-h * v)) / (2 * h)
                jv = jmat @ v
                got = np.concatenate([jv[:2 * sub], jv[2 * p:2 * p + sub]])
                check_close("CSR Jacobian times v (central differences)", got, fd, rtol=1e-5,
                            atol=1e-6 * float(np.max(np.abs(fd))))

        if ("ba", "adjit") not in suite.capped:
            try:
                secs, _ = _first(jac_a, *args)
                ta.note(f"`jit(vmap(jacrev))` first call {secs:.2f} s")
            except Exception as e:
                log(f"  adjit Jacobian: {type(e).__name__}: {e}")
        ta.j = suite.measure("ba", "adjit", "Jacobian", "Jacobian (CSR)", lambda a: jac_a(*a),
                             args, check_csr, ta)
        if expected is not None:
            tj.j = suite.measure("ba", "JAX", "Jacobian", "Jacobian (CSR)",
                                 lambda a: np.asarray(jac_j(*a)), args_j, check_csr,
                                 tj)
        first = False
        suite.second_round()
        suite.results["ba"].append((label, ("", p), tools))


# --------------------------------------------------------------------------- D-LSTM


def run_lstm(suite: Suite) -> None:
    """benchmarks/loops.py's row 10, reused as is: its lines give adjit's and JAX's gradient
    times and the best objective; sizes are the data file (l=2, c=1024) and l=4, c=4096."""
    import loops
    from harness import Report

    ctx = suite.ctx
    saved, ctx.report = ctx.report, Report()
    try:
        loops.row10_lstm(ctx)
        lines, notes = ctx.report.lines, ctx.report.notes
    finally:
        ctx.report = saved
    for jf, vs_jax in zip(lines[0::2], lines[1::2]):
        size = re.search(r"l=(\d+), c=(\d+)(.*?), b=(\d+): J/F", jf.workload)
        tools = {name: Tool() for name in ("adjit", "JAX", "best objective", "row 10")}
        tools["adjit"].j, tools["JAX"].j = jf.adjit, vs_jax.other
        tools["best objective"].f = jf.other
        tools["row 10"].note(jf.note)
        tools["row 10"].note(vs_jax.note)
        layers, steps = int(size.group(1)), int(size.group(2))
        suite.results["lstm"].append((f"l={layers}, c={steps}{size.group(3)}, b={size.group(4)}",
                                      ("", layers * steps), tools))
    suite.notes += [f"D-LSTM (row 10): {n}" for n in notes]


# --------------------------------------------------------------------------- report


GOALS = {"gmm": ("GMM gradient", 3.0), "ba": ("BA Jacobian", 3.0), "lstm": ("D-LSTM gradient", 4.0)}
TITLES = {
    "gmm": ("GMM gradient (alphas, means, icf)", "parameters K(1 + d + d(d+1)/2)"),
    "ba": ("BA sparse Jacobian (CSR)", "observations p"),
    "lstm": ("D-LSTM gradient (main, extra)", "layers × sequence length"),
}


def _best_objective(tools):
    timed = {k: t.f for k, t in tools.items() if t.f is not None}
    if not timed:
        return None, None
    best = min(timed, key=timed.get)
    return best, timed[best]


def summarize(suite: Suite) -> tuple[list[str], list[str]]:
    """(summary lines of the goals, per-workload tables)."""
    from harness import fmt_ratio, fmt_time

    summary, tables = [], []
    for w in WORKLOADS:
        if not suite.results[w]:
            continue
        name, bound = GOALS[w]
        title, _ = TITLES[w]
        jfs, vs = [], []
        tables += [f"### {title}", "",
                   "| size | best objective | adjit J | J/F | JAX J | JAX J/F | adjit/JAX | "
                   "hand-written Numba J | adjit F | hand-written Numba F | JAX F | notes |",
                   "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for label, _, tools in suite.results[w]:
            best, f_best = _best_objective(tools)
            a, j = tools["adjit"], tools["JAX"]
            jf = a.j / f_best if a.j and f_best else None
            jjf = j.j / f_best if j.j and f_best else None
            ratio = a.j / j.j if a.j and j.j else None
            if jf is not None:
                jfs.append(jf)
            if ratio is not None:
                vs.append(ratio)
            hand = tools.get("hand-written Numba")
            notes = "; ".join(f"{k}: {n}" for k, t in tools.items() for n in t.notes)
            tables.append("| " + " | ".join([
                label, f"{fmt_time(f_best)} ({best})" if best else "—", fmt_time(a.j),
                fmt_ratio(jf), fmt_time(j.j), fmt_ratio(jjf), fmt_ratio(ratio),
                fmt_time(hand.j if hand else None), fmt_time(a.f),
                fmt_time(hand.f if hand else None), fmt_time(j.f),
                notes.replace("|", "/")]) + " |")
        tables.append("")
        n_sizes = len(suite.results[w])

        def verdict(values, ok, n_sizes=n_sizes):
            if not values:
                return "⚠️ not measured"
            complete = len(values) == n_sizes
            mark = "✅ met" if complete and all(ok(v) for v in values) else "❌ missed"
            partial = "" if complete else f" ({len(values)} of {n_sizes} sizes measured)"
            return f"{mark}: {min(values):.2f}–{max(values):.2f}{partial}"

        summary.append(f"| {name} | J/F ≤ {bound:g} at every size | "
                       f"{verdict(jfs, lambda v: v <= bound)} |")
        summary.append(f"| {name} | faster than JAX at every size (adjit/JAX < 1) | "
                       f"{verdict(vs, lambda v: v < 1.0)} |")
    return summary, tables


COLORS = {"adjit": "tab:blue", "JAX": "tab:red", "hand-written Numba": "tab:green",
          "PyTorch": "tab:orange", "PyTensor": "tab:purple", "best objective": "tab:gray"}


def plot(suite: Suite, plots_dir: str) -> list[str]:
    """One log-log PNG per workload (a panel per n for GMM): time per call against size, one
    colour per tool, solid the derivative, dashed the objective. Returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for w in WORKLOADS:
        results = suite.results[w]
        if not results:
            continue
        title, xlabel = TITLES[w]
        panels = list(dict.fromkeys(panel for _, (panel, _), _ in results))
        fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.6), squeeze=False)
        for ax, panel in zip(axes[0], panels):
            rows = [(x, tools) for _, (p, x), tools in results if p == panel]
            for name in dict.fromkeys(k for _, tools in rows for k in tools):
                for kind, style, what in (("j", "-o", "derivative"), ("f", "--s", "objective")):
                    pts = sorted((x, getattr(tools[name], kind)) for x, tools in rows
                                 if name in tools and getattr(tools[name], kind) is not None)
                    if pts:
                        label = name if name == "best objective" else f"{name} {what}"
                        ax.plot(*zip(*pts), style, color=COLORS.get(name), label=label,
                                markersize=4, alpha=1.0 if kind == "j" else 0.6)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("seconds per call")
            ax.set_title(f"ADBench {title}" + (f", {panel}" if panel else ""))
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fname = f"{w}.png"
        fig.savefig(os.path.join(plots_dir, fname), dpi=100)
        plt.close(fig)
        written.append(fname)
    return written


def render(suite, args, command, started, runtime_s, plots, load) -> str:
    from harness import cpu_model, dist_version, git_describe, nproc

    versions = ", ".join(f"{d} {dist_version(d)}" for d in
                         ("numba", "llvmlite", "numpy", "jax", "jaxlib", "torch", "pytensor"))
    summary, tables = summarize(suite)
    out = ["# ADBench suite: results", "",
           f"- **Command:** `{command}`",
           f"- **Date:** {started.strftime('%Y-%m-%d %H:%M:%S %Z')}",
           f"- **Run time:** {runtime_s:.0f} s ({suite.mode}: "
           f"{suite.ctx.budget_s:g} s per measurement)",
           f"- **Machine:** nproc {nproc()}, {cpu_model()}, {platform.system()} "
           f"{platform.release()}; load average at start / end: {load[0]} / {load[1]} "
           "(shared machine)",
           f"- **Versions:** python {platform.python_version()}, adjit "
           f"({git_describe(REPO_ROOT)}), {versions}",
           f"- **OpenBLAS:** {openblas.kernels()}", "",
           "## Goals (issue 10)", "",
           "| workload | goal | result (range over sizes) |", "|---|---|---|", *summary, "",
           "## Plots", ""]
    here = os.path.dirname(os.path.abspath(args.output))
    out += [f"![{p}]({os.path.relpath(os.path.join(args.plots_dir, p), here)})" for p in plots]
    out += ["", "## Measurements", "",
            "Times are the minimum per call (ADBench's protocol); J/F is the derivative's time "
            "over the best objective time at that size (any tool); adjit/JAX < 1 means adjit "
            "is faster. — : not measured (see the notes: skipped above the time cap, not "
            "installed, or failed).", "", *tables, "## Method and notes", ""]
    out += [f"- {n}" for n in suite.notes]
    return "\n".join(out).rstrip() + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    started = datetime.datetime.now(datetime.UTC)
    clock = time.perf_counter()
    load_start = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    tmp_dir = tempfile.mkdtemp(prefix="adjit-adbench-")
    os.environ["ADJIT_CACHE_DIR"] = os.path.join(tmp_dir, "adjit-cache")
    for path in (ADBENCH_DIR, BENCH_DIR, REPO_ROOT):
        sys.path.insert(0, path)

    import rows
    from harness import Report, log

    import adjit
    import adjit.numpy as anp

    bench_run = _load("bench_run", os.path.join(BENCH_DIR, "run.py"))
    report = Report()
    peers = bench_run.load_peers(report, log)
    ctx = rows.Context(adjit=adjit, anp=anp, peers=peers, budget_s=1.0 if mode == "full" else 0.2,
                       quick=mode != "full", report=report, bench_dir=BENCH_DIR,
                       adjit_root=REPO_ROOT, tmp_dir=tmp_dir)
    suite = Suite(ctx, mode)
    try:
        for w in wanted:
            {"gmm": run_gmm, "ba": run_ba, "lstm": run_lstm}[w](suite)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(args.plots_dir, exist_ok=True)
    plots = plot(suite, args.plots_dir)
    suite.notes[:0] = report.notes + [
        "Timing: benchmarks/harness.py's `time_per_call` (repeat count doubled until a batch "
        "takes 5 ms, batches for the budget, minimum per call; compilation excluded by a "
        "warm-up call whose time is noted as the first call). GMM and BA: at each size every "
        "tool's objective and derivative is timed in two rounds of half the budget, in the "
        "same order, and the minimum kept, so that a slow stretch of the machine does not "
        "fall on one side of a J/F ratio alone.",
        "GMM: `gmm.make_objective` is the same code for adjit.numpy and jax.numpy (logsumexp "
        "from each library; Q_k from icf by a gather of l_k into the strict lower triangle plus "
        "exp(q_k) on the diagonal; the Wishart prior with gamma, m from the file). adjit: "
        "`adjit.grad(f, argnums=(0, 1, 2))`; JAX: `jax.jit(jax.grad(...))`. Generated sizes "
        "use ADBench's generator (seed 0); gradients are checked against JAX's to 1e-9.",
        "BA: `ba.make_residual` per observation (Rodrigues rotation with a where for r = 0, "
        "projection, radial distortion), its 2x15 block by `jacrev` over (cam, X, w), "
        "`vmap`ped over the observations after a gather of cameras and points; the timed "
        "Jacobian is the CSR values from one `jit`ted function (`ba.make_csr_values`: the "
        "blocks flattened, then the weight rows' d(1 - w^2)/dw by `vmap(grad)`; the structure, "
        "fixed by obs, is built once). The flattening fixes p in adjit's trace (a length is a "
        "symbol plus a constant, not 30 p), so each size compiles its own kernel. Objective: "
        "reprojection and weight errors for all observations. Instances other than ba1/ba5 "
        "replicate ba1's camera, point, weight and feature as ADBench's generator does. The "
        "CSR values are checked against JAX's; on the first size the CSR matrix times a random "
        "vector is checked against central differences of the NumPy objective.",
        "Hand-written Numba (`@njit(fastmath=True)`, single-threaded, in "
        "benchmarks/adbench/gmm.py and ba.py): the objectives (one pass, no temporaries) and "
        "the GMM gradient (one pass over the points: the forward values of a point, then the "
        "softmax weights pushed back through Q_k (x_i - mu_k)); no hand-written BA Jacobian. "
        "JAX/XLA uses its default CPU threading (both cores).",
        "Time cap: a tool whose time per call passed "
        + ", ".join(f"{v:g} s ({k.upper()})" for k, v in CAP_S.items())
        + " is not run at larger sizes of that workload.",
    ]
    runtime = time.perf_counter() - clock
    load_end = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    command = " ".join(["python3", "benchmarks/adbench/run.py", *argv])
    text = render(suite, args, command, started, runtime, plots, (load_start, load_end))
    with open(args.output, "w") as fh:
        fh.write(text)
    log(f"wrote {args.output} and {len(plots)} plots in {runtime:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
