"""Random adjit.numpy programs for property tests, and the checks each one must pass.

A program is straight-line source text over ``anp`` (adjit.numpy, or NumPy for the reference):

    def f(x0, x1):
        t0 = anp.tanh(x0) * 0.9
        t1 = anp.arcsin(t0)
        t2 = anp.maximum(t1, x1)
        return anp.sum(t2)

The generator tracks, for every value, its shape and an interval that holds all its entries, so
each function is applied only inside its domain (``log`` of values >= 0.2, ``arcsin`` of values
in [-0.9, 0.9], ``exp`` of values <= 3) and every result is finite; where an operand does not
fit, a wrapper that maps any value into the domain is inserted first (``exp(tanh(x))``,
``tanh(x) * 0.9``, ...). Functions with kinks (abs, maximum, where, max, clip, floor) also emit a
*margin*, how far the inputs are from the kink; finite differences are compared only where
every margin is comfortably larger than the step.

A program may also hold control flow (``ctl`` is adjit, or ``NUMPY_CTL``, the same semantics as
Python ``if`` and ``for``/``while`` loops, for the reference), nested at most two deep: a
``cond``/``switch`` on a data-dependent scalar compared with thresholds (the distance from each
threshold is a margin) choosing between generated sub-programs of the same output type; a
``fori_loop`` of 1-5 steps whose body is a generated sub-program ``s`` of the carry ``v``, used as
the damped update ``v + 0.1 * tanh(s)`` (so the carry's interval only widens by 0.1 a step); a
``scan`` over a value's leading axis with the same damped carry and a generated per-step
output; and a ``while_loop`` (counter and a data-dependent test, whose distance from its
threshold is a margin) which marks the program ``forward_only``: its derivatives are checked in
forward mode only (adjit's reverse mode of while_loop is a MissingRuleError, as JAX's).
Sub-programs are nested ``def``s; they may read the enclosing function's values (closures).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import scipy.special
from hypothesis import strategies as st

import adjit
import adjit.numpy as anp
from adjit import testing

# --------------------------------------------------------------------------- the program


@dataclass
class Program:
    """Source lines over inputs x0..xk; ``margins`` are numpy expressions (see module doc)."""

    shapes: list
    lines: list = field(default_factory=list)  # may hold nested defs, and "# margin: EXPR"
    outs: list = field(default_factory=list)  # summed into the result
    seed: int = 0
    forward_only: bool = False  # holds a while_loop: checked in forward mode only

    @property
    def result(self) -> str:
        first, *rest = self.outs
        return " + ".join([f"anp.sum({first})", *(f"0.5 * anp.sum({o})" for o in rest)])

    def source(self, margins=False) -> str:
        """The function's text; with ``margins``, each margin line appends to ``_margins``."""
        args = ", ".join(f"x{i}" for i in range(len(self.shapes)))
        body = []
        for line in self.lines:
            indent, text = line[:len(line) - len(line.lstrip())], line.lstrip()
            if text.startswith(MARGIN):
                if not margins:
                    continue
                line = f"{indent}_margins.append({text[len(MARGIN):]})"
            body.append(f"    {line}")
        return "\n".join([f"def f({args}):", *body, f"    return {self.result}"])

    def function(self, module=anp):
        """The program as a Python function over ``module`` (adjit.numpy or NumPy)."""
        scope = {"anp": module, "np": np, "ctl": adjit if module is anp else NUMPY_CTL}
        exec(compile(self.source(), "<fuzz program>", "exec"), scope)
        return scope["f"]

    def inputs(self, dtype=np.float64):
        rng = np.random.default_rng(self.seed)
        return [rng.uniform(-1.5, 1.5, s).astype(dtype) if s else dtype(rng.uniform(-1.5, 1.5))
                for s in self.shapes]

    def margin(self, args) -> float:
        """The smallest distance of any kink's input from the kink (inf without kinks)."""
        if not any(line.lstrip().startswith(MARGIN) for line in self.lines):
            return math.inf
        margins = []
        scope = {"anp": NUMPY_NS, "np": np, "ctl": NUMPY_CTL, "_gap": _gap,
                 "_gap_reduce": _gap_reduce, "_frac": _frac, "_margins": margins}
        exec(compile(self.source(margins=True), "<fuzz margins>", "exec"), scope)
        with np.errstate(all="ignore"):
            scope["f"](*[np.asarray(a, np.float64) for a in args])
        return float(min(margins, default=math.inf))

    def reproducer(self, dtype=np.float64) -> str:
        lines = ["import numpy as np", "import adjit, adjit.numpy as anp", "ctl = adjit", "",
                 self.source(), ""]
        for i, x in enumerate(self.inputs(dtype)):
            lines.append(f"x{i} = np.array({np.asarray(x).tolist()!r}, dtype=np.{np.dtype(dtype)})")
        args = ", ".join(f"x{i}" for i in range(len(self.shapes)))
        # while_loop's reverse mode (a Revolve sweep) is differentiated once: its programs
        # are checked in forward mode here, reverse mode in tests/test_control.py.
        if self.forward_only:
            lines.append(f"print(adjit.jit(f)({args}), adjit.jvp(f, ({args},), ({args},)))")
        else:
            lines.append(f"print(adjit.jit(f)({args}), adjit.grad(f, argnums=tuple(range("
                         f"{len(self.shapes)})))({args}))")
        return "\n".join(lines)


MARGIN = "# margin: "


def _gap(a, b):
    d = np.abs(np.asarray(a) - np.asarray(b))
    d = d[d > 0]
    return float(d.min()) if d.size else math.inf


