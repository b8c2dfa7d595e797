"""NumPy's names and semantics over adjit's primitives: broadcasting, type promotion, axes.

Every function works on traced arrays (staging primitives) and on concrete arrays (running the
reference implementations). Python scalars are weakly typed, as in JAX: ``x * 2.0`` keeps a
float32 ``x`` float32. ``core`` holds most of it; indexing, contraction (einsum), linalg and
the NumPy protocols build on it, and importing this package installs the Python operators of
traced arrays.
"""

import sys

from adjit.numpy import fft, linalg, operators  # noqa: F401
from adjit.numpy.contraction import einsum  # noqa: F401
from adjit.numpy.core import *  # noqa: F401,F403
from adjit.numpy.core import _float_dtype, _result_dtype  # noqa: F401  (adjit.scipy uses them)
from adjit.numpy.indexing import IndexUpdateHelper, getitem  # noqa: F401
from adjit.numpy.shaping import *  # noqa: F401,F403

operators.install(sys.modules[__name__])
