"""Contractions (issue 10): ``adjit.jit`` of an einsum and ``adjit.grad`` of
``sum(tanh(einsum(...)))``, against NumPy's ``einsum(optimize=True)`` and JAX ``jit`` (skipped
when missing); float64, the best of 20 calls after a warm-up, each value checked against NumPy.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/contraction.py
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import adjit  # noqa: E402
import adjit.numpy as anp  # noqa: E402

CASES = [
    ("bij,bjk->bik", [(64, 128, 128), (64, 128, 128)]),
    ("bhqd,bhkd->bhqk", [(8, 8, 128, 64), (8, 8, 128, 64)]),
    ("krj,ikj->ikr", [(25, 10, 10), (1000, 25, 10)]),      # ADBench GMM, d=10 K=25 n=1000
    ("krj,ikj->ikr", [(200, 64, 64), (1000, 200, 64)]),    # d=64 K=200 n=1000
    ("ijk,kl->ijl", [(64, 128, 256), (256, 128)]),
]


def best_ms(fn, *args, repeats: int = 20) -> float:
    fn(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    try:
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
    except ImportError:
        jax = None
    rng = np.random.default_rng(0)
    for spec, shapes in CASES:
        xs = [rng.standard_normal(s) for s in shapes]
        argnums = tuple(range(len(xs)))
        f = adjit.jit(lambda *a, spec=spec: anp.einsum(spec, *a))
        g = adjit.grad(lambda *a, spec=spec: anp.sum(anp.tanh(anp.einsum(spec, *a))),
                       argnums=argnums)
        np.testing.assert_allclose(f(*xs), np.einsum(spec, *xs, optimize=True), rtol=1e-9,
                                   atol=1e-9)
        row = {"adjit": best_ms(f, *xs), "adjit grad": best_ms(g, *xs),
               "numpy": best_ms(lambda *a, spec=spec: np.einsum(spec, *a, optimize=True), *xs)}
        if jax is not None:
            jf = jax.jit(lambda *a, spec=spec: jnp.einsum(spec, *a))
            jg = jax.jit(jax.grad(lambda *a, spec=spec: jnp.sum(jnp.tanh(jnp.einsum(spec, *a))),
                                  argnums=argnums))
            ja = [jnp.asarray(x) for x in xs]
            row["jax"] = best_ms(lambda *a: jf(*a).block_until_ready(), *ja)
            row["jax grad"] = best_ms(lambda *a: [r.block_until_ready() for r in jg(*a)], *ja)
        print(f"{spec:16s} {str(shapes):34s} "
              + "  ".join(f"{k} {v:7.2f} ms" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
