"""Run every benchmark row (issue 3's four, issue 4's vmap row) and write benchmarks/RESULTS.md.

    python3 benchmarks/run.py            # ~1 s of timing per measurement (ADBench's protocol)
    python3 benchmarks/run.py --quick    # 0.2 s per measurement, fewer fresh-process runs

Peers (hand-written Numba, JAX, PyTensor, PyTorch) are each skipped with a note when missing.
See benchmarks/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
ALL_ROWS = "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="0.2 s of timing per measurement instead of 1 s; fewer subprocess runs")
    p.add_argument("--output", default=os.path.join(BENCH_DIR, "RESULTS.md"),
                   help="where to write the markdown report (default: benchmarks/RESULTS.md)")
    p.add_argument("--adjit-path", default=REPO_ROOT,
                   help="folder holding the adjit package to benchmark (default: this checkout)")
    p.add_argument("--only", default=ALL_ROWS,
                   help="comma-separated rows to run (default: all); a partial run says so")
    return p.parse_args(argv)


def load_peers(report, log):
    """Import each peer that is installed; a missing or broken one becomes a note."""
    from harness import installed

    peers = {}
    if installed("jax"):
        try:
            import jax

            jax.config.update("jax_enable_x64", True)
            import jax.numpy as jnp

            peers["jax"] = (jax, jnp)
        except Exception as e:
            report.notes.append(f"JAX is installed but failed to import: {e}")
    else:
        report.notes.append("JAX not installed: its comparisons are skipped.")
    if installed("torch"):
        try:
            import torch

            peers["torch"] = torch
        except Exception as e:
            report.notes.append(f"PyTorch is installed but failed to import: {e}")
    else:
        report.notes.append("PyTorch not installed: its comparisons are skipped.")
    if installed("pytensor"):
        try:
            import pytensor
            import pytensor.tensor as pt

            peers["pytensor"] = (pytensor, pt)
        except Exception as e:
            report.notes.append(f"PyTensor is installed but failed to import: {e}")
    else:
        report.notes.append("PyTensor not installed: its comparisons are skipped.")
    log(f"peers loaded: {', '.join(sorted(peers)) or 'none'}")
    return peers


def render(report, args, command, started, runtime_s, ctx_info) -> str:
    from harness import cpu_model, dist_version, git_describe, nproc

    versions = [
        ("python", platform.python_version()),
        ("adjit", f"{ctx_info['adjit_version']} ({git_describe(args.adjit_path)}, "
                  f"{os.path.abspath(args.adjit_path)})"),
        ("numba", dist_version("numba")),
        ("llvmlite", dist_version("llvmlite")),
        ("numpy", dist_version("numpy")),
        ("jax", dist_version("jax")),
        ("jaxlib", dist_version("jaxlib")),
        ("torch", dist_version("torch")),
        ("pytensor", dist_version("pytensor")),
    ]
    out = ["# adjit benchmarks: results", ""]
    out.append(f"- **Command:** `{command}`")
    out.append(f"- **Date:** {started.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    out.append(f"- **Run time:** {runtime_s:.0f} s"
               f"{' (quick: 0.2 s per measurement)' if args.quick else ' (1 s per measurement)'}")
    out.append(f"- **Machine:** nproc {nproc()}, {cpu_model()}, {platform.system()} "
               f"{platform.release()} {platform.machine()}")
    out.append("- **Versions:** " + ", ".join(f"{k} {v}" for k, v in versions))
    out.append(f"- **adjit backend:** {ctx_info['backend']}")
    out.append(f"- **Threads:** {ctx_info['threads']}")
    out.append(f"- **OpenBLAS:** {ctx_info['openblas']}")
    if args.only != ALL_ROWS:
        out.append(f"- **Partial run:** rows {args.only} only")
    out.append("- **ADBench suite** (GMM, BA, D-LSTM at many sizes, with plots): "
               "[adbench/RESULTS.md](adbench/RESULTS.md), `python3 benchmarks/adbench/run.py`")
    out += ["", "## Summary", "",
            "Ratio = adjit time / peer time, both measured in this run (< 1: adjit is faster). "
            "Times are the minimum per call over batches (ADBench's protocol) except row 3 "
            "(one-time costs, see the details). Goals are those of issue 3 (rows 1-4) and issue 4 "
            "(row 5); a row with no goal in the issue shows —.", "",
            "| row | workload | peer | adjit | peer | adjit/peer | goal (issue 3/4) | notes |",
            "|---|---|---|---|---|---|---|---|"]
    for line in report.lines:
        out.append("| " + " | ".join(line.cells()) + " |")
    out += ["", "\\* The issue states this goal for `value_and_grad`; applied here to the "
            "elementwise derivative as well.", ""]
    titles = {
        "3a": "Row 3a: compile latency in a warm process (one first call per new function)",
        "3b": "Row 3b: fresh process with a warm disk cache",
        "4": "Row 4: ten array lengths",
        "12": "Row 12: first-call compile latency by stage (a fresh process each)",
        "13": "Row 13: `parallel=True` on one and two threads (a fresh process each)",
        "14": "Row 14: data-parallel `value_and_grad` on Dask (`adjit.dask`), 1 and 2 workers",
    }
    out.append("## Details")
    for key in ("3a", "3b", "4", "12", "13", "14"):
        if key in report.details:
            out += ["", f"### {titles[key]}", ""]
            for block in report.details[key]:
                out += [block, ""]
    out += ["", "## Method and notes", ""]
    out += [f"- {n}" for n in report.notes]
    return "\n".join(out).rstrip() + "\n"


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    rows_wanted = {r.strip() for r in args.only.split(",") if r.strip()}
    started_clock = time.perf_counter()
    started = datetime.datetime.now(datetime.UTC)
    shown_args = [a for a in (sys.argv[1:] if argv is None else argv)]
    command = " ".join(["python3", "benchmarks/run.py", *shown_args])

    # A fresh, private adjit disk cache for this process, so that compile counts and compile
    # latencies are real compilations, never hits left by an earlier run.
    tmp_dir = tempfile.mkdtemp(prefix="adjit-bench-")
    os.environ["ADJIT_CACHE_DIR"] = os.path.join(tmp_dir, "main-adjit-cache")
    sys.path.insert(0, BENCH_DIR)
    sys.path.insert(0, os.path.abspath(args.adjit_path))
    import openblas  # first: the machine's OpenBLAS overrides go before NumPy loads OpenBLAS
    from harness import Report, log

    report = Report()
    try:
        import compile_latency
        import dense
        import loops
        import numba
        import parallel
        import rows

        import adjit
        import adjit.numpy as anp
    except Exception as e:
        log(f"cannot import adjit or the benchmark modules: {e}")
        raise
    log(f"adjit {getattr(adjit, '__version__', '?')} from {os.path.dirname(adjit.__file__)}")
    peers = load_peers(report, log)
    budget = 0.2 if args.quick else 1.0

    ctx = rows.Context(adjit=adjit, anp=anp, peers=peers, budget_s=budget, quick=args.quick,
                       report=report, bench_dir=BENCH_DIR,
                       adjit_root=os.path.abspath(args.adjit_path), tmp_dir=tmp_dir)
    try:
        # Row 4 runs before row 2: both compile grad(sum f) for float64 vectors, and row 4
        # must see that compilation happen.
        if "1" in rows_wanted:
            rows.row1_scalar(ctx)
        if "4" in rows_wanted:
            rows.row4_sizes(ctx)
        if "2" in rows_wanted:
            rows.row2_arrays(ctx)
        if "5" in rows_wanted:
            rows.row5_vmap_grad(ctx)
        if "6" in rows_wanted:
            rows.row6_free_array(ctx)
        if "7" in rows_wanted:
            rows.row7_aot_from_c(ctx)
        if "8" in rows_wanted:
            rows.row8_to_numba(ctx)
        if "9" in rows_wanted:
            loops.row9_loops(ctx)
        if "10" in rows_wanted:
            loops.row10_lstm(ctx)
        if "11" in rows_wanted:
            loops.row11_memory(ctx)
        if "12" in rows_wanted:
            compile_latency.row12_compile_latency(ctx)
        if "13" in rows_wanted:
            parallel.row13_parallel(ctx)
        if "14" in rows_wanted:
            parallel.row14_dask(ctx)
        if "15" in rows_wanted:
            dense.row15_dense(ctx)
        if "3" in rows_wanted:
            rows.row3_compile_warm(ctx)
            rows.row3_fresh_process(ctx)
        info_end = ctx.cache_info()
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    report.lines.sort(key=lambda line: int(line.row))

    threads = [f"Numba kernels single-threaded (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}"
               ", no `parallel=True` in the hand-written kernels)"]
    if "torch" in peers:
        threads.append(f"PyTorch intra-op threads {peers['torch'].get_num_threads()}")
    if "jax" in peers:
        threads.append("JAX/XLA CPU default threading")
    backend = ("`adjit.cache_info()` present; at the end of the run: " + repr(info_end)
               if info_end is not None else
               "`adjit.cache_info()` not present (the reference interpreter, or a compiler "
               "without its counters): compile counts are not measured")
    report.notes[:0] = [
        "Seed: f(x) = x**2 + sin(x), f'(x) = 2x + cos(x); scalar point x = 0.5; arrays drawn "
        "from U(-2, 2) with a fixed seed.",
        "Timing: the repeat count doubles until one batch takes >= 5 ms, then batches are "
        f"collected for {budget:g} s (at least 3); the minimum per call is reported. The "
        "garbage collector is off while timing. Compilation is excluded (one warm-up call).",
        "Checks: every implementation's result is compared with the NumPy formula before it is "
        "timed (float64: gradient rtol 1e-12, value rtol 1e-9; float32: gradient rtol/atol "
        "1e-5, value rtol 1e-3 since each library sums float32 in its own order). A failed "
        "check or an error shows in the notes and the implementation is not timed.",
        "Hand-written Numba: scalar derivative `@njit`; array kernels `@njit(fastmath=True)` "
        "(all LLVM fast-math flags), one loop, float32 kernels with float32 constants and "
        "accumulator (benchmarks/hand_numba.py).",
        "JAX: `jax.jit` with `jax_enable_x64`; array inputs are passed as JAX arrays; every "
        "call waits with `block_until_ready`. PyTorch: eager, `torch.autograd.grad`, inputs "
        "shared with NumPy (`torch.from_numpy`). PyTensor: `pytensor.function(..., "
        "mode='NUMBA')`.",
        "Row 3a: time of the first call of a new function's derivative (trace + differentiate "
        "+ compile + run), in a process that has compiled other functions before; the median "
        "over five new functions (benchmarks/hand_numba.py VARIANTS) is reported.",
        "Row 3b, the measure the goal applies to: wall time of a fresh subprocess doing the "
        "imports and the first call, minus the wall time of the same subprocess doing only the "
        "imports (`fresh_process.py --imports-only`), with warm disk caches (ADJIT_CACHE_DIR, "
        "NUMBA_CACHE_DIR). The first call timed inside the process and the total wall times "
        "are in the details. Numba's first call in a fresh process includes its one-off target "
        "set-up (which imports scipy.linalg for BLAS), even on a cache hit.",
        f"Numba SVML in use: {numba.config.USING_SVML}. Without SVML the hand-written kernels "
        "call scalar libm sin/cos per element; NumPy's float32 sin/cos are SIMD, so NumPy-based "
        "code (like adjit's reference interpreter) can beat the float32 hand-written kernels.",
        "A fresh `ADJIT_CACHE_DIR` (temporary folder) is used for the whole run, so no result "
        "comes from a cache left by an earlier run.",
    ]
    runtime = time.perf_counter() - started_clock
    text = render(report, args, command, started, runtime,
                  {"adjit_version": getattr(adjit, "__version__", "?"), "backend": backend,
                   "threads": "; ".join(threads), "openblas": openblas.kernels()})
    with open(args.output, "w") as fh:
        fh.write(text)
    log(f"wrote {args.output} in {runtime:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
