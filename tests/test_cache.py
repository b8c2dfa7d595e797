"""The compiled-kernel cache (adjit.backend.numba_cpu.cache): memory, disk, corruption,
concurrency."""

import gc
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import warnings

import numba
import numpy as np
import pytest

from adjit.backend.numba_cpu import cache  # the CPU target: installs compat's workarounds
from adjit.config import config

ROOT = pathlib.Path(__file__).resolve().parents[1]
A64 = numba.types.Array(numba.float64, 1, "A")
A32 = numba.types.Array(numba.float32, 1, "A")
SIG = (A64, A64)


def make_source(scale="2.0"):
    """A generated-style module: out = scale*x + cos(x) over a 1-D array."""
    return textwrap.dedent(
        f"""\
        import numpy as np
        import numba
        import math


        @numba.njit(cache=True, fastmath=True, error_model="numpy", nogil=True)
        def kernel(x, out):
            for i in range(x.shape[0]):
                out[i] = x.dtype.type({scale}) * x[i] + math.cos(x[i])
            return out
        """
    )


def run_kernel(kernel, scale=2.0, dtype=np.float64):
    x = np.linspace(-1.0, 2.0, 33).astype(dtype)
    got = kernel(x, np.empty_like(x))
    np.testing.assert_allclose(got, scale * x + np.cos(x), rtol=1e-6)


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    """A fresh, empty cache folder for this test and a fresh in-process cache state."""
    root = tmp_path / "cache"
    monkeypatch.setenv("ADJIT_CACHE_DIR", str(root))
    monkeypatch.delenv("ADJIT_LOG_COMPILES", raising=False)
    cache._reset_for_tests()
    yield root
    cache._reset_for_tests()


def entry_dir(root):
    (tag,) = [p for p in root.iterdir() if p.is_dir()]
    return tag


def counts():
    info = cache.cache_info()
    return info["compiles"], info["memory_hits"], info["disk_hits"]


def test_memory_hit_and_new_signature(cache_root):
    src = make_source()
    k1 = cache.load_kernel(src, SIG)
    k2 = cache.load_kernel(src, SIG)
    assert k1 is k2
    assert counts() == (1, 1, 0)
    run_kernel(k1)
    # a new dtype is one more compilation of the same dispatcher
    k3 = cache.load_kernel(src, (A32, A32), reason="new dtype or rank")
    assert k3 is k1
    assert counts() == (2, 1, 0)
    run_kernel(k3, dtype=np.float32)
    # the entry is the content-addressed source file in a version-tag folder
    assert cache.cache_dir() == cache_root
    tag = entry_dir(cache_root)
    assert tag.name.startswith(f"py{sys.version_info[0]}{sys.version_info[1]}-")
    assert f"numba{numba.__version__}" in tag.name
    (py,) = tag.glob("k_*.py")
    assert py.read_text() == src
    assert list((tag / "__pycache__").glob("*.nbi"))


def test_disk_hit_in_process(cache_root):
    src = make_source()
    cache.load_kernel(src, SIG)
    cache._reset_for_tests()  # as if a fresh process
    k = cache.load_kernel(src, SIG)
    assert counts() == (0, 0, 1)
    run_kernel(k)


CHILD = """
import json, sys
import numba, numpy as np
sys.path.insert(0, {root!r})
from adjit.backend.numba_cpu import cache
A = numba.types.Array(numba.float64, 1, "A")
src = {src!r}
k = cache.load_kernel(src, (A, A))
x = np.linspace(-1.0, 2.0, 33)
ok = bool(np.allclose(k(x, np.empty_like(x)), 2.0 * x + np.cos(x)))
print(json.dumps(dict(cache.cache_info(), ok=ok)))
"""


