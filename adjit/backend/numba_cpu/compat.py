"""Every Numba workaround adjit needs, in one place.

Each helper names the Numba behaviour it works around. Everything here touches Numba
internals (``Dispatcher._cache``, ``numba.core.caching``); they are stable from Numba 0.60
through 0.68.1 (checked on 0.68.1). If a Numba upgrade breaks one, fix it here only.

Calling a kernel (used by ``runner.py``):

* A dispatcher's ``__call__`` types its arguments and looks up the signature on every call:
  :func:`entry_point` returns the compiled function of one signature, to call directly.

Inspecting a kernel (used by ``adjit.inspect``):

* Numba keeps no LLVM IR or assembly for code it loaded from its disk cache
  (``inspect_llvm`` warns "Inspection disabled for cached code" and returns invalid text):
  :func:`inspectable` compiles a fresh copy in memory for such a kernel.

Generated source (used by ``lowering.py``):

* Numba compiles ``np.fft`` only with the rocket-fft package installed (an optional extra):
  :func:`require_rocket_fft` makes its absence an adjit error when an FFT is lowered, not a
  Numba typing error in the generated kernel.
* Numba's ``ndarray.reshape`` types only on contiguous arrays, and its ``np.dot`` warns
  (``NumbaPerformanceWarning``) on others: :func:`contiguous` wraps such an operand in
  ``rt.ascontiguousarray``, which is the array itself where its type is C-contiguous.

Allocation (Numba's runtime allocates arrays with the C library's ``malloc``):

* glibc's ``malloc`` serves each block of 128 KiB or more with a fresh ``mmap`` and unmaps it
  on ``free``, until the process frees a block larger than the threshold (which raises it, up
  to 32 MiB). Until then every call of a kernel maps its temporaries anew and page-faults on
  their first writes: the ADBench GMM objective (seven 2 MB temporaries) took 6.4 ms per call
  in a fresh process against 0.72 ms once a large NumPy product had raised the threshold (so a
  benchmark's order decided its result). Even at glibc's highest dynamic thresholds (mmap
  from 32 MiB, trim above 64 MiB) larger kernels faulted on every call: the ADBench GMM
  gradient at d=32, K=100 frees four 25.6 MB temporaries at its end, the heap's top then
  exceeds 64 MiB and is trimmed, and the next call faulted 1,465 times (13 ms of its 42 ms
  in the kernel's page faults); the BA Jacobian's 248 MB result was a new mapping per call.
  :func:`reuse_freed_memory` sets the thresholds (``mallopt``: mmap from 512 MiB, trim above
  1 GiB: a process keeps up to 1 GiB of freed memory for its next calls) when adjit's CPU
  target is imported, unless the user set them (``MALLOC_MMAP_THRESHOLD_``,
  ``GLIBC_TUNABLES``).

Compiling a kernel (installed by importing the CPU target, ``__init__.py``):

* Numba optimizes every function twice: ``CPUCodeLibrary._optimize_functions`` runs LLVM's
  function-level O3 passes on each function of each LLVM module added to a library, and
  finalizing the library runs the whole module pipeline at O3 again (inlining included). For
  adjit's kernels the first round only costs time (the module pipeline does that work anyway,
  after inlining): skipping it cut Numba's compilation of the GMM gradient kernel (ADBench,
  d=10 K=25 n=1000) from 2.9 to 2.5 s and the MLP gradient's from 0.90 to 0.79 s (medians of
  5, CPU time), and the GMM kernel runs faster (1.6-1.7 ms a call, against 2.2-2.4 ms), the
  others as fast. :func:`skip_kernel_function_passes` skips it for
  the functions of adjit's generated modules only (recognized by their mangled names, whose
  top namespace is the module :func:`kernel_module_name` names); every other library (a
  user's ``njit`` functions, Numba's own overloads, ``runtime.py``) is optimized as before.
  If Numba's internals differ from what it expects, it leaves Numba alone.
* LLVM's machine code generation (register allocation, the two-address pass) of one function
  grows faster than the function: the k = 1000 terms kernel of ``benchmarks/compile_latency.py``
  (16 loop nests, 9,500 LLVM instructions) spent 2.9 s there, more than 10 times the k = 100
  kernel's 0.21 s. :func:`split_large_kernels` runs LLVM's loop extractor after the module
  pipeline (so every optimization, vectorization included, has seen the whole kernel) on the
  kernels ``cache.py`` registered with :func:`split_loops_of`, those of ``SPLIT_KERNEL_LINES``
  lines or more: each top-level loop becomes a function, generated on its own (that kernel:
  2.2 s, LLVM in all 5.7 to 5.1 s; the k = 300 and 500 kernels' LLVM time 15% less, their
  calls as fast). Smaller kernels stay whole: the GMM gradient's (241 lines, 70 loops) gained
  nothing, and its calls took longer split in three pairs of fresh processes out of three
  (by 1, 9 and 17%).
* Numba's constant inference tries ``infer_constant`` on the expression that defines each
  called function (its ``print`` rewrite asks it of every call) and falls back to reading the
  expression when that raises; the error raised, discarded at once, formatted a source excerpt
  of its location, which scans the kernel's lines back to its ``def``: quadratic in a kernel's
  length (0.27 s of the k = 1000 kernel's compilation, 9 ms of the k = 100 one's).
  :func:`skip_constant_inference_locations` makes that error without a location.
* Numba's ``fixup_var_define_in_scope`` (run by its ``inline_closure_likes`` pass on every
  function) defines every variable of the function in the scope of every block, once per
  block, although the blocks share one scope: blocks times variables (a GMM gradient
  kernel: 252 blocks, 43 ms). :func:`fix_scope_fixup` makes it visit each scope once, which
  defines the same variables in the same order. It applies to every function Numba compiles,
  a user's too (the result is the same); without that function in Numba it does nothing.
* Numba's type inference resolves every call afresh: each ``a * b`` of two floats tries
  every typing template of ``operator.mul`` in turn, NumPy's array templates first (a ufunc
  loop search each), before the scalar one matches; the k = 1000 terms program of
  ``benchmarks/compile_latency.py`` made 18,000 such searches. :func:`memoize_scalar_typing`
  remembers the signature found for a function of ``operator`` or ``math`` on arguments that
  are all plain (not literal) numbers or booleans, per function type, typing context and
  target: the templates of those functions give the same answer for the same types every
  time, and a function type with templates added later is another function type. Type
  inference of the k = 100 terms kernel fell from 127 to 44 ms. It applies to every function
  Numba compiles.
* Numba's ``compute_live_map`` (run by its post-processor after most passes, nine times per
  kernel) keeps a variable live into a predecessor block only if some block reaching that
  one mentions it, and finds those by building, for every block, the set of all variables
  mentioned in the blocks reaching it: blocks times variables (the k = 1000 terms kernel: 65
  blocks, 8,400 variables, 0.2 s of its compilation against 3.5 ms for k = 100).
  :func:`fast_live_map` computes the same map as plain liveness, then the same restriction
  per variable: which blocks reach which (bit masks) and which blocks mention the variable.
  The two agree because what reaches a block also reaches its successors; the test compares
  them on every map a compilation asks for. It applies to every function Numba compiles.
* Numba's reference counting (``NRTContext.get_meminfos``, under every incref and decref)
  walks a value's members and extracts each one, although only meminfos are counted: an
  array's decref extracted its seven fields and each length and stride, all dead code that
  Python wrote out as text and LLVM parsed and deleted. In the ADBench GMM gradient kernel
  (d=10 K=25 n=1000, its loops passed as separate arguments) that was 1,248 of 8,410 LLVM
  instructions before optimization; its first call took 1.56 s instead of 1.78 s with both
  changes (medians of 5 fresh processes), the MLP gradient's 0.77 s instead of 1.09 s.
  :func:`extract_only_meminfos` extracts only the members whose type holds a meminfo (the
  same walk over types, once per type), so the same meminfos are counted in the same order.
  It applies to every function Numba compiles.
Also: Numba's ``np.empty`` never asks Linux for huge pages; ``runtime.py`` does (it
lives there, not here, because Numba's cache stamps a function by its own file: a change here
would not reach the cached ``rt.empty`` that calls it).

Cache-related workarounds (used by ``cache.py``):

* ``njit(cache=True)`` on a function made by ``exec`` fails at decoration time ("no locator
  available for file '<string>'", numba issue #3501): :func:`compile_without_disk_cache`
  rewrites the decorator's ``cache=`` flag to ``False`` (syntax tree, not text) before exec,
  and :func:`is_no_locator_error` recognizes that error where a real file's folder cannot hold
  Numba's index (Numba raises a bare RuntimeError).
* A garbage or truncated index (``.nbi``) or data (``.nbc``) file makes
  ``Dispatcher.compile`` raise (an unpickling error) instead of recompiling:
  :func:`guard_disk_cache` wraps the dispatcher's cache so that such an entry is reported,
  removed, and recompiled.
* Numba's index/data update is not safe against two processes saving *different* signatures
  of one function at the same moment (the index can end up pointing a signature at another
  signature's data file). adjit serialises its own processes with a file lock, and
  :func:`guard_disk_cache` also rejects a loaded entry whose signature is not the one asked for.
* A failure while *saving* to the disk cache (disk full, folder made read-only) would raise
  from ``Dispatcher.compile`` after a successful compilation: it is reported and ignored.
"""

