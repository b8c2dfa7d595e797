"""Ahead-of-time libraries (adjit.aot.build, python -m adjit aot) and adjit.to_numba.

One library is built per module (each build compiles) and shared by the tests: a C program is
compiled against its header and run, a Python process that cannot import Numba loads it with
the generated ctypes loader, shape errors give statuses, and the command line builds another.
"""

from __future__ import annotations

import ctypes
import os
import re
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
    assert "plain C loops" not in header  # no matrix products in these


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


# --------------------------------------------------------------------------- matrix products
# np.dot in a kernel calls Numba's BLAS helpers (numba_xxdot/xxgemv/xxgemm); the library
# defines them as C loops (compat.BLAS_SYMBOLS), so it still needs only libc and libm.


def lsq(w, x, y):
    return anp.sum((x @ w - y) ** 2)


def mv_chain(v, a, b):
    return a @ anp.tanh(b @ v)


def stacked(a, b):
    """A product of stacks of matrices: a loop of np.dot over views of the operands' slices."""
    return anp.sum(anp.tanh(anp.einsum("bij,bkj->bik", a, b)))


RNG = np.random.default_rng(13)
LX, LW, LY = RNG.standard_normal((5, 3)), RNG.standard_normal(3), RNG.standard_normal(5)
JA, JB, JV = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 6)), RNG.standard_normal(6)
SA, SB = RNG.standard_normal((3, 12, 10)), RNG.standard_normal((3, 11, 10))


@pytest.fixture(scope="module")
def blas_built(tmp_path_factory):
    out = tmp_path_factory.mktemp("aot_blas")
    f32 = [a.astype(np.float32) for a in (LW, LX, LY)]
    return aot.build({
        "lsq": (adjit.grad(lsq), (LW, LX, LY)),
        "lsq_wx": (adjit.grad(lsq, argnums=(0, 1)), (LW, LX, LY)),
        "lsq32": (adjit.grad(lsq), tuple(f32)),
        "jac": (adjit.jacrev(mv_chain), (JV, JA, JB)),
        "stacked": (adjit.grad(stacked, argnums=(0, 1)), (SA, SB)),
    }, "lsq", str(out))


def test_matrix_products_export_with_libc_and_libm_only(blas_built):
    stub = open(blas_built.stub).read()
    assert {"numba_xxgemm", "numba_xxgemv", "numba_xxdot"} <= set(re.findall(
        r"^int (numba_xx\w+)\(", stub, re.M))
    ldd = subprocess.run(["ldd", blas_built.library], capture_output=True, text=True).stdout
    assert {line.split()[0] for line in ldd.splitlines() if "=>" in line} <= \
        {"libm.so.6", "libc.so.6"}, ldd
    nm = subprocess.run(["nm", "-D", "--defined-only", blas_built.library],
                        capture_output=True, text=True).stdout
    assert sorted(line.split()[-1] for line in nm.splitlines()) == \
        ["jac", "lsq", "lsq32", "lsq_wx", "stacked"], nm
    header = open(blas_built.header).read()
    assert "out: double[n1, n0], caller-allocated" in header
    assert "Matrix products run as plain C loops" in header


def test_matrix_products_ctypes_loader_matches_adjit(blas_built):
    lib = blas_built.load()
    np.testing.assert_allclose(lib.lsq(LW, LX, LY), adjit.grad(lsq)(LW, LX, LY), rtol=1e-13)
    gw, gx = lib.lsq_wx(LW, LX, LY)
    ref_w, ref_x = adjit.grad(lsq, argnums=(0, 1))(LW, LX, LY)
    assert gx.shape == (5, 3)
    np.testing.assert_allclose(gw, ref_w, rtol=1e-13)
    np.testing.assert_allclose(gx, ref_x, rtol=1e-13)
    f32 = [a.astype(np.float32) for a in (LW, LX, LY)]
    got = lib.lsq32(*f32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, adjit.grad(lsq)(*f32), rtol=1e-5)
    jac = lib.jac(JV, JA, JB)
    assert jac.shape == (4, 6)
    np.testing.assert_allclose(jac, adjit.jacrev(mv_chain)(JV, JA, JB), rtol=1e-13)
    np.testing.assert_allclose(jac, JA @ ((1 - np.tanh(JB @ JV) ** 2)[:, None] * JB),
                               rtol=1e-12)
    # stacks of products: BLAS calls (1320 multiply-adds per matrix) and loops (12)
    for a, b in [(SA, SB), (SA[:2, :2, :3], SB[:2, :2, :3])]:
        for got, want in zip(lib.stacked(a, b), adjit.grad(stacked, argnums=(0, 1))(a, b)):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    # other lengths than the example's, and a length mismatch
    x, w, y = RNG.standard_normal((40, 17)), RNG.standard_normal(17), RNG.standard_normal(40)
    np.testing.assert_allclose(lib.lsq_wx(w, x, y)[1], adjit.grad(lsq, argnums=1)(w, x, y),
                               rtol=1e-12)
    with pytest.raises(Exception, match="status 1"):
        lib.lsq(w, x, y[:-1])


