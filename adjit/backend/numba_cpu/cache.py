"""Compiled-kernel cache: in memory, then on disk, else compile (and store).

The code generator hands :func:`load_kernel` the source text of a module that imports ``numpy as
np``, ``numba``, ``math``, adjit's own compiled helpers (``runtime as rt``, and ``vecmath``'s
functions where used; the hashes of their files are in the cache tag) and defines one
``@numba.njit(cache=True, ...)`` function ``kernel``. The source is written to a
content-addressed file ``<cache_dir()>/<cache_tag()>/k_<sha256 of source>.py`` (temp file in the
same folder, ``os.replace``), its content is checked against its name whenever it is
loaded, and it is exec'd as a module whose ``__file__`` is that file, so Numba's own
``cache=True`` keeps its index and data next to it (``__pycache__``). The tag folder (the
target's ``cache_tag()``) is named from the versions of Python, Numba, llvmlite and adjit and
the host CPU name and features, so a new toolchain or another CPU never reads an old entry; a
changed source is a different file.

* Folder: ``config.cache_dir`` (``$ADJIT_CACHE_DIR``, else the platform's cache folder; see
  :mod:`adjit.config`), read on every compilation. An unusable folder (cannot be created or
  written) is reported once with an :class:`AdjitCacheWarning` and the process keeps compiled
  kernels in memory only; so does a ``cache_dir`` of None.
* Corrupt entries (a ``.py`` whose content does not match its name, a garbage Numba index or
  data file) are reported once each with an :class:`AdjitCacheWarning` naming the file,
  removed or rewritten, and recompiled.
* Concurrency: one lock per source in the process (eight threads asking for one new kernel
  compile it once), and an advisory file lock per kernel across processes (``k_<sha>.lock``),
  so a second process waits and then loads the first one's work. Every file is replaced
  atomically, so no process ever reads a half-written entry.
* ``config.log_compiles`` (``ADJIT_LOG_COMPILES=1``) logs each compilation (logger
  ``"adjit"``, INFO) with its reason; when that logger would not show INFO messages, the line
  goes to stderr instead.
* Generated source is put into ``linecache`` under its file name, so Numba typing errors and
  tracebacks show the generated lines.
"""

from __future__ import annotations

import contextlib
import hashlib
import linecache
import logging
import os
import pathlib
import sys
import tempfile
import threading
import time
import types
import warnings

from adjit.backend.numba_cpu import compat
from adjit.collector import collector_paused
from adjit.config import config

try:  # advisory inter-process lock; without it (Windows) adjit still works, see compat
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = ["AdjitCacheWarning", "cache_dir", "cache_info", "cache_tag", "load_kernel"]

logger = logging.getLogger("adjit")

# How long a process waits for another process compiling the same kernel before going ahead.
_FILE_LOCK_TIMEOUT_S = 300.0


class AdjitCacheWarning(UserWarning):
    """A problem with adjit's disk cache: an unusable folder or a corrupt entry (recovered)."""


# --- state (see _reset_for_tests) ------------------------------------------------------------
_state_lock = threading.Lock()  # guards the dicts and counters below
_memory: dict = {}  # (source, arg_types) -> dispatcher compiled for arg_types
_dispatchers: dict = {}  # source -> dispatcher (one module per source in this process)
_source_locks: dict = {}  # source -> RLock
_dir_state: dict = {}  # root folder -> (tag folder, or None where unusable)
_counts = {"compiles": 0, "memory_hits": 0, "disk_hits": 0, "corrupt_entries": 0,
           "python_loops": 0}
_tag_cache: list = []  # [cache_tag()], computed once


def _reset_for_tests() -> None:
    """Forget every kernel, counter and folder verdict, as if in a fresh process (tests call
    this after pointing ``config.cache_dir`` elsewhere). Files on disk are left alone."""
    with _state_lock:
        _memory.clear()
        _dispatchers.clear()
        _source_locks.clear()
        _dir_state.clear()
        for key in _counts:
            _counts[key] = 0