from __future__ import annotations

import ast
import ctypes
import functools
import glob
import os
import platform
import re
from collections.abc import Callable
from pathlib import Path

from numba.core import sigutils, types

__all__ = [
    "cache_counts",
    "cache_entry_files",
    "compile_without_disk_cache",
    "contiguous",
    "ensure_disk_caching",
    "entry_point",
    "extract_only_meminfos",
    "fast_live_map",
    "fix_scope_fixup",
    "guard_disk_cache",
    "is_dispatcher",
    "is_kernel_symbol",
    "is_no_locator_error",
    "kernel_module_name",
    "purge_cache_entry",
    "reuse_freed_memory",
    "skip_constant_inference_locations",
    "skip_kernel_function_passes",
    "split_large_kernels",
    "split_loops_of",
]


def entry_point(dispatcher, arg_types: tuple):
    """The compiled function of ``dispatcher`` for exactly ``arg_types`` (Numba types), which
    skips Numba's type dispatch; the caller must call it only with arguments of those types."""
    return dispatcher.overloads[arg_types].entry_point


def require_rocket_fft() -> None:
    """rocket-fft registers ``np.fft`` with Numba (through Numba's extension entry point);
    imported here so the overloads exist before the kernel is typed."""
    try:
        import rocket_fft  # noqa: F401
    except ImportError:
        from adjit.errors import AdjitError

        raise AdjitError(
            "adjit: compiling an FFT needs the rocket-fft package (pip install 'adjit[fft]'); "
            "without it FFTs run only in the reference interpreter "
            "(adjit.config.update('jit', False))") from None


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>


