"""The CUDA runner: optimize, fuse, generate a module of kernels, load it (cached), and call its
host function ``run`` with device arrays.

Inputs: NumPy arrays are copied to the device (as the graph's dtype, C-contiguous) and the
results copied back; numba device arrays, and any object with ``__cuda_array_interface__``
(CuPy, PyTorch), are used without a copy, and then the results stay on the device (numba
device arrays; a scalar result is a 0-d device array). A 0-d input is read to the host (kernels
take scalars by value).

Kernel cache: a generated module is loaded once per process (keyed by its source text, which
holds the block size and tile). On a GPU, with ``config.cache_dir`` set, the module is first
written to ``<cache_dir>/<cache_tag()>/k_<sha256 of source>.py`` and loaded from that file with
``@cuda.jit(cache=True)``, so numba-cuda's own disk cache keeps the compiled kernels next to it
(``__pycache__``); ``cache_tag()`` names numba-cuda's version and the GPU's compute capability,
so another GPU never reads them. The simulator keeps modules in memory only.
"""

from __future__ import annotations

import hashlib
import linecache
import os
import sys
import tempfile
import threading
import types
from dataclasses import dataclass

import numpy as np

from adjit.backend.numba_cuda import compat
from adjit.backend.numba_cuda.codegen import generate
from adjit.backend.numba_cuda.lowering import LOWERINGS
from adjit.config import config
from adjit.control.loops import revolve_schedule
from adjit.ir.graph import Graph
from adjit.passes import optimize
from adjit.passes.fusion import fuse


@dataclass(frozen=True)
class Launch:
    """Threads per block (a power of two), the matrix-product tile, and the most blocks a
    grid-stride launch uses."""
    threads: int = 256
    tile: int = 16
    max_blocks: int = 4096


# The simulator runs one Python thread per CUDA thread: tiny blocks, two of them at most,
# still enough to exercise the block reduction and the second pass.
SIMULATOR_LAUNCH = Launch(threads=8, tile=4, max_blocks=2)


def default_launch() -> Launch:
    if compat.is_simulator():
        return SIMULATOR_LAUNCH
    # 8 blocks of 256 threads fill a multiprocessor; more only adds scheduling.
    return Launch(max_blocks=8 * compat.multiprocessors())


class CompiledGraph:
    def __init__(self, graph: Graph, reason: str = "first call",
                 lowerings: dict[str, dict] = LOWERINGS, launch: Launch | None = None):
        self.trail: list = []
        self.graph = graph
        self.launch = launch or Launch()
        self.optimized = optimize(graph, self.trail)
        self.schedule = fuse(self.optimized)
        self.source = generate(self.schedule, lowerings, threads=self.launch.threads,
                               tile=self.launch.tile)
        self.reason = reason
        self.module = None
        g = self.optimized
        self._in_avals = [v.aval for v in (*g.constvars, *g.invars)]
        self._out_dtypes = [v.aval.dtype for v in g.outvars]

    def __call__(self, inputs):
        if self.module is None:
            self.module = load_module(self.source.text, self.launch)
        on_device = False
        args = []
        for aval, x in zip(self._in_avals, inputs):
            if not aval.shape:
                args.append(compat.to_host_scalar(x, aval.dtype))
            elif compat.is_device_array(x):
                on_device = True
                args.append(compat.as_device(x))
            else:
                args.append(compat.as_device(np.ascontiguousarray(x, aval.dtype)))
        outs = self.module.run(*args)
        results = []
        for o, kind, dtype in zip(outs, self.source.out_kinds, self._out_dtypes):
            if kind == "host":
                results.append(np.asarray(o, dtype))
            elif on_device:
                results.append(o)
            else:
                results.append(compat.as_device(o).copy_to_host())
        return results


# --------------------------------------------------------------------------- loading modules

_lock = threading.Lock()
_modules: dict = {}
_counts = {"compiles": 0, "memory_hits": 0}


def cache_info() -> dict:
    """Modules loaded in this process (``compiles``) and reuses of one (``memory_hits``)."""
    with _lock:
        return dict(_counts, modules=len(_modules))


def cache_tag() -> str:
    """The disk-cache folder name: Python, numba-cuda and the GPU's compute capability."""
    major, minor = compat.compute_capability()
    py = f"py{sys.version_info[0]}{sys.version_info[1]}"
    return f"cuda-{py}-numba_cuda{compat.numba_cuda_version()}-cc{major}{minor}"


