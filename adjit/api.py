"""The public transformations. Each is a thin composition of stages:

    trace the user's function -> transform its graph (jvp, linearize + transpose) by tracing a
    function that evaluates it with the rules -> run the result (compiled, or interpreted).

Called on concrete arrays, a transformed function traces once per input signature and caches
what it built; called inside another trace, it stages its work into that trace, so any
composition (``grad(grad(f))``, ``jit(grad(f))``) becomes one graph.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import types
import weakref
from collections.abc import Callable

import numpy as np

from adjit import tree
from adjit.ad import jvp_eval, vjp_eval
from adjit.backend import compile_graph
from adjit.batching import vmap_body
from adjit.config import config
from adjit.errors import AdjitError, AdjitTypeError, AdjitValueError
from adjit.ir.graph import Graph
from adjit.ir.interpret import bind_symbols
from adjit.primitives import elementwise as ew
from adjit.primitives.registry import Zero
from adjit.primitives.structural import instantiate
from adjit.trace import (
    Tracer,
    _open_traces,
    _trace_stack,
    get_aval,
    trace_symbolic,
    trace_tree,
)

# --------------------------------------------------------------------------- staging and caching


class _Executable:
    """One traced signature: the graph, its constants, the compiled runner, the output tree."""

    __slots__ = ("graph", "consts", "run", "out_tree", "in_avals", "any_arrays", "fast")

    def __init__(self, graph: Graph, consts, out_tree, reason: str = "first call"):
        self.graph = graph
        self.consts = list(consts)
        self.out_tree = out_tree
        self.in_avals = graph.in_avals
        # Inputs that are all scalars need no shape check: the signature key says it all.
        self.any_arrays = any(v.aval.shape for v in (*graph.constvars, *graph.invars))
        self.run = compile_graph(graph, jit=config.jit, reason=reason)
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
        if not self.any_arrays:
            return True
        try:
            lengths = bind_symbols(self.graph, [*self.consts, *leaves])
        except AdjitValueError:
            return False
        # A symbol stands for a length >= 2: tracing keeps 0 and 1 literal (broadcasting treats
        # 1 specially) and relies on it (x[1:] is n-1 >= 1 long), so shorter inputs retrace.
        return all(n >= 2 for n in lengths.values())

    def __call__(self, leaves):
        # The kernel takes 0-d inputs as scalars.
        leaves = [x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x for x in leaves]
        outs = self.run([*self.consts, *leaves])
        if self.fast is None:
            self._make_fast()
        return tree.unflatten(self.out_tree, [o[()] if o.ndim == 0 else o for o in outs])


def _signature(leaf):
    """What a compiled kernel is specialized on: type, and for arrays dtype, rank and layout."""
    if isinstance(leaf, np.ndarray):
        flags = leaf.flags
        return (leaf.dtype, leaf.ndim, flags.c_contiguous, flags.f_contiguous, flags.writeable)
    return type(leaf)


def _check_leaf(leaf):
    if not isinstance(leaf, (np.ndarray, float, int, bool, np.generic)):
        get_aval(leaf)  # raises a clear error for strings, None and other objects
    if isinstance(leaf, (np.ndarray, np.generic)):
        get_aval(leaf)  # complex and object dtypes


class Staged:
    """Runs ``body(*args) -> pytree`` traced and compiled, caching per input signature.

    ``fun``, the user's function, is watched: the values it reads from outside (closure
    cells, globals, and those of the functions it reaches through them; see
    :class:`_FreeValues`) are compared at every call with what they were when it was traced,
    and any change drops every traced signature, so a call never runs a stale graph."""

    def __init__(self, body: Callable, name: str, fun: Callable | None = None,
                 user_args: Callable | None = None):
        self.body = body
        self.name = name
        self.fun = fun
        # the user's arguments among the body's (jvp's body takes (primals, tangents))
        self.user_args = user_args or (lambda args: args)
        self._cache: dict = {}
        self._fast: dict = {}     # the same entries, keyed by plain argument signatures
        # One scalar argument's type -> (kernel, result type), read by the entry function.
        self._fast_scalar: dict = {}
        # Tracing and building a signature, once, even when threads ask for it together.
        self._build_lock = threading.RLock()
        self._free = _FreeValues(fun) if fun is not None else None
        self._watch = bool(self._free)

    def _forget(self):
        self._cache.clear()
        self._fast.clear()
        self._fast_scalar.clear()
        self._free = _FreeValues(self.fun)

    def __call__(self, *args):
        if _trace_stack:
            return self.body(*args)
        if self._watch and self._free.changed():
            with self._build_lock:
                if self._free.changed():
                    self._forget()
        # Fast path: Python floats and arrays as arguments, keyed without flattening.
        key = []
        for a in args:
            t = type(a)
            if t is float or t is int:
                key.append(t)
            elif t is np.ndarray:
                key.append(_signature(a))
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
                        return exe(args)
            result, full_key = self._call(args)
            entries = self._fast[key] = self._cache[full_key]
            if len(args) == 1 and entries[0].fast is not None and type(args[0]) in (float, int) \
                    and not self._watch:
                self._fast_scalar[type(args[0])] = entries[0].fast.parts
            return result
        return self._call(args)[0]

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
        key = (in_tree, *map(_signature, leaves))
        exe = self._lookup(key, leaves)
        if exe is None:
            with self._build_lock:
                exe = self._lookup(key, leaves)  # another thread may have built it meanwhile
                if exe is None:
                    for leaf in leaves:
                        _check_leaf(leaf)
                    self._check_arity(args)
                    if self.fun is not None:  # what the trace will read (names defined since)
                        self._free = _FreeValues(self.fun)
                        if self._free and not self._watch:
                            self._watch = True
                            self._fast_scalar.clear()
                    # Why this signature compiles, for ADJIT_LOG_COMPILES.
                    reason = ("first call" if not self._cache else
                              "new lengths (fixed while tracing)" if key in self._cache else
                              "new dtype, rank or layout")
                    exe = self._build(in_tree, leaves, reason)
                    self._cache.setdefault(key, []).append(exe)
        return exe(leaves), key

    def _check_arity(self, args):
        """A call with the wrong number of arguments is an AdjitTypeError, not a TypeError
        from deep inside tracing."""
        fun = self.fun
        if fun is None:
            return
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

    def _build(self, in_tree, leaves, reason: str = "first call") -> _Executable:
        out_tree_box = []

        def flat_body(*flat):
            out = self.body(*tree.unflatten(in_tree, flat))
            out_leaves, out_tree = tree.flatten(out)
            out_tree_box.append(out_tree)
            return out_leaves

        try:
            graph, consts = trace_symbolic(flat_body, leaves)
        except RecursionError as exc:
            raise AdjitError(
                f"adjit: tracing {self.name} hit Python's recursion limit ({exc}). A recursive "
                "function must stop on a Python value (a depth argument), not on a traced "
                "value, and recurse fewer than sys.getrecursionlimit() times") from None
        return _Executable(graph, consts, out_tree_box[-1], reason)


# --------------------------------------------------------------------------- closures

# Modules whose functions are not followed when looking for a function's free values: their
# globals are library state, not the user's.
_LIBRARIES = frozenset({"adjit", "numpy", "scipy", "numba", "llvmlite", "builtins",
                        *sys.stdlib_module_names})
_SCALARS = (bool, int, float, complex, str, bytes, type(None), np.generic)


def _snapshot(value):
    """What is remembered of a free value: its content for numbers, strings, arrays and
    tuples of them; otherwise only its identity."""
    if isinstance(value, _SCALARS):
        return ("value", value)
    if isinstance(value, np.ndarray):
        return ("array", value, value.copy(), value.dtype, value.shape)
    if isinstance(value, tuple) and len(value) <= 64:
        return ("seq", value, type(value), [_snapshot(v) for v in value])
    # Lists, dicts and other objects by identity: a function may well append to a list it
    # closes over while traced (to count its traces), and that must not retrace it.
    return ("id", value)


def _same(snap, value) -> bool:
    kind = snap[0]
    if kind == "value":
        old = snap[1]
        return type(old) is type(value) and (old == value or (old != old and value != value))
    if kind == "array":
        return (value is snap[1] and value.dtype == snap[3] and value.shape == snap[4]
                and np.array_equal(value, snap[2], equal_nan=True))
    if kind == "seq":
        return (value is snap[1] and len(value) == len(snap[3])
                and all(_same(s, v) for s, v in zip(snap[3], value)))
    return value is snap[1]


def _library(fun) -> bool:
    module = getattr(fun, "__module__", None) or "builtins"
    return module.split(".")[0] in _LIBRARIES and not hasattr(fun, "staged")


def _names(code) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


class _FreeValues:
    """The values ``fun`` reads from outside its arguments when traced: its closure cells and
    the globals its code names, and, through any user function (not a library's) found there,
    that function's too. Tracing bakes these into the graph (a Python number becomes a
    literal, a NumPy expression over them a constant), so :meth:`changed` compares them with
    what they were: a rebound name, a changed number, or an array changed in place (compared
    by content) means retrace. Lists, dicts and other objects are compared by identity only:
    an element or attribute changed in place is not seen (pass such values as arguments)."""

    __slots__ = ("reads",)

    def __init__(self, fun):
        self.reads = []  # (getter, snapshot)
        self._walk(fun, set())

    def __bool__(self):
        return bool(self.reads)

    def _watch(self, getter, seen):
        try:
            value = getter()
        except (KeyError, ValueError, NameError):  # an empty cell, an undefined global
            return
        if isinstance(value, (types.ModuleType, type)) or (callable(value) and _library(value)):
            return  # np, anp, np.sin, a class: not the user's data
        self.reads.append((getter, _snapshot(value)))
        if callable(value):
            self._walk(value, seen)

    def _walk(self, fun, seen):
        if id(fun) in seen or len(seen) > 200:
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
        if not isinstance(fun, types.FunctionType):
            return
        if _library(fun):
            return
        for cell in fun.__closure__ or ():
            self._watch(lambda cell=cell: cell.cell_contents, seen)
        glob = fun.__globals__
        for name in sorted(_names(fun.__code__)):
            if name in glob:
                self._watch(lambda name=name: glob[name], seen)

    def changed(self) -> bool:
        for getter, snap in self.reads:
            try:
                value = getter()
            except (KeyError, ValueError, NameError):
                return True
            if not _same(snap, value):
                return True
        return False


def _named_like(staged: Staged, fun) -> Callable:
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


def _trace_flat(fun: Callable, args, what: str):
    """Trace ``fun(*args)``; returns (graph, consts, out_tree) over the flat leaves of args."""
    leaves, in_tree = tree.flatten(args)
    graph, consts, out_tree = trace_tree(fun, in_tree, [get_aval(x) for x in leaves], what)
    return graph, consts, out_tree, leaves


# --------------------------------------------------------------------------- argnums


def _normalize_argnums(argnums, nargs: int, what: str):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for i in nums:
        if not isinstance(i, int) or not -nargs <= i < nargs:
            raise AdjitValueError(
                f"adjit: {what} argnums={argnums!r} does not fit a call with {nargs} arguments")
    return single, tuple(i % nargs for i in nums)


def _diff_mask(args, argnums, what: str):
    """Which flat leaves are differentiated; integer inputs there are an error."""
    mask = []
    for i, arg in enumerate(args):
        arg_leaves = tree.leaves(arg)
        for leaf in arg_leaves:
            differentiated = i in argnums
            if differentiated and not get_aval(leaf).is_float:
                raise AdjitTypeError(
                    f"adjit: {what} needs floating-point inputs, but argument {i} has dtype "
                    f"{get_aval(leaf).dtype}; pass it as float (e.g. 1.0, or x.astype(float)) "
                    "or leave it out of argnums")
            mask.append(differentiated)
    return mask


# --------------------------------------------------------------------------- transformations


def _value_and_grad_body(fun, argnums, has_aux, what):
    def body(*args):
        single, nums = _normalize_argnums(argnums, len(args), what)
        diff = _diff_mask(args, nums, what)

        def scalar_fun(*a):
            out = fun(*a)
            aux = None
            if has_aux:
                if not (isinstance(out, (tuple, list)) and len(out) == 2):
                    raise AdjitTypeError(
                        f"adjit: with has_aux=True the function given to {what} must return a "
                        "pair (output, aux)")
                out, aux = out
            if isinstance(out, (tuple, list, dict)) or out is None or isinstance(out, str):
                raise AdjitTypeError(
                    f"adjit: {what} needs a function returning a scalar, but it returned "
                    f"{type(out).__name__}; use adjit.vjp or jacrev for other outputs")
            aval = get_aval(out)
            if aval.shape != () or not aval.is_float:
                raise AdjitTypeError(
                    f"adjit: {what} needs a function returning a float scalar, but it returned "
                    f"an array {aval}; use adjit.vjp or jacrev for non-scalar outputs")
            return (out, aux)

        graph, consts, out_tree, leaves = _trace_flat(scalar_fun, args, what)
        outs, backward = vjp_eval(graph, consts, leaves, diff)
        one = np.ones((), get_aval(outs[0]).dtype)
        cts = backward([one] + [Zero(get_aval(o)) for o in outs[1:]])
        grads_flat = iter(instantiate(ct) for ct in cts)
        grads = []
        for i, arg in enumerate(args):
            if i in nums:
                arg_leaves, arg_tree = tree.flatten(arg)
                grads.append((i, tree.unflatten(arg_tree, [next(grads_flat) for _ in arg_leaves])))
        by_num = dict(grads)
        grad_out = by_num[nums[0]] if single else tuple(by_num[i] for i in nums)
        value, aux = tree.unflatten(out_tree, outs)
        return ((value, aux) if has_aux else value), grad_out

    return body


def _transform_decorator(make):
    """Lets a transformation be used as ``t(f)``, ``@t`` and ``@t(argnums=1)``."""

    @functools.wraps(make)
    def wrapper(fun=None, argnums=0, has_aux=False):
        if fun is None:
            return lambda f: make(f, argnums, has_aux)
        if not callable(fun):
            raise AdjitTypeError(f"adjit: {make.__name__} expects a function, got "
                                 f"{type(fun).__name__}")
        return make(fun, argnums, has_aux)

    return wrapper


@_transform_decorator
def value_and_grad(fun, argnums=0, has_aux=False):
    """``f -> (x -> (f(x), df/dx))``; with has_aux, f returns (value, aux) and so does this."""
    staged = Staged(_value_and_grad_body(fun, argnums, has_aux, "value_and_grad"),
                    "value_and_grad", fun)
    return _named_like(staged, fun)


@_transform_decorator
def grad(fun, argnums=0, has_aux=False):
    """The gradient of a scalar function: ``grad(f)(x)`` is df/dx, shaped like x."""
    body = _value_and_grad_body(fun, argnums, has_aux, "grad")

    def grad_body(*args):
        value, g = body(*args)
        return (g, value[1]) if has_aux else g

    staged = Staged(grad_body, "grad", fun)
    return _named_like(staged, fun)


def jit(fun: Callable) -> Callable:
    """Compile ``fun``: traced once per input signature, then run as a kernel."""
    staged = Staged(lambda *args: fun(*args), "jit", fun)
    return _named_like(staged, fun)


# Per-function caches for the transformations that are called, not decorated (jvp, vjp):
# a loop calling adjit.jvp(f, ...) traces f once, not every time.
_call_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached(fun, kind: str, make: Callable) -> Staged:
    try:
        per_fun = _call_cache.setdefault(fun, {})
    except TypeError:  # not weak-referenceable (a builtin): no cache
        return make()
    if kind not in per_fun:
        per_fun[kind] = make()
    return per_fun[kind]


def _jvp_body(fun):
    def body(primals, tangents):
        graph, consts, out_tree, leaves = _trace_flat(fun, primals, "jvp")
        t_leaves, t_tree = tree.flatten(tangents)
        if t_tree != tree.flatten(primals)[1]:
            raise AdjitValueError("adjit: jvp tangents must have the structure of the primals")
        tangents_in = []
        for p, t in zip(leaves, t_leaves):
            pa, ta = get_aval(p), get_aval(t)
            if not pa.is_float:
                tangents_in.append(Zero(pa))
                continue
            if pa != ta and not (ta.shape == pa.shape or Tracer in (type(p), type(t))):
                raise AdjitValueError(f"adjit: jvp tangent {ta} does not match primal {pa}")
            tangents_in.append(ew.convert_element_type(t, pa.dtype))
        outs, t_outs = jvp_eval(graph, consts, leaves, tangents_in)
        return (tree.unflatten(out_tree, outs),
                tree.unflatten(out_tree, [instantiate(t) for t in t_outs]))

    return body


def jvp(fun: Callable, primals, tangents):
    """Forward mode: ``(fun(*primals), J(primals) @ tangents)``."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise AdjitTypeError("adjit: jvp takes primals and tangents as tuples: "
                             "jvp(f, (x,), (v,))")
    if len(primals) != len(tangents):
        raise AdjitValueError(f"adjit: jvp got {len(primals)} primals and {len(tangents)} "
                              "tangents")
    staged = _cached(fun, "jvp", lambda: Staged(_jvp_body(fun), "jvp", fun, lambda args: args[0]))
    return staged(tuple(primals), tuple(tangents))