def reuse_freed_memory() -> bool:
    """Keep blocks below 512 MiB in glibc's heap, and up to 1 GiB of them freed (see the
    module docstring); whether it did (False off glibc, or where the user set malloc's
    thresholds)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if (platform.libc_ver()[0] != "glibc" or "MALLOC_MMAP_THRESHOLD_" in os.environ
            or "MALLOC_TRIM_THRESHOLD_" in os.environ or "threshold" in tunables):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover (a glibc without it)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 512 << 20) and mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def kernel_module_name(digest: str, memory_only: bool = False) -> str:
    """The Python module a generated kernel is exec'd in (``cache.py``): a kernel's functions
    are recognized by it in Numba's mangled names (:func:`skip_kernel_function_passes`)."""
    return f"_adjit_kernel_{digest[:32]}{'_mem' if memory_only else ''}"


# A function defined in a kernel module: Numba's Itanium-style mangled name ``_ZN<len><module>``,
# or its CPython wrapper's ``_ZN7cpython<len><module>``, or a cfunc wrapper ``cfunc._ZN...``.
_KERNEL_MODULE = re.compile(r"_adjit_kernel_[0-9a-f]{32}(?:_mem)?")
_KERNEL_SYMBOL = re.compile(r"(?:cfunc\.)?_ZN(?:7cpython)?(\d+)(_adjit_kernel_\w+)")


