"""Ahead-of-time output of the CPU target, and derivatives callable from users' Numba code.

* :func:`to_numba` (``adjit.to_numba``): the generated kernel as a Numba function, to call from
  ``@numba.njit`` code (``numba_interop.py``).
* :func:`build` (``adjit.aot.build``, ``python -m adjit aot``): a C shared library depending on
  libc and libm only, its header and a ctypes loader (``library.py``).

Both are a mode of the CPU target, not a target of their own: they trace the function
(``stage.py``), take the kernel source ``backend/numba_cpu``'s generator writes for a call, and
only wrap it (an njit wrapper; a cfunc over raw pointers whose LLVM IR becomes an object file).
Every workaround the C route needs is in ``compat.py``.
"""

from adjit.aot.library import BuiltLibrary, build
from adjit.aot.numba_interop import to_numba

__all__ = ["BuiltLibrary", "build", "to_numba"]
