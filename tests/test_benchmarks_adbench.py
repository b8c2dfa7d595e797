"""The ADBench suite: its hand-written objectives agree with the NumPy formulas, the
hand-written GMM gradient and the BA Jacobian's CSR layout with central differences (no JAX
needed); ``benchmarks/adbench/run.py --smoke`` runs (GMM and BA at one small size each),
checks every derivative against JAX's before timing it, and writes its report and plots."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import adjit
import adjit.numpy as anp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks", "adbench"))

import ba  # noqa: E402
import gmm  # noqa: E402


def test_gmm_hand_written_objective_matches_formula():
    alphas, means, icf, x, gamma, m = gmm.generate(4, 3, 30, seed=1)
    for g, wm in ((gamma, m), (1.5, 2)):
        expected = gmm.objective_numpy(alphas, means, icf, x, g, wm)
        assert abs(gmm.hand_objective(alphas, means, icf, x, g, wm) - expected) <= (
            1e-12 * abs(expected))


def test_gmm_hand_written_gradient_matches_central_differences():
    alphas, means, icf, x, _, _ = gmm.generate(4, 3, 30, seed=1)
    args = (alphas, means, icf)
    grads = gmm.hand_gradient(alphas, means, icf, x, 1.5, 2)
    rng = np.random.default_rng(0)
    h = 1e-6
    for _ in range(3):
        dirs = [rng.standard_normal(a.shape) for a in args]
        plus = gmm.objective_numpy(*[a + h * v for a, v in zip(args, dirs)], x, 1.5, 2)
        minus = gmm.objective_numpy(*[a - h * v for a, v in zip(args, dirs)], x, 1.5, 2)
        dot = sum(float(np.sum(g * v)) for g, v in zip(grads, dirs))
        assert abs(dot - (plus - minus) / (2 * h)) <= 1e-6 * abs(plus)


def test_ba_csr_layout_matches_central_differences():
    """The BA Jacobian's CSR values as the benchmark computes them with adjit
    (``ba.make_csr_values``), placed by ``ba.csr_structure``, are the dense Jacobian of the
    NumPy objective by central differences."""
    n, m, p = 2, 3, 5
    cams, points, weights, features, obs = ba.generate(n, m, p)
    cams = cams + np.random.default_rng(0).normal(0.0, 0.05, cams.shape)  # distinct cameras
    reproj, werr = ba.hand_objective(cams, points, weights, features, obs)
    ref_r, ref_w = ba.residual_numpy(cams, points, weights, features, obs)
    np.testing.assert_allclose(reproj, ref_r, rtol=1e-12)
    np.testing.assert_allclose(werr, ref_w, rtol=1e-12)

    def flat(z):
        c = z[:11 * n].reshape(n, 11)
        q = z[11 * n:11 * n + 3 * m].reshape(m, 3)
        r, we = ba.residual_numpy(c, q, z[11 * n + 3 * m:], features, obs)
        return np.concatenate([r.reshape(-1), we])

    z0 = np.concatenate([cams.reshape(-1), points.reshape(-1), weights])
    h = 1e-6
    dense = np.stack([(flat(z0 + h * e) - flat(z0 - h * e)) / (2 * h)
                      for e in np.eye(z0.size)], axis=1)
    # The CSR values as the benchmark computes them (adjit's), in the structure it builds.
    block = ba.make_block(anp, adjit.jacrev, ba.make_residual(anp))
    values = adjit.jit(ba.make_csr_values(anp, adjit.vmap, adjit.grad, block))
    indptr, indices, shape = ba.csr_structure(n, m, p, obs)
    data = values(cams, points, weights, features, obs[:, 0].copy(), obs[:, 1].copy())
    rebuilt = np.zeros(shape)
    for row in range(shape[0]):
        rebuilt[row, indices[indptr[row]:indptr[row + 1]]] = data[indptr[row]:indptr[row + 1]]
    np.testing.assert_allclose(rebuilt, dense, rtol=1e-6, atol=1e-6 * np.max(np.abs(dense)))


@pytest.mark.slow
def test_adbench_smoke(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("matplotlib")
    out = tmp_path / "RESULTS.md"
    env = dict(os.environ, PYTHONPATH="")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "adbench", "run.py"),
                          "--smoke", "--only", "gmm,ba", "--output", str(out),
                          "--plots-dir", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    text = out.read_text()
    assert "check failed" not in text and "error:" not in text, text
    for workload in ("gmm", "ba"):
        with open(tmp_path / f"{workload}.png", "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        assert f"![{workload}.png]({workload}.png)" in text
    # Every goal line has a measured ratio: adjit's and JAX's derivatives were both checked
    # (against each other) and timed.
    goals = [line for line in text.splitlines() if "at every size" in line]
    assert len(goals) == 4, goals
    for line in goals:
        assert re.search(r"(met|missed): \d+\.\d\d–\d+\.\d\d \|$", line), line


def test_gmm_gradient_schedule_has_no_idle_nest():
    """Every loop nest of the GMM gradient's kernel (d=2: einsum's short contraction fused)
    keeps something: a value read after it or a reduction. A chain of views read as a whole
    array is read through to its source by one nest, not one nest per view (the d=2 gradient
    had two nests computing reshapes nothing read)."""
    import adjit
    import adjit.numpy as anp
    from adjit.backend.numba_cpu.runner import CompiledGraph
    from adjit.passes.fusion import LoopNest, is_reduction
    from adjit.trace import trace_symbolic

    d, k, n = 2, 7, 30
    alphas, means, icf, x = gmm.generate(d, k, n)[:4]
    objective = gmm.make_objective(anp, anp.logsumexp, d)
    grad = adjit.grad(lambda a, m, q: objective(a, m, q, x), argnums=(0, 1, 2))
    graph, _ = trace_symbolic(grad, [alphas, means, icf])
    schedule = CompiledGraph(graph).schedule
    nests = [item for item in schedule.units() if isinstance(item, LoopNest)]
    assert nests and all(any(is_reduction(e.prim) or schedule.needed_after(e.out, nest)
                             for e in nest.eqns) for nest in nests)
    assert "matmul" not in [e.prim for e in graph.eqns]  # d=2 <= SMALL_CONTRACTION
