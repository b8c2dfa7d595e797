"""SciPy's compiled special functions, callable from Numba kernels.

``scipy.special.cython_special`` exports each function's C entry point (``double gammainc(double,
double, int skip_dispatch)``); :func:`numba.extending.get_cython_function_address` finds its
address. A ctypes function pointer would bake that address into the compiled code, which Numba
then refuses to cache ("dynamic globals"), and which would be stale in the next process anyway.
Instead each address is registered with LLVM under a fixed symbol name
(``llvmlite.binding.add_symbol``) when this module is imported, and kernels call a
``numba.types.ExternalFunction`` of that name: the cached machine code refers to the name, which
each process binds to its own address before the kernel is loaded (every generated module that
calls one imports this module first and makes its functions with :func:`external`; see the
``helpers`` entries in lowering.py). Importing SciPy waits until a kernel needs it.

Every function here is called as ``fn(x..., 0)`` (the trailing 0 is Cython's skip-dispatch flag)
and computes in float64.
"""

from __future__ import annotations

import ctypes
import functools

import llvmlite.binding as llvm
import scipy.special.cython_special as cython_special
from numba import types
from numba.extending import get_cython_function_address

_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype = ctypes.c_char_p
_capsule_name.argtypes = [ctypes.py_object]


@functools.cache
def external(fn: str, n_args: int) -> types.ExternalFunction:
    """The float64 version of cython_special's ``fn``: fused functions export one entry per
    type (``__pyx_fuse_0erfinv`` is double, ``__pyx_fuse_0erfcx`` complex), so the entry is
    chosen by its C signature, which the capsule names."""
    wanted = f"double ({', '.join(['double'] * n_args)}, int __pyx_skip_dispatch)"
    for key in (fn, f"__pyx_fuse_0{fn}", f"__pyx_fuse_1{fn}"):
        capsule = cython_special.__pyx_capi__.get(key)
        if capsule is not None and _capsule_name(capsule).decode() == wanted:
            break
    else:
        raise ImportError(f"adjit: scipy.special.cython_special has no {wanted} {fn}")
    symbol = f"adjit_scipy_special_{fn}"
    llvm.add_symbol(symbol, get_cython_function_address("scipy.special.cython_special", key))
    return types.ExternalFunction(symbol, types.float64(*[types.float64] * n_args, types.intc))

