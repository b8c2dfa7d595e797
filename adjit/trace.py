"""Tracing: running a Python function on Tracers records its primitives as a Graph.

Every ``bind`` goes to the innermost active trace (so nested transforms stage everything into
the graph being built); a tracer of an outer trace that reaches an inner one is captured as a
constvar of the inner graph. With no active trace, ``bind`` runs the reference implementation.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable

import numpy as np

from adjit import tree
from adjit.config import config
from adjit.errors import AdjitTypeError, ConcretizationError, TracerLeakError
from adjit.ir import graph as ir
from adjit.ir.check import check_graph
from adjit.ir.graph import Dim, Eqn, Graph, Literal, ShapedArray, Var
from adjit.ir.rules import abstract_rules, impl_rules, multiple_results, rule

_ADJIT_DIR = os.path.dirname(os.path.abspath(__file__))
_SUPPORTED_DTYPES = {np.dtype(t) for t in ("float64", "float32", "int64", "int32", "bool",
                                           "complex128", "complex64")}


# --------------------------------------------------------------------------- user source lines


def user_frame():
    """(filename, lineno) of the innermost frame outside adjit itself, or None."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_ADJIT_DIR) and "contextlib" not in filename:
            return filename, frame.f_lineno
        frame = frame.f_back
    return None


def format_source(source) -> str:
    if source is None:
        return "<unknown>"
    import linecache

    filename, lineno = source
    text = linecache.getline(filename, lineno).strip()
    where = f"{filename}:{lineno}"
    return f"{where}: {text}" if text else where


# --------------------------------------------------------------------------- abstract values


def get_aval(x) -> ShapedArray:
    if isinstance(x, Tracer):
        return x.aval
    if isinstance(x, (Var, Literal)):
        return x.aval
    if isinstance(x, (bool, np.bool_)):
        return ShapedArray((), np.bool_)
    if isinstance(x, int):
        return ShapedArray((), np.int64)
    if isinstance(x, float):
        return ShapedArray((), np.float64)
    if isinstance(x, complex):
        return ShapedArray((), np.complex128)
    if isinstance(x, (np.ndarray, np.generic)):
        return ShapedArray(np.shape(x), canonical_dtype(x.dtype))
    if is_device_array(x):
        cai = getattr(x, "__cuda_array_interface__", None)
        dtype = np.dtype(cai["typestr"]) if cai is not None else x.dtype
        return ShapedArray(tuple(x.shape), canonical_dtype(dtype))
    raise AdjitTypeError(
        f"adjit: expected an array or a number, got {type(x).__name__} ({x!r:.60})"
    )


def is_device_array(x) -> bool:
    """A GPU array: a numba device array (or the CUDA simulator's), or any object exposing
    ``__cuda_array_interface__`` (CuPy, PyTorch); recognized without importing any of them."""
    return hasattr(x, "__cuda_array_interface__") or (
        hasattr(x, "copy_to_host") and hasattr(x, "shape") and hasattr(x, "dtype"))


def canonical_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype in _SUPPORTED_DTYPES:
        return dtype
    if dtype.kind == "c":
        raise AdjitTypeError(f"adjit: complex arrays of dtype {dtype} are not supported "
                             "(complex64 and complex128 are)")
    if dtype.kind in "iu":
        return np.dtype(np.int64)
    if dtype.kind == "f":
        # float16 and longdouble: Numba compiles neither on the CPU, and computing in another
        # precision would change the result dtype NumPy gives, so say so before any kernel runs.
        raise AdjitTypeError(f"adjit: {dtype} arrays are not supported (only float32 and "
                             f"float64); convert first, e.g. x.astype(np.float32)")
    raise AdjitTypeError(f"adjit: arrays of dtype {dtype} are not supported")


# --------------------------------------------------------------------------- tracers