def _kernel_module_of(symbol: str) -> str | None:
    """The kernel module a function's LLVM name says it was compiled from, or None."""
    match = _KERNEL_SYMBOL.match(symbol)
    if match is None:
        return None
    name = match.group(2)[:int(match.group(1))]
    return name if _KERNEL_MODULE.fullmatch(name) else None


def is_kernel_symbol(name: str) -> bool:
    """True for the LLVM name of a function Numba compiled from a kernel module."""
    return _kernel_module_of(name) is not None


def _defines_kernel(ll_module) -> bool:
    return any(not fn.is_declaration and is_kernel_symbol(fn.name)
               for fn in ll_module.functions)


def skip_kernel_function_passes() -> bool:
    """Make Numba skip its function-level LLVM passes on adjit's kernels (see the module
    docstring); whether it is in place (False where Numba's code library is not as expected)."""
    try:
        from numba.core.codegen import CPUCodeLibrary
    except ImportError:  # pragma: no cover (another Numba layout)
        return False
    original = getattr(CPUCodeLibrary, "_optimize_functions", None)
    if original is None:  # pragma: no cover
        return False
    if getattr(original, "_adjit_skips_kernels", False):
        return True

    @functools.wraps(original)
    def _optimize_functions(self, ll_module):
        try:
            data_layout = self._codegen._data_layout
            kernel = _defines_kernel(ll_module)
        except Exception:  # pragma: no cover (Numba or llvmlite changed): optimize as before
            kernel = False
        if not kernel:
            return original(self, ll_module)
        # What the skipped method does first, and the module pipeline relies on.
        ll_module.data_layout = data_layout
        return None

    _optimize_functions._adjit_skips_kernels = True
    CPUCodeLibrary._optimize_functions = _optimize_functions
    return True



def extract_only_meminfos() -> bool:
    """Make Numba's reference counting extract only the members of a value that hold
    meminfos (see the module docstring); whether it is in place."""
    try:
        from numba.core.runtime.context import NRTContext
    except ImportError:  # pragma: no cover (another Numba layout)
        return False
    original = getattr(NRTContext, "get_meminfos", None)
    if original is None:  # pragma: no cover
        return False
    if getattr(original, "_adjit_extracts_meminfos", False):
        return True
    holds: dict = {}  # (data model manager, type) -> whether a meminfo lies in its values

    def holds_meminfo(models, ty) -> bool:
        key = (models, ty)
        found = holds.get(key)
        if found is None:
            holds[key] = True  # (a type met again inside itself: assumed to hold one)
            model = models[ty]
            # The members get_meminfos visits: traverse's getters build no code until called.
            found = holds[key] = model.has_nrt_meminfo() or any(
                holds_meminfo(models, member) for member, _ in model.traverse(None))
        return found

    @functools.wraps(original)
    def get_meminfos(self, builder, ty, val):
        models = self._context.data_model_manager
        model = models[ty]
        meminfos = [(ty, model.get_nrt_meminfo(builder, val))] if model.has_nrt_meminfo() else []
        for member, getter in model.traverse(builder):
            if holds_meminfo(models, member):
                meminfos.extend(get_meminfos(self, builder, member, getter(val)))
        return meminfos

    get_meminfos._adjit_extracts_meminfos = True
    NRTContext.get_meminfos = get_meminfos
    return True

# The functions whose typing of plain scalars :func:`memoize_scalar_typing` remembers.
_PURE_TYPING_MODULES = ("_operator", "operator", "math")


def _plain_scalar(ty) -> bool:
    return isinstance(ty, (types.Number, types.Boolean)) and not isinstance(ty, types.Literal)