def _vjp_body(fun, has_aux):
    def body(primals, cts):
        def fun_main(*a):
            out = fun(*a)
            return out if not has_aux else out[0]

        graph, consts, out_tree, leaves = _trace_flat(fun_main, primals, "vjp")
        diff = [get_aval(x).is_float for x in leaves]
        ct_leaves, ct_tree = tree.flatten(cts)
        if ct_tree != out_tree:
            raise AdjitValueError("adjit: the cotangent passed to a vjp function must have the "
                                  "structure of the function's output")
        outs, backward = vjp_eval(graph, consts, leaves, diff)
        ct_in = []
        for o, c in zip(outs, ct_leaves):
            oa = get_aval(o)
            if get_aval(c).shape != oa.shape and Tracer not in (type(c), type(o)):
                raise AdjitValueError(f"adjit: cotangent {get_aval(c)} does not match output "
                                      f"{oa}")
            ct_in.append(ew.convert_element_type(c, oa.dtype) if oa.is_float else Zero(oa))
        grads = iter(backward(ct_in))
        flat = [instantiate(next(grads)) if d else np.zeros(np.shape(x), get_aval(x).dtype)
                for x, d in zip(leaves, diff)]
        per_arg, it = [], iter(flat)
        for p in primals:
            p_leaves, p_tree = tree.flatten(p)
            per_arg.append(tree.unflatten(p_tree, [next(it) for _ in p_leaves]))
        return tuple(per_arg)

    return body


