"""The examples in examples/ run as scripts (each in a subprocess, all three at once, with a
fresh ADJIT_CACHE_DIR) and print the right results."""

from __future__ import annotations

import importlib.util
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# examples/dask_gradient.py needs the dask extra (part of the test extra); skipped without it.
HAVE_DASK = all(importlib.util.find_spec(m) for m in ("dask", "distributed"))
EXAMPLES = ("quickstart.py", "newton.py", "per_example_gradients.py", "numba_interop.py",
            "aot/build_and_run.py", "ode_fit.py", "gp_marginal_likelihood.py",
            "spectrum_fit.py") + (("dask_gradient.py",) if HAVE_DASK else ())
FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    env = dict(os.environ, PYTHONPATH=ROOT,
               ADJIT_CACHE_DIR=str(tmp_path_factory.mktemp("adjit-examples-cache")))
    # examples/aot writes its library and program into the folder it is given.
    args = {"aot/build_and_run.py": [str(tmp_path_factory.mktemp("aot-example"))]}
    procs = {name: subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", name),
                                     *args.get(name, [])],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for name in EXAMPLES}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"examples/{name} failed:\n{out}\n{err}"
        results[name] = out
    return results


def _line(text: str, start: str) -> str:
    found = [line for line in text.splitlines() if line.startswith(start)]
    assert found, f"no line starting {start!r} in:\n{text}"
    return found[0]


def _floats(line: str) -> list[float]:
    value = line.split(" = ", 1)[1].replace("np.float64", "")
    return [float(v) for v in re.findall(FLOAT, value)]


def test_quickstart(outputs):
    out = outputs["quickstart.py"]
    t = math.tanh(0.5)
    expected = {
        "grad(f)(0.0) ": [1.0],
        "grad(grad(f))(0.0) ": [2.0],
        "grad(x0**2 + x1**3)([1,2]) ": [2.0, 12.0],
        "value_and_grad(f)(0.0) ": [0.0, 1.0],
        "h(0.5) ": [t + 0.5 * (1 - t * t)],
        "grad(x e^y, argnums=(0,1)) ": [math.exp(0.5), 2 * math.exp(0.5)],
        "jvp(f, (1.0,), (1.0,)) ": [1 + math.sin(1), 2 + math.cos(1)],
        "vjp(f, 1.0)[1](1.0) ": [2 + math.cos(1)],
    }
    for start, values in expected.items():
        got = _floats(_line(out, start))
        np.testing.assert_allclose(got, values, rtol=1e-12, atol=1e-15, err_msg=start)
    assert "integer_pow[y=2] a" in out and "sin a" in out


def test_newton_converges_to_the_rosenbrock_minimum(outputs):
    out = outputs["newton.py"]
    assert _floats(_line(out, "iter  0:").split("f =")[0]) == [-1.2, 1.0]
    final = _line(out, "converged to")
    x = [float(v) for v in re.findall(FLOAT, final.split("to", 1)[1].split("after")[0])]
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-10)
    iters = int(final.split("after")[1].split()[0])
    assert iters <= 10, final


def test_per_example_gradients_match_the_loop(outputs):
    out = outputs["per_example_gradients.py"]
    assert "(2000, 10)" in _line(out, "per-example gradients:")
    assert _floats(_line(out, "max |vmap - loop|"))[0] < 1e-12
    assert _floats(_line(out, "max |vmap - closed form|"))[0] < 1e-12
    assert "Python loop of grad(loss)" in out


def test_numba_interop(outputs):
    out = outputs["numba_interop.py"]
    newton = _line(out, "newton: root =")
    assert abs(float(newton.split("=")[1].split()[0]) - 0.865474033101614) < 1e-14
    drift = _floats(_line(out, "fput: energy").split("drift")[1].replace("=", " = ", 1))
    assert drift[0] < 1e-6


def test_aot_library_from_c(outputs):
    out = outputs["aot/build_and_run.py"]
    x = float(_line(out, "minimum x =").split("=")[1].split()[0])
    assert abs(4 * x**3 - 4 * x + 0.3) < 1e-12 and abs(x - 0.960149555519106) < 1e-12
    line = _line(out, "vdV on 1000001 points:")
    assert "status 0" in line and _floats(line.replace("|error| =", " = "))[-1] < 1e-12
    assert "status 1" in _line(out, "vdV with a length of 1:")


def test_ode_fit_recovers_the_parameters(outputs):
    out = outputs["ode_fit.py"]
    fitted = _floats(_line(out, "fitted params").replace("[", "").replace("]", ""))
    np.testing.assert_allclose(fitted, [1.1, 0.4, 0.4, 0.1], rtol=0.02)
    assert _floats(_line(out, "final loss"))[0] < 1e-3 < _floats(_line(out, "initial loss"))[0]
    assert _floats(_line(out, "gradient, binomial vs stored"))[-1] < 1e-8


def test_gp_marginal_likelihood(outputs):
    out = outputs["gp_marginal_likelihood.py"]
    ours, scipy_value = (float(v) for v in re.findall(
        FLOAT, _line(out, "initial log marginal likelihood")))
    assert ours == scipy_value  # as printed, to 6 decimals
    assert _floats(_line(out, "final log marginal likelihood"))[0] > ours + 40
    noise = _floats(_line(out, "fitted length scale"))[-1]
    assert 0.005 < noise < 0.02  # the data's noise variance is 0.01
    assert _floats(_line(out, "gradient vs finite differences"))[-1] < 1e-6


def test_spectrum_fit_recovers_the_signal(outputs):
    out = outputs["spectrum_fit.py"]
    assert _floats(_line(out, "gradient vs finite differences"))[0] < 1e-6
    final, floor = _floats(_line(out, "final loss").replace("(noise floor", " = "))[:2]
    assert final < 1.05 * floor < _floats(_line(out, "initial loss"))[0]
    freqs = _floats(_line(out, "frequencies =").split("(true")[0].replace("[", "").replace("]", ""))
    np.testing.assert_allclose(freqs, [20.0, 45.0, 90.0], atol=0.02)


@pytest.mark.skipif(not HAVE_DASK, reason="needs the dask extra")
def test_dask_gradient_fits_as_one_process_does(outputs):
    out = outputs["dask_gradient.py"]
    assert "in 4 blocks of 50000 rows on 2 workers" in out
    assert _floats(_line(out, "gradient at p0"))[0] < 1e-12
    assert _floats(_line(out, "max |dask fit - one-process fit|"))[0] < 1e-6
    np.testing.assert_allclose(_floats(_line(out, "fitted (dask")),
                               _floats(_line(out, "true (w, b)")), atol=0.05)
    assert _floats(_line(out, "kernels built per worker")) == [1.0, 1.0]