def spawn_child(src, root, log=False):
    env = dict(os.environ, ADJIT_CACHE_DIR=str(root), PYTHONPATH=str(ROOT))
    env.pop("ADJIT_LOG_COMPILES", None)
    if log:
        env["ADJIT_LOG_COMPILES"] = "1"
    code = CHILD.format(root=str(ROOT), src=src)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def child_result(proc):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def test_disk_hit_across_processes(cache_root):
    src = make_source()
    run_kernel(cache.load_kernel(src, SIG))
    info, _ = child_result(spawn_child(src, cache_root))
    assert info["ok"]
    assert info["disk_hits"] >= 1
    assert info["compiles"] == 0


def test_two_processes_at_once(cache_root):
    src = make_source()
    procs = [spawn_child(src, cache_root, log=True) for _ in range(2)]
    results = [child_result(p) for p in procs]
    assert all(info["ok"] for info, _ in results)
    assert all(info["compiles"] + info["disk_hits"] == 1 for info, _ in results)
    compiles = sum(info["compiles"] for info, _ in results)
    # the file lock makes the second process wait for the first and load its work
    assert compiles == 1 if hasattr(cache, "fcntl") and cache.fcntl is not None else compiles >= 1
    # ADJIT_LOG_COMPILES=1 with no logging set up: one stderr line per compilation
    logged = sum(err.count("[first call]") for _, err in results)
    assert logged == compiles
    # and the entry they left is sound
    cache.load_kernel(src, SIG)
    assert counts() == (0, 0, 1)


