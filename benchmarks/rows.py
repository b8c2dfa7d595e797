"""The benchmark rows: issue 3's four, issue 4's vmap row, issue 8's free-array row and issue
13's two (a derivative library called from C; to_numba inside an @njit loop), each measured
against its peers in the same process run.

Every implementation's first result is checked against the NumPy formula
f(x) = x**2 + sin(x), f'(x) = 2x + cos(x) before it is timed; an implementation that fails its
check, or raises, is reported with the reason and not timed.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import hand_numba
import numpy as np
from harness import CheckError, Line, Report, check_close, fmt_time, log, time_per_call
from numba import njit

SEED_X = 0.5
N = 1_000_000
SIZES = [2, 3, 7, 16, 100, 1000, 4099, 10_000, 65_536, 1_000_000]
PEERS = ("hand-written Numba", "JAX", "PyTensor", "PyTorch")


def ref_f(x):
    return x**2 + np.sin(x)


def ref_df(x):
    return 2.0 * x + np.cos(x)


@dataclass
class Context:
    adjit: object
    anp: object
    peers: dict  # "jax" -> (jax, jnp), "torch" -> torch, "pytensor" -> (pytensor, pt)
    budget_s: float
    quick: bool
    report: Report
    bench_dir: str
    adjit_root: str
    tmp_dir: str

    def cache_info(self):
        if hasattr(self.adjit, "cache_info"):
            try:
                info = self.adjit.cache_info()
                if isinstance(info, dict):
                    return info
            except Exception as e:
                log(f"adjit.cache_info() raised {type(e).__name__}: {e}")
        return None

    def compiles(self):
        info = self.cache_info()
        return None if info is None or "compiles" not in info else int(info["compiles"])


def _short(exc: BaseException, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("|", "/")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def measure(ctx: Context, label: str, fn, arg, check,
            budget_s: float | None = None) -> tuple[float | None, str]:
    """Warm up (compile), check the result, then time ``fn(arg)`` (for ``budget_s``, the
    run's budget by default); (seconds or None, note)."""
    try:
        check(fn(arg))
        fn(arg)
        best, reps, batches = time_per_call(fn, arg, budget_s or ctx.budget_s)
    except CheckError as e:
        log(f"  {label}: CHECK FAILED {e}")
        return None, f"check failed: {_short(e)}"
    except Exception as e:
        log(f"  {label}: ERROR {_short(e, 400)}")
        return None, f"error: {_short(e)}"
    log(f"  {label}: {fmt_time(best)} per call ({reps} calls x {batches} batches)")
    return best, ""


def _missing(ctx: Context, key: str) -> str | None:
    return None if key in ctx.peers else "not installed (skipped)"


# --------------------------------------------------------------------------- row 1


def row1_scalar(ctx: Context) -> None:
    log("row 1: per-call latency of grad(f) at a Python float")
    anp, rep = ctx.anp, ctx.report
    expected = ref_df(SEED_X)

    def check(r):
        check_close("grad(f)(0.5)", float(np.asarray(r)), expected, rtol=1e-12)

    results = {}
    g = ctx.adjit.grad(lambda x: x**2 + anp.sin(x))
    results["adjit"] = measure(ctx, "adjit", g, SEED_X, check)
    results["hand-written Numba"] = measure(ctx, "hand njit", hand_numba.df_scalar, SEED_X, check)
    if "jax" in ctx.peers:
        jax, jnp = ctx.peers["jax"]
        jg = jax.jit(jax.grad(lambda x: x**2 + jnp.sin(x)))
        results["JAX"] = measure(ctx, "jax", lambda a: jg(a).block_until_ready(), SEED_X, check)
    if "pytensor" in ctx.peers:
        pytensor, pt = ctx.peers["pytensor"]
        try:
            xs = pt.dscalar("x")
            fn = pytensor.function([xs], pytensor.grad(xs**2 + pt.sin(xs), xs), mode="NUMBA")
            results["PyTensor"] = measure(ctx, "pytensor", fn, SEED_X, check)
        except Exception as e:
            results["PyTensor"] = (None, f"error: {_short(e)}")
    if "torch" in ctx.peers:
        torch = ctx.peers["torch"]

        def torch_grad(a):
            x = torch.tensor(a, dtype=torch.float64, requires_grad=True)
            (gx,) = torch.autograd.grad(x**2 + torch.sin(x), x)
            return gx.item()

        results["PyTorch"] = measure(ctx, "torch", torch_grad, SEED_X, check)

    a, a_note = results["adjit"]
    goals = {
        "hand-written Numba": ("≤ 2x", lambda r, *_: r <= 2.0),
        "JAX": ("≥ 10x faster (≤ 0.1x)", lambda r, *_: r <= 0.1),
    }
    notes = {
        "hand-written Numba": "`@njit` 2x+cos x",
        "JAX": "`jax.jit(jax.grad(f))`, block_until_ready",
        "PyTensor": "`pytensor.function(mode='NUMBA')` of `pytensor.grad`",
        "PyTorch": "eager: 0-d tensor, `autograd.grad`, `.item()`",
    }
    for peer in PEERS:
        key = {"JAX": "jax", "PyTensor": "pytensor", "PyTorch": "torch"}.get(peer)
        other, o_note = results.get(peer, (None, _missing(ctx, key) if key else ""))
        goal, ok = goals.get(peer, ("", None))
        note = "; ".join(x for x in (a_note and f"adjit {a_note}", o_note, notes[peer]) if x)
        rep.lines.append(Line("1", "`grad(f)(0.5)` per call, float64", peer, a, other, goal, ok,
                              note))


# --------------------------------------------------------------------------- row 2


def _np_dtype_name(dtype) -> str:
    return np.dtype(dtype).name


def row2_arrays(ctx: Context) -> None:
    anp, rep = ctx.anp, ctx.report
    rng = np.random.default_rng(0)
    x64 = rng.uniform(-2.0, 2.0, N)
    for dtype in (np.float64, np.float32):
        name = _np_dtype_name(dtype)
        log(f"row 2: N=10^6 {name}")
        x = x64.astype(dtype)
        xr = x.astype(np.float64)
        exp_val, exp_grad = float(np.sum(ref_f(xr))), ref_df(xr)
        f32 = dtype == np.float32
        g_tol = dict(rtol=1e-5, atol=1e-5) if f32 else dict(rtol=1e-12, atol=1e-12)
        v_rtol = 1e-3 if f32 else 1e-9
        dtype_notes: dict[str, str] = {}

        def check_grad(label, g, dtype=dtype, exp_grad=exp_grad, g_tol=g_tol,
                       dtype_notes=dtype_notes):
            g_np = np.asarray(g)
            check_close(f"{label} gradient", g_np, exp_grad, **g_tol)
            if g_np.dtype != dtype:
                dtype_notes[label] = f"gradient dtype {g_np.dtype}"

        def check_vg(label, r, exp_val=exp_val, v_rtol=v_rtol, check_grad=check_grad):
            value, g = r
            check_close(f"{label} value", float(np.asarray(value)), exp_val, rtol=v_rtol)
            check_grad(label, g)

        vg_res, g_res = {}, {}
        fa = lambda x: anp.sum(x**2 + anp.sin(x))
        vg_res["adjit"] = measure(ctx, "adjit value_and_grad", ctx.adjit.value_and_grad(fa), x,
                                  lambda r: check_vg("adjit", r))
        g_res["adjit"] = measure(ctx, "adjit grad", ctx.adjit.grad(fa), x,
                                 lambda r: check_grad("adjit", r))
        hvg = hand_numba.value_and_grad_f32 if f32 else hand_numba.value_and_grad_f64
        hg = hand_numba.grad_f32 if f32 else hand_numba.grad_f64
        vg_res["hand-written Numba"] = measure(ctx, "hand njit value_and_grad", hvg, x,
                                               lambda r: check_vg("hand", r))
        g_res["hand-written Numba"] = measure(ctx, "hand njit grad", hg, x,
                                              lambda r: check_grad("hand", r))
        if "jax" in ctx.peers:
            jax, jnp = ctx.peers["jax"]
            fj = lambda x: jnp.sum(x**2 + jnp.sin(x))
            jvg, jg = jax.jit(jax.value_and_grad(fj)), jax.jit(jax.grad(fj))
            xj = jnp.asarray(x)
            vg_res["JAX"] = measure(ctx, "jax value_and_grad",
                                    lambda a: jax.block_until_ready(jvg(a)), xj,
                                    lambda r: check_vg("JAX", r))
            g_res["JAX"] = measure(ctx, "jax grad", lambda a: jg(a).block_until_ready(), xj,
                                   lambda r: check_grad("JAX", r))
        if "pytensor" in ctx.peers:
            pytensor, pt = ctx.peers["pytensor"]
            try:
                xv = pt.vector("x", dtype=name)
                y = pt.sum(xv**2 + pt.sin(xv))
                gy = pytensor.grad(y, xv)
                pvg = pytensor.function([xv], [y, gy], mode="NUMBA")
                pg = pytensor.function([xv], gy, mode="NUMBA")
                vg_res["PyTensor"] = measure(ctx, "pytensor value_and_grad", pvg, x,
                                             lambda r: check_vg("PyTensor", r))
                g_res["PyTensor"] = measure(ctx, "pytensor grad", pg, x,
                                            lambda r: check_grad("PyTensor", r))
            except Exception as e:
                vg_res["PyTensor"] = g_res["PyTensor"] = (None, f"error: {_short(e)}")
        if "torch" in ctx.peers:
            torch = ctx.peers["torch"]
            xt = torch.from_numpy(x)

            def torch_vg(t):
                t = t.detach().requires_grad_(True)
                y = (t**2 + torch.sin(t)).sum()
                (gt,) = torch.autograd.grad(y, t)
                return y.item(), gt

            def torch_g(t):
                t = t.detach().requires_grad_(True)
                (gt,) = torch.autograd.grad((t**2 + torch.sin(t)).sum(), t)
                return gt

            vg_res["PyTorch"] = measure(ctx, "torch value_and_grad", torch_vg, xt,
                                        lambda r: check_vg("PyTorch", (r[0], r[1].numpy())))
            g_res["PyTorch"] = measure(ctx, "torch grad", torch_g, xt,
                                       lambda r: check_grad("PyTorch", r.numpy()))

        goals = {
            "hand-written Numba": ("≤ 1.1x", lambda r, *_: r <= 1.1),
            "JAX": ("faster (< 1x)", lambda r, *_: r < 1.0),
        }
        label_of = {"hand-written Numba": "hand", "JAX": "JAX", "PyTensor": "PyTensor",
                    "PyTorch": "PyTorch"}
        for what, res, star in (
            (f"`value_and_grad(sum f)` N=10^6 {name}", vg_res, ""),
            (f"elementwise `grad(sum f)` = 2x+cos x, N=10^6 {name}", g_res, "*"),
        ):
            a, a_note = res["adjit"]
            if "adjit" in dtype_notes:
                a_note = "; ".join(x for x in (a_note, "adjit " + dtype_notes["adjit"]) if x)
            for peer in PEERS:
                key = {"JAX": "jax", "PyTensor": "pytensor", "PyTorch": "torch"}.get(peer)
                other, o_note = res.get(peer, (None, _missing(ctx, key) if key else ""))
                if label_of[peer] in dtype_notes:
                    o_note = "; ".join(x for x in (o_note, dtype_notes[label_of[peer]]) if x)
                goal, ok = goals.get(peer, ("", None))
                note = "; ".join(x for x in (a_note and f"adjit {a_note}", o_note) if x)
                rep.lines.append(Line("2", what, peer, a, other, goal + star if goal else "", ok,
                                      note))


# --------------------------------------------------------------------------- row 3


def row3_compile_warm(ctx: Context) -> None:
    """First call of a new function's derivative in a process that has compiled before."""
    log("row 3a: compile latency in a warm process")
    anp, rep = ctx.anp, ctx.report
    xa = np.linspace(-1.5, 2.0, 1000)  # not symmetric: odd variants must not sum to ~0
    times: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], str] = {}
    compiles: list = []

    def first_call(key, make, arg, check):
        if key in errors:
            return
        try:
            fn = make()
            t0 = time.perf_counter()
            r = fn(arg)
            dt = time.perf_counter() - t0
            check(r)
            times.setdefault(key, []).append(dt)
        except Exception as e:
            errors[key] = (f"check failed: {_short(e)}" if isinstance(e, CheckError)
                           else f"error: {_short(e)}")
            log(f"  {key}: {errors[key]}")

    for k, (value, deriv) in enumerate(hand_numba.VARIANTS):
        exp_s = eval(f"lambda x: {deriv}", {"m": np})(SEED_X)
        terms = eval(f"lambda x: {value}", {"m": np})(xa)
        exp_val, val_atol = float(np.sum(terms)), 1e-12 * float(np.sum(np.abs(terms)))
        exp_g = eval(f"lambda x: {deriv}", {"m": np})(xa)

        def chk_s(r, exp_s=exp_s):
            check_close("scalar first call", float(np.asarray(r)), exp_s, rtol=1e-12)

        def chk_a(r, exp_val=exp_val, val_atol=val_atol, exp_g=exp_g):
            check_close("array value", float(np.asarray(r[0])), exp_val, rtol=1e-9,
                        atol=val_atol)
            check_close("array gradient", np.asarray(r[1]), exp_g, rtol=1e-12, atol=1e-12)

        fa = eval(f"lambda x: {value}", {"m": anp})
        before = ctx.compiles()
        first_call(("adjit", "scalar"), lambda fa=fa: ctx.adjit.grad(fa), SEED_X, chk_s)
        after = ctx.compiles()
        compiles.append(None if before is None or after is None else after - before)
        first_call(("adjit", "array"),
                   lambda fa=fa: ctx.adjit.value_and_grad(lambda x: anp.sum(fa(x))), xa, chk_a)
        first_call(("hand-written Numba", "scalar"), lambda k=k: hand_numba.scalar_variant(k),
                   SEED_X, chk_s)
        first_call(("hand-written Numba", "array"), lambda k=k: hand_numba.array_variant(k),
                   xa, chk_a)
        if "jax" in ctx.peers:
            jax, jnp = ctx.peers["jax"]
            fj = eval(f"lambda x: {value}", {"m": jnp})

            def jax_scalar(fj=fj, jax=jax):
                jg = jax.jit(jax.grad(fj))
                return lambda a: jg(a).block_until_ready()

            def jax_array(fj=fj, jax=jax, jnp=jnp):
                jvg = jax.jit(jax.value_and_grad(lambda x: jnp.sum(fj(x))))
                return lambda a: jax.block_until_ready(jvg(a))

            first_call(("JAX", "scalar"), jax_scalar, SEED_X, chk_s)
            first_call(("JAX", "array"), jax_array, xa, chk_a)

    def med(key):
        return statistics.median(times[key]) if key in times and key not in errors else None

    detail = ["| implementation | workload | median | min | max | first calls |",
              "|---|---|---|---|---|---|"]
    for (impl, kind), ts in sorted(times.items()):
        if (impl, kind) in errors:
            continue
        detail.append(f"| {impl} | {kind} | {fmt_time(statistics.median(ts))} | "
                      f"{fmt_time(min(ts))} | {fmt_time(max(ts))} | {len(ts)} |")
    for (impl, kind), err in sorted(errors.items()):
        detail.append(f"| {impl} | {kind} | {err} | | | |")
    rep.detail("3a", "\n".join(detail))
    rep.detail("3a", "adjit compilations counted during each scalar first call: "
               + (", ".join("n/a" if c is None else str(c) for c in compiles)))
    for kind, what in (("scalar", "first call of `grad` of a new f at a float (warm process)"),
                       ("array", "first call of `value_and_grad(sum f)`, new f, N=1000 "
                                 "(warm process)")):
        a = med(("adjit", kind))
        a_note = errors.get(("adjit", kind), "")
        for peer in ("hand-written Numba", "JAX"):
            if peer == "JAX" and "jax" not in ctx.peers:
                other, o_note = None, "not installed (skipped)"
            else:
                other, o_note = med((peer, kind)), errors.get((peer, kind), "")
            note = "; ".join(x for x in (a_note and f"adjit {a_note}", o_note,
                                         f"median of {len(hand_numba.VARIANTS)} new functions")
                             if x)
            rep.lines.append(Line("3", what, peer, a, other, "", None, note))


