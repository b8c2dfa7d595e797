"""The IR: a flat graph of SSA equations over typed variables.

Grammar (this is also what the printer writes)::

    graph   ::= "{ lambda " [vars] " ; " [vars] " ." eqn* " in (" atoms ") }"
    vars    ::= var ("," var)*             -- constvars before ";", invars after
    var     ::= name ":" type
    type    ::= dtype "[" [dim ("," dim)*] "]"        e.g. f64[n0,3]
    dim     ::= int | symbol ["+" int | "-" int]       e.g. 3, n0, n0-1
    eqn     ::= var ("," var)* " = " prim [params] atom*
    params  ::= "[" key "=" value ("," key "=" value)* "]"
    value   ::= graph | python literal                 a graph param is printed indented
    atom    ::= name | literal                         literals are scalars: 1.0:f64

Every variable is assigned exactly once, before it is used. Each equation applies one primitive
(a name looked up in the rule tables of ``adjit.ir.rules``) and has a tuple of outputs (one,
except for primitives in ``multiple_results``). A parameter may hold graphs (a call's body,
later a loop's): ``subgraphs(eqn)`` lists them, and every stage (printer, checker, passes,
transformations) recurses through them. A graph inside an equation is closed: it has no
constvars and reads only its invars.

Shapes may hold symbolic dimensions (``Dim``): a graph traced for ``f64[n0]`` serves every
length, which is what lets the compiler build one kernel per (dtype, rank). A symbol stands for
the same length wherever it appears; ``Dim("n0", -1)`` is that length minus one.
"""

from __future__ import annotations

import itertools

import numpy as np

from adjit.errors import AdjitValueError, ConcretizationError

# --------------------------------------------------------------------------- symbolic dims