BLAS_C_PROGRAM = r"""
#include <stdio.h>
#include "lsq.h"

int main(void) {
    double x[15], w[3], y[5], g[3], gw[3], gx[15], a[12], b[18], v[6], j[24];
    for (int i = 0; i < 15; i++) x[i] = %(x)s[i];
    for (int i = 0; i < 3; i++) w[i] = %(w)s[i];
    for (int i = 0; i < 5; i++) y[i] = %(y)s[i];
    for (int i = 0; i < 12; i++) a[i] = %(a)s[i];
    for (int i = 0; i < 18; i++) b[i] = %(b)s[i];
    for (int i = 0; i < 6; i++) v[i] = %(v)s[i];
    int s = lsq(w, 3, x, 5, 3, y, 5, g);
    printf("lsq %%d", s);
    for (int i = 0; i < 3; i++) printf(" %%.17g", g[i]);
    s = lsq_wx(w, 3, x, 5, 3, y, 5, gw, gx);
    printf("\nlsq_wx %%d", s);
    for (int i = 0; i < 3; i++) printf(" %%.17g", gw[i]);
    for (int i = 0; i < 15; i++) printf(" %%.17g", gx[i]);
    s = jac(v, 6, a, 4, 3, b, 3, 6, j);
    printf("\njac %%d", s);
    for (int i = 0; i < 24; i++) printf(" %%.17g", j[i]);
    printf("\nshape %%d\n", lsq(w, 3, x, 5, 2, y, 5, g));
    return 0;
}
"""


def _c_array(a):
    return "((const double[]){" + ", ".join(repr(float(v)) for v in a.ravel()) + "})"


def test_matrix_products_c_program_matches_adjit(blas_built, tmp_path):
    src = tmp_path / "main.c"
    src.write_text(BLAS_C_PROGRAM % {k: _c_array(v) for k, v in dict(
        x=LX, w=LW, y=LY, a=JA, b=JB, v=JV).items()})
    folder = os.path.dirname(blas_built.library)
    exe = tmp_path / "main"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src), f"-I{folder}", f"-L{folder}",
                    "-llsq", f"-Wl,-rpath,{folder}"], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    got = {line.split()[0]: np.array([float(v) for v in line.split()[1:]])
           for line in out.splitlines()}
    assert got["lsq"][0] == got["lsq_wx"][0] == got["jac"][0] == 0
    np.testing.assert_allclose(got["lsq"][1:], adjit.grad(lsq)(LW, LX, LY), rtol=1e-13)
    ref_w, ref_x = adjit.grad(lsq, argnums=(0, 1))(LW, LX, LY)
    np.testing.assert_allclose(got["lsq_wx"][1:4], ref_w, rtol=1e-13)
    np.testing.assert_allclose(got["lsq_wx"][4:], ref_x.ravel(), rtol=1e-13)
    np.testing.assert_allclose(got["jac"][1:], adjit.jacrev(mv_chain)(JV, JA, JB).ravel(),
                               rtol=1e-13)
    assert got["shape"][0] == 1  # x's second length disagrees with w's


@pytest.fixture(scope="module")
def blas_helpers(tmp_path_factory):
    """The C BLAS helpers alone, built with their symbols visible, called here with ctypes."""
    folder = tmp_path_factory.mktemp("blas_helpers")
    src, so = folder / "blas.c", folder / "libblas_helpers.so"
    src.write_text(aot.compat.blas_source(aot.compat.BLAS_SYMBOLS))
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(so),
                    str(src), "-Wl,--no-undefined"], check=True)
    return ctypes.CDLL(str(so))


KINDS = {"s": np.float32, "d": np.float64, "c": np.complex64, "z": np.complex128}


def _op(a, trans):
    return {"n": a, "t": a.T, "c": a.conj().T}[trans]


def _column_major(rows, cols, ld, dtype, rng):
    """A rows x cols column-major matrix stored with leading dimension ld (padding NaN)."""
    store = np.full((cols, ld), np.nan, dtype)
    value = rng.standard_normal((rows, cols))
    if np.iscomplexobj(store):
        value = value + 1j * rng.standard_normal((rows, cols))
    store[:, :rows] = value.T
    return store, value.astype(dtype)


def _vector(n, dtype, rng):
    return _column_major(n, 1, n, dtype, rng)[1][:, 0].copy()


