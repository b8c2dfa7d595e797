"""Issue 15's Dask row: time per data-parallel gradient with ``adjit.dask.value_and_grad`` on a
``dask.distributed`` LocalCluster of 1 and 2 worker processes (one thread each), against the
single-process kernel (``adjit.value_and_grad`` on the whole NumPy arrays).

The loss is logistic regression's negative log-likelihood over N rows of D = 4 features
(float64), in blocks of 500,000 rows persisted on the workers, so a call moves only the
parameters and the per-block gradients. Each time is the minimum over repeated calls after a
warm-up call (compilation excluded); every result is checked against the single-process one
(rtol 1e-10) before timing. Run:

    python benchmarks/dask_bench.py [--sizes 1e6,1e7] [--repeats 5] [--output FILE]

It prints a Markdown table (and writes it to FILE) for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import adjit  # noqa: E402
import adjit.dask  # noqa: E402
import adjit.numpy as anp  # noqa: E402

D, CHUNK = 4, 500_000


def loss(p, X, y):
    z = anp.sum(X * p["w"], axis=1) + p["b"]
    return anp.sum(anp.logaddexp(0.0, z) - y * z)


def best(fn, repeats: int) -> float:
    fn()  # warm-up: compiles (here, or on the workers)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def check(got, expected, what: str):
    (v, g), (v0, g0) = got, expected
    for a, b in ((v, v0), (g["w"], g0["w"]), (g["b"], g0["b"])):
        np.testing.assert_allclose(a, b, rtol=1e-10, err_msg=what)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6,1e7", help="row counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=None, help="also write the table to this file")
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]

    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    def make(n):
        """The data as Dask arrays generated where they are computed (the same each time)."""
        rng = da.random.default_rng(0)
        return (rng.standard_normal((n, D), chunks=(CHUNK, D)),
                (rng.random(n, chunks=CHUNK) < 0.5).astype(np.float64))

    data = {n: dask.compute(*make(n), scheduler="threads") for n in sizes}
    p = {"w": np.array([0.5, -0.25, 0.125, 1.0]), "b": 0.1}

    local = adjit.value_and_grad(loss)
    one_process, expected = {}, {}
    for n, (X, y) in data.items():
        expected[n] = local(p, X, y)
        one_process[n] = best(lambda X=X, y=y: local(p, X, y), args.repeats)
        print(f"one process, N={n}: {one_process[n] * 1e3:.2f} ms", file=sys.stderr)

    on_dask = {}
    vg = adjit.dask.value_and_grad(loss)
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster):
            for n in sizes:
                Xd, yd = dask.persist(*make(n))
                check(vg(p, Xd, yd), expected[n], f"{workers} workers, N={n}")
                # Each call gets other parameters, as an optimizer's steps do: the same ones
                # would be the same task keys, which Dask may answer from the last call.
                steps = iter(range(1, 10**9))
                on_dask[workers, n] = best(
                    lambda Xd=Xd, yd=yd: vg({**p, "b": 0.1 + 1e-9 * next(steps)}, Xd, yd),
                    args.repeats)
                print(f"dask, {workers} worker(s), N={n}: {on_dask[workers, n] * 1e3:.2f} ms",
                      file=sys.stderr)
                del Xd, yd

    lines = [
        "| rows | blocks | one process | Dask, 1 worker | Dask, 2 workers | speed-up, 2 "
        "workers vs 1 | speed-up, 2 workers vs one process |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        t0, t1, t2 = one_process[n], on_dask[1, n], on_dask[2, n]
        lines.append(f"| {n:.0e} | {-(-n // CHUNK)} | {t0 * 1e3:.2f} ms | {t1 * 1e3:.2f} ms | "
                     f"{t2 * 1e3:.2f} ms | {t1 / t2:.2f}x | {t0 / t2:.2f}x |")
    # A shared machine's other work slows long calls most: the load says how busy it was.
    machine = f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    table = "\n".join(lines) + (
        f"\n\nTime per `value_and_grad` of the logistic loss over N x {D} float64 rows, blocks "
        f"of {CHUNK} rows persisted on the workers (one thread each), minimum of "
        f"{args.repeats} calls after a warm-up; {machine}; dask {_version('dask')}, "
        f"distributed {_version('distributed')}. Command: `python benchmarks/dask_bench.py "
        f"--sizes {args.sizes} --repeats {args.repeats}`.\n")
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(table)


def _version(module: str) -> str:
    return __import__(module).__version__


if __name__ == "__main__":  # the worker processes import this file: no cluster from them
    main()
