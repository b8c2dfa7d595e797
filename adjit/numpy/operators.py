"""Tracers get Python's operators and NumPy's array methods from here: the tracing layer knows
nothing of adjit.numpy, and adjit.numpy installs them when it is imported."""

from __future__ import annotations

from adjit.numpy import protocol
from adjit.trace import Tracer


def install(anp):
    """Python operators and array methods on ``Tracer``, implemented by ``anp``, the package
    adjit.numpy (passed in: this module is part of it)."""

    def binary(fn):
        return lambda self, other: fn(self, other), lambda self, other: fn(other, self)

    for name, fn in [
        ("add", anp.add), ("sub", anp.subtract), ("mul", anp.multiply),
        ("truediv", anp.divide), ("pow", anp.power), ("matmul", anp.matmul),
        ("floordiv", anp.floor_divide), ("mod", anp.mod),
    ]:
        forward, reflected = binary(fn)
        setattr(Tracer, f"__{name}__", forward)
        setattr(Tracer, f"__r{name}__", reflected)
    for name, fn in [("lt", anp.less), ("le", anp.less_equal), ("gt", anp.greater),
                     ("ge", anp.greater_equal), ("eq", anp.equal), ("ne", anp.not_equal),
                     ("and", anp.logical_and), ("or", anp.logical_or)]:
        setattr(Tracer, f"__{name}__", lambda self, other, fn=fn: fn(self, other))
    Tracer.__rand__ = lambda self, other: anp.logical_and(other, self)
    Tracer.__ror__ = lambda self, other: anp.logical_or(other, self)
    Tracer.__neg__ = lambda self: anp.negative(self)
    Tracer.__pos__ = lambda self: self
    Tracer.__abs__ = lambda self: anp.abs(self)
    Tracer.__invert__ = lambda self: anp.logical_not(self)
    Tracer.__getitem__ = lambda self, idx: anp.getitem(self, idx)
    Tracer.T = property(lambda self: anp.transpose(self))
    Tracer.at = property(lambda self: anp.IndexUpdateHelper(self))

    def method(fn):
        return lambda self, *a, **k: fn(self, *a, **k)

    for name in ("sum", "prod", "max", "min", "mean", "var", "std", "cumsum", "argmax", "argmin"):
        setattr(Tracer, name, method(getattr(anp, name)))
    # adjit.numpy.shaping's (not x.trace(): a Tracer's ``trace`` is the trace it belongs to)
    for name in ("repeat", "diagonal"):
        setattr(Tracer, name, method(getattr(anp, name)))
    Tracer.reshape = lambda self, *shape, **k: anp.reshape(
        self, shape[0] if len(shape) == 1 else shape, **k)
    Tracer.transpose = lambda self, *axes: anp.transpose(
        self, (axes[0] if len(axes) == 1 else axes) or None)
    Tracer.astype = lambda self, dtype: anp.astype(self, dtype)
    Tracer.dot = lambda self, other: anp.dot(self, other)
    Tracer.squeeze = lambda self, axis=None: anp.squeeze(self, axis)
    Tracer.ravel = Tracer.flatten = lambda self: anp.ravel(self)
    Tracer.clip = lambda self, lo=None, hi=None: anp.clip(self, lo, hi)
    Tracer.real = property(lambda self: anp.real(self))
    Tracer.imag = property(lambda self: anp.imag(self))
    Tracer.conj = Tracer.conjugate = lambda self: anp.conj(self)
    Tracer.__array_ufunc__ = lambda self, ufunc, method, *inputs, **kwargs: (
        protocol.array_ufunc(anp, ufunc, method, inputs, kwargs))
    Tracer.__array_function__ = lambda self, func, types, args, kwargs: (
        protocol.array_function(anp, func, args, kwargs))
