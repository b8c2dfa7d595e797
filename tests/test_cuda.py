"""The CUDA target against the CPU target.

Without a GPU these tests run in numba-cuda's simulator (one Python thread per CUDA thread, so
tiny inputs and blocks of 8 threads), enabled only for the import of ``numba.cuda`` in this
process (``NUMBA_ENABLE_CUDASIM`` is restored at once, so nothing else sees it). With
``ADJIT_TEST_CUDA=device`` (what ``benchmarks/gpu.py`` sets) they run on the GPU. Kernels are
also typed and lowered for a real device without one (``runner.typecheck``, in a subprocess),
which the simulator never does.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from test_primitives import CASES, forward_only

import adjit
import adjit.numpy as anp
from adjit import tree
from adjit.backend import get_target
from adjit.backend.numba_cuda import compat
from adjit.config import config
from adjit.errors import AdjitValueError, MissingRuleError
from adjit.ir.rules import abstract_rules, kind_of

ROOT = pathlib.Path(__file__).resolve().parents[1]
ON_DEVICE = os.environ.get("ADJIT_TEST_CUDA") == "device"

pytestmark = pytest.mark.skipif(not compat.available(), reason="numba-cuda is not installed")


@pytest.fixture(scope="module")
def cuda():
    """numba.cuda: the simulator, unless ADJIT_TEST_CUDA=device."""
    if not ON_DEVICE and "numba.cuda" not in sys.modules:
        saved = os.environ.get("NUMBA_ENABLE_CUDASIM")
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        try:
            compat.cuda()
        finally:
            if saved is None:
                del os.environ["NUMBA_ENABLE_CUDASIM"]
            else:
                os.environ["NUMBA_ENABLE_CUDASIM"] = saved
            from numba.core import config as numba_config

            numba_config.reload_config()  # numba's own config forgets it too
    module = compat.cuda()
    if ON_DEVICE:
        if compat.is_simulator() or not module.is_available():
            pytest.fail("ADJIT_TEST_CUDA=device but no GPU is usable")
    elif not compat.is_simulator():
        pytest.skip("numba.cuda was imported before these tests, without the simulator")
    return module


def _run(env=None, code=""):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"} | (env or {})
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)


def _compare(got, ref, rtol, atol, what=""):
    got, ref = tree.leaves(got), tree.leaves(ref)
    assert len(got) == len(ref), what
    for a, b in zip(got, ref):
        a = a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)
        assert a.dtype == np.asarray(b).dtype, f"{what}: dtype {a.dtype} != {np.asarray(b).dtype}"
        assert a.shape == np.shape(b), what
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


# --------------------------------------------------------------------------- without a device


def test_import_adjit_never_imports_numba_cuda():
    out = _run(code=(
        "import sys, numpy as np, adjit\n"
        "from adjit.backend import get_target\n"
        "t = get_target('cuda'); f = adjit.jit(lambda x: x * 2.0, target='cuda')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('numba.cuda', 'numba_cuda'))))"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_without_a_gpu_or_the_simulator_is_an_adjit_error():
    out = _run(code=(
        "import numpy as np, adjit\n"
        "from numba import cuda\n"
        "if cuda.is_available(): print('gpu'); raise SystemExit\n"
        "try:\n"
        "    adjit.jit(lambda x: x * 2.0, target='cuda')(np.ones(3))\n"
        "except adjit.AdjitError as e:\n"
        "    print('AdjitError:', e)\n"))
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "gpu":
        pytest.skip("a GPU is present")
    assert "AdjitError: adjit: target='cuda' found no CUDA GPU" in out.stdout
    assert "NUMBA_ENABLE_CUDASIM=1" in out.stdout


def test_cuda_target_lowers_every_primitive():
    from adjit.backend.numba_cuda.lowering import DECLINED

    lowerings = get_target("cuda").lowerings
    missing = {name for name in abstract_rules if kind_of(name) not in ("view", "call")
               and name not in lowerings.get(kind_of(name), {})}
    assert missing == DECLINED, missing ^ DECLINED
    assert set(lowerings["helpers"]) <= set(lowerings["elementwise"])


# Typed and lowered to LLVM for compute capability 8.0 in a process without the simulator:
# catches device code the simulator runs happily (it is Python) but numba-cuda cannot compile,
# and float64 arithmetic in a float32 kernel.
_TYPECHECK = r'''
import re, sys
import numpy as np
sys.path.insert(0, "tests")
import adjit
from test_primitives import CASES
from adjit.backend.numba_cuda.runner import CompiledGraph, Launch, typecheck
from adjit.trace import trace_symbolic
names = sys.argv[1].split(";")
bad = []
for c in CASES:
    if c.name not in names:
        continue
    for dtype in (np.float64, np.float32):
        xs = tuple(np.asarray(x, dtype) for x in c.inputs())
        def body(*a):
            y, t = adjit.jvp(c.fn, a, a)
            return adjit.tree.leaves((y, t, adjit.vjp(c.fn, *a)[1](y)))
        graph, consts = trace_symbolic(body, list(xs))
        compiled = CompiledGraph(graph, launch=Launch())
        wide = any(v.aval.dtype == np.float64 for e in compiled.optimized.eqns for v in e.outs)
        try:
            irs = typecheck(compiled, [*consts, *xs])
        except Exception as exc:
            bad.append(f"{c.name} {dtype.__name__}: {type(exc).__name__}: {str(exc)[:400]}")
            continue
        if dtype is np.float32 and not wide and not {"digamma", "polygamma"} & set(c.prims):
            for name, ir in irs.items():
                if re.search(r"= (fadd|fsub|fmul|fdiv|fpext)[^\n]*double", ir):
                    bad.append(f"{c.name} float32: double arithmetic in {name}")
print("\n".join(bad) or "ok")
'''

# One case per lowering kind and per CUDA override: elementwise (with the helpers), reductions
# (full and partial), views, gathers, matmul and every whole-array lowering.
TYPECHECK_CASES = [
    "sin-(3,)", "floor-(3,)", "ceil-(3,)", "round-(3,)", "cbrt-(3,)", "sign-(3,)", "abs-(3,)",
    "pow_float-(3,)", "pow_neg_int-(3,)", "clip-(2, 3)", "where_and_or_not", "isfinite",
    "astype", "digamma", "polygamma", "erf", "gammaln", "expit", "sum-(3, 4)-{}",
    "prod-(3, 4)-{'axis': 0}", "max-(2, 3, 4)-{'axis': (0, 2)}", "logsumexp-(3, 4)-{}",
    "shape_size", "dot-[(2, 3), (3, 4)]", "index_take", "index_at_add", "index_slice",
    "index_neg_step", "concatenate", "cumsum", "sort", "argsort", "argmax_axis", "reshape",
    "eye",
    # complex arithmetic and parts (numba-cuda's cmath computes complex64 in double: not here)
    "complex_parts", "complex_conj", "complex_abs", "complex_embed",
]


def _known(names):
    known = {c.name for c in CASES}
    return [n for n in names if n in known]


# Control flow in float32 (weak-typed scalars only): value, JVP, VJP; the kernels of every
# branch and loop body typed (``typecheck`` takes each branch and enters each loop once), none
# computing in float64.
_TYPECHECK_CONTROL = r'''
import re, sys
import numpy as np
sys.path.insert(0, "tests")
import adjit
from test_cuda import CONTROL
from adjit.backend.numba_cuda.runner import CompiledGraph, Launch, typecheck
from adjit.trace import trace_symbolic
bad = []
for name, (fn, shapes, reverse) in CONTROL.items():
    for dtype in (np.float32,):
        xs = [np.linspace(0.1, 0.9, int(np.prod(s))).reshape(s).astype(dtype) for s in shapes]
        def body(*a):
            y, t = adjit.jvp(fn, a, a)
            return adjit.tree.leaves((y, t, adjit.vjp(fn, *a)[1](y) if reverse else ()))
        graph, consts = trace_symbolic(body, xs)
        compiled = CompiledGraph(graph, launch=Launch())
        try:
            irs = typecheck(compiled, [*consts, *xs])
        except Exception as exc:
            bad.append(f"{name} {dtype.__name__}: {type(exc).__name__}: {str(exc)[:400]}")
            continue
        if len(irs) != compiled.source.n_kernels:
            bad.append(f"{name}: typed {len(irs)} of {compiled.source.n_kernels} kernels")
        if dtype is np.float32:
            for kernel, ir in irs.items():
                if re.search(r"= (fadd|fsub|fmul|fdiv|fpext)[^\n]*double", ir):
                    bad.append(f"{name} float32: double arithmetic in {kernel}")
print("\n".join(bad) or "ok")
'''


def test_kernels_type_check_for_a_real_device():
    names = _known(TYPECHECK_CASES)
    assert len(names) == len(TYPECHECK_CASES), set(TYPECHECK_CASES) - set(names)
    out = _run(code=f"import sys; sys.argv = ['', {';'.join(names)!r}]\n" + _TYPECHECK)
    assert out.returncode == 0, out.stderr[-3000:]
    if "no CUDA" in out.stderr:
        pytest.skip(out.stderr)
    assert out.stdout.strip() == "ok", out.stdout


def test_control_flow_kernels_type_check_for_a_real_device():
    out = _run(code=_TYPECHECK_CONTROL)
    assert out.returncode == 0, out.stderr[-3000:]
    if "no CUDA" in out.stderr:
        pytest.skip(out.stderr)
    assert out.stdout.strip() == "ok", out.stdout


# --------------------------------------------------------------------------- in the simulator


def _derivatives(fn, xs, reverse=True):
    """f(x), its JVP along x, and (reverse mode) the VJP of f(x)."""
    y, t = adjit.jvp(fn, xs, xs)
    if not reverse:
        return y, t
    return y, t, adjit.vjp(fn, *xs)[1](y)


def _case(name):
    return next(c for c in CASES if c.name == name)


# A representative set of the primitive table: every lowering kind, every CUDA override.
SIM_CASES = _known([
    "sin-(2, 3)", "exp-(3,)", "log-(3,)", "floor-(3,)", "round-(3,)", "cbrt-(3,)", "sign-(3,)",
    "pow_neg_int-(3,)", "clip-(2, 3)", "maximum-(2, 1, 3)-(4, 1)", "arctan2-(3, 1)-(4,)",
    "where_and_or_not", "isfinite", "astype", "digamma", "polygamma", "gammaln",
    "sum-(3, 4)-{}", "sum-(2, 3, 4)-{'axis': (0, 2)}", "prod-(3, 4)-{'axis': 0}",
    "max-(3, 4)-{'axis': -1}", "min-(5,)-{}", "mean-(3, 4)-{'axis': 1, 'keepdims': True}",
    "var-(3, 4)-{}", "logsumexp-(3, 4)-{'axis': 0}", "norm-(3, 4)-{'ord': inf}", "shape_size",
    "argmax_axis", "cumsum", "sort_axis_0", "argsort", "dot-[(2, 3), (3, 4)]",
    "matmul-[(2, 3, 4), (4, 5)]", "einsum-bij,bjk->bik", "reshape", "transpose", "broadcast_to",
    "concatenate", "stack", "eye", "arange", "index_int", "index_neg_int", "index_slice_step",
    "index_neg_step", "index_take_axis", "index_at_add_repeat", "index_at_set",
    "index_two_arrays_bcast", "custom_vjp",
])


def test_case_lists_name_real_cases():
    assert len(SIM_CASES) == 50 and len(F32_CASES) == 10


@pytest.mark.parametrize("name", SIM_CASES)
def test_case_matches_cpu(cuda, name):
    c = _case(name)
    xs = tuple(np.asarray(x, np.float64) for x in c.inputs())
    body = lambda *a: _derivatives(c.fn, a, reverse=not forward_only(c))
    got = adjit.jit(body, target="cuda")(*xs)
    ref = adjit.jit(body)(*xs)
    _compare(got, ref, 1e-9, 1e-12, name)


F32_CASES = _known(["sin-(3,)", "cbrt-(3,)", "floor-(3,)", "sum-(2, 3, 4)-{'axis': (0, 2)}",
                    "prod-(5,)-{}", "dot-[(2, 3), (3, 4)]", "logsumexp-(3, 4)-{}",
                    "index_at_add", "cumsum", "digamma"])


@pytest.mark.parametrize("name", F32_CASES)
def test_float32_case_matches_cpu(cuda, name):
    c = _case(name)
    xs = tuple(np.asarray(x, np.float32) for x in c.inputs())
    body = lambda *a: _derivatives(c.fn, a, reverse=not forward_only(c))
    _compare(adjit.jit(body, target="cuda")(*xs), adjit.jit(body)(*xs), 2e-5, 1e-6, name)


@pytest.mark.slow
@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
def test_every_case_matches_cpu(cuda, c, monkeypatch):
    """Against the CPU target's reference interpreter: compiling a CPU kernel per case was
    nine tenths of this test's time, tests/test_compiled.py checks the CPU kernels of every
    case against that interpreter (value, JVP, VJP, to the same tolerances), and
    test_case_matches_cpu compares a representative set with the CPU kernels themselves."""
    from adjit.backend.numba_cuda.lowering import DECLINED

    xs = tuple(np.asarray(x, np.float64) for x in c.inputs())
    body = lambda *a: _derivatives(c.fn, a, reverse=not forward_only(c))
    if DECLINED & set(c.prims):  # the target's own error, naming the primitive
        with pytest.raises(MissingRuleError, match="primitive '.*' has no CUDA lowering"):
            adjit.jit(body, target="cuda")(*xs)
        return
    got = adjit.jit(body, target="cuda")(*xs)
    monkeypatch.setattr(config, "jit", False)
    _compare(got, adjit.jit(body)(*xs), 1e-9, 1e-12, c.name)


def _seed(x):
    return x ** 2 + anp.sin(x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transforms(cuda, dtype):
    x = np.linspace(-1.5, 2.0, 37).astype(dtype)
    m = np.arange(12.0).reshape(3, 4).astype(dtype) / 7
    loss = lambda x: anp.sum(_seed(x))
    tol = (1e-12, 1e-12) if dtype is np.float64 else (1e-5, 1e-5)
    for make, args in [
        (lambda t: adjit.grad(loss, target=t), (x,)),
        (lambda t: adjit.value_and_grad(loss, target=t), (x,)),
        (lambda t: adjit.vmap(adjit.grad(_seed), target=t), (x,)),
        (lambda t: adjit.jit(lambda a: adjit.jvp(loss, (a,), (a,)), target=t), (x,)),
        (lambda t: adjit.jacfwd(lambda a: anp.tanh(a @ a.T), target=t), (m,)),
        (lambda t: adjit.hessian(lambda a: anp.sum(anp.exp(a) * a[::-1]), target=t), (x[:5],)),
    ]:
        got, ref = make("cuda")(*args), make("cpu")(*args)
        _compare(got, ref, *tol)
    got = adjit.jvp(loss, (x,), (x,), target="cuda")
    _compare(got, adjit.jvp(loss, (x,), (x,)), *tol)
    out, pullback = adjit.vjp(_seed, x, target="cuda")
    _compare(pullback(out), adjit.vjp(_seed, x)[1](out), *tol)


@pytest.mark.parametrize("axes", [None, 0, 1, (0, 2)])
@pytest.mark.parametrize("reduce", ["sum", "prod", "max", "min"])
def test_reductions_over_blocks(cuda, reduce, axes, monkeypatch):
    """More elements than the simulator's two blocks of 8 threads hold: grid-stride loops,
    the block reduction and the second pass, and partial reductions. The reference is the
    interpreter (test_compiled checks the CPU kernels of these reductions against it)."""
    x = np.random.default_rng(0).uniform(0.9, 1.1, (5, 3, 4))
    fn = lambda a: getattr(anp, reduce)(anp.cos(a) * a, axis=axes)
    value = adjit.jit(fn, target="cuda")(x)
    grad = adjit.grad(lambda a: anp.sum(fn(a)), target="cuda")(x)
    monkeypatch.setattr(config, "jit", False)
    _compare(value, adjit.jit(fn)(x), 1e-12, 1e-12)
    _compare(grad, adjit.grad(lambda a: anp.sum(fn(a)))(x), 1e-12, 1e-12)


def test_reductions_of_different_axes_in_one_nest(cuda):
    fn = lambda a: (anp.sum(a * a, axis=0), anp.max(anp.sin(a), axis=1), anp.sum(anp.exp(a)),
                    anp.cos(a))
    x = np.random.default_rng(1).standard_normal((6, 5))
    _compare(adjit.jit(fn, target="cuda")(x), adjit.jit(fn)(x), 1e-12, 1e-12)


@pytest.mark.parametrize("shape", [((5, 3), (3, 7)), ((1, 6), (6, 1)), ((9, 2), (2, 4)),
                                   ((4, 5, 3), (4, 3, 7)), ((2, 3, 17, 2), (2, 3, 2, 18))])
def test_matmul_tiles(cuda, shape):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(shape[0]), rng.standard_normal(shape[1])
    fn = lambda a, b: anp.sum(anp.tanh(a @ b))
    got = adjit.value_and_grad(fn, argnums=(0, 1), target="cuda")(a, b)
    _compare(got, adjit.value_and_grad(fn, argnums=(0, 1))(a, b), 1e-12, 1e-12)


def test_one_kernel_for_many_lengths_and_shape_errors(cuda):
    f = adjit.grad(lambda a, b: anp.sum(a * anp.sin(b)), target="cuda")
    for n in (3, 11):
        a, b = np.arange(n, dtype=float), np.linspace(0, 1, n)
        np.testing.assert_allclose(f(a, b), np.sin(b), rtol=1e-14)
    assert len(f.staged._cache) == 1
    with pytest.raises(AdjitValueError):
        f(np.ones(3), np.ones(4))


def test_device_arrays_stay_on_the_device(cuda):
    x = np.linspace(-1.0, 1.0, 21)
    dx = cuda.to_device(x)
    value, grad = adjit.value_and_grad(lambda a: anp.sum(_seed(a)), target="cuda")(dx)
    assert hasattr(grad, "copy_to_host") and hasattr(value, "copy_to_host")
    assert value.shape == ()
    np.testing.assert_allclose(grad.copy_to_host(), 2 * x + np.cos(x), rtol=1e-14)
    np.testing.assert_allclose(value.copy_to_host(), np.sum(x ** 2 + np.sin(x)), rtol=1e-14)
    # NumPy in, NumPy out; one traced signature each for host and device inputs.
    f = adjit.vmap(adjit.grad(_seed), target="cuda")
    assert isinstance(f(x), np.ndarray)
    assert hasattr(f(dx), "copy_to_host")
    out = f(cuda.to_device(np.linspace(0.0, 1.0, 9, dtype=np.float32)))
    assert out.dtype == np.float32


def test_scalar_arguments_and_scalar_functions(cuda):
    f = adjit.grad(lambda s, x: anp.sum(anp.exp(s * x)), target="cuda")
    x = np.linspace(0, 1, 5)
    np.testing.assert_allclose(f(0.5, x), np.sum(x * np.exp(0.5 * x)), rtol=1e-14)
    g = adjit.grad(lambda s: s * anp.sin(s), target="cuda")
    assert g(1.5) == pytest.approx(np.sin(1.5) + 1.5 * np.cos(1.5), rel=1e-14)


def test_a_kernel_module_is_loaded_once(cuda):
    from adjit.backend.numba_cuda import runner

    fn = lambda a: anp.sum(anp.sqrt(a) * 3.0)
    before = runner.cache_info()["compiles"]
    adjit.grad(fn, target="cuda")(np.ones(4))
    adjit.grad(fn, target="cuda")(np.ones(6))  # a new Staged: same source, no new module
    assert runner.cache_info()["compiles"] == before + 1


# --------------------------------------------------------------------------- control flow
# Host-driven: the branch index and a while loop's predicate are read back to the host, each
# carried graph's kernels launched per branch or step, carries kept on the device.


def _cond_fn(x):
    return adjit.cond(anp.sum(x) > 1.0, lambda a: anp.sin(a) * 2.0, lambda a: a * a - 1.0, x)


def _fori_fn(x):
    return adjit.fori_loop(0, 4, lambda i, c: c * anp.cos(c) + 0.5, x)


def _scan_fn(x):
    """Carry a row; stacked inputs of scalars and of rows; stacked outputs of both."""
    def step(c, xs):
        a, row = xs
        c = anp.tanh(c * a + row)
        return c, (anp.sum(c) * a, c * 2.0)

    carry, (s, rows) = adjit.scan(step, x[0], (x[:, 0], x))
    return carry, s, rows


def _while_fn(x):
    """Stops when the data says so (a predicate computed on the device)."""
    return adjit.while_loop(lambda c: anp.max(anp.abs(c)) < 3.0, lambda c: c * 1.5 + 0.25, x)


def _binomial_fn(x):
    return adjit.fori_loop(0, 6, lambda i, c: c + 0.25 * anp.sin(c) * c[::-1], x,
                           checkpoint="binomial", snapshots=2)


# name: (function, input shapes, reverse mode)
CONTROL = {
    "cond": (_cond_fn, [(3,)], True),
    "fori_loop": (_fori_fn, [(3,)], True),
    "scan": (_scan_fn, [(4, 3)], True),
    "while": (_while_fn, [(3,)], False),
    "binomial": (_binomial_fn, [(3,)], True),
}


def _control_results(name, dtype, target):
    """Value, JVP and VJP (forward only: value and JVP) of a CONTROL case, and vmap of its
    gradient (forward only: of its JVP) over two examples."""
    fn, shapes, reverse = CONTROL[name]
    xs = tuple(np.linspace(0.1, 0.9, int(np.prod(s))).reshape(s).astype(dtype) for s in shapes)
    out = adjit.jit(lambda *a: _derivatives(fn, a, reverse), target=target)(*xs)
    stack = np.stack([xs[0], xs[0][::-1] * 1.5])
    if reverse:
        loss = lambda a: sum(anp.sum(y) for y in tree.leaves(fn(a)))
        batched = adjit.vmap(adjit.grad(loss), target=target)
    else:
        batched = adjit.vmap(lambda a: adjit.jvp(fn, (a,), (a,)), target=target)
    return out, batched(stack)


def _tol(dtype):
    return (1e-10, 1e-12) if dtype is np.float64 else (2e-5, 1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(CONTROL))
def test_control_flow_matches_the_interpreter(cuda, name, dtype, monkeypatch):
    """Against the reference interpreter (compiling the CPU kernels of these loops takes most
    of a minute; the slow test below compares with them)."""
    got = _control_results(name, dtype, "cuda")
    monkeypatch.setattr(config, "jit", False)
    _compare(got, _control_results(name, dtype, "cpu"), *_tol(dtype), name)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(CONTROL))
def test_control_flow_matches_cpu(cuda, name, dtype):
    _compare(_control_results(name, dtype, "cuda"), _control_results(name, dtype, "cpu"),
             *_tol(dtype), name)


def test_both_branches_and_loops_of_data_dependent_length(cuda):
    f, g = adjit.jit(_cond_fn, target="cuda"), adjit.jit(_while_fn, target="cuda")
    for x in (np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6, 0.7]), np.array([2.5, 0.0, 0.0])):
        _compare(f(x), np.sin(x) * 2.0 if x.sum() > 1.0 else x * x - 1.0, 1e-14, 1e-14)
        ref = x
        while np.max(np.abs(ref)) < 3.0:
            ref = ref * 1.5 + 0.25
        _compare(g(x), ref, 1e-14, 1e-14)
    assert len(f.staged._cache) == 1 and len(g.staged._cache) == 1


def test_loops_nest_and_keep_device_inputs_on_the_device(cuda, monkeypatch):
    def fn(x):
        def step(c, row):
            inner = adjit.while_loop(lambda v: anp.sum(v) < 4.0, lambda v: v * 2.0 + row, c)
            return inner * 0.5, adjit.cond(anp.sum(row) > 1.0, anp.sin, anp.cos, inner)
        return adjit.scan(step, x[0], x)

    x = np.linspace(0.1, 1.2, 12).reshape(4, 3)
    got = adjit.jit(fn, target="cuda")(x)
    carry, ys = adjit.jit(fn, target="cuda")(cuda.to_device(x))
    assert hasattr(carry, "copy_to_host") and hasattr(ys, "copy_to_host")
    monkeypatch.setattr(config, "jit", False)
    ref = adjit.jit(fn)(x)
    _compare(got, ref, 1e-12, 1e-12)
    _compare((carry, ys), ref, 1e-12, 1e-12)