@pytest.mark.parametrize("kind", "sdcz")
def test_blas_helpers_follow_fortran_blas(blas_helpers, kind):
    """numba_xxgemm/xxgemv/xxdot as Numba's _lapack.c calls them: column-major, leading
    dimensions larger than the rows, every transpose, alpha and beta (beta 0 ignores C)."""
    dtype = KINDS[kind]
    rng = np.random.default_rng(ord(kind))
    tol = 1e-4 if dtype in (np.float32, np.complex64) else 1e-12
    ptr = ctypes.c_void_p
    scalar = (lambda v: np.array([v], dtype))
    alpha, beta = (1.5 - 0.5j, 0.25 + 1j) if kind in "cz" else (1.5, 0.25)
    fn = blas_helpers.numba_xxgemm
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_char] * 3 + [ctypes.c_ssize_t] * 3 + [ptr, ptr, ctypes.c_ssize_t,
                                                                   ptr, ctypes.c_ssize_t, ptr,
                                                                   ptr, ctypes.c_ssize_t]
    for ta in "ntc":
        for tb in "ntc":
            for m, n, k in [(5, 4, 3), (1, 7, 6), (2, 3, 9), (6, 1, 1)]:
                ar, ac = (m, k) if ta == "n" else (k, m)
                br, bc = (k, n) if tb == "n" else (n, k)
                a_store, a = _column_major(ar, ac, ar + 2, dtype, rng)
                b_store, b = _column_major(br, bc, br + 1, dtype, rng)
                for bet in (beta, 0.0):
                    c_store, c = _column_major(m, n, m + 3, dtype, rng)
                    if bet == 0.0:
                        c_store[:, :m] = np.nan
                    expected = alpha * (_op(a, ta) @ _op(b, tb)) + (bet * c if bet else 0)
                    al, be = scalar(alpha), scalar(bet)
                    assert fn(kind.encode(), ta.encode(), tb.encode(), m, n, k,
                              al.ctypes.data, a_store.ctypes.data, ar + 2,
                              b_store.ctypes.data, br + 1, be.ctypes.data,
                              c_store.ctypes.data, m + 3) == 0
                    np.testing.assert_allclose(c_store[:, :m].T, expected, rtol=tol, atol=tol)
                    assert np.isnan(c_store[:, m:]).all()  # padding untouched
    gemv = blas_helpers.numba_xxgemv
    gemv.restype = ctypes.c_int
    gemv.argtypes = [ctypes.c_char] * 2 + [ctypes.c_ssize_t] * 2 + [ptr, ptr, ctypes.c_ssize_t,
                                                                    ptr, ptr, ptr]
    for trans in "ntc":
        for m, n in [(5, 3), (1, 4), (4, 1)]:
            a_store, a = _column_major(m, n, m + 2, dtype, rng)
            x = _vector(n if trans == "n" else m, dtype, rng)
            for bet in (beta, 0.0):
                y = _vector(m if trans == "n" else n, dtype, rng)
                expected = alpha * (_op(a, trans) @ x) + (bet * y if bet else 0)
                if bet == 0.0:
                    y[:] = np.nan
                assert gemv(kind.encode(), trans.encode(), m, n, scalar(alpha).ctypes.data,
                            a_store.ctypes.data, m + 2, x.ctypes.data,
                            scalar(bet).ctypes.data, y.ctypes.data) == 0
                np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)
    dot = blas_helpers.numba_xxdot
    dot.restype = ctypes.c_int
    dot.argtypes = [ctypes.c_char, ctypes.c_char, ctypes.c_ssize_t, ptr, ptr, ptr]
    for n in (1, 3, 4, 11):
        x, y = _vector(n, dtype, rng), _vector(n, dtype, rng)
        for conjugate in (0, 1):
            out = np.zeros(1, dtype)
            assert dot(kind.encode(), bytes([conjugate]), n, x.ctypes.data, y.ctypes.data,
                       out.ctypes.data) == 0
            expected = np.vdot(x, y) if conjugate else np.dot(x, y)
            np.testing.assert_allclose(out[0], expected, rtol=tol, atol=tol)
    assert dot(b"q", b"\0", 1, x.ctypes.data, y.ctypes.data, out.ctypes.data) == -1


def test_unprovided_runtime_symbol_fails_the_link_naming_it(tmp_path):
    stub = tmp_path / "stub.c"
    stub.write_text("int numba_xxnrm2(char, long, void *, long, void *);\n"
                    "int f(void *x, void *r) { return numba_xxnrm2('d', 3, x, 1, r); }\n")
    with pytest.raises(adjit.AdjitError, match="numba_xxnrm2.*np.linalg"):
        aot.compat.link([], str(stub), str(tmp_path / "libx.so"))


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


def test_outputs_written_in_place_may_overlap_the_inputs():
    """A library function writes its array outputs into the caller's buffers, which a C caller
    may pass overlapping an input: the in-place kernel's nests keep those buffers in the
    arguments' memory group, declared apart from nothing (nests.py)."""
    from adjit.aot import library

    export = library.Export("vg", adjit.value_and_grad(loss), (np.zeros(3), np.zeros(3)))
    assert export.in_place == [1]
    text = export.kernel_source.text
    assert 'nest(r"""' in text and "apart:" not in text, text
    kernel = export.kernel()
    w, x = W[:3].copy(), X[:3].copy()
    want = adjit.value_and_grad(loss)(w, x)
    value, grad = kernel(w, x, w)  # the gradient written over w itself
    assert grad is not None and value == pytest.approx(float(want[0]), rel=1e-14)
    np.testing.assert_allclose(w, want[1], rtol=1e-14)