def memoize_scalar_typing() -> bool:
    """Numba types each call again from scratch; remember the types of operator and ``math``
    calls on plain scalars (see the module docstring); whether it is in place."""
    try:
        from numba.core.target_extension import get_local_target
        from numba.core.types import functions
    except ImportError:  # pragma: no cover (another Numba layout)
        return False
    original = getattr(functions.Function, "get_call_type", None)
    if original is None:  # pragma: no cover
        return False
    if getattr(original, "_adjit_memoized", False):
        return True
    known = {}

    @functools.wraps(original)
    def get_call_type(self, context, args, kws):
        if (kws or getattr(self.typing_key, "__module__", None) not in _PURE_TYPING_MODULES
                or not all(_plain_scalar(a) for a in args)):
            return original(self, context, args, kws)
        key = (self, context, get_local_target(context), args)  # (the templates' order)
        signature = known.get(key)
        if signature is None:  # (a failure raises, and is not remembered)
            signature = known[key] = original(self, context, args, kws)
        return signature

    get_call_type._adjit_memoized = True
    functions.Function.get_call_type = get_call_type
    return True


def _fixup_var_define_in_scope(blocks):
    """Numba's ``ir_utils.fixup_var_define_in_scope``, each distinct scope visited once."""
    used_var = {}
    for blk in blocks.values():
        for inst in blk.body:
            for var in inst.list_vars():
                used_var[var] = inst
    scopes = {id(blk.scope): blk.scope for blk in blocks.values()}  # in the blocks' order
    for scope in scopes.values():
        for var in used_var:
            if var.name not in scope.localvars:
                scope.localvars.define(var.name, var)


def fix_scope_fixup() -> bool:
    """Numba's nopython pipeline calls :func:`_fixup_var_define_in_scope` instead of its own
    (see the module docstring); whether it is in place."""
    try:
        from numba.core import untyped_passes
    except ImportError:  # pragma: no cover (another Numba layout)
        return False
    if not hasattr(untyped_passes, "fixup_var_define_in_scope"):  # pragma: no cover
        return False
    untyped_passes.fixup_var_define_in_scope = _fixup_var_define_in_scope
    return True


def live_map(cfg, blocks, var_use_map, var_def_map):
    """Numba's ``analysis.compute_live_map`` (the variables live at each block's entry) in time
    linear in the variables: plain backward liveness over the blocks reachable from the entry,
    then, of the variables live at a block, those a block reaching it defines or uses. Numba
    restricts at each step of its propagation instead; since a block's reaching blocks reach
    its successors too, restricting once at the end gives the same sets. A block the entry
    does not reach keeps its own uses, as in Numba."""
    order = cfg.topo_order()
    bit = {block: 1 << k for k, block in enumerate(order)}
    reach = dict(bit)  # the blocks reaching each block, itself included
    changed = True
    while changed:
        changed = False
        for block in order:
            for succ, _ in cfg.successors(block):
                if succ in reach and reach[succ] | reach[block] != reach[succ]:
                    reach[succ] |= reach[block]
                    changed = True
    live = {block: set(var_use_map[block]) for block in blocks}
    changed = True
    while changed:
        changed = False
        for block in reversed(order):
            for pred, _ in cfg.predecessors(block):
                if pred in bit:
                    new = live[block] - var_def_map[pred] - live[pred]
                    if new:
                        live[pred] |= new
                        changed = True
    mentioned = {}
    for block in order:
        for name in var_def_map[block] | var_use_map[block]:
            mentioned[name] = mentioned.get(name, 0) | bit[block]
    for block in order:
        live[block] = {name for name in live[block] if mentioned.get(name, 0) & reach[block]}
    return live


def fast_live_map() -> bool:
    """Numba's liveness analysis uses :func:`live_map` (see the module docstring); whether it
    is in place."""
    try:
        from numba.core import analysis, ir_utils
    except ImportError:  # pragma: no cover (another Numba layout)
        return False
    if not hasattr(analysis, "compute_live_map"):  # pragma: no cover
        return False
    analysis.compute_live_map = live_map
    if hasattr(ir_utils, "compute_live_map"):
        ir_utils.compute_live_map = live_map
    return True


def _infer_constant_without_location(self):
    """Numba's ``ir.Expr.infer_constant``, its error made without a source location."""
    from numba.core.errors import ConstantInferenceError

    raise ConstantInferenceError(str(self))


