"""Every numba-cuda workaround and every touch of its API outside generated code, in one place.

numba-cuda is optional (``pip install 'adjit[cuda]'``): nothing here imports it at module
level, so ``import adjit`` (and importing this target to read its tables) never loads it.
:func:`cuda` imports it on first use, after the shims below.

* numba-cuda 0.30.4 with NumPy >= 2.5 fails at the first kernel compile with
  ``AttributeError: module 'numpy' has no attribute 'row_stack'`` (NumPy removed the alias):
  :func:`_numpy_shims` puts ``numpy.row_stack = numpy.vstack`` back before the import, only
  where it is missing.
* The CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) is chosen when ``numba.cuda`` is first
  imported, and then for the whole process. Its device arrays (``FakeCUDAArray``) have no
  ``__cuda_array_interface__``; :func:`is_device_array` recognizes both kinds. Its
  ``libdevice`` functions are stubs returning None: :func:`libdevice` gives generated code
  NumPy and SciPy stand-ins there.
* With numba installed, ``numba.cuda.core.config`` is ``numba.core.config``, read when numba
  was imported (by ``import adjit``): :func:`cuda` reloads it first, so a
  ``NUMBA_ENABLE_CUDASIM`` set after ``import adjit`` but before the first CUDA use counts.
* Without a GPU (and without the simulator) ``numba.cuda`` still imports; the first use of the
  target is an :class:`AdjitError` saying so (:func:`require_device`), not a driver traceback
  from inside the first launch.
* Checking generated kernels without a GPU: ``numba.cuda.compiler.compile_cuda(..., cc=)`` types
  and lowers a kernel to LLVM for a given compute capability with no driver (PTX would need
  libnvvm/libnvrtc, absent here): :func:`lower_for_cc`. The device functions a kernel calls
  ask the driver for the current device's compute capability while typing, so it stands in
  ``dispatcher.get_current_device`` for the duration.
* Disk cache: ``@cuda.jit(cache=True)`` on an ``exec``'d function has no source file to key
  on (as numba issue #3501 on the CPU); the runner writes each generated module to a
  content-addressed file first (see runner.py) and turns ``cache`` off where that fails.
"""

from __future__ import annotations

import importlib.util
import threading
from types import SimpleNamespace as types_namespace

import numpy as np

from adjit.errors import AdjitError
from adjit.trace import is_device_array  # numba's, the simulator's, or any CUDA array

__all__ = [
    "cuda",
    "device_name",
    "is_device_array",
    "is_simulator",
    "lower_for_cc",
    "require_device",
]

_lock = threading.Lock()
_state: dict = {}


def _numpy_shims() -> None:
    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack


def available() -> bool:
    """Whether numba-cuda is installed (without importing it)."""
    try:
        return importlib.util.find_spec("numba_cuda") is not None
    except (ImportError, ValueError):
        return False


def cuda():
    """The ``numba.cuda`` module (the simulator's when ``NUMBA_ENABLE_CUDASIM=1`` was set when
    it was first imported); an AdjitError when numba-cuda is not installed."""
    module = _state.get("cuda")
    if module is not None:
        return module
    with _lock:
        if "cuda" not in _state:
            if not available():
                raise AdjitError(
                    "adjit: target='cuda' needs numba-cuda, which is not installed "
                    "(pip install 'adjit[cuda]')")
            _numpy_shims()
            # With numba installed, numba-cuda reads numba.core.config, which numba read when
            # adjit imported it: re-read the environment so NUMBA_ENABLE_CUDASIM set since
            # then counts.
            from numba.core import config as numba_config

            numba_config.reload_config()
            from numba import cuda as module

            _state["cuda"] = module
        return _state["cuda"]


def is_simulator() -> bool:
    """True when numba.cuda is the CUDA simulator (kernels run as Python threads)."""
    return cuda().jit.__module__.startswith("numba.cuda.simulator")