def cache_info() -> dict:
    """Counters for this process: ``compiles`` (Numba compilations), ``memory_hits``,
    ``disk_hits``, ``corrupt_entries`` (recovered), ``python_loops`` (loops compiled by
    Numba's front end because their nest could not be lowered: 0 unless the nest language
    meets something it cannot type), ``kernels`` (in memory) and ``dir``."""
    with _state_lock:
        info = dict(_counts)
        info["kernels"] = len(_memory)
    folder = config.cache_dir
    info["dir"] = str(folder) if folder is not None and _usable(folder) else None
    return info


def count_python_loop() -> None:
    """One loop compiled in Python after its nest failed (``runner.load_source``)."""
    with _state_lock:
        _counts["python_loops"] += 1


def cache_dir() -> pathlib.Path | None:
    """The disk-cache folder in use (entries live in the cache_tag() folder inside it), or None
    when kernels are kept in memory only because that folder is unusable."""
    folder = config.cache_dir
    return folder if folder is not None and _usable(folder) else None


# --- folders ---------------------------------------------------------------------------------
def cache_tag() -> str:
    """Folder name: readable versions plus a hash of everything that must match to reuse code."""
    if _tag_cache:
        return _tag_cache[0]
    import llvmlite
    import llvmlite.binding as llvm
    import numba

    # The package's own version when it is imported (always, once a kernel is compiled),
    # read without an upward import; else the installed one.
    adjit_version = getattr(sys.modules.get("adjit"), "__version__", None)
    if adjit_version is None:
        try:
            from importlib.metadata import version

            adjit_version = version("adjit")
        except Exception:
            adjit_version = "unknown"
    cpu = llvm.get_host_cpu_name()
    parts = [
        f"python={sys.version}",
        f"implementation={sys.implementation.cache_tag}",
        f"adjit={adjit_version}",
        f"numba={numba.__version__}",
        f"llvmlite={llvmlite.__version__}",
        f"cpu={cpu}",
        f"features={llvm.get_host_cpu_features().flatten()}",
        f"numba_cpu={numba.config.CPU_NAME}:{numba.config.CPU_FEATURES}",
        # Kernels import their transcendental functions from vecmath.py and their array
        # allocations and products from runtime.py, and inline them, and nests.py writes
        # their loops: a cached kernel holds that code, which its own source text does not show.
        *(f"{name}=" + hashlib.sha256(pathlib.Path(__file__).with_name(name).read_bytes())
          .hexdigest() for name in ("vecmath.py", "runtime.py", "nests.py")),
    ]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    py = f"py{sys.version_info[0]}{sys.version_info[1]}"
    tag = f"{py}-adjit{adjit_version}-numba{numba.__version__}-{cpu}-{digest}"
    _tag_cache.append("".join(c if c.isalnum() or c in "._-" else "_" for c in tag))
    return _tag_cache[0]


def _usable(root: pathlib.Path) -> bool:
    return _tag_dir(root) is not None


def _tag_dir(root: pathlib.Path) -> pathlib.Path | None:
    """The version-tag folder under ``root``, created and probed for writing on first use;
    None (after one warning) when that fails."""
    with _state_lock:
        if root in _dir_state:
            return _dir_state[root]
    folder = root / cache_tag()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        folder = None
        _disable_dir(root, exc)
    with _state_lock:
        _dir_state.setdefault(root, folder)
        return _dir_state[root]


def _disable_dir(root: pathlib.Path, exc: BaseException) -> None:
    """Switch ``root`` to memory-only, warning the first time."""
    with _state_lock:
        first = _dir_state.get(root, "unset") is not None
        _dir_state[root] = None
    if first:
        warnings.warn(
            f"adjit: cache folder {str(root)!r} is unusable ({exc}); compiled kernels are "
            "kept in memory only in this process (set ADJIT_CACHE_DIR to a writable folder)",
            AdjitCacheWarning,
            stacklevel=4,
        )