def _runtime(launch: Launch) -> dict:
    cuda = compat.cuda()
    threads, max_blocks = launch.threads, launch.max_blocks

    def _empty(shape, dtype):
        return cuda.device_array(shape, dtype)

    def _blocks(n):
        return max(1, min((n + threads - 1) // threads, max_blocks))

    def _launch(kernel, grid, block, args):
        kernel[grid, block](*args)

    return {"_empty": _empty, "_blocks": _blocks, "_launch": _launch, **_CONTROL,
            "libdevice": compat.libdevice()}


def _host(x):
    """A value on the host: a device array copied back (a 0-d one as its scalar)."""
    return x.copy_to_host()[()] if hasattr(x, "copy_to_host") else x


def _index(x, n, site):
    """A branch index read to the host, clamped to [0, n) as ``cond`` does."""
    return min(max(int(_host(x)), 0), n - 1)


def _going(x, site):
    """A while loop's predicate read to the host (the host waits for the device here)."""
    return bool(_host(x))


def _host_array(x):
    return np.asarray(_host(x))


_CONTROL = {"_index": _index, "_going": _going, "_host_array": _host_array,
            "_revolve_schedule": revolve_schedule}


def _disk_file(source: str):
    """The content-addressed file of ``source`` (written once), or None: no folder, the
    simulator, or a folder that cannot be written (then memory only)."""
    root = config.cache_dir
    if root is None or not compat.disk_cache_supported():
        return None
    digest = hashlib.sha256(source.encode()).hexdigest()
    folder = root / cache_tag()
    path = folder / f"k_{digest}.py"
    try:
        if not path.exists() or path.read_text() != source:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".k-", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(source)
            os.replace(tmp, path)
    except OSError:
        return None
    return str(path)


def _exec(source: str, namespace: dict, filename: str | None):
    name = filename or f"<adjit-cuda-{hashlib.sha256(source.encode()).hexdigest()[:16]}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    module = types.ModuleType(f"_adjit_cuda_{abs(hash(source)):x}")
    module.__file__ = name
    module.__dict__.update(namespace)
    exec(compile(source, name, "exec"), module.__dict__)
    return module


def load_module(source: str, launch: Launch):
    """The generated module of ``source``, with the runtime for ``launch``, loaded once."""
    key = (source, launch)
    module = _modules.get(key)
    if module is not None:
        with _lock:
            _counts["memory_hits"] += 1
        return module
    with _lock:
        module = _modules.get(key)
        if module is None:
            filename = _disk_file(source)
            namespace = {**_runtime(launch), "_DISK_CACHE": filename is not None}
            try:
                module = _exec(source, namespace, filename)
            except RuntimeError as exc:  # numba found no place for its cache index
                if filename is None or "locator" not in str(exc):
                    raise
                module = _exec(source, {**namespace, "_DISK_CACHE": False}, None)
            _modules[key] = module
            _counts["compiles"] += 1
        return module


# --------------------------------------------------------------------------- checking kernels


def typecheck(compiled: CompiledGraph, inputs, cc=(8, 0)) -> dict[str, str]:
    """Type every kernel of ``compiled`` for the argument types a call with ``inputs`` (NumPy
    values) gives them, and lower it to LLVM IR for compute capability ``cc``, without a GPU
    (the simulator does not type-check). Returns {kernel name: LLVM IR}; raises Numba's error
    for a kernel that does not type."""
    import numba

    found: dict[str, str] = {}

    def _launch(kernel, grid, block, args):
        arg_types = tuple(numba.typeof(a) for a in args)
        found[kernel.py_func.__name__] = compat.lower_for_cc(kernel.py_func, arg_types, cc)

    # Control flow: every branch is taken and every while loop entered once, over as many
    # runs as that needs (values are zeros: only the kernels' types matter).
    taken: set = set()
    entered: set = set()
    new = [True]

    def _index(x, n, site):
        for i in range(n):
            if (site, i) not in taken:
                taken.add((site, i))
                new[0] = True
                return i
        return 0

    def _going(x, site):
        if site in entered:
            return False
        entered.add(site)
        return True

    namespace = {**_CONTROL, "_empty": lambda shape, dtype: np.zeros(shape, dtype),
                 "_blocks": lambda n: 1, "_launch": _launch, "_DISK_CACHE": False,
                 "_index": _index, "_going": _going, "libdevice": compat.libdevice()}
    module = _exec(compiled.source.text, namespace, None)
    args = [np.dtype(a.dtype).type(np.asarray(x)[()]) if not a.shape
            else np.ascontiguousarray(x, a.dtype) for a, x in zip(compiled._in_avals, inputs)]
    while new[0]:
        new[0] = False
        entered.clear()
        module.run(*args)
    return found