def vjp(fun: Callable, *primals, has_aux: bool = False):
    """Reverse mode: ``(fun(*primals), f_vjp)`` with ``f_vjp(ct)`` the cotangents of primals."""
    forward = _cached(fun, "jit", lambda: Staged(lambda *a: fun(*a), "jit", fun))
    out = forward(*primals)
    backward = _cached(fun, f"vjp{has_aux}", lambda: Staged(_vjp_body(fun, has_aux), "vjp", fun,
                                                                  lambda args: args[0]))

    def f_vjp(ct):
        return backward(tuple(primals), ct)

    if has_aux:
        out, aux = out
        return out, f_vjp, aux
    return out, f_vjp


def linearize(fun: Callable, *primals):
    """``(fun(*primals), f_jvp)`` with ``f_jvp(*tangents)`` the JVP at ``primals``, a linear map.

    ``f_jvp`` is one staged function of the tangents (compiled once per tangent signature, and
    one graph inside other transforms); it recomputes the coefficients it needs from the
    primals, fused with the tangent arithmetic, rather than storing them.
    """
    forward = _cached(fun, "jit", lambda: Staged(lambda *a: fun(*a), "jit"))
    out = forward(*primals)
    jvp_body = _jvp_body(fun)
    linear = _cached(fun, "linearize", lambda: Staged(
        lambda p, t: jvp_body(p, t)[1], "linearize"))

    def f_jvp(*tangents):
        if len(tangents) != len(primals):
            raise AdjitValueError(f"adjit: the linearized function takes {len(primals)} "
                                  f"tangents, got {len(tangents)}")
        return linear(tuple(primals), tuple(tangents))

    return out, f_jvp


