"""The machine's OpenBLAS overrides, removed for a benchmark run before NumPy is imported.

Some machines set ``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``) for old OpenBLAS builds that
fail on their CPU; the development machine forces the Haswell kernels that way. The current
NumPy and SciPy builds pick their own kernels (AVX-512 ones on this CPU, about 1.5x faster on
matrix products), as on a user's machine, while JAX brings its own: so the benchmark commands
run without the two variables (``benchmarks/run.py`` and ``benchmarks/adbench/run.py`` import
this module first; their subprocesses inherit the environment). The tests and CI keep them.
Reports name the kernels OpenBLAS chose (:func:`kernels`).
"""

from __future__ import annotations

import ctypes
import glob
import os

REMOVED = {name: os.environ.pop(name) for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
           if name in os.environ}


def _corename(package: str, pattern: str, symbol: str) -> str:
    import importlib

    try:
        folder = os.path.dirname(os.path.dirname(importlib.import_module(package).__file__))
        lib = ctypes.CDLL(glob.glob(os.path.join(folder, f"{package}.libs", pattern))[0])
        fn = getattr(lib, symbol)
    except (ImportError, IndexError, OSError, AttributeError):
        return "unknown"
    fn.restype = ctypes.c_char_p
    return fn().decode()


def kernels() -> str:
    """The OpenBLAS kernels of SciPy's library (which Numba calls) and NumPy's, and what this
    run removed from the environment."""
    scipy_core = _corename("scipy", "libscipy_openblas-*.so", "scipy_openblas_get_corename")
    numpy_core = _corename("numpy", "libscipy_openblas64_*.so",
                           "scipy_openblas_get_corename64_")
    removed = ", ".join(f"{k}={v}" for k, v in REMOVED.items())
    return (f"{scipy_core} kernels in SciPy's OpenBLAS (Numba's matrix products), {numpy_core} "
            f"in NumPy's" + (f"; the machine's {removed} removed for this run" if removed
                             else ""))