class Tracer:
    """A value inside a trace: an abstract array standing for the variable ``var``."""

    __slots__ = ("trace", "variable")
    __array_priority__ = 1000

    def __init__(self, trace: GraphTrace, var: Var):
        self.trace = trace
        self.variable = var

    @property
    def aval(self) -> ShapedArray:
        return self.variable.aval

    @property
    def shape(self):
        return self.aval.shape

    @property
    def ndim(self) -> int:
        return self.aval.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype

    @property
    def size(self):
        size = 1
        for d in self.shape:
            size = d * size if isinstance(d, Dim) else size * d
        return size

    def __repr__(self):
        return f"Tracer<{self.aval}>"

    def __len__(self):
        if not self.shape:
            raise AdjitTypeError("adjit: len() of a 0-d traced array")
        return int(self.shape[0])

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _concrete_error(self, what: str, conversion: bool = False):
        made = self.trace.producer.get(self.variable.id)
        origin = ""
        if made is not None:
            origin = f", computed by '{made.prim}' at {format_source(made.source)}"
        elif any(self.variable is v for v in self.trace.invars):
            origin = ", an input of the function being transformed"
        # A conversion is most often a function from outside adjit.numpy (math.sin, a C
        # extension) that wants a Python number: say so, not only the control-flow advice.
        outside = (
            "Functions outside adjit.numpy (math.sin, code that calls float() or np.asarray) "
            "cannot take a traced array: use the adjit.numpy counterpart (adjit.numpy.sin). "
            if conversion else "")
        return ConcretizationError(
            f"adjit: {what} needs the concrete value of a traced {self.aval}{origin}.\n"
            f"  at {format_source(user_frame())}\n"
            "While adjit traces a function its arrays are abstract, so Python control flow "
            "(if/while/and/or) and Python numbers cannot depend on them. " + outside +
            "Use adjit.numpy.where(cond, a, b) to choose between values, or adjit's control-flow "
            "primitives for branches and loops:\n"
            "  adjit.cond(x > 0, lambda x: x, lambda x: -x, x)          # instead of if/else\n"
            "  adjit.fori_loop(0, n, lambda i, x: x + f(x), x)          # instead of for/while "
            "(also adjit.scan, adjit.while_loop, adjit.switch)"
        )

    def __bool__(self):
        raise self._concrete_error("Python control flow (bool())")

    def __float__(self):
        raise self._concrete_error("float()", conversion=True)

    def __int__(self):
        raise self._concrete_error("int()", conversion=True)

    def __index__(self):
        raise self._concrete_error("using it as an index or int", conversion=True)

    def __complex__(self):
        raise self._concrete_error("complex()", conversion=True)

    def __array__(self, dtype=None, copy=None):
        raise self._concrete_error("conversion to a NumPy array", conversion=True)

    def __hash__(self):
        return id(self)

    def __setitem__(self, idx, value):
        raise AdjitTypeError(
            "adjit: traced arrays are immutable; in-place assignment x[idx] = v is not "
            f"supported (at {format_source(user_frame())}). Use x = x.at[idx].set(v) instead."
        )


# --------------------------------------------------------------------------- traces


class GraphTrace:
    """Records equations. ``level`` orders nested traces: the innermost is the largest."""

    def __init__(self, level: int):
        self.level = level
        self.invars: list[Var] = []
        self.eqns: list[Eqn] = []
        self.constvars: list[Var] = []
        self.const_values: list = []
        self._captured: dict[int, Var] = {}
        self.producer: dict[int, Eqn] = {}

    def new_arg(self, aval: ShapedArray) -> Tracer:
        var = Var(aval)
        self.invars.append(var)
        return Tracer(self, var)

    def capture(self, value, aval: ShapedArray) -> Var:
        """A value from outside the trace (an outer tracer or an array) becomes a constvar."""
        key = id(value)
        var = self._captured.get(key)
        if var is None:
            var = Var(aval)
            self._captured[key] = var
            self.constvars.append(var)
            self.const_values.append(value)
        return var

    def to_atom(self, x):
        if isinstance(x, Tracer):
            if x.trace is self:
                return x.variable
            if x.trace.level > self.level or x.trace not in _trace_stack:
                raise TracerLeakError(
                    f"adjit: a traced value {x.aval} escaped the function that made it and was "
                    f"used later (at {format_source(user_frame())}). Return it from the "
                    "function instead of storing it in an outer variable."
                )
            return self.capture(x, x.aval)
        if isinstance(x, (bool, int, float, np.bool_, np.number)) or (
            isinstance(x, np.ndarray) and x.ndim == 0
        ):
            return Literal(x, get_aval(x).dtype)
        if isinstance(x, np.ndarray):
            return self.capture(x, get_aval(x))
        raise AdjitTypeError(
            f"adjit: expected an array or a number, got {type(x).__name__} ({x!r:.60})"
        )

    def bind(self, prim: str, args, params):
        inputs = [self.to_atom(a) for a in args]
        aval = rule(abstract_rules, "shape", prim)(*[a.aval for a in inputs], **params)
        multiple = prim in multiple_results
        outs = [Var(a) for a in aval] if multiple else [Var(aval)]
        eqn = Eqn(prim, inputs, outs, params, user_frame())
        self.eqns.append(eqn)
        for out in outs:
            self.producer[out.id] = eqn
        tracers = [Tracer(self, out) for out in outs]
        return tracers if multiple else tracers[0]