def _gap_reduce(a, axis):
    """Gap between the extreme of each reduced group and its nearest *different* value (exact
    ties come from broadcasting: the same input twice, which has a derivative)."""
    a = np.asarray(a)
    if a.size == 0:
        return math.inf
    gaps = []
    for top in (np.max(a, axis=axis, keepdims=True), np.min(a, axis=axis, keepdims=True)):
        d = np.abs(a - top)
        d = np.where(d > 0, d, np.inf)
        gaps.append(float(np.min(d)))
    return min(gaps)


def _frac(a):
    a = np.asarray(a)
    return float(np.min(np.abs(a - np.round(a)))) if a.size else math.inf


class _NumpyNamespace:
    """NumPy under adjit.numpy's names (logsumexp lives in SciPy)."""

    def __getattr__(self, name):
        if name == "logsumexp":
            return scipy.special.logsumexp
        return getattr(np, name)


NUMPY_NS = _NumpyNamespace()


class NUMPY_CTL:
    """adjit's control flow with Python's: the reference semantics (JAX's)."""

    @staticmethod
    def cond(pred, true_fun, false_fun, *operands):
        return true_fun(*operands) if pred else false_fun(*operands)

    @staticmethod
    def switch(index, branches, *operands):
        return branches[min(max(int(index), 0), len(branches) - 1)](*operands)

    @staticmethod
    def fori_loop(lower, upper, body, init, checkpoint=None):
        val = init
        for i in range(lower, upper):
            val = body(i, val)
        return val

    @staticmethod
    def scan(f, init, xs, length=None, reverse=False, checkpoint=None):
        carry, ys = init, []
        for i in (range(len(xs) - 1, -1, -1) if reverse else range(len(xs))):
            carry, y = f(carry, xs[i])
            ys.append(y)
        return carry, np.stack(ys[::-1] if reverse else ys)

    @staticmethod
    def while_loop(cond_fun, body_fun, init):
        val = init
        while cond_fun(val):
            val = body_fun(val)
        return val

# --------------------------------------------------------------------------- generation

LENGTHS = (1, 2, 3, 4)


@dataclass
class Val:
    name: str
    shape: tuple
    lo: float
    hi: float

    @property
    def bound(self):
        return max(abs(self.lo), abs(self.hi))


def _const(draw):
    return draw(st.sampled_from([0.5, 2.0, -1.5, 0.25, 3.0, -0.75]))


class _Builder:
    """Emits the lines of a function: the program (depth 0) or a nested sub-program (a
    branch or a loop body: ``sub``), which shares the program and its name counter."""

    def __init__(self, draw, shapes, allow_while=True, max_depth=2):
        self.draw = draw
        self.max_depth = max_depth
        self.prog = Program(shapes=shapes)
        self.lines = self.prog.lines
        self.vals = [Val(f"x{i}", tuple(s), -1.5, 1.5) for i, s in enumerate(shapes)]
        self.local = list(self.vals)  # this function's own values (vals adds closures)
        self.counter = [0]
        self.depth = 0
        self.allow_while = allow_while

    def fresh(self, prefix="t"):
        self.counter[0] += 1
        return f"{prefix}{self.counter[0] - 1}"

    def sub(self, params):
        """A builder for a nested function taking ``params`` (Vals); it may also read every
        value of this one (a closure)."""
        b = _Builder.__new__(_Builder)
        b.draw, b.prog, b.counter, b.allow_while = self.draw, self.prog, self.counter, \
            self.allow_while
        b.max_depth = self.max_depth
        b.lines, b.depth = [], self.depth + 1
        b.vals = [*self.vals, *params]
        b.local = list(params)
        return b

    def define(self, header, sub, ret, pre=()):
        """Append ``def header:`` with ``pre`` lines, ``sub``'s lines and ``return ret``."""
        self.lines.append(f"def {header}:")
        self.lines.extend(f"    {line}" for line in [*pre, *sub.lines, f"return {ret}"])

    def margin(self, expr):
        self.lines.append(MARGIN + expr)

    def emit(self, expr, shape, lo, hi, margin=None):
        return self.emit_many(expr, [(shape, lo, hi)], margin)[0]

    def emit_many(self, expr, outs, margin=None):
        names = [self.fresh() for _ in outs]
        self.lines.append(f"{', '.join(names)} = {expr}")
        if margin is not None:
            self.margin(margin.replace("@", names[0]))
        vals = []
        for name, (shape, lo, hi) in zip(names, outs):
            lo, hi = float(lo), float(hi)
            vals.append(Val(name, tuple(shape), min(lo, hi), max(lo, hi)))
        self.vals.extend(vals)
        self.local.extend(vals)
        return vals

    # ---- domain wrappers (always applicable, bounded output)
    def positive(self, v):  # entries in [0.36, 2.72]
        if v.lo >= 0.2 and v.hi <= 30:
            return v
        return self.emit(f"anp.exp(anp.tanh({v.name}))", v.shape, math.exp(-1), math.e)

    def unit(self, v):  # entries in [-0.9, 0.9]
        if -0.9 <= v.lo and v.hi <= 0.9:
            return v
        return self.emit(f"anp.tanh({v.name}) * 0.9", v.shape, -0.9, 0.9)

    def small(self, v, limit=3.0):
        if v.bound <= limit:
            return v
        return self.emit(f"anp.sin({v.name}) * 2.0", v.shape, -2.0, 2.0)

    def pick(self, pred=lambda v: True):
        cands = [v for v in self.vals if pred(v)]
        if self.depth and self.draw(st.integers(0, 3)):  # a sub-program: mostly its own
            cands = [v for v in self.local if pred(v)] or cands
        # prefer recent values so compositions get deep
        i = self.draw(st.integers(0, len(cands) - 1))
        return cands[-1 - i] if self.draw(st.booleans()) else cands[i]


def _bshape(a, b):
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


