"""Ahead-of-time libraries (adjit.aot.build, python -m adjit aot) and adjit.to_numba.

One library is built per module (each build compiles) and shared by the tests: a C program is
compiled against its header and run, a Python process that cannot import Numba loads it with
the generated ctypes loader, shape errors give statuses, and the command line builds another.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import threading

import numba
import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit import aot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def f(x):
    return x**2 + anp.sin(x)


def loss(w, x):
    return anp.sum(anp.tanh(x * w) ** 2)


def rows(m):
    return anp.sum(m**2, axis=1) + anp.cos(m[:, 0])


X = np.linspace(-1.5, 2.0, 7)
W = np.linspace(0.5, -0.25, 7)
M = np.arange(12.0).reshape(4, 3) / 7.0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("aot")
    return aot.build({
        "f": (f, (0.0,)),
        "df": (adjit.grad(f), (0.0,)),
        "vdf": (adjit.vmap(adjit.grad(f)), (np.zeros(5),)),
        "vg": (adjit.value_and_grad(loss), (np.zeros(3), np.zeros(3))),
        "jrows": (adjit.grad(lambda m: anp.sum(rows(m))), (np.zeros((4, 3)),)),
    }, "demo", str(out))


@pytest.fixture(scope="module")
def lib(built):
    return built.load()


def test_header_documents_the_abi(built):
    header = open(built.header).read()
    assert "double df(double x);" in header
    assert "int vdf(const double *x, int64_t x_dim0, double *out);" in header
    assert "int vg(const double *w, int64_t w_dim0, const double *x, int64_t x_dim0, " \
           "double *out0, double *out1);" in header
    assert "vmap(grad(f))" in header and "out: double[n0], caller-allocated" in header
    assert "#define ADJIT_ERROR_SHAPE 1" in header


def test_library_depends_on_libc_and_libm_only(built):
    ldd = subprocess.run(["ldd", built.library], capture_output=True, text=True).stdout
    needed = {line.split()[0] for line in ldd.splitlines() if "=>" in line}
    assert needed <= {"libm.so.6", "libc.so.6"}, ldd
    nm = subprocess.run(["nm", "-D", "--defined-only", built.library], capture_output=True,
                        text=True).stdout
    assert sorted(line.split()[-1] for line in nm.splitlines()) == \
        ["df", "f", "jrows", "vdf", "vg"], nm


C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include "demo.h"

int main(void) {
    double x[7], w[7], out[7], value, g[7], m[12], gm[12];
    for (int i = 0; i < 7; i++) { x[i] = -1.5 + 3.5 * i / 6.0; w[i] = 0.5 - 0.75 * i / 6.0; }
    for (int i = 0; i < 12; i++) m[i] = i / 7.0;
    printf("f %.17g\n", f(0.5));
    printf("df %.17g\n", df(0.5));
    int s = vdf(x, 7, out);
    printf("vdf %d", s);
    for (int i = 0; i < 7; i++) printf(" %.17g", out[i]);
    s = vg(w, 7, x, 7, &value, g);
    printf("\nvg %d %.17g", s, value);
    for (int i = 0; i < 7; i++) printf(" %.17g", g[i]);
    s = jrows(m, 4, 3, gm);
    printf("\njrows %d", s);
    for (int i = 0; i < 12; i++) printf(" %.17g", gm[i]);
    printf("\nshape %d %d %d %d\n", vg(w, 7, x, 6, &value, g), vdf(x, 1, out),
           jrows(m, 4, 1, gm), vdf(NULL, 7, out));
    return 0;
}
"""


def test_c_program_matches_adjit(built, tmp_path):
    src = tmp_path / "main.c"
    src.write_text(C_PROGRAM)
    folder = os.path.dirname(built.library)
    exe = tmp_path / "main"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src), f"-I{folder}", f"-L{folder}",
                    "-ldemo", f"-Wl,-rpath,{folder}"], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    floats = {k: np.array([float(v) for v in vals]) for k, vals in lines.items()}
    assert floats["f"][0] == f(0.5)
    assert floats["df"][0] == adjit.grad(f)(0.5)
    assert floats["vdf"][0] == 0
    np.testing.assert_allclose(floats["vdf"][1:], adjit.vmap(adjit.grad(f))(X), rtol=1e-14)
    value, grad = adjit.value_and_grad(loss)(W, X)
    assert floats["vg"][0] == 0
    np.testing.assert_allclose(floats["vg"][1], value, rtol=1e-14)
    np.testing.assert_allclose(floats["vg"][2:], grad, rtol=1e-14, atol=1e-300)
    assert floats["jrows"][0] == 0
    expected = adjit.grad(lambda m: anp.sum(rows(m)))(M)
    np.testing.assert_allclose(floats["jrows"][1:], expected.ravel(), rtol=1e-14)
    # length mismatch, a length below 2 (twice), a NULL pointer
    assert lines["shape"] == ["1", "1", "1", "2"]


def test_shape_errors_are_statuses(lib):
    raw = lib.raw
    x, out = np.zeros(7), np.zeros(7)
    p = ctypes.POINTER(ctypes.c_double)
    assert raw.vdf(x.ctypes.data_as(p), 7, out.ctypes.data_as(p)) == 0
    assert raw.vdf(x.ctypes.data_as(p), 0, out.ctypes.data_as(p)) == 1
    assert raw.vdf(x.ctypes.data_as(p), -5, out.ctypes.data_as(p)) == 1
    with pytest.raises(Exception, match="status 1"):
        lib.vg(W, X[:6])