def _fresh_env(ctx: Context, cache_root: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ctx.adjit_root, os.environ.get("PYTHONPATH", "")) if p)
    env["ADJIT_CACHE_DIR"] = os.path.join(cache_root, "adjit")
    env["NUMBA_CACHE_DIR"] = os.path.join(cache_root, "numba")
    return env


def _run_fresh(ctx: Context, env: dict, lib: str, workload: str, imports_only: bool):
    cmd = [sys.executable, os.path.join(ctx.bench_dir, "fresh_process.py"), lib, workload]
    if imports_only:
        cmd.append("--imports-only")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        raise RuntimeError(f"subprocess exited {proc.returncode}: {tail[0]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def row3_fresh_process(ctx: Context) -> None:
    """A fresh process with a warm disk cache: adjit's cache against Numba's cache=True."""
    log("row 3b: fresh process with a warm disk cache")
    rep = ctx.report
    reps = 2 if ctx.quick else 3
    xa = np.linspace(-1.5, 2.0, 1000)  # the same array as fresh_process.py
    expected = {"scalar": ref_df(SEED_X), "array": (float(np.sum(ref_f(xa))), ref_df(xa))}
    detail = ["| library | workload | wall (min) | imports-only wall (min) | wall − imports | "
              "first call inside (min) | cache counters in the measured runs |",
              "|---|---|---|---|---|---|---|"]
    for workload in ("scalar", "array"):
        env = _fresh_env(ctx, os.path.join(ctx.tmp_dir, f"fresh-{workload}"))
        res: dict[str, dict] = {}
        for lib in ("adjit", "numba"):
            res[lib] = {"wall": [], "imports": [], "inside": [], "cache": [], "error": ""}
            try:  # the warm-up run fills the disk caches
                _, data = _run_fresh(ctx, env, lib, workload, False)
                res[lib]["warmup_cache"] = data.get("cache")
                if workload == "scalar":
                    check_close(f"{lib} fresh scalar", data["result"], expected["scalar"],
                                rtol=1e-12)
                else:
                    check_close(f"{lib} fresh value", data["result"][0], expected["array"][0],
                                rtol=1e-9)
                    check_close(f"{lib} fresh gradient", np.array(data["result"][1]),
                                expected["array"][1], rtol=1e-12, atol=1e-12)
            except Exception as e:
                res[lib]["error"] = (f"check failed: {_short(e)}" if isinstance(e, CheckError)
                                     else f"error: {_short(e)}")
                log(f"  {lib} {workload}: {res[lib]['error']}")
        for _ in range(reps):  # interleaved, so that machine noise hits both libraries alike
            for lib in ("adjit", "numba"):
                if res[lib]["error"]:
                    continue
                try:
                    wall, data = _run_fresh(ctx, env, lib, workload, False)
                    res[lib]["wall"].append(wall)
                    res[lib]["inside"].append(data["first_call_s"])
                    res[lib]["cache"].append(data.get("cache"))
                    wall, _ = _run_fresh(ctx, env, lib, workload, True)
                    res[lib]["imports"].append(wall)
                except Exception as e:
                    res[lib]["error"] = f"error: {_short(e)}"
        net = {}
        for lib in ("adjit", "numba"):
            r = res[lib]
            if r["error"] or not r["wall"]:
                net[lib] = None
                detail.append(f"| {lib} | {workload} | {r['error'] or 'no runs'} | | | | |")
                continue
            net[lib] = min(r["wall"]) - min(r["imports"])
            counters = json.dumps(r["cache"][-1]) if r["cache"] else "—"
            detail.append(f"| {lib} | {workload} | {fmt_time(min(r['wall']))} | "
                          f"{fmt_time(min(r['imports']))} | {fmt_time(net[lib])} | "
                          f"{fmt_time(min(r['inside']))} | {counters} |")
            log(f"  {lib} {workload}: wall {fmt_time(min(r['wall']))}, net {fmt_time(net[lib])},"
                f" inside {fmt_time(min(r['inside']))}")
        notes = []
        if res["adjit"]["error"]:
            notes.append(f"adjit {res['adjit']['error']}")
        if res["numba"]["error"]:
            notes.append(f"Numba {res['numba']['error']}")
        a_cache = res["adjit"]["cache"][-1] if res["adjit"]["cache"] else None
        override = ""
        if not res["adjit"]["error"]:
            if a_cache is None:
                notes.append("adjit.cache_info missing: disk hit not verified")
                override = "⚠️ not verified (no adjit.cache_info)"
            elif not a_cache.get("disk_hits") or a_cache.get("compiles"):
                notes.append(f"adjit did not load from disk: {json.dumps(a_cache)}")
                override = "❌ missed (no disk hit)"
        n_cache = res["numba"]["cache"][-1] if res["numba"]["cache"] else None
        if n_cache is not None and not n_cache.get("cache_hits"):
            notes.append("Numba did not hit its cache")
        a, o = net["adjit"], net["numba"]
        if a is not None and a <= 0:
            notes.append("adjit's wall − imports is below the run-to-run noise (no ratio)")
        if a is not None and o is not None:
            a_wall, o_wall = min(res["adjit"]["wall"]), min(res["numba"]["wall"])
            notes.append(f"total wall {fmt_time(a_wall)} vs {fmt_time(o_wall)} "
                         f"({a_wall / o_wall:.2f}x)")
        what = ("`grad(f)(0.5)`" if workload == "scalar" else "`value_and_grad(sum f)` N=1000")
        rep.lines.append(Line("3", f"fresh process, warm disk cache, {what}: "
                                   "wall − imports-only wall",
                              "Numba `cache=True`", a, o, "≤ 1.5x", lambda r, *_: r <= 1.5,
                              "; ".join(notes), override=override))
    rep.detail("3b", "\n".join(detail))
    rep.detail("3b", f"Minimum over {reps} runs each, after one warm-up run per library that "
               "fills the caches; every subprocess gets the same ADJIT_CACHE_DIR and "
               "NUMBA_CACHE_DIR (fresh folders per run of this script).")


# --------------------------------------------------------------------------- row 4


def row4_sizes(ctx: Context) -> None:
    log("row 4: ten array lengths")
    anp, rep = ctx.anp, ctx.report
    import numba.core.event as nb_event

    events = []

    class _Counter(nb_event.Listener):
        def on_start(self, event):
            events.append(event.data)

        def on_end(self, event):
            pass

    listener = _Counter()
    nb_event.register("numba:compile", listener)
    per_size, error = [], ""
    try:
        g = ctx.adjit.grad(lambda x: anp.sum(x**2 + anp.sin(x)))
        rng = np.random.default_rng(1)
        start = ctx.compiles()
        for n in SIZES:
            x = rng.uniform(-2.0, 2.0, n)
            before = ctx.compiles()
            check_close(f"adjit grad at n={n}", np.asarray(g(x)), ref_df(x), rtol=1e-12,
                        atol=1e-12)
            after = ctx.compiles()
            per_size.append(None if before is None or after is None else after - before)
        end = ctx.compiles()
    except Exception as e:
        error = (f"check failed: {_short(e)}" if isinstance(e, CheckError)
                 else f"error: {_short(e)}")
        log(f"  adjit: {error}")
        start = end = None
    finally:
        nb_event.unregister("numba:compile", listener)
    adjit_count = None if error or start is None or end is None else end - start
    n_events = len(events)
    log(f"  adjit compiles: {adjit_count}; numba:compile events: {n_events}")

    # Peers: a hand-written njit kernel (one signature), and JAX's jit (one trace per shape).
    hand = njit(fastmath=True)(hand_numba.grad_f64.py_func)
    for n in SIZES:
        x = np.linspace(-2.0, 2.0, n)
        check_close(f"hand njit at n={n}", hand(x), ref_df(x), rtol=1e-12, atol=1e-12)
    hand_count = len(hand.signatures)
    jax_count, jax_note = None, ""
    if "jax" in ctx.peers:
        jax, jnp = ctx.peers["jax"]
        jg = jax.jit(jax.grad(lambda x: jnp.sum(x**2 + jnp.sin(x))))
        try:
            for n in SIZES:
                x = np.linspace(-2.0, 2.0, n)
                check_close(f"jax at n={n}", np.asarray(jg(x)), ref_df(x), rtol=1e-12,
                            atol=1e-12)
            jax_count = jg._cache_size()
        except Exception as e:
            jax_note = f"error: {_short(e)}"
    else:
        jax_note = "not installed (skipped)"

    note = [f"numba:compile events during adjit's calls: {n_events}"]
    if error:
        note.insert(0, f"adjit {error}")
    elif adjit_count is None:
        note.insert(0, "adjit.cache_info() missing: compilations not counted")
    what = "compilations for `grad(sum f)` at ten lengths (float64)"
    ok = lambda r, a, o: a == 1
    rep.lines.append(Line("4", what, "hand-written Numba", adjit_count, hand_count, "1 compilation",
                          ok, "; ".join(note), unit="count"))
    rep.lines.append(Line("4", what, "JAX", adjit_count, jax_count, "1 compilation", ok,
                          "; ".join(x for x in (jax_note, "JAX: `jit` cache entries") if x),
                          unit="count"))
    rep.detail("4", f"Lengths: {', '.join(map(str, SIZES))}. adjit compilations per length "
               f"(from `adjit.cache_info()['compiles']`): "
               + (", ".join("n/a" if c is None else str(c) for c in per_size) or "n/a")
               + f". Numba `numba:compile` events seen during adjit's calls: {n_events} "
               "(counts every dispatcher compile, callees included).")



# --------------------------------------------------------------------------- row 5


def row5_vmap_grad(ctx: Context) -> None:
    """Issue 4's row: ``vmap(grad(f))`` of the scalar seed over 10^6 points, float64."""
    log("row 5: vmap(grad(f)) over 10^6 points, float64")
    anp, rep = ctx.anp, ctx.report
    x = np.random.default_rng(0).uniform(-2.0, 2.0, N)
    expected = ref_df(x)

    def check(label):
        return lambda r: check_close(f"{label} vmap(grad(f))", np.asarray(r), expected,
                                     rtol=1e-12, atol=1e-12)

    results = {}
    if hasattr(ctx.adjit, "vmap"):
        vg = ctx.adjit.vmap(ctx.adjit.grad(lambda x: x**2 + anp.sin(x)))
        results["adjit"] = measure(ctx, "adjit vmap(grad(f))", vg, x, check("adjit"))
    else:
        results["adjit"] = (None, "error: adjit has no vmap")
    results["hand-written Numba"] = measure(ctx, "hand njit 2x+cos x", hand_numba.grad_f64, x,
                                            check("hand"))
    if "jax" in ctx.peers:
        jax, jnp = ctx.peers["jax"]
        jvg = jax.jit(jax.vmap(jax.grad(lambda x: x**2 + jnp.sin(x))))
        results["JAX"] = measure(ctx, "jax jit(vmap(grad(f)))",
                                 lambda a: jvg(a).block_until_ready(), jnp.asarray(x),
                                 check("JAX"))

    a, a_note = results["adjit"]
    goals = {"JAX": ("faster (< 1x)", lambda r, *_: r < 1.0)}
    notes = {
        "hand-written Numba": "reference (no goal): the elementwise `@njit(fastmath=True)` "
                              "2x+cos x kernel of row 2",
        "JAX": "`jax.jit(jax.vmap(jax.grad(f)))`, block_until_ready",
    }
    what = "`vmap(grad(f))` over 10^6 points, f = x**2 + sin x, float64"
    for peer in ("hand-written Numba", "JAX"):
        other, o_note = results.get(peer, (None, _missing(ctx, "jax")))
        goal, ok = goals.get(peer, ("", None))
        note = "; ".join(x for x in (a_note and f"adjit {a_note}", o_note, notes[peer]) if x)
        rep.lines.append(Line("5", what, peer, a, other, goal, ok, note))


# --------------------------------------------------------------------------- row 6

# Row 6's function reads these as globals (set by the row), as a user's module would.
_X = _Y = _ANP = None


def _free_array_loss(w):
    return _ANP.sum((_X @ w - _Y) ** 2)


def _argument_loss(w, x, y):
    return _ANP.sum((x @ w - y) ** 2)


def row6_free_array(ctx: Context) -> None:
    """Issue 8's row: the gradient of a least-squares loss whose 2000x1000 float64 matrix is
    read as a global (a free value of the function) against the same matrix passed as an
    argument. Goal: the same time (within 5%)."""
    global _X, _Y, _ANP
    log("row 6: free array vs argument, grad of sum((X @ w - y)**2), X 2000x1000 float64")
    rng = np.random.default_rng(0)
    _X, _Y, _ANP = rng.standard_normal((2000, 1000)), rng.standard_normal(2000), ctx.anp
    w = rng.standard_normal(1000)
    expected = 2.0 * _X.T @ (_X @ w - _Y)

    def check(label):
        return lambda r: check_close(f"{label} grad", np.asarray(r), expected, rtol=1e-9,
                                     atol=1e-9)

    g_free = ctx.adjit.grad(_free_array_loss)
    g_arg = ctx.adjit.grad(_argument_loss)
    x, y = _X, _Y
    results = {"free": [], "arg": []}
    for _ in range(2):  # alternate, so that a noisy stretch of a shared machine hits both
        results["free"].append(measure(ctx, "adjit grad, X global", g_free, w, check("global")))
        results["arg"].append(measure(ctx, "adjit grad, X argument",
                                      lambda w: g_arg(w, x, y), w, check("argument")))

    def best(runs):
        times = [t for t, _ in runs if t is not None]
        notes = [n for _, n in runs if n]
        return (min(times) if times else None), "; ".join(dict.fromkeys(notes))

    a, a_note = best(results["free"])
    other, o_note = best(results["arg"])
    note = "; ".join(part for part in (a_note and f"global: {a_note}",
                                       o_note and f"argument: {o_note}",
                                       "adjit column: X read as a global; peer column: X passed "
                                       "as an argument; both checked against 2 X^T (X w - y)")
                     if part)
    ctx.report.lines.append(Line(
        "6", "free array: grad of `sum((X @ w - y)**2)`, X 2000x1000 float64, global vs argument",
        "adjit, X as an argument", a, other, "same time (≤ 1.05x)",
        lambda r, *_: r <= 1.05, note))


# --------------------------------------------------------------------------- row 7


def row7_aot_from_c(ctx: Context) -> None:
    """Issue 13's C row: the derivative exported by ``adjit.aot.build``, called from a C
    program on 10^6 points (the array function once, and the scalar function in a C loop),
    against ``vmap(grad(f))`` called through adjit from Python. Goal: no slower."""
    log("row 7: adjit.aot library called from C vs adjit from Python, 10^6 points")
    anp, rep = ctx.anp, ctx.report
    what_vdf = "`vmap(grad(f))` on 10^6 points: exported `vdf` called from C"
    what_loop = "`grad(f)` on 10^6 points: exported scalar `df` in a C loop"
    peer = "adjit `vmap(grad(f))` from Python"
    x = np.random.default_rng(0).uniform(-2.0, 2.0, N)
    expected = ref_df(x)
    vg = ctx.adjit.vmap(ctx.adjit.grad(lambda x: x**2 + anp.sin(x)))
    py, py_note = measure(ctx, "adjit vmap(grad(f)) from Python", vg, x,
                          lambda r: check_close("adjit vmap(grad(f))", r, expected, rtol=1e-12,
                                                atol=1e-12))
    c_vdf = c_loop = None
    note = ""
    try:
        def f(x):
            return x**2 + anp.sin(x)

        folder = os.path.join(ctx.tmp_dir, "aot-row7")
        t0 = time.perf_counter()
        ctx.adjit.aot.build({"df": (ctx.adjit.grad(f), (0.0,)),
                             "vdf": (ctx.adjit.vmap(ctx.adjit.grad(f)), (np.zeros(4),))},
                            "bench", folder)
        build_s = time.perf_counter() - t0
        exe = os.path.join(folder, "aot_bench")
        subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", exe,
                        os.path.join(ctx.bench_dir, "aot_bench.c"), f"-I{folder}",
                        f"-L{folder}", "-lbench", "-Wl,-rpath,$ORIGIN"], check=True)
        x_path, out_path = os.path.join(folder, "x.bin"), os.path.join(folder, "out.bin")
        x.tofile(x_path)
        proc = subprocess.run([exe, x_path, str(N), str(max(ctx.budget_s, 0.2)), out_path],
                              capture_output=True, text=True, check=True)
        times = dict(line.split() for line in proc.stdout.splitlines())
        outs = np.fromfile(out_path).reshape(2, N)
        check_close("C vdf", outs[0], expected, rtol=1e-12, atol=1e-12)
        check_close("C loop of df", outs[1], expected, rtol=1e-12, atol=1e-12)
        c_vdf, c_loop = float(times["vdf"]), float(times["loop"])
        log(f"  C vdf: {fmt_time(c_vdf)}, C loop of df: {fmt_time(c_loop)} "
            f"(library built in {build_s:.1f} s)")
        note = f"library built by `adjit.aot.build` in {build_s:.1f} s; C timed with " \
               "clock_gettime, minimum over batches (benchmarks/aot_bench.c)"
    except Exception as e:
        log(f"  C: ERROR {_short(e, 400)}")
        note = f"error: {_short(e)}"
    notes = "; ".join(n for n in (py_note and f"Python: {py_note}", note) if n)
    goal = ("no slower (≤ 1x)", lambda r, *_: r <= 1.0)
    rep.lines.append(Line("7", what_vdf, peer, c_vdf, py, *goal,
                          notes + "; `vdf` writes into the caller's buffer"))
    rep.lines.append(Line("7", what_loop, peer, c_loop, py, *goal,
                          notes + "; one call of `df` (scalar libm cos) per point, against the "
                                  "one vectorizable loop of the array kernel"))


