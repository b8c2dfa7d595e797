"""NumPy's dispatch protocols: ``np.sin(traced)`` runs adjit.numpy.sin, so code written with
``import numpy as np`` traces unchanged. What adjit lacks is an error that names it.

The namespaces searched are passed in (``adjit.numpy`` installs these on ``Tracer`` with itself
as the namespace), and ``ufunc_namespaces`` lists further modules whose functions answer for
ufuncs NumPy does not define: ``adjit.scipy.special`` adds itself, since scipy.special's
functions are ufuncs too (``scipy.special.expit(traced)`` lands here)."""

from __future__ import annotations

import sys

from adjit.errors import AdjitTypeError

_UFUNC_NAMES = {
    "absolute": "abs", "true_divide": "divide", "conjugate": "conj", "fabs": "abs",
    "bitwise_and": "logical_and", "bitwise_or": "logical_or", "invert": "logical_not",
}
_REDUCE = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min"}


def _lookup(module, name, what):
    fn = getattr(module, name, None) if name and module is not None else None
    if fn is None or not callable(fn):
        raise AdjitTypeError(f"adjit: {what} is not supported on traced arrays: adjit has no "
                             "counterpart to trace and differentiate")
    return fn


ufunc_namespaces: list = []


def _ufunc_name(ufunc) -> str:
    """Where the ufunc comes from, for messages: ``scipy.special.gamma`` is a ufunc as well."""
    for module in ("numpy", "scipy.special"):
        if getattr(sys.modules.get(module), ufunc.__name__, None) is ufunc:
            return f"{module}.{ufunc.__name__}"
    return f"the ufunc {ufunc.__name__}"


def array_ufunc(anp, ufunc, method, inputs, kwargs):
    if kwargs.get("out") is not None:
        raise AdjitTypeError(f"adjit: {_ufunc_name(ufunc)}(..., out=...) writes in place, "
                             "which traced arrays do not support")
    kwargs = {k: v for k, v in kwargs.items() if k != "out"}
    if method == "__call__":
        name = _UFUNC_NAMES.get(ufunc.__name__, ufunc.__name__)
        if name is not None and not hasattr(anp, name):
            for namespace in ufunc_namespaces:
                if hasattr(namespace, name):
                    return getattr(namespace, name)(*inputs, **kwargs)
        return _lookup(anp, name, _ufunc_name(ufunc))(*inputs, **kwargs)
    if method == "reduce" and ufunc.__name__ in _REDUCE:
        return getattr(anp, _REDUCE[ufunc.__name__])(*inputs, **kwargs)
    raise AdjitTypeError(f"adjit: {_ufunc_name(ufunc)}.{method} is not supported on traced "
                         "arrays")


def array_function(anp, func, args, kwargs):
    module = func.__module__ or ""
    qualified = f"{module}.{func.__name__}"
    # Only numpy, numpy.linalg and numpy.fft have counterparts: numpy.emath.sqrt is not
    # adjit.numpy.sqrt.
    namespace = {"numpy": anp, "numpy.linalg": anp.linalg, "numpy.fft": anp.fft}.get(module)
    return _lookup(namespace, func.__name__, qualified)(*args, **kwargs)