def _interval(op, a, b):
    """Interval of a (op) b over intervals a=(lo,hi), b=(lo,hi)."""
    cands = [op(x, y) for x in a for y in b]
    return min(cands), max(cands)


UNARY = {
    # name: (source template, domain wrapper, interval function)
    "sin": ("anp.sin({})", None, lambda lo, hi: (-1, 1)),
    "cos": ("anp.cos({})", None, lambda lo, hi: (-1, 1)),
    "tanh": ("anp.tanh({})", None, lambda lo, hi: (math.tanh(lo), math.tanh(hi))),
    "arctan": ("anp.arctan({})", None, lambda lo, hi: (math.atan(lo), math.atan(hi))),
    "arcsinh": ("anp.arcsinh({})", None, lambda lo, hi: (math.asinh(lo), math.asinh(hi))),
    "exp": ("anp.exp({})", "small", lambda lo, hi: (math.exp(lo), math.exp(hi))),
    "expm1": ("anp.expm1({})", "small", lambda lo, hi: (math.expm1(lo), math.expm1(hi))),
    "sinh": ("anp.sinh({})", "small", lambda lo, hi: (math.sinh(lo), math.sinh(hi))),
    "cosh": ("anp.cosh({})", "small", lambda lo, hi: (1, math.cosh(max(abs(lo), abs(hi))))),
    "log": ("anp.log({})", "positive", lambda lo, hi: (math.log(lo), math.log(hi))),
    "log1p": ("anp.log1p({})", "positive", lambda lo, hi: (math.log1p(lo), math.log1p(hi))),
    "log2": ("anp.log2({})", "positive", lambda lo, hi: (math.log2(lo), math.log2(hi))),
    "sqrt": ("anp.sqrt({})", "positive", lambda lo, hi: (math.sqrt(lo), math.sqrt(hi))),
    "cbrt": ("anp.cbrt({})", "positive", lambda lo, hi: (lo ** (1 / 3), hi ** (1 / 3))),
    "reciprocal": ("anp.reciprocal({})", "positive", lambda lo, hi: (1 / hi, 1 / lo)),
    "rpow": ("{} ** 1.5", "positive", lambda lo, hi: (lo ** 1.5, hi ** 1.5)),
    "arcsin": ("anp.arcsin({})", "unit", lambda lo, hi: (math.asin(lo), math.asin(hi))),
    "arccos": ("anp.arccos({})", "unit", lambda lo, hi: (math.acos(hi), math.acos(lo))),
    "arctanh": ("anp.arctanh({})", "unit", lambda lo, hi: (math.atanh(lo), math.atanh(hi))),
    "square": ("anp.square({})", None,
               lambda lo, hi: (0 if lo <= 0 <= hi else min(lo * lo, hi * hi),
                               max(lo * lo, hi * hi))),
    "pow2": ("{} ** 2", None, lambda lo, hi: (0, max(lo * lo, hi * hi))),
    "neg": ("-{}", None, lambda lo, hi: (-hi, -lo)),
    "negative": ("anp.negative({})", None, lambda lo, hi: (-hi, -lo)),
    "abs": ("anp.abs({})", None, lambda lo, hi: (0, max(abs(lo), abs(hi)))),
    "floor": ("anp.floor({})", None, lambda lo, hi: (math.floor(lo), math.floor(hi))),
    "sign": ("anp.sign({})", None, lambda lo, hi: (-1, 1)),
}
KINKS = {"abs": "_gap(@, 0.0)", "floor": "_frac(ARG)", "sign": "_gap(ARG, 0.0)"}

BINARY = ("add", "sub", "mul", "div", "maximum", "minimum", "where", "arctan2", "hypot",
          "logaddexp", "pow", "op_add", "op_mul", "op_rsub", "op_div")

REDUCE = ("sum", "mean", "max", "min", "prod", "var", "logsumexp", "method_sum")

STRUCT = ("slice_tail", "slice_head", "reverse", "step2", "index0", "index_last", "newaxis",
          "gather", "transpose", "reshape_flat", "expand_dims", "squeeze", "concatenate",
          "stack", "cumsum", "broadcast_to", "clip", "roll", "flip", "tril", "triu", "repeat",
          "tile", "trace", "diagonal")


def _unary(b: _Builder):
    name = b.draw(st.sampled_from(sorted(UNARY)))
    template, wrap, interval = UNARY[name]
    v = b.pick()
    if wrap == "positive":
        v = b.positive(v)
    elif wrap == "unit":
        v = b.unit(v)
    elif wrap == "small":
        v = b.small(v)
    elif v.bound > 1e3:
        v = b.small(v)
    lo, hi = interval(v.lo, v.hi)
    margin = KINKS.get(name)
    if margin:
        margin = margin.replace("ARG", v.name)
    b.emit(template.format(v.name), v.shape, lo, hi, margin)


def _operand(b: _Builder, a: Val):
    """A second operand that broadcasts with ``a``: a value, or a Python constant."""
    if b.draw(st.integers(0, 4)) == 0:
        c = _const(b.draw)
        return str(c), a.shape, c, c
    other = b.pick(lambda v: _bshape(v.shape, a.shape) is not None)
    return other.name, other.shape, other.lo, other.hi