# --- logging ---------------------------------------------------------------------------------
def _log_compile(name: str, arg_types: tuple, reason: str, seconds: float, where: str) -> None:
    if not config.log_compiles:
        return
    sig = ", ".join(str(t) for t in arg_types)
    msg = f"adjit: compiled {name}({sig}) in {seconds * 1e3:.0f} ms [{reason}] ({where})"
    if logger.hasHandlers() and logger.isEnabledFor(logging.INFO):
        logger.info(msg)
    else:
        print(msg, file=sys.stderr, flush=True)


# --- the cache -------------------------------------------------------------------------------
def _source_lock(source: str) -> threading.RLock:
    with _state_lock:
        lock = _source_locks.get(source)
        if lock is None:
            lock = _source_locks[source] = threading.RLock()
        return lock


def load_kernel(source: str, arg_types: tuple, reason: str = "first call"):
    """The njit dispatcher of ``kernel`` in ``source``, compiled for ``arg_types`` (a tuple of
    Numba types): from memory (same source and types seen in this process), else from the disk
    cache, else compiled (and stored on disk). The same source always gives the same
    dispatcher in one process; each new ``arg_types`` adds a signature to it."""
    arg_types = tuple(arg_types)
    key = (source, arg_types)
    dispatcher = _memory.get(key)
    if dispatcher is not None:
        with _state_lock:
            _counts["memory_hits"] += 1
        return dispatcher
    with _source_lock(source):
        dispatcher = _memory.get(key)
        if dispatcher is not None:  # another thread just compiled it
            with _state_lock:
                _counts["memory_hits"] += 1
            return dispatcher
        digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
        root = config.cache_dir
        folder = _tag_dir(root) if root is not None else None
        if folder is not None:
            try:
                with _file_lock(folder / f"k_{digest}.lock"):
                    dispatcher = _load_from_disk(source, digest, folder, root, arg_types, reason)
            except OSError as exc:  # the folder became unusable (removed, read-only, full)
                _disable_dir(root, exc)
                dispatcher = None
        if dispatcher is None:
            dispatcher = _load_in_memory(source, digest, arg_types, reason)
        with _state_lock:
            _memory[key] = dispatcher
        return dispatcher


