"""The values a function reads from outside its arguments, watched so that a call never runs a
stale graph.

A function's free values are its closure cells and the globals its code names, and, through
any user function (not a library's) found there, that function's too; a ``custom_jvp`` or
``custom_vjp`` function adds its rules. Tracing reads them, so each is watched in one of these
ways (a :class:`_Read`'s ``kind``):

    value   a number, string or None: baked into the graph as a literal, compared by value
    id      a list, dict, function or other object, and a tuple: compared by identity (an
            element or attribute changed in place is not seen; pass such values as arguments)
    input   a NumPy array the graph reads as an input (the trace captured it as a constvar):
            read afresh at each call by the executables (:mod:`adjit.dispatch`), which check
            what their kernels are specialised on (shape, dtype, layout, writability); nothing
            is kept or compared here
    array   any other NumPy array (plain NumPy code read it while tracing, e.g. ``np.sum(X)``
            on the concrete array, so its content is baked in): a copy is kept and compared
            by identity and content at every call

Arrays start ``pending``: which of them the graph reads as inputs is known only after the trace
(:meth:`FreeValues.settle`). Arrays inside tuples are watched one by one, like names.

A graph with any other array among its constants, or whose trace took in a NumPy scalar
(``np.sum(X)``, ``X[0]``: counted by ``adjit.trace.note_numpy_scalar``), reads none of its free
arrays as inputs: that value may have been computed from one by NumPy while tracing
(``np.sin(X)``, ``X.T``, ``np.sum(X)``), so they all stay compared by content
(:mod:`adjit.dispatch`). The known gap: a Python number computed from an input array while
tracing (``float(X[0])``) or a Python decision on its values (``if X.max() > 1:``) is baked
into the graph and not seen to change; nothing tells such a number from the user's own.
"""

from __future__ import annotations

import functools
import sys
import types

import numpy as np

from adjit.custom import custom_jvp, custom_vjp

# Modules whose functions are not followed when looking for a function's free values: their
# globals are library state, not the user's.
_LIBRARIES = frozenset({"adjit", "numpy", "scipy", "numba", "llvmlite", "builtins",
                        *sys.stdlib_module_names})
_SCALARS = (bool, int, float, complex, str, bytes, type(None), np.generic)
# What a getter raises when what it reads is gone: an empty cell, an undefined global, a rule
# removed from a custom function, a tuple rebound to a shorter one or to a non-tuple.
_GONE = (KeyError, ValueError, NameError, AttributeError, IndexError, TypeError)
_MAX_FUNCTIONS = 200
_MAX_TUPLE = 64


class _Read:
    """One free value: ``getter()`` reads it now; ``key`` names the place it is read from
    (stable across walks of the same function); ``value`` is what it was, ``copy`` an array's
    content when ``kind`` is "array"."""

    __slots__ = ("key", "getter", "kind", "value", "copy")

    def __init__(self, key, getter, kind, value):
        self.key, self.getter, self.kind, self.value, self.copy = key, getter, kind, value, None

    def same(self) -> bool:
        try:
            value = self.getter()
        except _GONE:
            return False
        kind, old = self.kind, self.value
        if kind == "value":
            return type(old) is type(value) and (old == value or (old != old and value != value))
        if kind == "array":
            return (value is old and value.dtype == self.copy.dtype
                    and value.shape == self.copy.shape and _same_bits(value, self.copy))
        return value is old  # "id"


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays of one dtype and shape hold the same bits. Stricter than equal
    values (-0.0 and 0.0, or two NaN payloads, differ), which costs at most a new trace, and
    40 times faster than ``np.array_equal(equal_nan=True)`` on float64, which a call pays for
    each array kept: 1 ms on 10^5 elements, against 27 us."""
    size = a.dtype.itemsize
    if size in (1, 2, 4, 8) and not a.dtype.hasobject:
        bits = np.dtype(f"u{size}")
        return bool(np.array_equal(a.view(bits), b.view(bits)))
    return bool(np.array_equal(a, b, equal_nan=True))  # complex, long double, structured


def _library(fun) -> bool:
    module = getattr(fun, "__module__", None)
    if module is None:  # a Python function made by exec() without __name__ is the user's
        return not isinstance(fun, types.FunctionType)
    return module.split(".")[0] in _LIBRARIES and not hasattr(fun, "staged")


def _names(code) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


class FreeValues:
    """The free values of ``fun`` (see the module's docstring), each with how it is watched.
    :meth:`changed` says whether any of them changed in a way that needs a new trace."""

    __slots__ = ("reads",)

    def __init__(self, fun):
        self.reads: list[_Read] = []
        self._walk(fun, set())

    def __bool__(self):
        return bool(self.reads)

    # ------------------------------------------------------------------ walking

    def _watch(self, key, getter, seen):
        try:
            value = getter()
        except _GONE:
            return
        if isinstance(value, (types.ModuleType, type)) or (callable(value) and _library(value)):
            return  # np, anp, np.sin, a class: not the user's data
        if isinstance(value, _SCALARS):
            self.reads.append(_Read(key, getter, "value", value))
        elif isinstance(value, np.ndarray):
            self.reads.append(_Read(key, getter, "pending", value))
        else:
            self.reads.append(_Read(key, getter, "id", value))
            if isinstance(value, tuple) and len(value) <= _MAX_TUPLE:
                # Immutable, so its identity covers its elements, except arrays changed in place.
                for i, item in enumerate(value):
                    if isinstance(item, (np.ndarray, tuple)):
                        self._watch((*key, i), lambda getter=getter, i=i: getter()[i], seen)
            elif callable(value):
                self._walk(value, seen)

    def _walk(self, fun, seen):
        if id(fun) in seen or len(seen) > _MAX_FUNCTIONS:
            return
        seen.add(id(fun))
        if isinstance(fun, functools.partial):
            self._walk(fun.func, seen)
            return
        if isinstance(fun, types.MethodType):
            self._walk(fun.__func__, seen)
            return
        wrapped = getattr(fun, "__wrapped__", None)  # an adjit entry function, a decorator
        if wrapped is not None:
            self._walk(wrapped, seen)
        if hasattr(fun, "staged"):
            return  # an adjit entry function: its own closure is adjit's
        if isinstance(fun, (custom_jvp, custom_vjp)):
            # The rules are read when the function is differentiated; defining new ones counts.
            for attr in ("jvp", "fwd", "bwd"):
                if hasattr(fun, attr):
                    self._watch(("attr", id(fun), attr),
                                lambda fun=fun, attr=attr: getattr(fun, attr), seen)
        if not isinstance(fun, types.FunctionType) or _library(fun):
            return
        for cell in fun.__closure__ or ():
            self._watch(("cell", id(cell)), lambda cell=cell: cell.cell_contents, seen)
        glob = fun.__globals__
        for name in sorted(_names(fun.__code__)):
            if name in glob:
                self._watch(("global", id(glob), name), lambda name=name: glob[name], seen)

    # ------------------------------------------------------------------ after the trace

    def pending_arrays(self):
        """(key, getter, value) of each array not yet settled, in the order they were found."""
        return [(r.key, r.getter, r.value) for r in self.reads if r.kind == "pending"]

    def settle(self, inputs) -> None:
        """The arrays whose keys are in ``inputs`` are read by every graph as inputs: forget
        them (the executables check them); keep a copy of every other one."""
        for r in self.reads:
            if r.kind != "pending":
                continue
            if r.key in inputs:
                r.kind, r.value = "input", None
            else:
                r.kind, r.copy = "array", r.value.copy()

    def changed(self) -> bool:
        for r in self.reads:
            if r.kind != "input" and not r.same():
                return True
        return False