class _TraceStack(threading.local):
    """The traces open in the calling thread, innermost last. Each thread has its own: a thread
    tracing must not stage into, or be staged into by, another thread's trace."""

    def __init__(self):
        self.traces: list[GraphTrace] = []
        # NumPy scalars user code gave adjit.numpy while tracing (np.sum(X) of an outside array
        # computed by NumPy): dispatch reads this to know a trace may have baked a value
        # computed from an outside array. (Literals replayed by the evaluators are NumPy
        # scalars too, but never pass through adjit.numpy.)
        self.numpy_scalars = 0

    def __bool__(self):
        return bool(self.traces)

    def __len__(self):
        return len(self.traces)

    def __getitem__(self, i):
        return self.traces[i]

    def __contains__(self, trace):
        return trace in self.traces

    def append(self, trace):
        with _open_lock:
            _open_traces[0] += 1
        self.traces.append(trace)

    def pop(self):
        with _open_lock:
            _open_traces[0] -= 1
        return self.traces.pop()


_trace_stack = _TraceStack()
# Traces open in all threads: zero lets a call skip asking its thread's stack (the fast path).
_open_traces = [0]
_open_lock = threading.Lock()


def bind(prim: str, *args, **params):
    """Apply a primitive: staged into the innermost trace, or run by its reference rule.
    A primitive with several outputs returns a list."""
    if _trace_stack:
        return _trace_stack[-1].bind(prim, args, params)
    for a in args:
        if isinstance(a, Tracer):
            raise TracerLeakError(
                f"adjit: a traced value {a.aval} was used after its trace ended "
                f"(at {format_source(user_frame())})"
            )
    values = [np.asarray(a) if not isinstance(a, np.ndarray) else a for a in args]
    rule(abstract_rules, "shape", prim)(*[get_aval(v) for v in values], **params)
    out = rule(impl_rules, "impl", prim)(*values, **params)
    if prim in multiple_results:
        return [np.asarray(o) for o in out]
    return np.asarray(out)


def bind_outs(prim: str, *args, **params) -> list:
    """``bind``, always returning the list of outputs (for code that handles any primitive)."""
    out = bind(prim, *args, **params)
    return out if prim in multiple_results else [out]


def bind_eqn(eqn: Eqn, values) -> list:
    """The equation applied again to ``values``: the step of an evaluator that replays a graph
    into the current trace."""
    return bind_outs(eqn.prim, *values, **eqn.params)


@contextlib.contextmanager
def new_trace():
    trace = GraphTrace(len(_trace_stack))
    _trace_stack.append(trace)
    try:
        yield trace
    finally:
        _trace_stack.pop()


def is_tracing() -> bool:
    return bool(_trace_stack)


def note_numpy_scalar() -> None:
    """A NumPy scalar (``np.sum(X)`` computed by NumPy) entered a trace as a constant."""
    if _trace_stack:
        _trace_stack.numpy_scalars += 1


def numpy_scalars_made() -> int:
    """How many NumPy scalars this thread's traces have taken in as constants so far."""
    return _trace_stack.numpy_scalars


def trace_to_graph(fun: Callable, avals) -> tuple[Graph, list]:
    """Trace ``fun(*flat_args) -> list of flat outputs`` into (graph, constvar values)."""
    with new_trace() as trace:
        args = [trace.new_arg(aval) for aval in avals]
        outs = fun(*args)
        outvars = []
        for out in outs:
            atom = trace.to_atom(out)
            if isinstance(atom, Literal):
                # An output must be a variable; a constant result is broadcast into one.
                atom = trace.to_atom(bind("broadcast_in_dim", out, shape=(),
                                          broadcast_dimensions=()))
            outvars.append(atom)
    graph = Graph(trace.constvars, trace.invars, trace.eqns, outvars)
    if config.check_graphs:
        check_graph(graph)
    return graph, trace.const_values