def skip_constant_inference_locations() -> bool:
    """Numba's ``ir.Expr.infer_constant`` raises its error without formatting a source excerpt
    (see the module docstring); whether it is in place."""
    try:
        from numba.core import consts, ir
    except ImportError:  # pragma: no cover (another Numba layout)
        return False
    # The error is discarded only where Numba's constant inference falls back to reading the
    # expression (``ConstantInference._do_infer``): without that fallback, leave Numba alone.
    if "_infer_expr" not in vars(consts.ConstantInference):  # pragma: no cover
        return False
    ir.Expr.infer_constant = _infer_constant_without_location
    return True


# Kernel modules (:func:`kernel_module_name`) whose loop nests LLVM compiles as functions of
# their own: registered by ``cache.py`` for kernels of ``SPLIT_KERNEL_LINES`` lines or more.
SPLIT_KERNEL_LINES = 1000
_split_modules: set[str] = set()


def split_loops_of(module_name: str) -> None:
    """Have LLVM compile each top-level loop of this kernel module's kernel as a function of
    its own (see the module docstring)."""
    _split_modules.add(module_name)


def _splits_loops(ll_module) -> bool:
    return bool(_split_modules) and any(
        not fn.is_declaration and _kernel_module_of(fn.name) in _split_modules
        for fn in ll_module.functions)


def split_large_kernels() -> bool:
    """After the module pipeline, extract the top-level loops of registered kernels into
    functions (LLVM's loop extractor), before machine code is generated (see the module
    docstring); whether it is in place."""
    try:
        import llvmlite.binding as llvm
        from numba.core.codegen import CPUCodeLibrary
    except ImportError:  # pragma: no cover (another Numba layout)
        return False
    original = getattr(CPUCodeLibrary, "_optimize_final_module", None)
    if original is None or not hasattr(llvm, "create_new_module_pass_manager"):  # pragma: no cover
        return False
    if getattr(original, "_adjit_splits_kernels", False):
        return True

    @functools.wraps(original)
    def _optimize_final_module(self):
        original(self)
        if not _splits_loops(self._final_module):
            return
        extract = llvm.create_new_module_pass_manager()
        extract.add_loop_extract_pass()
        builder = llvm.create_pass_builder(self._codegen._tm,
                                           llvm.create_pipeline_tuning_options())
        extract.run(self._final_module, builder)

    _optimize_final_module._adjit_splits_kernels = True
    CPUCodeLibrary._optimize_final_module = _optimize_final_module
    return True


def contiguous(expr: str) -> str:
    """Source text of ``expr`` as a contiguous array, for Numba's ``np.dot`` and ``reshape``
    (``runtime.ascontiguousarray``: no code at all where the type is C-contiguous)."""
    return f"rt.ascontiguousarray({expr})"


def is_no_locator_error(exc: BaseException) -> bool:
    """True for Numba's "no locator available" error: no writable place for its cache index."""
    return isinstance(exc, RuntimeError) and "locator" in str(exc)


def is_dispatcher(obj) -> bool:
    """True for a Numba ``njit`` dispatcher (not a plain function, as under NUMBA_DISABLE_JIT)."""
    return hasattr(obj, "compile") and hasattr(obj, "py_func") and hasattr(obj, "_cache")


def _set_cache_keyword(call: ast.Call, value: bool) -> None:
    for kw in call.keywords:
        if kw.arg == "cache":
            kw.value = ast.Constant(value)
            return
    call.keywords.append(ast.keyword(arg="cache", value=ast.Constant(value)))


def _is_jit_decorator(node) -> bool:
    func = node.func if isinstance(node, ast.Call) else node
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in ("njit", "jit")


def compile_without_disk_cache(source: str, filename: str):
    """Code object of ``source`` with every ``@njit(...)``/``@jit(...)`` decorator's ``cache``
    flag set to False, so that it can be exec'd (numba issue #3501). Line numbers are kept."""
    tree = ast.parse(source, filename=filename, mode="exec")
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and _is_jit_decorator(deco):
                    _set_cache_keyword(deco, False)
    ast.fix_missing_locations(tree)
    return compile(tree, filename, "exec")


def ensure_disk_caching(dispatcher) -> None:
    """Turn on Numba's disk cache for a dispatcher decorated without ``cache=True``.
    Raises RuntimeError (Numba's "no locator available") where no cache folder is usable."""
    from numba.core.caching import NullCache

    if isinstance(dispatcher._cache, NullCache):
        dispatcher.enable_caching()