class Dim:
    """A symbolic array length, optionally shifted by a constant (``n0-1`` after ``x[1:]``).

    Python code that needs the number itself (``range(x.shape[0])``, ``x.shape[0] == 3``)
    gets it, and the trace records a guard: the graph is then retraced with that length fixed,
    so the result is always right and only as general as the code allows.
    """

    __slots__ = ("name", "offset")

    def __init__(self, name: str, offset: int = 0):
        self.name = name
        self.offset = offset

    def __repr__(self):
        if self.offset == 0:
            return self.name
        return f"{self.name}{self.offset:+d}"

    def __hash__(self):
        return hash((self.name, self.offset))

    def __eq__(self, other):
        if isinstance(other, Dim):
            return self.name == other.name and self.offset == other.offset
        if isinstance(other, (int, np.integer)):
            return self.concrete() == other
        return NotImplemented

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def concrete(self) -> int:
        return concrete_value(self.name) + self.offset

    def __index__(self):
        return self.concrete()

    __int__ = __index__

    def __float__(self):
        return float(self.concrete())

    def __add__(self, other):
        if isinstance(other, (int, np.integer)):
            return Dim(self.name, self.offset + int(other))
        return dim_add(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return dim_sub(self, other)

    def __rsub__(self, other):
        return dim_sub(other, self)

    def __mul__(self, other):
        if isinstance(other, (int, np.integer)) and other == 1:
            return self
        return self.concrete() * other

    __rmul__ = __mul__

    def __lt__(self, other):
        return self.concrete() < other

    def __le__(self, other):
        return self.concrete() <= other

    def __gt__(self, other):
        return self.concrete() > other

    def __ge__(self, other):
        return self.concrete() >= other

    def __floordiv__(self, other):
        return self.concrete() // other

    def __neg__(self):
        return -self.concrete()


DimLike = int | Dim

# The concrete lengths behind the symbols of the outermost trace, and the symbols whose value
# Python code asked for. Set by ``adjit.trace.symbolic_context``.
_dim_values: dict[str, int] = {}
_dim_guards: set[str] = set()


class LengthsNeeded(AdjitValueError):
    """Raised where a symbolic trace cannot go on without the concrete lengths it just read
    (``n0-1`` broadcasting against ``n0`` is legal when ``n0 == 2``): ``trace_symbolic``
    retraces with the lengths read fixed; anywhere else it is the error its message says."""


def concrete_value(name: str) -> int:
    try:
        value = _dim_values[name]
    except KeyError:
        raise ConcretizationError(
            f"the length {name} is symbolic here and has no concrete value"
        ) from None
    _dim_guards.add(name)
    return value


def size_hint(d) -> int:
    """A length's value now without fixing it in the trace: for heuristics whose choice never
    changes a result (the order of an einsum's contractions). A symbol with no value: 1000."""
    if not is_symbolic(d):
        return int(d)
    return _dim_values.get(d.name, 1000) + d.offset


def is_symbolic(d) -> bool:
    return isinstance(d, Dim)


def is_one(d) -> bool:
    """A length known to be 1 (a symbolic one may be any length)."""
    return not is_symbolic(d) and d == 1


def dim_add(a, b):
    if not is_symbolic(a) and not is_symbolic(b):
        return int(a) + int(b)
    if is_symbolic(a) and not is_symbolic(b):
        return Dim(a.name, a.offset + int(b))
    if is_symbolic(b) and not is_symbolic(a):
        return Dim(b.name, b.offset + int(a))
    return a.concrete() + b.concrete()


def dim_sub(a, b):
    if not is_symbolic(b):
        return dim_add(a, -int(b))
    if is_symbolic(a) and a.name == b.name:
        return a.offset - b.offset
    return int(a) - b.concrete()


def resolve_dim(d, env: dict[str, int]) -> int:
    """The concrete length of ``d`` given the lengths bound to the symbols."""
    if isinstance(d, Dim):
        return env[d.name] + d.offset
    return d


def resolve_param(value, env: dict[str, int]):
    """Replace every Dim inside a parameter (ints, tuples of ints) by its length."""
    if isinstance(value, Dim):
        return env[value.name] + value.offset
    if isinstance(value, tuple):
        return tuple(resolve_param(v, env) for v in value)
    return value


def has_symbols(value) -> bool:
    if isinstance(value, Dim):
        return True
    if isinstance(value, tuple):
        return any(has_symbols(v) for v in value)
    return False


# --------------------------------------------------------------------------- abstract values

_DTYPE_NAMES = {
    np.dtype("float64"): "f64",
    np.dtype("float32"): "f32",
    np.dtype("int64"): "i64",
    np.dtype("int32"): "i32",
    np.dtype("bool"): "bool",
    np.dtype("complex128"): "c128",
    np.dtype("complex64"): "c64",
}


def dtype_name(dtype) -> str:
    dtype = np.dtype(dtype)
    name = _DTYPE_NAMES.get(dtype)  # str(dtype) is slow (NumPy makes it in Python): only if needed
    return str(dtype) if name is None else name


class ShapedArray:
    """The abstract value of an array: its dtype and shape (ints or symbolic Dims)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(d if isinstance(d, Dim) else int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __eq__(self, other):
        return (
            isinstance(other, ShapedArray)
            and self.dtype == other.dtype
            and same_shape(self.shape, other.shape)
        )

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __repr__(self):
        return f"{dtype_name(self.dtype)}[{','.join(map(str, self.shape))}]"

    def update(self, shape=None, dtype=None) -> ShapedArray:
        return ShapedArray(self.shape if shape is None else shape,
                           self.dtype if dtype is None else dtype)

    @property
    def is_float(self) -> bool:
        return self.dtype.kind == "f"

    @property
    def is_complex(self) -> bool:
        return self.dtype.kind == "c"

    @property
    def is_inexact(self) -> bool:
        """Float or complex: the dtypes that carry derivatives."""
        return self.dtype.kind in "fc"


def same_shape(a, b) -> bool:
    """Shape equality. Two symbols compare by name; a symbol against a number (an input's length
    against a captured array's) compares by value and fixes that length in the trace.

    Two different symbols that are equal now (a cotangent of length n1 for an output of length
    n0-1, a weight as long as ``x[1:]``) also compare by value and fix both lengths: the
    graph cannot say n1 == n0-1, so the retrace makes both concrete. Outside a trace
    (no values) they differ."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, Dim) != isinstance(y, Dim):
            sym, num = (x, y) if isinstance(x, Dim) else (y, x)
            # A symbol stands for a length >= 2, so a smaller number differs without reading it.
            if sym.name not in _dim_values or int(num) < 2 + sym.offset or int(x) != int(y):
                return False
            continue
        if isinstance(x, Dim):
            if x.name == y.name:
                if x.offset != y.offset:
                    return False
            elif not (x.name in _dim_values and y.name in _dim_values) or int(x) != int(y):
                return False
        elif x != y:
            return False
    return True


# --------------------------------------------------------------------------- graph nodes

_var_ids = itertools.count()


class Var:
    """An SSA variable. Identity is the object; the printer gives it a short name."""

    __slots__ = ("aval", "id")

    def __init__(self, aval: ShapedArray):
        self.aval = aval
        self.id = next(_var_ids)

    def __repr__(self):
        return f"Var({self.id}:{self.aval})"

    def __reduce__(self):
        # A Var is its identity, and passes key dicts by its id: unpickled (a graph sent to a
        # Dask worker) it is a new variable with an id of the receiving process, never one
        # of that process's own; pickle's memo keeps each Var one Var within a graph.
        return Var, (self.aval,)


class Literal:
    """A scalar constant written inline in an equation."""

    __slots__ = ("value", "aval")

    def __init__(self, value, dtype):
        dtype = np.dtype(dtype)
        self.value = dtype.type(value)
        self.aval = ShapedArray((), dtype)

    def __repr__(self):
        return f"{_format_scalar(self.value)}:{dtype_name(self.aval.dtype)}"

    def key(self):
        return ("lit", repr(self.value.item()), self.aval.dtype.str)


def _format_scalar(value) -> str:
    if isinstance(value, (np.bool_, bool)):
        return str(bool(value))
    return repr(value.item()) if hasattr(value, "item") else repr(value)


Atom = Var | Literal


class Eqn:
    """``outs = prim[params](*inputs)``: one primitive, a tuple of outputs (one, except for the
    primitives in ``adjit.ir.rules.multiple_results``). ``source`` is the user's (file, line)
    that made it. A parameter may hold graphs (a call's body): see :func:`subgraphs`."""

    __slots__ = ("prim", "inputs", "outs", "params", "source")

    def __init__(self, prim: str, inputs, outs, params: dict, source=None):
        self.prim = prim
        self.inputs = tuple(inputs)
        self.outs = (outs,) if isinstance(outs, Var) else tuple(outs)
        self.params = params
        self.source = source

    @property
    def out(self) -> Var:
        """The output of a single-output equation."""
        if len(self.outs) != 1:
            raise AssertionError(f"{self.prim} has {len(self.outs)} outputs, not one")
        return self.outs[0]

    def replace(self, **changes) -> Eqn:
        fields = {s: getattr(self, s) for s in self.__slots__}
        fields.update(changes)
        return Eqn(**fields)

    def __repr__(self):
        return f"Eqn({self.prim})"


def subgraphs(eqn: Eqn) -> list[Graph]:
    """The graphs an equation carries in its parameters (a call's body, a loop's body)."""
    found = []
    for value in eqn.params.values():
        if isinstance(value, Graph):
            found.append(value)
        elif isinstance(value, tuple):
            found.extend(v for v in value if isinstance(v, Graph))
    return found


def map_subgraphs(eqn: Eqn, fn) -> Eqn:
    """``eqn`` with ``fn(graph)`` in place of each graph it carries (itself when it has none)."""
    changed = {}
    for key, value in eqn.params.items():
        if isinstance(value, Graph):
            changed[key] = fn(value)
        elif isinstance(value, tuple) and any(isinstance(v, Graph) for v in value):
            changed[key] = tuple(fn(v) if isinstance(v, Graph) else v for v in value)
    if not changed:
        return eqn
    return eqn.replace(params={**eqn.params, **changed})


class Graph:
    """A function: constvars (values supplied by the caller of the trace), invars, eqns, outvars.

    Graphs are never mutated: a pass builds a new one.
    """

    __slots__ = ("constvars", "invars", "eqns", "outvars")

    def __init__(self, constvars, invars, eqns, outvars):
        self.constvars = tuple(constvars)
        self.invars = tuple(invars)
        self.eqns = tuple(eqns)
        self.outvars = tuple(outvars)

    def replace(self, **changes) -> Graph:
        fields = {s: getattr(self, s) for s in self.__slots__}
        fields.update(changes)
        return Graph(**fields)

    @property
    def in_avals(self):
        """The avals of the invars (constvars not included)."""
        return [v.aval for v in self.invars]

    @property
    def out_avals(self):
        return [v.aval for v in self.outvars]

    def __str__(self):
        return format_graph(self)

    __repr__ = __str__

    def symbols(self) -> list[str]:
        """The symbolic lengths of the inputs, in order of first appearance."""
        seen = []
        for v in (*self.constvars, *self.invars):
            for d in v.aval.shape:
                if isinstance(d, Dim) and d.name not in seen:
                    seen.append(d.name)
        return seen


# --------------------------------------------------------------------------- renaming symbols
# A body traced for f64[n0] is applied to f64[n0] in the trace that made it; the abstract rules
# and the inliner of equations carrying graphs still map its symbols to the caller's lengths,
# so concrete inputs (the interpreter) and renamed symbols work too.


def dim_map(formal_avals, actual_avals) -> dict:
    """The caller's length for each symbol of ``formal_avals``."""
    mapping: dict = {}
    for f, a in zip(formal_avals, actual_avals):
        for fd, ad in zip(f.shape, a.shape):
            if isinstance(fd, Dim) and fd.name not in mapping:
                mapping[fd.name] = (Dim(ad.name, ad.offset - fd.offset) if isinstance(ad, Dim)
                                    else int(ad) - fd.offset)
    return mapping


def is_identity(mapping: dict) -> bool:
    return all(isinstance(v, Dim) and v.name == k and v.offset == 0 for k, v in mapping.items())


def subst_dims(value, mapping: dict):
    """``value`` (a Dim, a tuple of them, a ShapedArray) with its symbols mapped."""
    if isinstance(value, Dim):
        base = mapping.get(value.name)
        if base is None:
            return value
        if isinstance(base, Dim):
            return Dim(base.name, base.offset + value.offset)
        return base + value.offset
    if isinstance(value, tuple):
        return tuple(subst_dims(v, mapping) for v in value)
    if isinstance(value, ShapedArray):
        return value.update(shape=subst_dims(value.shape, mapping))
    return value


# --------------------------------------------------------------------------- printing
# The text form of a graph, in the grammar above; tests compare against it. Graphs inside
# equations are printed in place, indented, with names continuing the outer ones.


def _letters():
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    n = 0
    while True:
        name, k = "", n
        while True:
            name = alphabet[k % 26] + name
            k = k // 26 - 1
            if k < 0:
                break
        yield name
        n += 1


def _format_param(value, printer, indent: str) -> str:
    if isinstance(value, Graph):
        return "\n" + printer.graph(value, indent + "        ")
    if isinstance(value, tuple):
        inner = ",".join(_format_param(v, printer, indent) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, np.dtype):
        return dtype_name(value)
    return str(value)


class _Printer:
    def __init__(self):
        self.names: dict[int, str] = {}
        self.fresh = _letters()

    def declare(self, v: Var) -> str:
        self.names[v.id] = next(self.fresh)
        return f"{self.names[v.id]}:{v.aval}"

    def atom(self, a) -> str:
        if isinstance(a, Literal):
            return repr(a)
        return self.names.get(a.id, f"?{a.id}")

    def graph(self, graph: Graph, indent: str = "") -> str:
        consts = ", ".join(self.declare(v) for v in graph.constvars)
        ins = ", ".join(self.declare(v) for v in graph.invars)
        lines = [f"{indent}{{ lambda {consts}{' ' if consts else ''}; {ins} ."]
        for eqn in graph.eqns:
            params = ""
            if eqn.params:
                params = "[" + ", ".join(f"{k}={_format_param(v, self, indent)}"
                                         for k, v in eqn.params.items()) + "]"
            args = " ".join(self.atom(a) for a in eqn.inputs)
            outs = ", ".join(self.declare(v) for v in eqn.outs)
            lines.append(f"{indent}    {outs} = {eqn.prim}{params} {args}".rstrip())
        lines.append(f"{indent}  in ({', '.join(self.atom(v) for v in graph.outvars)}) }}")
        return "\n".join(lines)


def format_graph(graph: Graph) -> str:
    return _Printer().graph(graph)
