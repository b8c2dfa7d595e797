"""One fresh-process run for row 3 (disk caches). Started by run.py as a subprocess:

    python3 benchmarks/fresh_process.py {adjit|numba} {scalar|array} [--imports-only]

Does the imports, then (unless --imports-only) the first call of the derivative, and prints
one JSON line: the first call's time measured inside the process, its result, and the cache
counters (adjit.cache_info() or the Numba dispatcher's stats). The caller sets ADJIT_CACHE_DIR,
NUMBA_CACHE_DIR and PYTHONPATH, and times the whole subprocess.
"""

import json
import sys
import time

lib, workload = sys.argv[1], sys.argv[2]
imports_only = "--imports-only" in sys.argv[3:]

import numpy as np  # noqa: E402

if lib == "adjit":
    import adjit  # noqa: E402
    import adjit.numpy as anp  # noqa: E402

    if workload == "scalar":
        def f(x):
            return x**2 + anp.sin(x)
        fun, arg = adjit.grad(f), 0.5
    else:
        def f_sum(x):
            return anp.sum(x**2 + anp.sin(x))
        fun, arg = adjit.value_and_grad(f_sum), np.linspace(-1.5, 2.0, 1000)
else:
    import cached_kernel  # noqa: E402  (this script's folder is on sys.path)

    if workload == "scalar":
        fun, arg = cached_kernel.df_scalar, 0.5
    else:
        fun, arg = cached_kernel.value_and_grad_f64, np.linspace(-1.5, 2.0, 1000)

out = {"lib": lib, "workload": workload, "imports_only": imports_only}
if not imports_only:
    t0 = time.perf_counter()
    result = fun(arg)
    out["first_call_s"] = time.perf_counter() - t0
    if workload == "scalar":
        out["result"] = float(np.asarray(result))
    else:
        value, g = result
        out["result"] = [float(np.asarray(value)), np.asarray(g, dtype=np.float64).tolist()]
    if lib == "adjit":
        info = adjit.cache_info() if hasattr(adjit, "cache_info") else None
        out["cache"] = {k: info.get(k) for k in ("compiles", "memory_hits", "disk_hits")} \
            if isinstance(info, dict) else None
    else:
        stats = fun.stats
        out["cache"] = {"cache_hits": sum(stats.cache_hits.values()),
                        "cache_misses": sum(stats.cache_misses.values())}
print(json.dumps(out))