def inspectable(dispatcher, arg_types: tuple, source: str):
    """``dispatcher``, or where its code for ``arg_types`` came from Numba's disk cache (which
    keeps no LLVM IR or assembly), a copy of ``source``'s ``kernel`` compiled in memory for
    ``arg_types``, whose ``inspect_llvm``/``inspect_asm`` show the code."""
    if not dispatcher.overloads[arg_types].library._disable_inspection:
        return dispatcher
    # The kernel's own module name, so the copy is compiled as the kernel was
    # (skip_kernel_function_passes recognizes a kernel by it).
    namespace: dict = {"__name__": dispatcher.py_func.__module__}
    exec(compile_without_disk_cache(source, "<adjit.inspect>"), namespace)
    kernel = namespace["kernel"]
    kernel.compile(arg_types)
    return kernel


def cache_counts(dispatcher) -> tuple[int, int]:
    """(disk-cache hits, disk-cache misses) so far; a miss is a compilation.
    ``Dispatcher.compile`` counts one of them for each signature it does not already hold."""
    stats = dispatcher.stats
    return sum(stats.cache_hits.values()), sum(stats.cache_misses.values())


def cache_entry_files(dispatcher) -> list[Path]:
    """The index and data files of this dispatcher's Numba disk-cache entry (existing ones)."""
    cache_file = getattr(dispatcher._cache, "_cache_file", None)
    if cache_file is None:  # NullCache: no disk cache
        return []
    index = Path(cache_file._index_path)
    base = index.name[: -len(".nbi")]
    pattern = os.path.join(glob.escape(str(index.parent)), glob.escape(base) + ".*.nbc")
    files = [index] if index.exists() else []
    return files + sorted(Path(p) for p in glob.glob(pattern))


def purge_cache_entry(dispatcher) -> list[Path]:
    """Remove this dispatcher's Numba index and data files; returns those removed."""
    removed = []
    for path in cache_entry_files(dispatcher):
        try:
            path.unlink()
            removed.append(path)
        except OSError:  # already gone, or not ours to remove: Numba ignores a stale entry
            pass
    return removed


def _culprit(cache, sig, target_context) -> str:
    """The file that most likely made a cache load fail: the index, else the data file."""
    cache_file = cache._cache_file
    try:
        overloads = cache_file._load_index()
    except Exception:
        return cache_file._index_path
    try:
        name = overloads.get(cache._index_key(sig, target_context.codegen()))
        if name is not None:
            return cache_file._data_path(name)
    except Exception:
        pass
    return cache_file._index_path


def guard_disk_cache(
    dispatcher,
    on_corrupt: Callable[[str, BaseException], None],
    on_save_error: Callable[[BaseException], None],
) -> None:
    """Make the dispatcher's disk cache fail soft.

    A load that raises (garbage or truncated index/data file) or returns a compile result for
    another signature calls ``on_corrupt(path, error)``, removes the entry's files and returns
    None, so that Numba compiles afresh and rewrites the entry. A save that raises calls
    ``on_save_error(error)`` and is otherwise ignored (the compiled function is fine).
    """
    cache = dispatcher._cache
    if getattr(cache, "_adjit_guarded", False) or not hasattr(cache, "_cache_file"):
        return
    load, save = cache.load_overload, cache.save_overload

    def load_overload(sig, target_context):
        try:
            cres = load(sig, target_context)
            if cres is not None:
                want = tuple(sigutils.normalize_signature(sig)[0])
                got = tuple(cres.signature.args)
                if got != want:
                    raise ValueError(f"entry holds signature {got}, expected {want}")
            return cres
        except Exception as exc:
            path = _culprit(cache, sig, target_context)
            on_corrupt(path, exc)
            purge_cache_entry(dispatcher)
            return None

    def save_overload(sig, data):
        try:
            save(sig, data)
        except Exception as exc:
            on_save_error(exc)

    cache.load_overload = load_overload
    cache.save_overload = save_overload
    cache._adjit_guarded = True

