"""Dispatch: from a call of a transformed function to its compiled kernel.

A :class:`Staged` runs ``body(*args) -> pytree`` traced and compiled. Called on concrete values
it looks up its argument signature (for one scalar argument, a dict keyed by its type straight
to the kernel; for arrays, dtype/rank/layout/writability), traces and compiles once per
signature (an :class:`Executable`), and calls the kernel; called inside another trace it runs
``body``, so its work is staged into that trace (and its target does not matter there).

The user's function is watched (:class:`adjit.freevalues.FreeValues`): a change of what it
reads from outside its arguments drops every traced signature. NumPy arrays it reads from
closures and globals that the trace captured as constvars are inputs of the graph, read afresh
at each call (no copy, no comparison of their content); only a change of what the kernel is
specialised on (shape, dtype, layout, writability) retraces.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import Callable

import numpy as np

from adjit import tree
from adjit.backend import check_parallel, check_target_name, compile_graph
from adjit.collector import collector_paused
from adjit.config import config
from adjit.errors import AdjitError, AdjitTypeError, AdjitValueError
from adjit.freevalues import FreeValues
from adjit.ir.graph import Graph
from adjit.ir.interpret import bind_symbols
from adjit.trace import (
    _open_traces,
    _trace_stack,
    get_aval,
    is_device_array,
    numpy_scalars_made,
    trace_symbolic,
)

# How often a call retraces because a free array changed between the check and the read (a
# thread rebinding it meanwhile) before giving up.
_RETRIES = 3


_NUMBERS = (float, int, bool, complex)


def signature(leaf):
    """What a compiled kernel is specialized on: type, and for arrays dtype, rank and layout
    (for a GPU array, its kind, dtype and rank: the CUDA launch types the layout itself)."""
    if isinstance(leaf, np.ndarray):
        flags = leaf.flags
        return (leaf.dtype, leaf.ndim, flags.c_contiguous, flags.f_contiguous, flags.writeable)
    t = type(leaf)
    if t not in _NUMBERS and is_device_array(leaf):
        return (t, get_aval(leaf).dtype, len(leaf.shape))
    return t


def graph_fits(graph: Graph, inputs) -> bool:
    """Whether ``graph`` serves inputs of these shapes (its constants' values, then its
    inputs'): their lengths are consistent with its symbols and every symbol is >= 2."""
    try:
        lengths = bind_symbols(graph, inputs)
    except AdjitValueError:
        return False
    # A symbol stands for a length >= 2: tracing keeps 0 and 1 literal (broadcasting treats
    # 1 specially) and relies on it (x[1:] is n-1 >= 1 long), so shorter inputs retrace.
    return all(n >= 2 for n in lengths.values())


class FreeInputChanged(AdjitError):
    """A free array read as an input no longer fits the kernel (another shape, dtype or layout,
    or it is gone): the caller retraces."""


# --------------------------------------------------------------------------- executables


class Executable:
    """One traced signature: the graph, its constants, the compiled runner, the output tree.

    ``inputs`` lists the constants that are free arrays: (position, getter, signature, shape),
    read afresh at each call; ``consts`` holds a shape-only stand-in at their positions.
    ``input_keys`` names the free values they are read from."""

    __slots__ = ("graph", "consts", "inputs", "input_keys", "run", "out_tree", "any_arrays",
                 "fast")

    def __init__(self, graph: Graph, consts, out_tree, run, inputs=(), input_keys=frozenset()):
        self.graph = graph
        self.consts = list(consts)
        self.inputs = tuple(inputs)
        self.input_keys = frozenset(input_keys)
        for i, _, _, shape in self.inputs:
            self.consts[i] = np.broadcast_to(np.zeros((), self.consts[i].dtype), shape)
        self.out_tree = out_tree
        # Inputs that are all scalars need no shape check: the signature key says it all.
        self.any_arrays = any(v.aval.shape for v in (*graph.constvars, *graph.invars))
        self.run = run
        self.fast = None

    def _make_fast(self):
        """The scalar fast path: scalars in, one scalar out, straight to the kernel."""
        kernel = getattr(self.run, "kernel", None)
        outs = self.graph.outvars
        if kernel is None or self.any_arrays or self.consts or self.out_tree != tree.LEAF \
                or len(outs) != 1 or outs[0].aval.shape != ():
            return
        result_type = outs[0].aval.dtype.type
        self.fast = lambda *args: result_type(kernel(*args))
        self.fast.parts = (kernel, result_type)

    def matches(self, leaves) -> bool:
        return not self.any_arrays or graph_fits(self.graph, [*self.consts, *leaves])

    def _read_consts(self) -> list:
        consts = list(self.consts)
        for i, getter, sig, shape in self.inputs:
            try:
                value = getter()
            except Exception:
                raise FreeInputChanged("adjit: a free array is gone") from None
            if type(value) is not np.ndarray or value.shape != shape or signature(value) != sig:
                raise FreeInputChanged(
                    f"adjit: a free array changed from {sig} {shape} to {signature(value)} "
                    f"{np.shape(value)} while it was being read")
            consts[i] = value
        return consts

    def __call__(self, leaves):
        consts = self._read_consts() if self.inputs else self.consts
        # The kernel takes 0-d inputs as scalars.
        leaves = [x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x for x in leaves]
        outs = self.run([*consts, *leaves])
        if self.fast is None:
            self._make_fast()
        # A 0-d result on the GPU stays there (a 0-d device array).
        return tree.unflatten(self.out_tree, [o[()] if o.ndim == 0 and type(o) is np.ndarray
                                              else o for o in outs])


def _free_inputs(consts, free: FreeValues):
    """Which of a trace's constants are free arrays, by identity: (inputs, input keys) for
    :class:`Executable`.

    When another array is among the constants (``np.sin(X)`` or ``X.T`` computed by NumPy
    while tracing, an ``np.ones(3)``), it may have been computed from a free array, and the
    graph would keep that old result if the free array changed: then no free array is an input
    key, and the watcher keeps comparing each by identity and content."""
    by_id = {}
    for key, getter, value in free.pending_arrays():
        if type(value) is np.ndarray:
            by_id.setdefault(id(value), (key, getter, value))
    inputs, keys = [], set()
    for i, c in enumerate(consts):
        hit = by_id.get(id(c)) if type(c) is np.ndarray else None
        if hit is None:
            if isinstance(c, np.ndarray):
                return [], set()
            continue
        key, getter, value = hit
        inputs.append((i, getter, signature(value), value.shape))
        keys.add(key)
    return inputs, keys


# --------------------------------------------------------------------------- staging


class Staged:
    """Runs ``body(*args) -> pytree`` traced and compiled for ``target``, caching per input
    signature.

    ``fun``, the user's function, is watched (see :mod:`adjit.freevalues`): a change of a value
    it reads from outside (a rebound name, a changed number, an array changed in place that
    is not an input of the graph, an input array of another shape, dtype or layout) drops
    every traced signature, so a call never runs a stale graph. ``user_args`` picks the user's
    arguments among the body's (jvp's body takes (primals, tangents)), for error messages."""

    def __init__(self, body: Callable, name: str, fun: Callable, *, target: str = "cpu",
                 parallel: bool = False, user_args: Callable | None = None):
        self.body = body
        self.name = name
        self.fun = fun
        self.target = check_target_name(target)
        self.parallel = check_parallel(parallel, self.target)
        self.user_args = user_args or (lambda args: args)
        self._cache: dict = {}
        self._fast: dict = {}     # the same entries, keyed by plain argument signatures
        # One scalar argument's type -> (kernel, result type), read by the entry function.
        self._fast_scalar: dict = {}
        # Tracing and building a signature, once, even when threads ask for it together.
        self._build_lock = threading.RLock()
        self._free: FreeValues | None = None  # as of the last trace; None when nothing is read
        self._watch = False  # whether fun reads anything from outside (no scalar fast path)

    def _forget(self):
        self._cache.clear()
        self._fast.clear()
        self._fast_scalar.clear()
        self._free = None

    def __call__(self, *args):
        if _trace_stack:
            return self.body(*args)
        for _ in range(_RETRIES):
            try:
                return self._dispatch(args)
            except FreeInputChanged:
                with self._build_lock:
                    self._forget()
        return self._dispatch(args)

    def _dispatch(self, args):
        free = self._free
        if free is not None and free.changed():
            with self._build_lock:
                if self._free is not None and self._free.changed():
                    self._forget()
        # Fast path: Python floats and arrays as arguments, keyed without flattening.
        key = []
        for a in args:
            t = type(a)
            if t is float or t is int:
                key.append(t)
            elif t is np.ndarray:
                key.append(signature(a))
            else:
                break
        else:
            key = tuple(key)
            entries = self._fast.get(key)
            if entries is not None:
                for exe in entries:
                    if exe.fast is not None:
                        return exe.fast(*args)
                    if exe.matches(args):
                        result = exe(args)
                        if exe.fast is not None:  # its kernel became ready (config.tiered)
                            self._fast_scalar_for(args, entries)
                        return result
            result, full_key = self._call(args)
            entries = self._fast[key] = self._cache[full_key]
            self._fast_scalar_for(args, entries)
            return result
        return self._call(args)[0]

    def _fast_scalar_for(self, args, entries):
        """Give the entry function's scalar fast path the kernel for one Python number."""
        if len(args) == 1 and entries[0].fast is not None and type(args[0]) in (float, int) \
                and not self._watch:
            self._fast_scalar[type(args[0])] = entries[0].fast.parts

    def _lookup(self, key, leaves):
        for exe in self._cache.get(key, ()):
            # The key holds ranks, not lengths: a graph whose lengths were fixed while
            # tracing serves only those, so every entry checks the shapes it is given.
            if exe.matches(leaves):
                return exe
        return None

    def _call(self, args):
        """Returns (result, the signature key the executable is cached under)."""
        leaves, in_tree = tree.flatten(args)
        key = (in_tree, *map(signature, leaves))
        exe = self._lookup(key, leaves)
        if exe is None:
            with self._build_lock:
                exe = self._lookup(key, leaves)  # another thread may have built it meanwhile
                if exe is None:
                    self._check_args(args)
                    self._check_arity(args)
                    # Why this signature compiles, for ADJIT_LOG_COMPILES.
                    reason = ("first call" if not self._cache else
                              "new lengths (fixed while tracing)" if key in self._cache else
                              "new dtype, rank or layout")
                    free = FreeValues(self.fun)  # what the trace reads (names defined since)
                    exe = self._build(in_tree, leaves, reason, free)
                    self._cache.setdefault(key, []).append(exe)
                    # An array is an input only if every graph reads it as one: a graph that
                    # did not may have read its content while tracing.
                    free.settle(frozenset.intersection(
                        *(e.input_keys for entries in self._cache.values() for e in entries)))
                    self._free = free if free else None
                    if free and not self._watch:
                        self._watch = True
                        self._fast_scalar.clear()
        return exe(leaves), key

    def _check_args(self, args):
        """Strings, None and other objects among the leaves are an AdjitTypeError naming the
        argument, before tracing (not a TypeError from inside the user's function)."""
        user = self.user_args(args)
        named = [(f"argument {i}", arg) for i, arg in enumerate(user)]
        if user is not args:
            named.append(("input", [a for a in args if a is not user]))
        for what, arg in named:
            for leaf in tree.leaves(arg):
                if isinstance(leaf, (np.ndarray, float, int, bool, complex, np.generic)) \
                        or is_device_array(leaf):
                    if not isinstance(leaf, (float, int, bool, complex)):
                        get_aval(leaf)  # complex and object dtypes
                    continue
                raise AdjitTypeError(
                    f"adjit: {self.name} {what} is a {type(leaf).__name__} ({leaf!r:.60}); "
                    "expected an array or a number (or a pytree of them)")

    def _check_arity(self, args):
        """A call with the wrong number of arguments is an AdjitTypeError, not a TypeError
        from deep inside tracing."""
        fun = self.fun
        args = self.user_args(args)
        try:
            sig = inspect.signature(fun)
        except (TypeError, ValueError):  # a builtin without a signature
            return
        try:
            sig.bind(*args)
        except TypeError as exc:
            name = getattr(fun, "__name__", type(fun).__name__)
            raise AdjitTypeError(f"adjit: {self.name} of {name}{sig} called with {len(args)} "
                                 f"argument(s): {exc}") from None

    def _build(self, in_tree, leaves, reason: str, free: FreeValues) -> Executable:
        out_tree_box = []

        def flat_body(*flat):
            out = self.body(*tree.unflatten(in_tree, flat))
            out_leaves, out_tree = tree.flatten(out)
            out_tree_box.append(out_tree)
            return out_leaves

        scalars_before = numpy_scalars_made()
        try:
            with collector_paused():  # the trace keeps most objects it makes (collector.py)
                graph, consts = trace_symbolic(flat_body, leaves)
        except RecursionError as exc:
            raise AdjitError(
                f"adjit: tracing {self.name} hit Python's recursion limit ({exc}). A recursive "
                "function must stop on a Python value (a depth argument), not on a traced "
                "value, and recurse fewer than sys.getrecursionlimit() times") from None
        # A NumPy scalar made into a literal (np.sum(X) computed by NumPy while tracing) may come
        # from a free array: then none is an input and each stays compared by content.
        baked_scalars = numpy_scalars_made() != scalars_before
        inputs, keys = ([], set()) if baked_scalars else _free_inputs(consts, free)
        run = compile_graph(graph, target=self.target, jit=config.jit, reason=reason,
                            parallel=self.parallel)
        return Executable(graph, consts, out_tree_box[-1], run, inputs, keys)


def entry_function(staged: Staged, fun) -> Callable:
    """The function users call: a closure (cheaper to call than an object's __call__) whose
    fastest path, one scalar in and one scalar out, is a dict lookup and the kernel. It has the
    name and docstring of ``fun`` (not its __dict__: fun may be another entry function)."""
    fast_scalar = staged._fast_scalar
    open_traces = _open_traces
    slow = staged.__call__

    def entry(*args):
        if not open_traces[0] and len(args) == 1:
            fast = fast_scalar.get(type(args[0]))
            if fast is not None:
                kernel, result_type = fast
                return result_type(kernel(args[0]))
        return slow(*args)

    functools.update_wrapper(entry, fun, updated=())
    entry.staged = staged
    return entry


# --------------------------------------------------------------------------- per-function cache

# Per-function caches for the transformations that are called, not decorated (jvp, vjp,
# linearize): a loop calling adjit.jvp(f, ...) traces f once, not every time. Keyed by the
# function, then by the transformation and all its options (two never share an entry).
call_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached_staged(fun, key: tuple, make: Callable[[], Staged]) -> Staged:
    """The Staged built by ``make`` for ``fun`` under ``key``, built once."""
    try:
        per_fun = call_cache.setdefault(fun, {})
    except TypeError:  # not weak-referenceable (a builtin): no cache
        return make()
    staged = per_fun.get(key)
    if staged is None:
        staged = per_fun.setdefault(key, make())
    return staged
