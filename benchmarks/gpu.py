"""The CUDA target on a real GPU, in one run: the CUDA tests, then the benchmarks of issue 12.

    python3 benchmarks/gpu.py            # on a machine with an NVIDIA GPU and numba-cuda
    python3 benchmarks/gpu.py --quick    # small sizes (also runs in the simulator, as a check)

Prints everything at the end in one block, with the GPU's name: the test summary, then
  1. effective bandwidth (bytes read + written / time) of vmap(grad(f)) and of
     value_and_grad(sum(f(x))) for the seed f(x) = x^2 + sin x over 2^26 elements, float64 and
     float32, against a device-to-device copy, a hand-written numba.cuda kernel and JAX's
     jit(vmap(grad)) (when JAX with CUDA is installed) measured in the same run;
  2. the ADBench GMM gradient (n = 10^4; (d, K) in (10, 25), (64, 25), (64, 200)), float64,
     against JAX's jit(grad) when present (adbench/gmm.py's objective and generator);
  3. launch overhead: a small compiled derivative (one element, launch + sync) against a
     hand-written numba.cuda kernel;
  4. loops (host-driven: each step launches the body's kernels; a while loop also reads its
     predicate back): time per step of a fori_loop of an elementwise update, of its gradient
     (the forward scan storing residuals, then the reverse scan), and of a while_loop, for one
     element and for 2^20, against the same number of hand-written launches.
Times are medians of repeated calls after a warm-up call (compilation is never timed); device
inputs stay on the device, results are synchronized before the clock stops.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "adbench"))  # gmm: ADBench's GMM objective

import gmm as adbench_gmm  # noqa: E402

import adjit  # noqa: E402
import adjit.numpy as anp  # noqa: E402
from adjit.backend.numba_cuda import compat  # noqa: E402

LINES: list[str] = []
cuda = None  # numba.cuda, set by main(): kernels must find it as a global (the simulator too)


def out(line: str = "") -> None:
    LINES.append(line)
    print(line, file=sys.stderr, flush=True)


def median_time(fn, sync, repeats: int = 20) -> float:
    if compat.is_simulator():
        repeats = 1  # a check that it runs, not a measurement
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_tests(quick: bool) -> None:
    env = dict(os.environ, ADJIT_TEST_CUDA="device", PYTHONPATH=str(ROOT))
    if compat.is_simulator():
        env.pop("ADJIT_TEST_CUDA")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py"]
    if not quick:
        cmd += ["-m", "slow or not slow"]
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = [line for line in res.stdout.strip().splitlines() if line.strip()][-15:]
    out(f"## tests/test_cuda.py ({'simulator' if compat.is_simulator() else 'on the GPU'}, "
        f"{time.perf_counter() - start:.0f} s, exit {res.returncode})")
    for line in tail:
        out("    " + line)


# --------------------------------------------------------------------------- 1. bandwidth


def seed(x):
    return x ** 2 + anp.sin(x)


def bandwidth(n: int) -> None:
    out(f"## 1. seed derivative, {n} elements (GB/s = bytes read + written / time)")
    out("| what | dtype | time | GB/s | vs copy |")
    out("|---|---|---|---|---|")

    @cuda.jit
    def hand(x, y):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            y[i] = 2 * x[i] + math.cos(x[i])

    for dtype in (np.float64, np.float32):
        host = np.random.default_rng(0).standard_normal(n).astype(dtype)
        x = cuda.to_device(host)
        y = cuda.device_array_like(x)
        nbytes = 2 * host.nbytes
        rows = []
        t_copy = median_time(lambda: y.copy_to_device(x), cuda.synchronize)
        rows.append(("device-to-device copy", t_copy))
        blocks = min((n + 255) // 256, 8 * compat.multiprocessors())
        rows.append(("hand-written numba.cuda kernel",
                     median_time(lambda: hand[blocks, 256](x, y), cuda.synchronize)))
        d = adjit.vmap(adjit.grad(seed), target="cuda")
        got = d(x).copy_to_host()
        ref = 2 * host + np.cos(host)
        ok = np.allclose(got, ref, rtol=1e-5 if dtype is np.float32 else 1e-12, atol=1e-6)
        rows.append((f"adjit vmap(grad) {'ok' if ok else 'WRONG'}",
                     median_time(lambda: d(x), cuda.synchronize)))
        vg = adjit.value_and_grad(lambda a: anp.sum(seed(a)), target="cuda")
        vg(x)
        rows.append(("adjit value_and_grad(sum f)", median_time(lambda: vg(x), cuda.synchronize)))
        try:
            import jax
            import jax.numpy as jnp

            if jax.default_backend() == "gpu":
                jax.config.update("jax_enable_x64", True)
                jd = jax.jit(jax.vmap(jax.grad(lambda s: s ** 2 + jnp.sin(s))))
                jx = jax.device_put(host)
                rows.append(("JAX jit(vmap(grad))",
                             median_time(lambda: jd(jx).block_until_ready(), lambda: None)))
        except ImportError:
            pass
        for what, t in rows:
            out(f"| {what} | {np.dtype(dtype).name} | {t * 1e3:.3f} ms | "
                f"{nbytes / t / 1e9:,.0f} | {t_copy / t:.0%} |")


# --------------------------------------------------------------------------- 2. GMM


def gmm(sizes, n: int) -> None:
    out(f"## 2. ADBench GMM gradient, float64, n = {n}")
    out("| d | K | adjit cuda | JAX jit(grad) | adjit vs CPU target |")
    out("|---|---|---|---|---|")
    for d, k in sizes:
        host = adbench_gmm.generate(d, k, n)[:4]
        args = tuple(cuda.to_device(a) for a in host)
        obj = adbench_gmm.make_objective(anp, anp.logsumexp, d)
        g = adjit.grad(obj, argnums=(0, 1, 2), target="cuda")
        got = [a.copy_to_host() for a in g(*args)]
        ref = adjit.grad(obj, argnums=(0, 1, 2))(*host)
        err = max(float(np.max(np.abs(a - b)) / (1 + np.max(np.abs(b))))
                  for a, b in zip(got, ref))
        t = median_time(lambda: g(*args), cuda.synchronize, repeats=10)
        jax_t = "-"
        try:
            import jax

            if jax.default_backend() == "gpu":
                import jax.numpy as jnp
                import jax.scipy.special as jss

                jax.config.update("jax_enable_x64", True)
                jg = jax.jit(jax.grad(adbench_gmm.make_objective(jnp, jss.logsumexp, d),
                                      argnums=(0, 1, 2)))
                jargs = tuple(jax.device_put(a) for a in host)
                jt = median_time(lambda: jax.block_until_ready(jg(*jargs)), lambda: None, 10)
                jax_t = f"{jt * 1e3:.2f} ms"
        except ImportError:
            pass
        out(f"| {d} | {k} | {t * 1e3:.2f} ms | {jax_t} | max rel. diff {err:.1e} |")


# --------------------------------------------------------------------------- 3. launch


def launch() -> None:
    out("## 3. launch overhead (one element, launch + sync)")

    @cuda.jit
    def hand(x, y):
        i = cuda.grid(1)
        if i < x.shape[0]:
            y[i] = 2 * x[i] + math.cos(x[i])

    x = cuda.to_device(np.ones(1))
    y = cuda.device_array_like(x)
    d = adjit.vmap(adjit.grad(seed), target="cuda")
    t_hand = median_time(lambda: hand[1, 32](x, y), cuda.synchronize, 200)
    t_adjit = median_time(lambda: d(x), cuda.synchronize, 200)
    out(f"hand-written numba.cuda kernel: {t_hand * 1e6:.1f} us; adjit vmap(grad) "
        f"(allocates its result): {t_adjit * 1e6:.1f} us")


# --------------------------------------------------------------------------- 4. loops


def loops(steps: int, sizes) -> None:
    out(f"## 4. loops: time per step over {steps} steps (host-driven launches)")

    @cuda.jit
    def hand(x, y):
        i = cuda.grid(1)
        if i < x.shape[0]:
            y[i] = x[i] * math.cos(x[i]) + 0.5

    update = lambda i, c: c * anp.cos(c) + 0.5
    forward = adjit.jit(lambda x: adjit.fori_loop(0, steps, update, x), target="cuda")
    grad = adjit.grad(lambda x: anp.sum(adjit.fori_loop(0, steps, update, x)), target="cuda")
    stop = float(steps)
    counted = adjit.jit(lambda x: adjit.while_loop(
        lambda c: c[0] < stop, lambda c: (c[0] + 1.0, update(0, c[1])), (0.0, x))[1],
        target="cuda")
    for n in sizes:
        x = cuda.to_device(np.linspace(0.0, 1.0, n))
        y = cuda.device_array_like(x)
        blocks = (n + 255) // 256

        def hand_loop():
            a, b = x, y
            for _ in range(steps):
                hand[blocks, 256](a, b)
                a, b = b, a

        row = []
        for name, fn in [("hand-written launches", hand_loop), ("fori_loop", lambda: forward(x)),
                         ("grad(fori_loop)", lambda: grad(x)),
                         ("while_loop", lambda: counted(x))]:
            row.append(f"{name} {median_time(fn, cuda.synchronize, 5) / steps * 1e6:.1f} us")
        out(f"n = {n}: " + "; ".join(row))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--no-tests", action="store_true")
    opts = parser.parse_args()
    global cuda
    compat.require_device()
    cuda = compat.cuda()
    quick = opts.quick or compat.is_simulator()
    major, minor = compat.compute_capability()
    out(f"# adjit CUDA target on {compat.device_name()} (compute capability {major}.{minor}, "
        f"{compat.multiprocessors()} SMs), numba-cuda {compat.numba_cuda_version()}, "
        f"numpy {np.__version__}")
    if not opts.no_tests:
        run_tests(quick)
    bandwidth(64 if compat.is_simulator() else 2 ** 16 if quick else 2 ** 26)
    n = 8 if compat.is_simulator() else 1000 if quick else 10_000
    sizes = [(2, 3)] if compat.is_simulator() else [(10, 25), (64, 25), (64, 200)]
    gmm(sizes, n)
    launch()
    loops(8 if compat.is_simulator() else 100 if quick else 1000,
          [1, 64] if compat.is_simulator() else [1, 2 ** 20])
    print("\n".join(LINES))


if __name__ == "__main__":
    main()