def test_ctypes_loader_matches_adjit(lib):
    assert lib.df(0.5) == adjit.grad(f)(0.5)
    np.testing.assert_allclose(lib.vdf(X), adjit.vmap(adjit.grad(f))(X), rtol=1e-14)
    value, grad = lib.vg(W, X)
    ref_value, ref_grad = adjit.value_and_grad(loss)(W, X)
    np.testing.assert_allclose(value, ref_value, rtol=1e-14)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-14, atol=1e-300)


def test_threads_share_the_library(lib):
    x = np.linspace(-3, 3, 100_001)
    expected = adjit.vmap(adjit.grad(f))(x)
    results = [None] * 4

    def work(i):
        results[i] = [lib.vdf(x) for _ in range(5)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for per_thread in results:
        for r in per_thread:
            np.testing.assert_allclose(r, expected, rtol=1e-14)


def test_loads_where_numba_cannot_be_imported(built, tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['numba'] = None\n")
    script = textwrap.dedent(f"""
        import sys
        try:
            import numba
        except ImportError:
            pass
        else:
            raise SystemExit("numba imported")
        import demo
        lib = demo.load({built.library!r})
        print(repr(lib.df(0.5)), repr(float(lib.vdf([0.5, 1.0])[1])))
        print(sorted(m for m, mod in sys.modules.items()
                     if mod is not None and m.split('.')[0] in ('numba', 'adjit', 'llvmlite')))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), os.path.dirname(built.loader)])
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert first == f"{float(adjit.grad(f)(0.5))!r} {float(adjit.grad(f)(1.0))!r}"
    assert second == "[]"


def test_command_line(tmp_path):
    (tmp_path / "mymod.py").write_text(textwrap.dedent("""
        import numpy as np
        import adjit
        import adjit.numpy as anp

        def f(x):
            return anp.exp(-x) * x

        df = adjit.grad(f)
        df_example_args = (0.0,)
        vdf = adjit.vmap(df)
        vdf_example_args = (np.zeros(3),)
    """))
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "adjit", "aot", "mymod:df", "mymod:vdf=vderiv",
                           "--name", "cli", "--output-dir", "out", "--target", "generic"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    assert {"libcli.so", "cli.h", "cli.py"} <= set(os.listdir(out))
    assert "int vderiv(const double *x, int64_t x_dim0, double *out);" in \
        (out / "cli.h").read_text()
    cdll = ctypes.CDLL(str(out / "libcli.so"))
    cdll.df.restype, cdll.df.argtypes = ctypes.c_double, [ctypes.c_double]
    assert cdll.df(0.5) == pytest.approx(np.exp(-0.5) * (1 - 0.5), rel=1e-14)


def test_command_line_usage_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "adjit"], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "aot" in proc.stderr


def test_blas_kernel_is_refused_with_a_reason(tmp_path):
    with pytest.raises(adjit.AdjitError, match="numba_xx"):
        aot.build({"g": (adjit.grad(lambda w, a: anp.sum((a @ w) ** 2)),
                         (np.zeros(3), np.zeros((4, 3))))}, "blas", str(tmp_path))


# --------------------------------------------------------------------------- to_numba


def test_to_numba_scalar_newton():
    def g(x):
        return x**3 - 2.0 * x - 5.0

    g_nb = adjit.to_numba(g, 0.0)
    dg_nb = adjit.to_numba(adjit.grad(g), 0.0)

    @numba.njit
    def newton(x):
        for _ in range(50):
            x = x - g_nb(x) / dg_nb(x)
        return x

    root = newton(2.0)
    assert abs(root**3 - 2 * root - 5) < 1e-12
    assert root == pytest.approx(2.0945514815423265, rel=1e-14)


def test_to_numba_arrays_and_tuples():
    vg = adjit.to_numba(adjit.value_and_grad(loss), W, X)

    @numba.njit
    def descend(w, x):
        for _ in range(3):
            value, g = vg(w, x)
            w = w - 0.1 * g
        return value, w

    value, w = descend(W, X)
    w_ref = W
    for _ in range(3):
        value_ref, g_ref = adjit.value_and_grad(loss)(w_ref, X)
        w_ref = w_ref - 0.1 * g_ref
    np.testing.assert_allclose(w, w_ref, rtol=1e-13)
    assert value == pytest.approx(value_ref, rel=1e-13)
    with pytest.raises(ValueError, match="differ"):
        descend(W, X[:5])


def test_to_numba_nested_arguments_and_closed_over_arrays():
    scale = np.array([1.0, 2.0, 3.0])

    def h(pair, y):
        a, b = pair
        return (anp.sum(scale * a * b), (a * y, b))

    h_nb = adjit.to_numba(adjit.jit(h), (np.ones(3), np.ones(3)), 2.0)
    a, b = np.array([1.0, -1.0, 0.5]), np.array([2.0, 0.0, 4.0])

    @numba.njit
    def call(a, b):
        return h_nb((a, b), 3.0)

    total, (ay, b_out) = call(a, b)
    assert total == pytest.approx(np.sum(scale * a * b))
    np.testing.assert_allclose(ay, a * 3.0)
    np.testing.assert_allclose(b_out, b)