# --------------------------------------------------------------------------- row 8

NEWTON_STARTS = 10_000
NEWTON_STEPS = 20


@njit
def _newton_hand(x0):
    out = np.empty_like(x0)
    for i in range(x0.shape[0]):
        x = x0[i]
        for _ in range(NEWTON_STEPS):
            x = x - (x * x + math.sin(x) - 1.0) / (2.0 * x + math.cos(x))
        out[i] = x
    return out


def _newton_with(f_nb, df_nb):
    @njit
    def newton(x0):
        out = np.empty_like(x0)
        for i in range(x0.shape[0]):
            x = x0[i]
            for _ in range(NEWTON_STEPS):
                x = x - (f_nb(x) - 1.0) / df_nb(x)
            out[i] = x
        return out

    return newton


def row8_to_numba(ctx: Context) -> None:
    """Issue 13's Numba row: an ``@njit`` Newton loop solving f(x) = 1 from 10^4 starting
    points, 20 steps each, calling ``adjit.to_numba`` of f and grad(f), against the same loop
    with f and f' written inline. Goal: ≤ 1.2x."""
    log("row 8: @njit Newton loop calling adjit.to_numba derivatives vs inline derivative")
    anp = ctx.anp
    x0 = np.random.default_rng(0).uniform(0.2, 2.0, NEWTON_STARTS)
    root = _newton_hand(x0)
    if not np.all(np.abs(root**2 + np.sin(root) - 1.0) < 1e-12):
        raise CheckError("row 8: the hand-written Newton loop did not converge")

    def check(label):
        return lambda r: check_close(f"{label} Newton roots", r, root, rtol=1e-12)

    try:
        def f(x):
            return x**2 + anp.sin(x)

        newton = _newton_with(ctx.adjit.to_numba(f, 0.0),
                              ctx.adjit.to_numba(ctx.adjit.grad(f), 0.0))
        a, a_note = measure(ctx, "adjit.to_numba Newton", newton, x0, check("to_numba"))
    except Exception as e:
        a, a_note = None, f"error: {_short(e)}"
    other, o_note = measure(ctx, "hand-written inline Newton", _newton_hand, x0, check("hand"))
    note = "; ".join(n for n in (a_note and f"adjit {a_note}", o_note,
                                 "10^4 starts x 20 steps; peer: `@njit` loop with "
                                 "x*x + sin x and 2x + cos x inline") if n)
    ctx.report.lines.append(Line(
        "8", "`@njit` Newton loop calling `adjit.to_numba(f)` and `to_numba(grad(f))`",
        "hand-written Numba (inline derivative)", a, other, "≤ 1.2x",
        lambda r, *_: r <= 1.2, note))
