"""Code generation: a fused schedule becomes the readable source of one Numba kernel.

The kernel takes the graph's constvars then invars (arrays, or scalars for shape ()), reads the
symbolic lengths from its arguments' shapes, runs each loop nest as index loops (which LLVM
vectorizes), and returns the outputs. Constants are typed (``np.float32(2.0)`` in a float32
kernel), so nothing is computed in a wider type than the graph says.

``SCALAR_LOWERINGS[prim]`` gives the per-element expression of a fusible primitive;
``ARRAY_LOWERINGS[prim]`` the statements of one that works on whole arrays.
"""

from __future__ import annotations

import numpy as np

from adjit.errors import MissingRuleError
from adjit.ir.graph import Dim, Graph, Literal
from adjit.passes.fusion import REDUCTIONS, LoopNest, Schedule, _sources, is_view, view_index

# --------------------------------------------------------------------------- scalar lowerings


def _call(fn):
    return lambda *args, **_: f"{fn}({', '.join(args)})"


def _infix(op):
    return lambda a, b, **_: f"({a} {op} {b})"


def _integer_pow(a, *, y, **_):
    if y == 0:
        return f"({a} * 0 + 1)"
    factors = " * ".join([a] * abs(y)) if abs(y) <= 4 else f"{a} ** {abs(y)}"
    return f"({factors})" if y > 0 else f"(1 / ({factors}))"


def _div(a, b, *, out_dtype, **_):
    return f"({a} / {b})" if out_dtype.kind == "f" else f"({a} // {b})"


def _convert(a, *, new_dtype, **_):
    if new_dtype == np.bool_:
        return f"({a} != 0)"
    return f"np.{new_dtype.name}({a})"


def _extremum(cmp):
    # NaN wins, as in np.maximum: `a != a` is true only for NaN.
    return lambda a, b, **_: f"({a} if ({a} {cmp} {b} or {a} != {a}) else {b})"


SCALAR_LOWERINGS = {
    "neg": lambda a, **_: f"(-{a})",
    "add": _infix("+"), "sub": _infix("-"), "mul": _infix("*"), "div": _div,
    "pow": _infix("**"), "integer_pow": _integer_pow,
    "max": _extremum(">"), "min": _extremum("<"),
    "atan2": _call("math.atan2"),
    "sin": _call("math.sin"), "cos": _call("math.cos"), "tan": _call("math.tan"),
    "asin": _call("math.asin"), "acos": _call("math.acos"), "atan": _call("math.atan"),
    "sinh": _call("math.sinh"), "cosh": _call("math.cosh"), "tanh": _call("math.tanh"),
    "asinh": _call("math.asinh"), "acosh": _call("math.acosh"), "atanh": _call("math.atanh"),
    "exp": _call("math.exp"), "expm1": _call("math.expm1"), "log": _call("math.log"),
    "log1p": _call("math.log1p"), "sqrt": _call("math.sqrt"), "cbrt": _call("np.cbrt"),
    "erf": _call("math.erf"), "lgamma": _call("math.lgamma"), "digamma": _call("_digamma"),
    "polygamma": lambda a, *, m, **_: f"_polygamma({a}, {int(m)})",
    "logistic": lambda a, *, out_dtype, **_: (
        f"({_const(0.5, out_dtype)} * (math.tanh({_const(0.5, out_dtype)} * {a}) + "
        f"{_const(1.0, out_dtype)}))"),
    "abs": _call("abs"), "sign": _call("np.sign"), "floor": _call("np.floor"),
    "ceil": _call("np.ceil"), "round": _call("np.rint"),
    "eq": _infix("=="), "ne": _infix("!="), "lt": _infix("<"), "le": _infix("<="),
    "gt": _infix(">"), "ge": _infix(">="),
    "and": _infix("and"), "or": _infix("or"), "not": lambda a, **_: f"(not {a})",
    "select": lambda p, a, b, **_: f"({a} if {p} else {b})",
    "convert_element_type": _convert,
    "stop_gradient": lambda a, **_: a,
}