def stop_gradient(x):
    """``x`` unchanged, with a zero derivative (a pytree of arrays works too)."""
    return tree.tree_map(lambda leaf: ew.stop_gradient(leaf), x)


def make_graph(fun: Callable) -> Callable:
    """``make_graph(f)(*args)`` returns the traced graph (printable) of ``f`` at those args."""

    def build(*args):
        leaves, in_tree = tree.flatten(args)

        def flat_fun(*flat):
            return tree.leaves(fun(*tree.unflatten(in_tree, flat)))

        graph, _ = trace_symbolic(flat_fun, leaves)
        return graph

    return build


def vmap(fun: Callable = None, in_axes=0, out_axes=0):
    """Vectorize ``fun`` over an axis of its inputs: ``vmap(f)(xs)[i] == f(xs[i])``.

    ``in_axes`` picks the mapped axis of each argument (None: the same value for every
    example); ``out_axes`` where the batch axis goes in each output. Compiled to one kernel.
    """
    if fun is None:
        return lambda f: vmap(f, in_axes, out_axes)
    if not callable(fun):
        raise AdjitTypeError(f"adjit: vmap expects a function, got {type(fun).__name__}")
    return _named_like(Staged(vmap_body(fun, in_axes, out_axes), "vmap", fun), fun)