def _binary(b: _Builder):
    name = b.draw(st.sampled_from(BINARY))
    a = b.pick()
    if a.bound > 100:
        a = b.small(a)
    y, yshape, ylo, yhi = _operand(b, a)
    shape = _bshape(a.shape, yshape)
    ai, yi = (a.lo, a.hi), (ylo, yhi)
    if name in ("add", "op_add"):
        expr = f"anp.add({a.name}, {y})" if name == "add" else f"{a.name} + {y}"
        b.emit(expr, shape, a.lo + ylo, a.hi + yhi)
    elif name in ("sub", "op_rsub"):
        expr = f"anp.subtract({a.name}, {y})" if name == "sub" else f"{y} - {a.name}"
        lo, hi = (a.lo - yhi, a.hi - ylo) if name == "sub" else (ylo - a.hi, yhi - a.lo)
        b.emit(expr, shape, lo, hi)
    elif name in ("mul", "op_mul"):
        expr = f"anp.multiply({a.name}, {y})" if name == "mul" else f"{a.name} * {y}"
        b.emit(expr, shape, *_interval(lambda p, q: p * q, ai, yi))
    elif name in ("div", "op_div", "pow"):
        # the denominator / base must be positive: wrap it
        d = b.positive(Val(y, yshape, ylo, yhi)) if not y[0].isdigit() and y[0] != "-" else None
        if d is None:  # a constant operand: divide the value by it, or raise a positive base
            c = float(y)
            if name == "pow":
                p = b.positive(a)
                e = b.draw(st.sampled_from([2.0, 0.5, -1.0, 3.0]))
                b.emit(f"anp.power({p.name}, {e})", p.shape,
                       *sorted([p.lo ** e, p.hi ** e]))
            else:
                b.emit(f"{a.name} / {c}", a.shape, *sorted([a.lo / c, a.hi / c]))
            return
        if name == "pow":
            s = b.unit(a)
            b.emit(f"anp.power({d.name}, {s.name})", shape,
                   *_interval(lambda p, q: p ** q, (d.lo, d.hi), (s.lo, s.hi)))
            return
        expr = f"anp.divide({a.name}, {d.name})" if name == "div" else f"{a.name} / {d.name}"
        b.emit(expr, shape, *_interval(lambda p, q: p / q, ai, (d.lo, d.hi)))
    elif name in ("maximum", "minimum"):
        f = max if name == "maximum" else min
        b.emit(f"anp.{name}({a.name}, {y})", shape, f(a.lo, ylo), f(a.hi, yhi),
               f"_gap({a.name}, {y})")
    elif name == "where":
        c = b.pick(lambda v: _bshape(v.shape, shape) is not None)
        out = _bshape(c.shape, shape)
        b.emit(f"anp.where({c.name} > 0.25, {a.name}, {y})", out, min(a.lo, ylo),
               max(a.hi, yhi), f"_gap({c.name}, 0.25)")
    elif name == "arctan2":
        d = b.positive(Val(y, yshape, ylo, yhi)) if not y[0].isdigit() and y[0] != "-" \
            else Val("1.5", a.shape, 1.5, 1.5)
        b.emit(f"anp.arctan2({a.name}, {d.name})", _bshape(a.shape, d.shape), -1.6, 1.6)
    elif name == "hypot":
        d = b.positive(Val(y, yshape, ylo, yhi)) if not y[0].isdigit() and y[0] != "-" \
            else Val("1.5", a.shape, 1.5, 1.5)
        hi = math.hypot(a.bound, d.bound)
        b.emit(f"anp.hypot({a.name}, {d.name})", _bshape(a.shape, d.shape), d.lo, hi)
    elif name == "logaddexp":
        lo = max(a.lo, ylo)
        b.emit(f"anp.logaddexp({a.name}, {y})", shape, lo, max(a.hi, yhi) + math.log(2))


def _axis_arg(b: _Builder, rank):
    kind = b.draw(st.integers(0, 3)) if rank else 0
    if kind == 0:
        return None, tuple(range(rank))
    if kind == 3 and rank >= 2:
        axes = tuple(sorted(b.draw(st.sets(st.integers(0, rank - 1), min_size=2, max_size=2))))
        return axes, axes
    ax = b.draw(st.integers(-rank, rank - 1))
    return ax, (ax % rank,)


def _reduce(b: _Builder):
    name = b.draw(st.sampled_from(REDUCE))
    v = b.pick()
    if v.bound > 100:
        v = b.small(v)
    axis, axes = _axis_arg(b, len(v.shape))
    keep = b.draw(st.booleans())
    shape = tuple(1 if i in axes else d for i, d in enumerate(v.shape)) if keep else \
        tuple(d for i, d in enumerate(v.shape) if i not in axes)
    n = int(np.prod([v.shape[i] for i in axes])) if axes else 1
    args = f"{v.name}, axis={axis!r}, keepdims={keep}"
    if name in ("sum", "method_sum"):
        expr = f"anp.sum({args})" if name == "sum" else f"{v.name}.sum(axis={axis!r})"
        if name == "method_sum":
            shape = tuple(d for i, d in enumerate(v.shape) if i not in axes)
        b.emit(expr, shape, n * min(v.lo, 0), n * max(v.hi, 0))
    elif name in ("mean", "max", "min"):
        margin = None if name == "mean" else f"_gap_reduce({v.name}, {axes!r})"
        b.emit(f"anp.{name}({args})", shape, v.lo, v.hi, margin)
    elif name == "var":
        b.emit(f"anp.var({args})", shape, 0, (v.hi - v.lo) ** 2)
    elif name == "logsumexp":
        b.emit(f"anp.logsumexp({args})", shape, v.lo, v.hi + math.log(n))
    elif name == "prod":
        s = v if v.bound <= 1.5 else b.unit(v)
        bound = s.bound ** n
        b.emit(f"anp.prod({s.name}, axis={axis!r}, keepdims={keep})", shape, -bound, bound)