def test_changed_source_recompiles(cache_root):
    old, new = make_source("2.0"), make_source("3.0")
    run_kernel(cache.load_kernel(old, SIG), 2.0)
    run_kernel(cache.load_kernel(new, SIG), 3.0)
    assert counts() == (2, 0, 0)
    cache._reset_for_tests()
    run_kernel(cache.load_kernel(new, SIG), 3.0)
    run_kernel(cache.load_kernel(old, SIG), 2.0)
    assert counts() == (0, 0, 2)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_source_file(cache_root, damage):
    src = make_source()
    cache.load_kernel(src, SIG)
    (py,) = entry_dir(cache_root).glob("k_*.py")
    py.write_text(src[: len(src) // 2] if damage == "truncated" else "@@ not python \x00\x01")
    cache._reset_for_tests()
    with pytest.warns(cache.AdjitCacheWarning) as record:
        k = cache.load_kernel(src, SIG)
    assert len(record) == 1
    assert py.name in str(record[0].message)
    assert counts() == (1, 0, 0)  # recompiled, not loaded from a suspect entry
    run_kernel(k)
    assert py.read_text() == src
    # the rewritten entry is healthy
    cache._reset_for_tests()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_kernel(cache.load_kernel(src, SIG))
    assert counts() == (0, 0, 1)


@pytest.mark.parametrize("which", ["*.nbi", "*.nbc"])
def test_corrupt_numba_file(cache_root, which):
    src = make_source()
    cache.load_kernel(src, SIG)
    (bad,) = (entry_dir(cache_root) / "__pycache__").glob(which)
    bad.write_bytes(b"\x80\x05garbage, not a pickle")
    cache._reset_for_tests()
    with pytest.warns(cache.AdjitCacheWarning) as record:
        k = cache.load_kernel(src, SIG)
    assert len(record) == 1
    assert bad.name in str(record[0].message)
    assert counts() == (1, 0, 0)
    run_kernel(k)
    cache._reset_for_tests()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_kernel(cache.load_kernel(src, SIG))
    assert counts() == (0, 0, 1)


def check_memory_only(expect_warning):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        k = cache.load_kernel(make_source("2.0"), SIG)
        run_kernel(k, 2.0)
        assert cache.load_kernel(make_source("2.0"), SIG) is k
        run_kernel(cache.load_kernel(make_source("3.0"), SIG), 3.0)
    ours = [w for w in record if issubclass(w.category, cache.AdjitCacheWarning)]
    assert counts() == (2, 1, 0)
    if expect_warning:
        assert len(ours) == 1, [str(w.message) for w in ours]
        assert "memory only" in str(ours[0].message)
        assert cache.cache_dir() is None
        assert cache.cache_info()["dir"] is None
    else:
        assert not ours


def test_cache_path_under_a_regular_file(cache_root, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("ADJIT_CACHE_DIR", str(blocker / "cache"))
    check_memory_only(expect_warning=True)


def test_read_only_cache_folder(cache_root, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    monkeypatch.setenv("ADJIT_CACHE_DIR", str(locked))
    try:
        # root may write anyway: then the disk cache simply works; either way results are right
        can_write = os.access(locked, os.W_OK)
        check_memory_only(expect_warning=not can_write)
    finally:
        locked.chmod(0o700)


def test_eight_threads_compile_once(cache_root):
    src = make_source("4.0")
    barrier = threading.Barrier(8)
    got, errors = [], []

    def worker():
        try:
            barrier.wait()
            got.append(cache.load_kernel(src, SIG))
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(got) == 8 and all(k is got[0] for k in got)
    assert counts() == (1, 7, 0)
    run_kernel(got[0], 4.0)


def test_log_compiles(cache_root, monkeypatch, caplog):
    monkeypatch.setenv("ADJIT_LOG_COMPILES", "1")
    caplog.set_level("INFO", logger="adjit")
    src = make_source()
    cache.load_kernel(src, SIG)
    cache.load_kernel(src, (A32, A32), reason="new dtype or rank")
    cache.load_kernel(src, SIG)  # memory hit: not logged
    messages = [r.getMessage() for r in caplog.records if r.name == "adjit"]
    assert len(messages) == 2
    assert "[first call]" in messages[0]
    assert "[new dtype or rank]" in messages[1]


def test_typing_error_shows_generated_line(cache_root):
    src = make_source().replace("math.cos(x[i])", 'math.cos(x[i]) + "oops"')
    with pytest.raises(numba.core.errors.TypingError) as info:
        cache.load_kernel(src, SIG)
    assert '"oops"' in str(info.value)


def function_passes(library) -> list[str]:
    """The functions Numba ran its function-level LLVM passes on in ``library`` (recorded while
    ``numba.core.config.LLVM_PASS_TIMINGS`` is on)."""
    return [r.name for r in library.recorded_timings if r.name.startswith("Function passes")]


@pytest.mark.parametrize("memory_only", [False, True])
def test_kernels_skip_numba_function_passes(cache_root, monkeypatch, memory_only):
    """compat.skip_kernel_function_passes: a generated kernel's LLVM is optimized once (by the
    module pipeline), a user's njit function of the same name as before (twice)."""
    monkeypatch.setattr(numba.core.config, "LLVM_PASS_TIMINGS", 1)
    if memory_only:
        config.update("cache_dir", None)
    try:  # a new source: compiled, not loaded
        ours = cache.load_kernel(make_source("3.25"), SIG)
    finally:
        config.reset("cache_dir")
    assert ours.py_func.__module__.endswith("_mem") == memory_only
    library = ours.overloads[SIG].library
    assert function_passes(library) == []
    assert any(r.name.startswith("Module passes") for r in library.recorded_timings)
    run_kernel(ours, scale=3.25)

    @numba.njit
    def kernel(x, out):  # the user's own, named like adjit's kernels
        for i in range(x.shape[0]):
            out[i] = 2.0 * x[i] + np.cos(x[i])
        return out

    kernel.compile(SIG)
    assert function_passes(kernel.overloads[SIG].library) != []


class _CollectorState(numba.core.event.Listener):
    """Whether Python's garbage collector was on when Numba started compiling."""

    def __init__(self):
        self.seen = []

    def on_start(self, event):
        self.seen.append(gc.isenabled())

    def on_end(self, event):
        pass


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_paused_while_numba_compiles(cache_root, enabled):
    """collector.collector_paused: no garbage collection while Numba compiles a kernel; the
    collector's state (on, or off by the user) is the same afterwards."""
    listener = _CollectorState()
    was = gc.isenabled()
    if not enabled:
        gc.disable()
    try:
        with numba.core.event.install_listener("numba:compile", listener):
            kernel = cache.load_kernel(make_source(f"{4.5 + enabled}"), SIG)
        assert gc.isenabled() == enabled
    finally:
        if was:
            gc.enable()
    assert listener.seen == [False]
    run_kernel(kernel, 4.5 + enabled)


def test_collector_paused_while_tracing():
    """No garbage collection while a function is traced for its first call (its equations are
    kept until the kernel is built); the collector is on again for the call's result."""
    import adjit
    import adjit.numpy as anp

    seen = []

    def f(x):
        seen.append(gc.isenabled())
        return anp.sum(anp.sin(x) * 3.25)

    assert gc.isenabled()
    x = np.linspace(0.0, 1.0, 7)
    np.testing.assert_allclose(adjit.grad(f)(x), 3.25 * np.cos(x), rtol=1e-14)
    assert seen == [False] and gc.isenabled()


def test_collector_runs_while_a_thread_compiles(cache_root):
    """A compilation off the main thread (config.tiered's) leaves the collector on: the
    user's code runs meanwhile, and the collector is the whole process's."""
    import threading

    listener = _CollectorState()
    assert gc.isenabled()
    with numba.core.event.install_listener("numba:compile", listener):
        thread = threading.Thread(target=lambda: cache.load_kernel(make_source("6.5"), SIG))
        thread.start()
        thread.join()
    assert listener.seen == [True] and gc.isenabled()


def test_scope_fixup_defines_what_numbas_does():
    """compat.fix_scope_fixup: Numba's pipeline calls adjit's copy of fixup_var_define_in_scope,
    which defines the same variables in the same order in each scope (here: blocks given two
    fresh scopes, one shared by several blocks, as Numba's passes can leave them)."""
    from numba.core import ir, ir_utils, untyped_passes
    from numba.core.compiler import run_frontend

    from adjit.backend.numba_cpu import compat

    def f(x, n):
        t = 0.0
        for i in range(n):
            if x[i] > 0:
                t += x[i] * 2.0
            else:
                t -= 1.0
        return t

    assert untyped_passes.fixup_var_define_in_scope is compat._fixup_var_define_in_scope
    defined = []
    for fixup in (ir_utils.fixup_var_define_in_scope, compat._fixup_var_define_in_scope):
        blocks = run_frontend(f).blocks
        assert len(blocks) >= 4
        shared, alone = ir.Scope(None, ir.unknown_loc), ir.Scope(None, ir.unknown_loc)
        for i, label in enumerate(sorted(blocks)):
            blocks[label].scope = alone if i == 1 else shared if i % 2 else blocks[label].scope
        fixup(blocks)
        defined.append([list(blocks[label].scope.localvars._con) for label in sorted(blocks)])
    assert defined[0] == defined[1]
    assert len(defined[0][1]) > 1  # the fresh scopes did get variables


def test_scalar_typing_is_remembered_and_the_same(monkeypatch):
    """compat.memoize_scalar_typing: a call of an operator or math function on plain scalars is
    typed as Numba's own resolution types it, and the second time without a resolution (no
    template is consulted); a call with a literal or an array argument is resolved afresh."""
    import math
    import operator

    from numba.core import types, utils
    from numba.core.registry import cpu_target
    from numba.core.types import functions

    from adjit.backend.numba_cpu import compat

    assert compat.memoize_scalar_typing()
    get_call_type = functions.Function.get_call_type
    original = get_call_type.__wrapped__
    context = cpu_target.typing_context
    context.refresh()
    resolutions = []
    order = utils.order_by_target_specificity
    monkeypatch.setattr(utils, "order_by_target_specificity",
                        lambda *a, **k: resolutions.append(a) or order(*a, **k))
    array = types.Array(types.float64, 1, "C")
    cases = [(operator.mul, (types.float64, types.int64), True),
             (operator.lt, (types.int32, types.float32), True),
             (operator.truediv, (types.int64, types.int64), True),
             (math.exp, (types.float32,), True), (operator.add, (types.boolean, types.int8), True),
             (operator.add, (types.IntegerLiteral(3), types.int64), False),
             (operator.mul, (array, types.float64), False)]
    for fn, args, remembered in cases:
        fnty = context.resolve_value_type(fn)
        first = get_call_type(fnty, context, args, {})
        assert first == original(fnty, context, args, {}), (fn, args)
        del resolutions[:]
        assert get_call_type(fnty, context, args, {}) == first
        assert (not resolutions) == remembered, (fn, args)



def test_reference_counts_extract_only_meminfos(monkeypatch):
    """compat.extract_only_meminfos: Numba's get_meminfos (which every incref and decref
    calls) finds the same meminfos, of the same types and in the same order, as Numba's own,
    and extracts nothing else from the value (Numba's extracted every field of every array:
    most of a kernel's unoptimized LLVM IR)."""
    from llvmlite import ir
    from numba.core import types
    from numba.core.registry import cpu_target
    from numba.core.runtime.context import NRTContext

    from adjit.backend.numba_cpu import compat

    assert compat.extract_only_meminfos()
    ours, numbas = NRTContext.get_meminfos, NRTContext.get_meminfos.__wrapped__
    # (a copy with NRT: the first .nrt of a context is cached, and copied into its subtargets)
    context = cpu_target.target_context.subtarget(enable_nrt=True)
    a1, a3 = types.Array(types.float64, 1, "C"), types.Array(types.int32, 3, "A")
    cases = [(a3, 1), (types.UniTuple(a1, 3), 3), (types.Tuple((types.int64, a3, types.float64,
                                                               types.Tuple((a1, types.int8)))), 2),
             (types.Tuple((types.float64, types.UniTuple(types.int64, 2))), 0),
             (types.optional(a1), 1)]
    for ty, count in cases:
        found, extracted = [], []
        for get in (ours, numbas):
            monkeypatch.setattr(NRTContext, "get_meminfos", get)  # (it calls itself)
            module = ir.Module()
            fn = ir.Function(module, ir.FunctionType(ir.VoidType(),
                                                     [context.get_value_type(ty)]), "f")
            builder = ir.IRBuilder(fn.append_basic_block())
            found.append([t for t, _ in get(context.nrt, builder, ty, fn.args[0])])
            extracted.append(str(module).count("extractvalue"))
        assert found[0] == found[1] and len(found[0]) == count, ty
        assert extracted[0] < extracted[1] or count == extracted[1] == 0, (ty, extracted)

def test_constant_inference_formats_no_source_excerpt_and_still_infers(capfd):
    """compat.skip_constant_inference_locations: an expression's constant-inference error
    carries no source location (formatting one scanned the kernel back to its ``def``, for
    every call: quadratic in its length), and inference through expressions still works: a
    ``builtins.print`` reached through an attribute is still recognized as ``print``."""
    from numba.core import errors, ir

    from adjit.backend.numba_cpu import compat

    assert compat.skip_constant_inference_locations()
    loc = ir.Loc(__file__, 5)
    module = ir.Scope(None, loc).define("m", loc)
    with pytest.raises(errors.ConstantInferenceError) as info:
        ir.Expr.getattr(module, "cos", loc).infer_constant()
    assert info.value.loc is None and "getattr" in str(info.value)

    import builtins

    @numba.njit(cache=False)
    def show(x):
        builtins.print(x * 2.0)

    show(1.25)
    assert capfd.readouterr().out.strip() == "2.5"


def test_live_map_is_numbas_on_every_map_a_compilation_asks_for(monkeypatch):
    """compat.live_map: on every liveness map Numba's passes ask for while compiling an adjit
    kernel with loops and branches (a scan and a while loop through grad) and a plain njit
    function (a variable set in a loop and read after it, a branch, a loop left by a break),
    the sets equal those of Numba's own ``compute_live_map`` (a fresh copy of its module)."""
    import importlib.util

    from numba.core import analysis, ir_utils

    import adjit
    import adjit.numpy as anp
    from adjit.backend.numba_cpu import compat

    assert compat.fast_live_map() and analysis.compute_live_map is compat.live_map
    spec = importlib.util.spec_from_file_location("numba.core._analysis_copy", analysis.__file__)
    numbas = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(numbas)
    sizes = []

    def both(cfg, blocks, var_use_map, var_def_map):
        ours = compat.live_map(cfg, blocks, var_use_map, var_def_map)
        assert ours == dict(numbas.compute_live_map(cfg, blocks, var_use_map, var_def_map))
        sizes.append(len(blocks))
        return ours

    monkeypatch.setattr(analysis, "compute_live_map", both)
    monkeypatch.setattr(ir_utils, "compute_live_map", both)

    def f(x):
        def step(carry, xi):
            return carry * anp.cos(xi) + 0.3125, carry
        total, ys = adjit.scan(step, 1.0, x)
        small = adjit.while_loop(lambda c: c[0] > 1e-3, lambda c: (c[0] * 0.5, c[1] + 1.0),
                                     (total * total + 1.0, 0.0))
        return anp.sum(ys) + small[1] * total

    x = np.linspace(0.1, 0.9, 7)
    np.testing.assert_allclose(adjit.jit(adjit.grad(f))(x), adjit.grad(f)(x), rtol=1e-12)

    @numba.njit(cache=False)
    def tricky(n):
        last = -1
        for i in range(n):
            last = i * 3
        y = last + 1 if n > 3 else 0
        while n > 0:
            n -= 1
            if n == 5:
                break
        return y + n

    assert [tricky(n) for n in (9, 2, 0)] == [tricky.py_func(n) for n in (9, 2, 0)]
    assert len(sizes) >= 2 and max(sizes) >= 10, sizes


def test_large_kernels_loop_nests_become_functions_of_their_own(monkeypatch):
    """compat.split_large_kernels: the top-level loops of a kernel of SPLIT_KERNEL_LINES lines
    or more are compiled as functions of their own (LLVM's machine code generation grows
    faster than a function's size), and the kernel computes what the interpreter does; a
    smaller kernel stays one function."""
    import re

    import adjit
    import adjit.numpy as anp
    from adjit.backend.numba_cpu import compat

    def kernel_functions(fun, x):
        info = adjit.inspect(adjit.grad(fun), x)
        names = re.findall(r'^define [^@]*@"?([^"(]+)', info.llvm, re.M)
        return [n for n in names if compat.is_kernel_symbol(n)], info

    x = np.random.default_rng(3).standard_normal(37)

    def whole(x):  # a reduction, then elementwise work that reads it: two loop nests
        return anp.sum(anp.sin(x) * anp.sum(anp.cos(x * 1.5)))

    small, info = kernel_functions(whole, x)
    assert info.schedule.loop_count >= 2
    assert len(small) == 2  # the kernel and its CPython wrapper

    monkeypatch.setattr(compat, "SPLIT_KERNEL_LINES", 1)

    def split(x):  # another constant: another kernel
        return anp.sum(anp.sin(x) * anp.sum(anp.cos(x * 2.5)))

    functions, info = kernel_functions(split, x)
    assert len(functions) > 2, functions
    got = adjit.grad(split)(x)
    s = np.sum(np.cos(2.5 * x))
    want = np.cos(x) * s - 2.5 * np.sin(2.5 * x) * np.sum(np.sin(x))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