@contextlib.contextmanager
def _file_lock(path: pathlib.Path):
    """Exclusive advisory lock on ``path`` (created, never removed), held across processes while
    a kernel is checked, loaded or compiled. Gives up waiting after _FILE_LOCK_TIMEOUT_S; Numba's
    atomic writes and compat.guard_disk_cache keep that case correct."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + _FILE_LOCK_TIMEOUT_S
        delay = 0.005
        locked = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            except OSError:  # file system without flock support
                break
        try:
            yield
        finally:
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _write_atomic(path: pathlib.Path, data: bytes) -> None:
    """Readers see the old file or the whole new one. Not synced to the disk (two fsyncs cost
    a millisecond of each new kernel's first call): a file a system crash leaves torn fails
    the content check on its next load and is written again, as Numba's own index and data
    files, never synced, are checked and replaced."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _warn_corrupt(path, problem: str) -> None:
    with _state_lock:
        _counts["corrupt_entries"] += 1
    warnings.warn(
        f"adjit: corrupt cache entry {str(path)!r} ({problem}); removed, recompiling",
        AdjitCacheWarning,
        stacklevel=2,
    )


def _remember_source(filename: str, source: str) -> None:
    # mtime None: linecache.checkcache never drops the entry
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def _new_module(source: str, digest: str, filename: str,
                memory_only: bool = False) -> types.ModuleType:
    name = compat.kernel_module_name(digest, memory_only)
    if source.count("\n") >= compat.SPLIT_KERNEL_LINES:
        compat.split_loops_of(name)  # machine code per loop nest: LLVM's time stays linear
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    return module


def _get_kernel(module: types.ModuleType, filename: str):
    kernel = module.__dict__.get("kernel")
    if kernel is None:
        raise TypeError(f"generated module {filename} defines no function 'kernel'")
    return kernel


def _load_from_disk(source, digest, folder, root, arg_types, reason):
    """Load or compile through the file ``folder/k_<digest>.py``; None when Numba cannot cache
    it there (the caller then compiles in memory)."""
    path = folder / f"k_{digest}.py"
    filename = str(path)
    data = source.encode("utf-8")
    dispatcher = _dispatchers.get(source)
    corrupt = False
    if dispatcher is None or not path.exists():
        try:
            on_disk = path.read_bytes()
        except FileNotFoundError:
            on_disk = None
        if on_disk is not None and on_disk != data:
            found = hashlib.sha256(on_disk).hexdigest()
            _warn_corrupt(path, f"{len(on_disk)} bytes hashing to {found[:12]}..., not the name")
            corrupt = True
        if on_disk != data:
            _write_atomic(path, data)
    if dispatcher is None:
        _remember_source(filename, source)
        module = _new_module(source, digest, filename)
        code = compile(source, filename, "exec")
        try:
            exec(code, module.__dict__)
            kernel = _get_kernel(module, filename)
            if not compat.is_dispatcher(kernel):  # e.g. NUMBA_DISABLE_JIT=1
                return kernel
            compat.ensure_disk_caching(kernel)
        except RuntimeError as exc:
            if not compat.is_no_locator_error(exc):
                raise
            _disable_dir(root, exc)  # Numba found no writable place for its index
            return None

        def on_corrupt(bad, exc):
            _warn_corrupt(bad, f"{type(exc).__name__}: {exc}")

        def on_save_error(exc):
            _disable_dir(root, exc)

        compat.guard_disk_cache(kernel, on_corrupt, on_save_error)
        if corrupt:  # trust nothing Numba stored for the bad file
            compat.purge_cache_entry(kernel)
        dispatcher = kernel
        _dispatchers[source] = dispatcher
    if not compat.is_dispatcher(dispatcher):
        return dispatcher
    _compile(dispatcher, f"k_{digest[:12]}", arg_types, reason, "stored to disk cache")
    return dispatcher


def _load_in_memory(source, digest, arg_types, reason):
    """Compile from the source with exec, Numba's disk cache off (memory-only mode)."""
    dispatcher = _dispatchers.get(source)  # one loaded while the folder still worked: keep it
    if dispatcher is None:
        filename = f"<adjit-kernel-{digest[:16]}>"
        _remember_source(filename, source)
        module = _new_module(source, digest, filename, memory_only=True)
        exec(compat.compile_without_disk_cache(source, filename), module.__dict__)
        dispatcher = _get_kernel(module, filename)
        _dispatchers[source] = dispatcher
    if compat.is_dispatcher(dispatcher):
        _compile(dispatcher, f"k_{digest[:12]}", arg_types, reason, "memory only")
    return dispatcher


def _compile(dispatcher, name, arg_types, reason, where) -> None:
    """Compile eagerly (or load from Numba's disk cache) and count which one happened."""
    hits, misses = compat.cache_counts(dispatcher)
    start = time.perf_counter()
    with collector_paused():  # Numba's compiler keeps most objects it makes
        dispatcher.compile(arg_types)
    seconds = time.perf_counter() - start
    new_hits, new_misses = compat.cache_counts(dispatcher)
    with _state_lock:
        if new_misses > misses:
            _counts["compiles"] += new_misses - misses
        elif new_hits > hits:
            _counts["disk_hits"] += new_hits - hits
        else:  # the dispatcher already held this signature
            _counts["memory_hits"] += 1
    if new_misses > misses:
        _log_compile(name, arg_types, reason, seconds, where)
    elif new_hits > hits:
        logger.debug("adjit: loaded %s from disk cache in %.1f ms", name, seconds * 1e3)