def _struct(b: _Builder):
    name = b.draw(st.sampled_from(STRUCT))
    v = b.pick()
    r, s = len(v.shape), v.shape
    lo, hi = v.lo, v.hi
    if name in ("slice_tail", "slice_head", "reverse", "step2", "index0", "index_last",
                "gather") and r:
        ax = b.draw(st.integers(0, r - 1))
        pre = ":, " * ax
        n = s[ax]
        if name == "slice_tail" and n >= 2:
            b.emit(f"{v.name}[{pre}1:]", s[:ax] + (n - 1,) + s[ax + 1:], lo, hi)
        elif name == "slice_head" and n >= 2:
            b.emit(f"{v.name}[{pre}:-1]", s[:ax] + (n - 1,) + s[ax + 1:], lo, hi)
        elif name == "reverse":
            b.emit(f"{v.name}[{pre}::-1]", s, lo, hi)
        elif name == "step2":
            b.emit(f"{v.name}[{pre}::2]", s[:ax] + ((n + 1) // 2,) + s[ax + 1:], lo, hi)
        elif name == "index_last":
            b.emit(f"{v.name}[..., -1]", s[:-1], lo, hi)
        elif name == "gather":
            idx = b.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))
            b.emit(f"{v.name}[{pre}np.array({idx!r})]", s[:ax] + (len(idx),) + s[ax + 1:],
                   lo, hi)
        else:
            b.emit(f"{v.name}[{pre}0]", s[:ax] + s[ax + 1:], lo, hi)
    elif name == "newaxis":
        b.emit(f"{v.name}[None]", (1, *s), lo, hi)
    elif name == "transpose" and r >= 2:
        perm = b.draw(st.permutations(range(r)))
        b.emit(f"anp.transpose({v.name}, {tuple(perm)!r})", tuple(s[p] for p in perm), lo, hi)
    elif name == "transpose":
        b.emit(f"{v.name}.T", s[::-1], lo, hi)
    elif name == "reshape_flat":
        n = int(np.prod(s))
        if n % 2 == 0 and n > 2:
            b.emit(f"anp.reshape({v.name}, (2, -1))", (2, n // 2), lo, hi)
        else:
            b.emit(f"anp.ravel({v.name})", (n,), lo, hi)
    elif name == "expand_dims":
        ax = b.draw(st.integers(0, r))
        b.emit(f"anp.expand_dims({v.name}, {ax})", s[:ax] + (1,) + s[ax:], lo, hi)
    elif name == "squeeze" and 1 in s:
        b.emit(f"anp.squeeze({v.name})", tuple(d for d in s if d != 1), lo, hi)
    elif name == "concatenate" and r:
        ax = b.draw(st.integers(0, r - 1))
        fits = [w for w in b.vals if len(w.shape) == r
                and all(w.shape[i] == s[i] for i in range(r) if i != ax)]
        w = fits[b.draw(st.integers(0, len(fits) - 1))]
        shape = s[:ax] + (s[ax] + w.shape[ax],) + s[ax + 1:]
        b.emit(f"anp.concatenate([{v.name}, {w.name}], axis={ax})", shape, min(lo, w.lo),
               max(hi, w.hi))
    elif name == "stack":
        b.emit(f"anp.stack([{v.name}, {v.name} * 0.5])", (2, *s), min(lo, lo / 2),
               max(hi, hi / 2))
    elif name == "cumsum" and r:
        ax = b.draw(st.integers(0, r - 1))
        n = s[ax]
        b.emit(f"anp.cumsum({v.name}, axis={ax})", s, n * min(lo, 0), n * max(hi, 0))
    elif name == "broadcast_to" and r < 3:
        n = b.draw(st.sampled_from(LENGTHS))
        b.emit(f"anp.broadcast_to({v.name}, {(n, *s)!r})", (n, *s), lo, hi)
    elif name == "clip":
        b.emit(f"anp.clip({v.name}, -0.5, 0.75)", s, max(min(lo, 0.75), -0.5),
               min(max(hi, -0.5), 0.75), f"min(_gap({v.name}, -0.5), _gap({v.name}, 0.75))")
    elif name in ("roll", "flip") and r:
        ax = b.draw(st.integers(0, r - 1))
        shift = f"{b.draw(st.integers(-3, 3))}, " if name == "roll" else ""
        b.emit(f"anp.{name}({v.name}, {shift}axis={ax})", s, lo, hi)
    elif name in ("tril", "triu") and r >= 2:
        k = b.draw(st.integers(-1, 1))
        b.emit(f"anp.{name}({v.name}, k={k})", s, min(lo, 0.0), max(hi, 0.0))
    elif name == "repeat" and r:
        ax, n = b.draw(st.integers(0, r - 1)), b.draw(st.integers(1, 2))
        b.emit(f"anp.repeat({v.name}, {n}, axis={ax})", s[:ax] + (s[ax] * n,) + s[ax + 1:],
               lo, hi)
    elif name == "tile" and r < 3:
        b.emit(f"anp.tile({v.name}, (2,) + (1,) * {r})", (2, *s), lo, hi)
    elif name in ("trace", "diagonal") and r >= 2:
        n = min(s[0], s[1])
        if name == "trace":
            b.emit(f"anp.trace({v.name})", s[2:], n * min(lo, 0.0), n * max(hi, 0.0))
        else:
            b.emit(f"anp.diagonal({v.name})", (*s[2:], n), lo, hi)
    else:
        _unary(b)


def _linalg(b: _Builder):
    v = b.pick(lambda v: len(v.shape) >= 1)
    if v is None:
        return _unary(b)
    if v.bound > 10:
        v = b.small(v)
    k = v.shape[-1]
    fits = [w for w in b.vals if (len(w.shape) == 1 and w.shape[0] == k)
            or (len(w.shape) >= 2 and w.shape[-2] == k)]
    if not fits:
        return _unary(b)
    w = fits[b.draw(st.integers(0, len(fits) - 1))]
    try:  # the stacks of matrices must broadcast too
        shape = np.matmul(np.zeros(v.shape), np.zeros(w.shape)).shape
    except ValueError:
        return _unary(b)
    if w.bound > 10:
        w = b.small(w)
    bound = k * v.bound * w.bound
    kind = b.draw(st.sampled_from(["matmul", "op", "dot"] if len(v.shape) <= 2
                                  and len(w.shape) <= 2 else ["matmul", "op"]))
    expr = {"matmul": f"anp.matmul({v.name}, {w.name})", "op": f"{v.name} @ {w.name}",
            "dot": f"anp.dot({v.name}, {w.name})"}[kind]
    b.emit(expr, shape, -bound, bound)


def _has_rank(b):
    return any(len(v.shape) >= 1 for v in b.vals)


# ---- control flow: sub-programs are nested defs (see the module doc)

DAMP = 0.1  # a loop step moves the carry by at most this much


def _bounded(b, v, limit=100.0):
    return b.small(v) if v.bound > limit else v


def _param(b, shape, lo, hi):
    return Val(b.fresh("a"), tuple(shape), float(lo), float(hi))


def _sub_program(b, params):
    """A nested builder over ``params`` with 1-3 generated operations."""
    sub = b.sub(params)
    for _ in range(b.draw(st.integers(1, 3))):
        _operation(sub)
    return sub


def _fitting(sub, shape):
    """A value of the sub-program (a parameter or a local) that broadcasts to ``shape``."""
    cands = [v for v in sub.local if _bshape(v.shape, shape) == tuple(shape)]
    return cands[-1 - sub.draw(st.integers(0, min(2, len(cands) - 1)))]


def _threshold(b, v):
    """A scalar of ``v`` (its mean) and a threshold inside its interval."""
    # always a mean: a value the generator takes for 0-d may not be one in the reference
    # (SciPy's logsumexp of a 0-d array with keepdims=True has shape (1,))
    s = b.emit(f"anp.mean({v.name})", (), v.lo, v.hi)
    frac = b.draw(st.sampled_from([0.3, 0.5, 0.7]))
    return s, round(s.lo + (s.hi - s.lo) * frac, 3)


def _cond(b):
    """cond (or switch) on a data-dependent scalar between sub-programs of the same type."""
    ops = [_bounded(b, b.pick()) for _ in range(b.draw(st.integers(1, 2)))]
    shape = ops[0].shape
    s, thr = _threshold(b, b.pick())
    b.margin(f"abs(float({s.name}) - {thr})")
    n = b.draw(st.integers(2, 3)) if b.draw(st.integers(0, 2)) == 0 else 0
    if n:  # switch: index 0, 1 or 2 (clamped to the last branch when n == 2)
        thr2 = round(thr + max(0.1, (s.hi - s.lo) * 0.2), 3)
        b.margin(f"abs(float({s.name}) - {thr2})")
        index = f"anp.where({s.name} > {thr}, 1, 0) + anp.where({s.name} > {thr2}, 1, 0)"
    k = b.fresh("f")
    names, lo, hi = [], math.inf, -math.inf
    for j in range(n or 2):
        params = [_param(b, o.shape, o.lo, o.hi) for o in ops]
        sub = _sub_program(b, params)
        out = _fitting(sub, shape)
        ret = out.name if out.shape == shape else f"anp.broadcast_to({out.name}, {shape!r})"
        names.append(f"{k}_{j}")
        b.define(f"{k}_{j}({', '.join(p.name for p in params)})", sub, ret)
        lo, hi = min(lo, out.lo), max(hi, out.hi)
    args = ", ".join(o.name for o in ops)
    if n:
        b.emit(f"ctl.switch({index}, [{', '.join(names)}], {args})", shape, lo, hi)
    else:
        b.emit(f"ctl.cond({s.name} > {thr}, {names[1]}, {names[0]}, {args})", shape, lo, hi)


def _checkpoint(b):
    return ', checkpoint="sqrt"' if b.draw(st.integers(0, 3)) == 0 else ""


def _fori(b):
    """fori_loop, 1-5 steps, carry v -> v + 0.1 * tanh(sub-program(v)) (sometimes with the
    sign alternating with the loop index)."""
    v = _bounded(b, b.pick())
    n = b.draw(st.integers(1, 5))
    lower = b.draw(st.sampled_from([0, 0, 2]))
    lo, hi = v.lo - DAMP * n, v.hi + DAMP * n
    carry = _param(b, v.shape, lo, hi)
    sub = _sub_program(b, [carry])
    s = _fitting(sub, v.shape).name
    k, i = b.fresh("l"), b.fresh("i")
    if b.draw(st.booleans()):
        s = f"anp.where({i} % 2 == 0, {s}, -{s})"
    b.define(f"{k}({i}, {carry.name})", sub, f"{carry.name} + {DAMP} * anp.tanh({s})")
    b.emit(f"ctl.fori_loop({lower}, {lower + n}, {k}, {v.name}{_checkpoint(b)})", v.shape,
           lo, hi)


def _scan(b):
    """scan over a value's leading axis: the damped carry, and a per-step output."""
    xs = _bounded(b, b.pick(lambda v: len(v.shape) >= 1))
    c = _bounded(b, b.pick())
    n = xs.shape[0]
    lo, hi = c.lo - DAMP * n, c.hi + DAMP * n
    carry, x = _param(b, c.shape, lo, hi), _param(b, xs.shape[1:], xs.lo, xs.hi)
    sub = _sub_program(b, [carry, x])
    s = _fitting(sub, c.shape)
    y = sub.local[-1 - b.draw(st.integers(0, min(2, len(sub.local) - 1)))]
    k = b.fresh("s")
    b.define(f"{k}({carry.name}, {x.name})", sub,
             f"{carry.name} + {DAMP} * anp.tanh({s.name}), {y.name}")
    rev = ", reverse=True" if b.draw(st.booleans()) else ""
    b.emit_many(f"ctl.scan({k}, {c.name}, {xs.name}{rev}{_checkpoint(b)})",
                [(c.shape, lo, hi), ((n, *y.shape), y.lo, y.hi)])


def _while(b):
    """while_loop: at most 1-4 damped steps, stopping early on a data-dependent test."""
    b.prog.forward_only = True
    v = _bounded(b, b.pick())
    n = b.draw(st.integers(1, 4))
    lo, hi = v.lo - DAMP * n, v.hi + DAMP * n
    k, i, c = b.fresh("w"), b.fresh("i"), b.fresh("c")
    val = _param(b, v.shape, lo, hi)
    sub = _sub_program(b, [val])
    s = _fitting(sub, v.shape)
    b.define(f"{k}_body({c})", sub, f"{i} + 1, {val.name} + {DAMP} * anp.tanh({s.name})",
             pre=[f"{i}, {val.name} = {c}"])
    test = b.sub([Val(val.name, v.shape, lo, hi)])
    thr = round(v.lo + (v.hi - v.lo) * b.draw(st.sampled_from([0.3, 0.5, 0.7])), 3)
    test.margin(f"abs(float(anp.mean({val.name})) - {thr})")
    b.define(f"{k}_cond({c})", test, f"anp.logical_and({i} < {n}, anp.mean({val.name}) < {thr})",
             pre=[f"{i}, {val.name} = {c}"])
    b.emit(f"ctl.while_loop({k}_cond, {k}_body, (0, {v.name}))[1]", v.shape, lo, hi)


def _control(b):
    kinds = ["cond", "fori", "scan"] * 2 + (["while"] if b.allow_while else [])
    kind = b.draw(st.sampled_from(kinds))
    if kind == "scan" and not _has_rank(b):
        kind = "fori"
    {"cond": _cond, "fori": _fori, "scan": _scan, "while": _while}[kind](b)


KINDS = ["unary", "unary", "binary", "binary", "reduce", "struct", "linalg"]


def _operation(b):
    control = ["control"] * (0 if b.depth >= b.max_depth else 2 if b.depth == 0 else 1)
    kind = b.draw(st.sampled_from(KINDS + control))
    if kind == "linalg" and not _has_rank(b):
        kind = "unary"
    {"unary": _unary, "binary": _binary, "reduce": _reduce, "struct": _struct,
     "linalg": _linalg, "control": _control}[kind](b)


def _names_read(lines):
    """The value names the lines read (margins, defs and left-hand sides do not count)."""
    used = set()
    for line in lines:
        text = line.strip()
        if text.startswith(("def ", "#")):
            continue
        if not text.startswith("return "):
            text = text.split(" = ", 1)[1]
        used.update(re.findall(r"\b[xta]\d+\b", text))
    return used


@st.composite
def programs(draw, max_ops=6, allow_while=True, max_depth=2):
    """A random program: 1-3 inputs broadcastable against a base shape (rank 0-3, lengths
    1-4), then 1..max_ops operations (control flow among them, nested at most ``max_depth``
    deep, none with 0; ``allow_while=False`` leaves while_loop out), ending in a scalar
    ``anp.sum``."""
    base = draw(st.lists(st.sampled_from(LENGTHS), min_size=0, max_size=3))
    n_in = draw(st.integers(1, 3))
    shapes = []
    for _ in range(n_in):
        drop = draw(st.integers(0, len(base)))
        shape = [d if not draw(st.integers(0, 3)) == 0 else 1 for d in base[drop:]]
        shapes.append(tuple(shape))
    b = _Builder(draw, shapes, allow_while, max_depth)
    for _ in range(draw(st.integers(1, max_ops))):
        _operation(b)
    # every value nothing else reads is part of the result, so no operation is dead code
    used = _names_read(b.prog.lines)
    b.prog.outs = [v.name for v in b.vals[::-1] if v.name not in used and v.name[0] == "t"]
    b.prog.seed = draw(st.integers(0, 2**31 - 1))
    return b.prog


# --------------------------------------------------------------------------- checks


def _allclose(what, actual, expected, rtol, atol, prog, dtype):
    actual = [np.asarray(a, np.float64) for a in actual]
    expected = [np.asarray(e, np.float64) for e in expected]
    for a, e in zip(actual, expected):
        if a.shape != e.shape:
            raise AssertionError(f"{what}: shape {a.shape} != {e.shape}\n{prog.reproducer(dtype)}")
        scale = max(1.0, float(np.max(np.abs(e), initial=0.0)))
        if not np.allclose(a, e, rtol=rtol, atol=atol * scale, equal_nan=False) \
                or not np.all(np.isfinite(a)):
            raise AssertionError(f"{what}: {a} != {e}\n{prog.reproducer(dtype)}")


def _all_args(n):
    return tuple(range(n))


def check_interpreted(prog: Program, dtype=np.float64):
    """On the reference interpreter: value == NumPy; derivatives to second order against
    finite differences (where no kink is near) and reverse against forward."""
    try:
        _check_interpreted(prog, dtype)
    except AssertionError:
        raise
    except Exception as exc:  # an error from adjit where NumPy gives a result
        raise AssertionError(f"{type(exc).__name__}: {exc}\n{prog.reproducer(dtype)}") from exc


def _check_interpreted(prog: Program, dtype):
    args = prog.inputs(dtype)
    f = prog.function()
    previous = adjit.config.jit
    adjit.config.update("jit", False)
    try:
        with np.errstate(all="ignore"):
            expected = prog.function(NUMPY_NS)(*[np.asarray(a, np.float64) for a in args])
        got = adjit.jit(f)(*args)
        tol = 1e-9 if dtype == np.float64 else 1e-4
        _allclose("interpreter vs NumPy", [got], [expected], tol, tol, prog, dtype)
        if np.dtype(dtype) != np.float64:  # NumPy's type promotion: float32 stays float32
            with np.errstate(all="ignore"):
                want = np.asarray(prog.function(NUMPY_NS)(*args)).dtype
            if np.asarray(got).dtype != want:
                raise AssertionError(f"result dtype {np.asarray(got).dtype} != NumPy's {want}"
                                     f"\n{prog.reproducer(dtype)}")
        if prog.forward_only:
            _check_forward_only(prog, f, args, dtype)
        elif np.dtype(dtype) == np.float64:
            # Near a kink finite differences straddle two pieces: the modes are then checked
            # against each other only.
            smooth = prog.margin(args) > 1e-2
            try:
                if smooth:
                    testing.check_grads(f, args, order=2, seed=prog.seed % 1000)
                else:
                    testing.check_modes_agree(f, args, order=2, seed=prog.seed % 1000)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{prog.reproducer(dtype)}") from None
        else:
            _check_float32(prog, f, args)
    finally:
        adjit.config.update("jit", previous)


def _check_float32(prog, f, args):
    """float32 derivatives: reverse == forward (inner products, to second order), and the
    float32 gradient against the float64 gradient at the same (float32) point."""
    try:
        testing.check_modes_agree(f, args, order=2, seed=prog.seed % 1000, atol=2e-3,
                                  rtol=2e-3)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{prog.reproducer(np.float32)}") from None
    nums = _all_args(len(args))
    g32 = adjit.grad(f, argnums=nums)(*args)
    g64 = adjit.grad(f, argnums=nums)(*[np.asarray(a, np.float64) for a in args])
    _allclose("float32 gradient vs float64", g32, g64, 2e-3, 2e-3, prog, np.float32)


def _directions(prog, args, dtype):
    rng = np.random.default_rng(prog.seed + 7)
    return tuple(np.asarray(rng.standard_normal(np.shape(a)), dtype) for a in args)


def _forward(f, v):
    """The first and second derivatives of f along v, in forward mode only."""
    def first(*xs):
        return adjit.jvp(f, xs, v)[1]

    def both(*xs):
        return first(*xs), adjit.jvp(first, xs, v)[1]

    return both


def _check_forward_only(prog, f, args, dtype):
    """A program with a while_loop (no reverse mode): float64, forward mode against finite
    differences to second order where no kink or branch is near (else the derivatives must
    just be finite); float32, the first and second derivatives along a direction against
    float64's at the same point."""
    v = _directions(prog, args, dtype)
    if np.dtype(dtype) == np.float64:
        if prog.margin(args) > 1e-2:
            try:
                testing.check_grads(f, args, order=2, modes=("fwd",), seed=prog.seed % 1000)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{prog.reproducer(dtype)}") from None
        else:
            t, tt = _forward(f, v)(*args)
            _allclose("forward derivatives are finite", [t, tt], [t, tt], 1, 1, prog, dtype)
        return
    t32 = _forward(f, v)(*args)
    t64 = _forward(f, tuple(np.asarray(a, np.float64) for a in v))(
        *[np.asarray(a, np.float64) for a in args])
    _allclose("float32 forward derivatives vs float64", t32, t64, 2e-3, 2e-3, prog, dtype)


def derivatives(f, n, v, forward_only=False):
    """value, gradient, forward derivative along v and Hessian-vector product, as one body
    (without reverse mode: value, (), the first and second derivatives along v)."""
    nums = _all_args(n)
    if forward_only:
        both = _forward(f, v)

        def forward_body(*xs):
            t, tt = both(*xs)
            return f(*xs), (), t, (tt,)

        return forward_body

    def body(*xs):
        value, g = adjit.value_and_grad(f, argnums=nums)(*xs)
        _, t = adjit.jvp(f, xs, v)
        _, hv = adjit.jvp(lambda *ys: adjit.grad(f, argnums=nums)(*ys), xs, v)
        return value, g, t, hv

    return body


def check_compiled_group(progs, dtype=np.float64):
    """Compile several programs' value, gradient, jvp and Hessian-vector product as ONE
    kernel (compile time dominates) and compare with the reference interpreter; then reverse
    against forward on the compiled results."""
    parts = []
    for p in progs:
        args = p.inputs(dtype)
        v = _directions(p, args, dtype)
        parts.append((p, args, derivatives(p.function(), len(args), v, p.forward_only), v))

    def group(*flat):
        outs, i = [], 0
        for _, args, body, _ in parts:
            outs.append(body(*flat[i:i + len(args)]))
            i += len(args)
        return outs

    flat = [a for _, args, _, _ in parts for a in args]
    compiled = adjit.jit(group)(*flat)
    previous = adjit.config.jit
    adjit.config.update("jit", False)
    reference = []
    try:
        for _, args, body, _ in parts:
            reference.append(adjit.jit(body)(*args))
    finally:
        adjit.config.update("jit", previous)
    tol = 1e-8 if dtype == np.float64 else 2e-4
    for (p, _, _, v), got, want in zip(parts, compiled, reference):
        value, g, t, hv = got
        _allclose("compiled value vs interpreter", [value], [want[0]], tol, tol, p, dtype)
        _allclose("compiled gradient vs interpreter", g, want[1], tol, tol, p, dtype)
        _allclose("compiled jvp vs interpreter", [t], [want[2]], tol, tol, p, dtype)
        _allclose("compiled Hessian-vector product vs interpreter", hv, want[3], tol * 10,
                  tol * 10, p, dtype)
        if p.forward_only:
            continue
        inner = sum(float(np.vdot(np.asarray(a, np.float64), np.asarray(b, np.float64)))
                    for a, b in zip(g, v))
        _allclose("compiled <grad, v> vs jvp", [inner], [t], tol * 10, tol * 10, p, dtype)