def require_device() -> None:
    """An AdjitError unless there is a GPU or the simulator; checked once per process."""
    if _state.get("ready"):
        return
    module = cuda()
    if not is_simulator() and not module.is_available():
        reason = ""
        try:
            module.get_current_device()
        except Exception as exc:  # the driver's own words, shortened
            reason = f" ({str(exc).strip().splitlines()[0][:200]})"
        raise AdjitError(
            "adjit: target='cuda' found no CUDA GPU" + reason + "; run on a machine with an "
            "NVIDIA GPU and driver, or set NUMBA_ENABLE_CUDASIM=1 before numba.cuda is first "
            "imported to run kernels in the (slow) CUDA simulator")
    _state["ready"] = True


def compute_capability() -> tuple[int, int]:
    """The current device's compute capability; (0, 0) in the simulator."""
    if is_simulator():
        return (0, 0)
    return tuple(cuda().get_current_device().compute_capability)


def device_name() -> str:
    if is_simulator():
        return "CUDA simulator"
    name = cuda().get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def multiprocessors() -> int:
    if is_simulator():
        return 1
    return int(cuda().get_current_device().MULTIPROCESSOR_COUNT)


def numba_cuda_version() -> str:
    try:
        from importlib.metadata import version

        return version("numba-cuda")
    except Exception:
        return "unknown"


def libdevice():
    """The ``libdevice`` generated modules call (``floorf``, ``rint``, ``cbrt``...): numba-cuda's
    on a GPU; in the simulator, whose libdevice functions are stubs returning None, NumPy's and
    SciPy's."""
    if not is_simulator():
        from numba.cuda import libdevice as module

        return module
    import scipy.special

    shim = {}
    for name, fn in [*((name, getattr(np, name)) for name in ("floor", "ceil", "rint", "cbrt")),
                     *((name, getattr(scipy.special, name))
                       for name in ("erfcx", "erfinv", "j0", "j1", "y0", "y1")),
                     ("normcdfinv", scipy.special.ndtri)]:
        shim[name] = lambda x, fn=fn: np.float64(fn(x))
        shim[name + "f"] = lambda x, fn=fn: np.float32(fn(x))
    return types_namespace(**shim)


# --------------------------------------------------------------------------- arrays




def as_device(x):
    """``x`` as a numba device array, without a copy when it is on the device already."""
    module = cuda()
    if hasattr(x, "copy_to_host"):  # numba's own (or the simulator's)
        return x
    if hasattr(x, "__cuda_array_interface__"):
        return module.as_cuda_array(x)
    return module.to_device(np.ascontiguousarray(x))


def to_host_scalar(x, dtype):
    """A 0-d input as a NumPy scalar of ``dtype`` (a device array is copied back)."""
    if is_device_array(x):
        x = as_device(x).copy_to_host()
    return np.dtype(dtype).type(np.asarray(x)[()])


# --------------------------------------------------------------------------- checking kernels


def lower_for_cc(py_func, arg_types: tuple, cc=(8, 0)) -> str:
    """Type ``py_func`` as a kernel for ``arg_types`` (Numba types) and lower it to LLVM IR for
    compute capability ``cc``, without a GPU; the IR text. Raises Numba's typing error."""
    cuda()
    if is_simulator():
        raise AdjitError("adjit: kernels cannot be type-checked in the CUDA simulator")
    from numba.core import types
    from numba.cuda import dispatcher
    from numba.cuda.compiler import compile_cuda

    # Device functions a kernel calls are compiled for the current device's compute
    # capability: without a device, give them ``cc`` instead.
    saved = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: types_namespace(compute_capability=tuple(cc))
    try:
        cres = compile_cuda(py_func, types.void, tuple(arg_types), cc=tuple(cc))
    finally:
        dispatcher.get_current_device = saved
    return str(cres.library.get_llvm_str())


def disk_cache_supported() -> bool:
    """numba-cuda's disk cache works from a real file; the simulator has none."""
    return not is_simulator()
