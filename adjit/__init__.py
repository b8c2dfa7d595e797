"""adjit: a JIT-compiling automatic-differentiation compiler for NumPy-style Python."""

from adjit import (
    aot,  # noqa: F401  (ahead-of-time libraries: adjit.aot.build)
    dask,  # noqa: F401  (Dask arrays: adjit.dask; imports dask only when used)
    numpy,  # noqa: F401  (installs the Python operators of traced arrays)
    primitives,  # noqa: F401  (registers every primitive)
    scipy,  # noqa: F401  (scipy.special's ufuncs on traced arrays dispatch to it)
    tree,  # noqa: F401
)
from adjit.aot import to_numba  # noqa: F401
from adjit.api import (  # noqa: F401
    grad,
    jit,
    jvp,
    linearize,
    make_graph,
    stop_gradient,
    value_and_grad,
    vjp,
    vmap,  # noqa: F401
)
from adjit.backend.numba_cpu.cache import AdjitCacheWarning, cache_info  # noqa: F401
from adjit.config import config  # noqa: F401
from adjit.control import (  # noqa: F401
    checkpoint,
    cond,
    fori_loop,
    scan,
    switch,
    while_loop,
)
from adjit.custom import custom_jvp, custom_vjp  # noqa: F401
from adjit.errors import (  # noqa: F401
    AdjitError,
    AdjitTypeError,
    AdjitValueError,
    ConcretizationError,
    MissingRuleError,
    TracerLeakError,
)
from adjit.inspect import inspect  # noqa: F401
from adjit.jacobians import hessian, jacfwd, jacrev  # noqa: F401

__version__ = "0.1.0"