def trace_tree(fun: Callable, in_tree, avals, what: str):
    """Trace ``fun`` on arguments of structure ``in_tree`` whose leaves have ``avals``;
    returns (graph, consts, out_tree). ``what`` names the transform in errors."""
    out_tree_box = []

    def flat_fun(*flat):
        out = fun(*tree.unflatten(in_tree, flat))
        out_leaves, out_tree = tree.flatten(out)
        for leaf in out_leaves:
            if not isinstance(leaf, Tracer):
                _check_output(leaf, what)
        out_tree_box.append(out_tree)
        return out_leaves

    graph, consts = trace_to_graph(flat_fun, avals)
    return graph, consts, out_tree_box[-1]


def _check_output(value, what: str):
    try:
        get_aval(value)
    except AdjitTypeError:
        raise AdjitTypeError(f"adjit: the function given to {what} must return arrays or "
                             f"numbers, got {type(value).__name__}") from None


def trace_closed(fun: Callable, avals) -> Graph:
    """Trace ``fun`` into a graph an equation can carry (a call's body): one that reads nothing
    from outside its inputs. Transformed bodies are closed by construction (the rules make
    scalar literals, never captured arrays)."""
    graph, consts = trace_to_graph(fun, avals)
    if consts:
        raise AssertionError(f"a sub-graph captured {len(consts)} outside values")
    return graph


# --------------------------------------------------------------------------- symbolic shapes


def symbolic_avals(values) -> tuple[list[ShapedArray], dict[str, int]]:
    """Abstract values whose lengths are symbols: equal lengths share one, 0 and 1 stay literal.

    Lengths 0 and 1 stay concrete because NumPy broadcasting treats 1 specially.
    """
    symbols: dict[int, Dim] = {}
    dim_values: dict[str, int] = {}
    avals = []
    for x in values:
        aval = get_aval(x)
        shape = []
        for d in aval.shape:
            if d <= 1:
                shape.append(d)
                continue
            if d not in symbols:
                symbols[d] = Dim(f"n{len(symbols)}")
                dim_values[symbols[d].name] = d
            shape.append(symbols[d])
        avals.append(ShapedArray(shape, aval.dtype))
    return avals, dim_values


def _fix_dims(avals, dim_values, names):
    fixed = []
    for aval in avals:
        shape = [dim_values[d.name] if isinstance(d, Dim) and d.name in names else d
                 for d in aval.shape]
        fixed.append(aval.update(shape=shape))
    return fixed


@contextlib.contextmanager
def dim_values_context(dim_values: dict[str, int]):
    saved_values, saved_guards = dict(ir._dim_values), set(ir._dim_guards)
    ir._dim_values.update(dim_values)
    ir._dim_guards.clear()
    try:
        yield ir._dim_guards
    finally:
        ir._dim_values.clear()
        ir._dim_values.update(saved_values)
        ir._dim_guards.clear()
        ir._dim_guards.update(saved_guards)


# The concrete lengths behind the symbols and the guards (adjit.ir.graph) are one state per
# process: symbolic traces take turns (tracing is Python, under the GIL, so nothing is lost).
_symbolic_lock = threading.RLock()


def trace_symbolic(fun: Callable, values) -> tuple[Graph, list]:
    """Trace for symbolic lengths; lengths that Python code looked at are fixed, then retraced."""
    with _symbolic_lock:
        return _trace_symbolic(fun, values)


def _trace_symbolic(fun: Callable, values) -> tuple[Graph, list]:
    avals, dim_values = symbolic_avals(values)
    for _ in range(len(dim_values) + 1):
        with dim_values_context(dim_values) as guards:
            try:
                graph, consts = trace_to_graph(fun, avals)
                needed = None
            except ir.LengthsNeeded as exc:
                needed = exc
            looked_at = set(guards) & set(dim_values)
        if needed is not None and not looked_at:
            raise needed
        if not looked_at:
            return graph, consts
        avals = _fix_dims(avals, dim_values, looked_at)
        dim_values = {k: v for k, v in dim_values.items() if k not in looked_at}
    raise AssertionError("unreachable: every retrace fixes at least one symbol")