_REDUCE_INIT = {"reduce_sum": 0, "reduce_prod": 1, "reduce_max": -np.inf, "reduce_min": np.inf}


def _const(value, dtype) -> str:
    """Source text of a typed scalar constant."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return str(bool(value))
    if dtype.kind != "f":
        return f"np.{dtype.name}({int(value)})"
    value = float(value)
    if np.isnan(value):
        text = "np.nan"
    elif np.isinf(value):
        text = "np.inf" if value > 0 else "-np.inf"
    else:
        text = repr(value)
    return f"np.{dtype.name}({text})"


_DIGAMMA = '''
@numba.njit(cache=True, error_model="numpy")
def _digamma(x):
    # Recurrence up to x >= 6, then the asymptotic series.
    shift = 0.0
    while x < 6.0:
        shift -= 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    series = math.log(x) - 0.5 / x - inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (
        1.0 / 252 - inv2 * (1.0 / 240 - inv2 / 132))))
    return series + shift
'''

_POLYGAMMA = '''
@numba.njit(cache=True, error_model="numpy")
def _polygamma(x, m):
    # psi^(m)(x) = (-1)^(m+1) m! zeta(m+1, x): the recurrence zeta(s, x) = x^-s + zeta(s, x+1)
    # moves x past 10, then the Euler-Maclaurin tail (as adjit.primitives.elementwise).
    x = float(x)
    s = m + 1.0
    head = 0.0
    while x < 10.0:
        head += x ** -s
        x += 1.0
    tail = x ** (1.0 - s) / (s - 1.0) + 0.5 * x ** -s
    rising = s
    factorial = 2.0
    for j in range(1, 7):
        b = (1.0 / 6, -1.0 / 30, 1.0 / 42, -1.0 / 30, 5.0 / 66, -691.0 / 2730)[j - 1]
        tail += b / factorial * rising * x ** (-s - 2 * j + 1)
        rising *= (s + 2 * j - 1) * (s + 2 * j)
        factorial *= (2 * j + 1) * (2 * j + 2)
    scale = 1.0
    for k in range(2, m + 1):
        scale *= k
    if m % 2 == 0:
        scale = -scale
    return scale * (head + tail)
'''

# Per-kernel helpers, emitted once above the kernel when a lowering calls them.
_HELPERS = {"digamma": _DIGAMMA, "polygamma": _POLYGAMMA}

# LLVM may reassociate (vectorize reductions) and contract (fma), but keeps NaN and inf
# semantics, so results propagate NaN like NumPy.
FASTMATH = '{"reassoc", "contract", "nsz"}'


# --------------------------------------------------------------------------- the generator


class _Writer:
    def __init__(self):
        self.lines: list[str] = []
        self.depth = 1

    def __call__(self, text: str):
        self.lines.append("    " * self.depth + text)


class KernelSource:
    """The generated module text and what the dispatcher needs to call it."""

    def __init__(self, text: str, n_loops: int, scalar_outputs: list[bool]):
        self.text = text
        self.n_loops = n_loops
        self.scalar_outputs = scalar_outputs


def generate(schedule: Schedule) -> KernelSource:
    return _Generator(schedule).run()


class _Generator:
    def __init__(self, schedule: Schedule):
        self.schedule = schedule
        self.graph: Graph = schedule.graph
        self.names: dict[int, str] = {}
        self.consts: dict[tuple, str] = {}
        self.w = _Writer()
        self.helpers: set[str] = set()
        self.counter = 0
        self.used_outside: dict[int, set] = {}

    # ---------------------------------------------------------------- naming

    def name(self, var) -> str:
        if var.id not in self.names:
            self.names[var.id] = f"v{len(self.names)}"
        return self.names[var.id]

    def fresh(self, prefix: str) -> str:
        """A new local name, numbered per kernel: equal graphs give equal source text, which
        is what the kernel cache keys on (global variable ids would differ run to run)."""
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, value, dtype) -> str:
        """A name for a typed constant, assigned once at the top of the kernel."""
        text = _const(value, dtype)
        if text not in self.consts:
            self.consts[text] = f"c{len(self.consts)}"
        return self.consts[text]

    def dim(self, d) -> str:
        if isinstance(d, Dim):
            return d.name if d.offset == 0 else f"({d.name} {'+' if d.offset > 0 else '-'} " \
                f"{abs(d.offset)})"
        return str(d)

    def shape(self, shape) -> str:
        if not shape:
            return "()"
        return "(" + ", ".join(self.dim(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"

    def atom(self, a) -> str:
        if isinstance(a, Literal):
            return self.const(a.value, a.aval.dtype)
        return self.name(a)

    # ---------------------------------------------------------------- top level

    def run(self) -> KernelSource:
        g = self.graph
        params = [self.name(v) for v in (*g.constvars, *g.invars)]
        self._count_uses()
        body = self.w
        for symbol in g.symbols():
            var, axis = next((v, i) for v in (*g.constvars, *g.invars)
                             for i, d in enumerate(v.aval.shape)
                             if isinstance(d, Dim) and d.name == symbol)
            body(f"{symbol} = {self.name(var)}.shape[{axis}]")
        for item in self.schedule.items:
            if isinstance(item, LoopNest):
                self.loop_nest(item)
            else:
                self.array_eqn(item)
        outs = [self.atom(v) for v in g.outvars]
        # One output is returned bare (no tuple to build and index on every call).
        body(f"return {outs[0]}" if len(outs) == 1 else f"return ({', '.join(outs)})")
        const_lines = [f"    {name} = {text}" for text, name in self.consts.items()]
        header = [
            "import math",
            "",
            "import numba",
            "import numpy as np",
            "",
        ]
        for prim in sorted(self.helpers):
            header += _HELPERS[prim].splitlines() + [""]
        header += [
            "",
            f"@numba.njit(cache=True, fastmath={FASTMATH}, error_model=\"numpy\", nogil=True)",
            f"def kernel({', '.join(params)}):",
        ]
        text = "\n".join(header + const_lines + body.lines) + "\n"
        scalar = [v.aval.shape == () for v in g.outvars]
        return KernelSource(text, self.schedule.loop_count, scalar)

    def _count_uses(self):
        views = self.schedule.views
        for item in self.schedule.items:
            if isinstance(item, LoopNest):
                # A nest reads views through to their sources.
                used = _sources([a for e in item.eqns for a in e.inputs], views)
            else:
                used = {a.id for a in item.inputs if not isinstance(a, Literal)}
            for var_id in used:
                self.used_outside.setdefault(var_id, set()).add(id(item))
        for v in self.graph.outvars:
            if not isinstance(v, Literal):
                self.used_outside.setdefault(v.id, set()).add("output")

    def needed_after(self, var, nest) -> bool:
        return bool(self.used_outside.get(var.id, set()) - {id(nest)})

    # ---------------------------------------------------------------- loop nests

    def loop_nest(self, nest: LoopNest):
        w = self.w
        rank = len(nest.shape)
        index = [f"i{k}" for k in range(rank)]
        local: dict[int, str] = {}
        # Allocations: values needed after the loop, and reduction accumulators.
        for eqn in nest.eqns:
            out = eqn.out
            if eqn.prim in REDUCTIONS:
                init = self.const(_reduce_init(eqn.prim, out.aval.dtype), out.aval.dtype)
                if out.aval.shape == ():
                    w(f"{self.name(out)} = {init}")
                else:
                    w(f"{self.name(out)} = np.full({self.shape(out.aval.shape)}, {init})")
            elif rank and self.needed_after(out, nest):
                w(f"{self.name(out)} = np.empty({self.shape(out.aval.shape)}, "
                  f"np.{out.aval.dtype.name})")
        loops = 0
        for k, d in enumerate(nest.shape):
            if not isinstance(d, Dim) and d == 1:
                w(f"{index[k]} = 0")  # a length-1 axis needs no loop
                continue
            w(f"for {index[k]} in range({self.dim(d)}):")
            w.depth += 1
            loops += 1
        reads: dict[tuple, str] = {}
        views = self.schedule.views

        def read(a, at=None) -> str:
            """The element of input ``a`` at index ``at`` (default: the nest's index); a view
            is read through to its source at the mapped index."""
            at = index if at is None else at
            if isinstance(a, Literal):
                return self.atom(a)
            if a.id in local and at == index:
                return local[a.id]
            if a.id in views:
                view = views[a.id]
                return read(view.inputs[0], view_index(view, at))
            if a.aval.shape == ():
                return self.name(a)
            key = (a.id, tuple(at))
            if key not in reads:
                reads[key] = self.fresh("e")
                w(f"{reads[key]} = {self.name(a)}[{', '.join(at)}]")
            return reads[key]

        for eqn in nest.eqns:
            out = eqn.out
            target = self.fresh("t")
            if eqn.prim in REDUCTIONS:
                self.reduce_into(eqn, read(eqn.inputs[0]), index)
                continue
            w(f"{target} = {self.element(eqn, read, index, local)}")
            local[out.id] = target
            if self.needed_after(out, nest):
                if rank:
                    w(f"{self.name(out)}[{', '.join(index)}] = {target}")
                else:
                    w(f"{self.name(out)} = {target}")
        w.depth -= loops

    def element(self, eqn, read, index, local) -> str:
        prim, params = eqn.prim, eqn.params
        if is_view(eqn):  # a view materialized as an array for a whole-array reader
            return read(eqn.inputs[0], view_index(eqn, index))
        if prim == "iota":
            return f"np.{params['dtype'].name}({index[params['dimension']]})"
        if prim == "take":
            x, idx = eqn.inputs
            axis = params["axis"]
            k = len(idx.aval.shape)
            pos = index[axis:axis + k]
            i_expr = read(idx, pos)
            n = self.dim(x.aval.shape[axis])
            clamped = f"min(max({i_expr} + ({n} if {i_expr} < 0 else 0), 0), {n} - 1)"
            return read(x, [*index[:axis], clamped, *index[axis + k:]])
        lower = SCALAR_LOWERINGS.get(prim)
        if lower is None:
            raise MissingRuleError(f"adjit: primitive '{prim}' has no Numba lowering")
        if prim in _HELPERS:
            self.helpers.add(prim)
        args = [read(a) for a in eqn.inputs]
        return lower(*args, out_dtype=eqn.out.aval.dtype, **params)

    def reduce_into(self, eqn, value: str, index):
        w = self.w
        out = eqn.out
        axes = eqn.params["axes"]
        kept = [i for k, i in enumerate(index) if k not in axes]
        acc = self.name(out) if not kept else f"{self.name(out)}[{', '.join(kept)}]"
        if eqn.prim == "reduce_sum":
            w(f"{acc} += {value}")
        elif eqn.prim == "reduce_prod":
            w(f"{acc} *= {value}")
        else:
            cmp = ">" if eqn.prim == "reduce_max" else "<"
            w(f"if {value} {cmp} {acc} or {value} != {value}:")
            w(f"    {acc} = {value}")

    # ---------------------------------------------------------------- whole-array equations

    def array_eqn(self, eqn):
        lower = ARRAY_LOWERINGS.get(eqn.prim)
        if lower is None:
            raise MissingRuleError(f"adjit: primitive '{eqn.prim}' has no Numba lowering")
        lower(self, eqn)


def _reduce_init(prim, dtype):
    init = _REDUCE_INIT[prim]
    if np.dtype(dtype).kind in "iu" and not np.isfinite(init):
        info = np.iinfo(dtype)
        return info.min if init < 0 else info.max
    return init


# --------------------------------------------------------------------------- array lowerings


def _matmul(g: _Generator, eqn):
    a, b = (g.atom(x) for x in eqn.inputs)
    g.w(f"{g.name(eqn.out)} = np.dot(np.ascontiguousarray({a}), np.ascontiguousarray({b}))")


def _reshape(g: _Generator, eqn):
    (x,) = eqn.inputs
    out = g.name(eqn.out)
    new = eqn.out.aval.shape
    if x.aval.shape == ():
        g.w(f"{out} = np.full({g.shape(new)}, {g.atom(x)})")
    elif new == ():
        g.w(f"{out} = np.ascontiguousarray({g.atom(x)}).ravel()[0]")
    else:
        g.w(f"{out} = np.ascontiguousarray({g.atom(x)}).reshape({g.shape(new)})")


def _pad(g: _Generator, eqn):
    (x,) = eqn.inputs
    p = eqn.params
    out = g.name(eqn.out)
    xs = g.atom(x)
    g.w(f"{out} = np.zeros({g.shape(eqn.out.aval.shape)}, np.{eqn.out.aval.dtype.name})")
    parts = [f"{g.dim(lo)}:{g.dim(lo)} + {xs}.shape[{k}] * {step + 1} - {step}:{step + 1}"
             for k, (lo, step) in enumerate(zip(p["lo"], p["interior"]))]
    g.w(f"{out}[{', '.join(parts)}] = {xs}")


def _concatenate(g: _Generator, eqn):
    arrays = ", ".join(g.atom(x) for x in eqn.inputs)
    g.w(f"{g.name(eqn.out)} = np.concatenate(({arrays},), axis={eqn.params['dimension']})")


def _shape_size(g: _Generator, eqn):
    dims = " * ".join(g.dim(d) for d in eqn.params["dims"]) or "1"
    g.w(f"{g.name(eqn.out)} = np.{eqn.params['dtype'].name}({dims})")


def _loops(g: _Generator, shape, names):
    for k, d in enumerate(shape):
        g.w(f"for {names[k]} in range({g.dim(d)}):")
        g.w.depth += 1


def _scatter_add(g: _Generator, eqn):
    x, idx, upd = eqn.inputs
    axis = eqn.params["axis"]
    out = g.name(eqn.out)
    g.w(f"{out} = np.copy({g.atom(x)})")
    shape = upd.aval.shape
    index = [f"j{k}" for k in range(len(shape))]
    k = len(idx.aval.shape)
    _loops(g, shape, index)
    n = f"{out}.shape[{axis}]"
    i_expr = f"{g.atom(idx)}[{', '.join(index[axis:axis + k])}]" if k else g.atom(idx)
    g.w(f"p = {i_expr}")
    g.w(f"p = min(max(p + ({n} if p < 0 else 0), 0), {n} - 1)")
    g.w(f"{out}[{', '.join([*index[:axis], 'p', *index[axis + k:]])}] += "
        f"{g.atom(upd)}[{', '.join(index)}]")
    g.w.depth -= len(shape)


def _along_axis(g: _Generator, eqn, axis, emit):
    """Loops over every axis but ``axis``, then ``emit(index, axis_var)`` for the inner scan."""
    (x,) = eqn.inputs[:1]
    shape = x.aval.shape
    outer = [i for i in range(len(shape)) if i != axis]
    index = [f"j{k}" for k in range(len(shape))]
    for k in outer:
        g.w(f"for {index[k]} in range({g.dim(shape[k])}):")
        g.w.depth += 1
    emit(index, shape[axis])
    g.w.depth -= len(outer)


def _cumsum(g: _Generator, eqn):
    (x,) = eqn.inputs
    axis, reverse = eqn.params["axis"], eqn.params["reverse"]
    out, xs = g.name(eqn.out), g.atom(x)
    g.w(f"{out} = np.empty_like({xs})")

    def emit(index, n):
        at = ", ".join(index)
        g.w(f"acc = {g.const(0, x.aval.dtype)}")
        rng = f"range({g.dim(n)} - 1, -1, -1)" if reverse else f"range({g.dim(n)})"
        g.w(f"for {index[axis]} in {rng}:")
        g.w(f"    acc += {xs}[{at}]")
        g.w(f"    {out}[{at}] = acc")

    _along_axis(g, eqn, axis, emit)


def _arg_extremum(cmp):
    def lower(g: _Generator, eqn):
        (x,) = eqn.inputs
        axis = eqn.params["axis"]
        out, xs = g.name(eqn.out), g.atom(x)
        out_shape = eqn.out.aval.shape
        g.w(f"{out} = np.zeros({g.shape(out_shape)}, np.int64)" if out_shape else f"{out} = 0")

        def emit(index, n):
            kept = [i for k, i in enumerate(index) if k != axis]
            target = f"{out}[{', '.join(kept)}]" if kept else out
            at = ", ".join(index)
            g.w(f"best = {xs}[{', '.join(index[:axis] + ['0'] + index[axis + 1:])}]")
            g.w("best_i = 0")
            g.w(f"for {index[axis]} in range({g.dim(n)}):")
            g.w(f"    if {xs}[{at}] {cmp} best or ({xs}[{at}] != {xs}[{at}] and best == best):")
            g.w(f"        best = {xs}[{at}]")
            g.w(f"        best_i = {index[axis]}")
            g.w(f"{target} = best_i")

        _along_axis(g, eqn, axis, emit)

    return lower


def _sort_rows(values: bool):
    """``sort`` (values) and ``argsort`` (positions) along an axis: a stable bottom-up merge
    sort of each row's positions, NaN last as in NumPy. Written out (rows copied element by
    element too) because Numba's np.sort / np.argsort and slice copies take seconds to compile
    in every kernel that uses them."""
    def lower(g: _Generator, eqn):
        (x,) = eqn.inputs
        axis, out, aval = eqn.params["axis"], g.name(eqn.out), eqn.out.aval
        row, perm, buf = g.fresh("row"), g.fresh("perm"), g.fresh("buf")
        g.w(f"{out} = np.empty({g.shape(aval.shape)}, np.{aval.dtype.name})")

        def emit(index, n):
            at = ", ".join([*index[:axis], "q", *index[axis + 1:]])
            w = g.w
            w(f"n = {g.dim(n)}")
            w(f"{row} = np.empty(n, np.{x.aval.dtype.name})")
            w("for q in range(n):")
            w(f"    {row}[q] = {g.atom(x)}[{at}]")
            w(f"{perm} = np.arange(n)")
            w(f"{buf} = np.empty(n, np.int64)")
            w("width = 1")
            w("while width < n:")
            w("    lo = 0")
            w("    while lo < n:")
            w("        mid = min(lo + width, n)")
            w("        hi = min(lo + 2 * width, n)")
            w("        a = lo")
            w("        b = mid")
            w("        for k in range(lo, hi):")
            w(f"            u = {row}[{perm}[a]] if a < mid else 0")
            w(f"            v = {row}[{perm}[b]] if b < hi else 0")
            # Take from the right run only when it is strictly first (stable); NaN sorts last.
            w("            if a < mid and (b >= hi or not (v < u or (u != u and v == v))):")
            w(f"                {buf}[k] = {perm}[a]")
            w("                a += 1")
            w("            else:")
            w(f"                {buf}[k] = {perm}[b]")
            w("                b += 1")
            w("        lo += 2 * width")
            w(f"    {perm}, {buf} = {buf}, {perm}")
            w("    width *= 2")
            w("for q in range(n):")
            w(f"    {out}[{at}] = {row}[{perm}[q]]" if values else f"    {out}[{at}] = {perm}[q]")

        _along_axis(g, eqn, axis, emit)

    return lower


ARRAY_LOWERINGS = {
    "matmul": _matmul,
    "reshape": _reshape,
    "pad": _pad,
    "concatenate": _concatenate,
    "shape_size": _shape_size,
    "scatter_add": _scatter_add,
    "cumsum": _cumsum,
    "argmax": _arg_extremum(">"),
    "argmin": _arg_extremum("<"),
    "sort": _sort_rows(values=True),
    "argsort": _sort_rows(values=False),
}
