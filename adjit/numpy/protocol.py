"""NumPy's dispatch protocols: ``np.sin(traced)`` runs adjit.numpy.sin, so code written with
``import numpy as np`` traces unchanged. What adjit lacks is an error that names it."""

from __future__ import annotations

from adjit.errors import AdjitTypeError

_UFUNC_NAMES = {
    "absolute": "abs", "true_divide": "divide", "conjugate": None, "fabs": "abs",
    "bitwise_and": "logical_and", "bitwise_or": "logical_or", "invert": "logical_not",
}
_REDUCE = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min"}


def _lookup(module, name, what):
    fn = getattr(module, name, None) if name else None
    if fn is None or not callable(fn):
        raise AdjitTypeError(f"adjit: {what} is not supported on traced arrays")
    return fn


def array_ufunc(ufunc, method, inputs, kwargs):
    import adjit.numpy as anp

    if kwargs.get("out") is not None:
        raise AdjitTypeError(f"adjit: numpy.{ufunc.__name__}(..., out=...) writes in place, "
                             "which traced arrays do not support")
    kwargs = {k: v for k, v in kwargs.items() if k != "out"}
    if method == "__call__":
        name = _UFUNC_NAMES.get(ufunc.__name__, ufunc.__name__)
        return _lookup(anp, name, f"numpy.{ufunc.__name__}")(*inputs, **kwargs)
    if method == "reduce" and ufunc.__name__ in _REDUCE:
        return getattr(anp, _REDUCE[ufunc.__name__])(*inputs, **kwargs)
    raise AdjitTypeError(f"adjit: numpy.{ufunc.__name__}.{method} is not supported on traced "
                         "arrays")


def array_function(func, args, kwargs):
    import adjit.numpy as anp

    module = func.__module__ or ""
    namespace = anp.linalg if module.endswith("linalg") else anp
    prefix = "numpy.linalg." if namespace is not anp else "numpy."
    qualified = prefix + func.__name__
    return _lookup(namespace, func.__name__, qualified)(*args, **kwargs)
