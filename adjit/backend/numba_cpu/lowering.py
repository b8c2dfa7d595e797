"""The Numba CPU target's lowering tables: what each primitive becomes in a kernel's source.

One table per way the generator (``codegen.py``) meets a primitive; its docstring gives each
table's calling convention. A primitive the fusion pass can hand the generator and no table
holds is a ``MissingRuleError`` naming it; ``tests/test_targets.py`` checks that none is
missing.
"""

from __future__ import annotations

import inspect

import numpy as np

from adjit.backend.numba_cpu import vecmath
from adjit.backend.numba_cpu.codegen import Generator, const_text, constant
from adjit.backend.numba_cpu.compat import contiguous, require_rocket_fft
from adjit.ir.graph import Literal, is_symbolic
from adjit.passes.fusion import blas_view, pad_moves
from adjit.primitives import special

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


def _math(fn):
    """``math.fn``, or ``cmath.fn`` in a complex kernel (Numba types both)."""
    return lambda *args, out_dtype, **_: (
        f"{'cmath' if out_dtype.kind == 'c' else 'math'}.{fn}({', '.join(args)})")


def _expm1(a, *, out_dtype, **_):
    if out_dtype.kind == "c":  # cmath has no expm1
        return f"(cmath.exp({a}) - {const_text(1.0, out_dtype)})"
    return f"math.expm1({a})"


def _log1p(a, *, out_dtype, **_):
    if out_dtype.kind == "c":  # cmath has no log1p
        return f"cmath.log({const_text(1.0, out_dtype)} + {a})"
    return f"math.log1p({a})"


def _div(a, b, *, out_dtype, **_):
    return f"({a} / {b})" if out_dtype.kind in "fc" else f"({a} // {b})"


def _convert(a, *, new_dtype, **_):
    if new_dtype == np.bool_:
        return f"({a} != 0)"
    return f"np.{new_dtype.name}({a})"


def _vectorizable(prim):
    """The helper of ``vecmath`` (float64; float32 through float64, rounded once), so that
    the loop vectorizes; libm for other types."""
    fn = vecmath.FUNCTIONS[prim]

    def lower(a, *, out_dtype, **_):
        if out_dtype == np.float64:
            return f"{fn}({a})"
        if out_dtype == np.float32:
            return f"np.float32({fn}(np.float64({a})))"
        return {"expm1": _expm1, "log1p": _log1p}.get(prim, _math(prim))(a, out_dtype=out_dtype)

    return lower


def _logistic(a, *, out_dtype, **_):
    # 1 / (1 + e^-x) keeps its relative accuracy in the lower tail (0.5 (tanh(x/2) + 1)
    # cancels there); e^-x overflowing to inf gives the right 0.
    one = const_text(1.0, out_dtype)
    return f"({one} / ({one} + {_vectorizable('exp')(f'(-{a})', out_dtype=out_dtype)}))"


def _extremum(cmp):
    # NaN wins, as in np.maximum: `a != a` is true only for NaN. One select (runtime.py), not
    # a conditional expression: no branch in Numba's IR.
    return lambda a, b, **_: f"rt.select(({a} {cmp} {b}) | ({a} != {a}), {a}, {b})"


SCALAR_LOWERINGS = {
    "neg": lambda a, **_: f"(-{a})",
    "add": _infix("+"), "sub": _infix("-"), "mul": _infix("*"), "div": _div,
    "pow": _infix("**"), "integer_pow": _integer_pow,
    "max": _extremum(">"), "min": _extremum("<"),
    "atan2": _call("math.atan2"),
    "sin": _vectorizable("sin"), "cos": _vectorizable("cos"), "tan": _math("tan"),
    "asin": _math("asin"), "acos": _math("acos"), "atan": _math("atan"),
    "sinh": _math("sinh"), "cosh": _math("cosh"), "tanh": _vectorizable("tanh"),
    "asinh": _math("asinh"), "acosh": _math("acosh"), "atanh": _math("atanh"),
    "exp": _vectorizable("exp"), "expm1": _vectorizable("expm1"), "log": _vectorizable("log"),
    "log1p": _vectorizable("log1p"), "sqrt": _math("sqrt"), "cbrt": _call("np.cbrt"),
    "erf": _call("math.erf"), "lgamma": _call("math.lgamma"), "digamma": _call("_digamma"),
    "polygamma": lambda a, *, m, **_: f"_polygamma({a}, {int(m)})",
    "gamma": lambda a, *, out_dtype, **_: f"np.{out_dtype.name}(_tgamma({a}))",
    # computed in float64 (its constants are), cast back
    "gammainc_da": lambda a, x, psi, *, out_dtype, **_: (
        f"np.{out_dtype.name}(gammainc_da_scalar(np.float64({a}), np.float64({x}), "
        f"np.float64({psi})))"),
    "erfc": _call("math.erfc"),
    "logistic": _logistic,
    "abs": _call("abs"), "sign": _call("np.sign"), "floor": _call("np.floor"),
    "ceil": _call("np.ceil"), "round": _call("np.rint"),
    "eq": _infix("=="), "ne": _infix("!="), "lt": _infix("<"), "le": _infix("<="),
    "gt": _infix(">"), "ge": _infix(">="),
    "and": _infix("and"), "or": _infix("or"), "not": lambda a, **_: f"(not {a})",
    "select": lambda p, a, b, **_: f"rt.select({p}, {a}, {b})",
    "convert_element_type": _convert,
    "stop_gradient": lambda a, **_: a,
    "real": lambda a, **_: f"{a}.real", "imag": lambda a, **_: f"{a}.imag",
    "conj": lambda a, **_: f"{a}.conjugate()",
    "complex": lambda a, b, *, out_dtype, **_: f"np.{out_dtype.name}(complex({a}, {b}))",
}

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

# SciPy's compiled special functions (adjit.backend.numba_cpu.scipy_special), name -> arity:
# called in float64, the result cast to the output's type.
SCIPY_SPECIAL = {"erfcx": 1, "erfinv": 1, "ndtri": 1, "i0e": 1, "i1e": 1, "j0": 1, "j1": 1,
                 "y0": 1, "y1": 1, "gammainc": 2, "gammaincc": 2, "gammaincinv": 2,
                 "betainc": 3, "betaincinv": 3}
for _name in SCIPY_SPECIAL:
    SCALAR_LOWERINGS[_name] = lambda *args, out_dtype, _name=_name, **_: (
        f"np.{out_dtype.name}(_scipy_{_name}({', '.join(args)}, 0))")


_TRIANGULAR_SOLVE = '''
@numba.njit(cache=True, error_model="numpy")
def _triangular_solve(a, b, lower, trans, unit):
    # Substitution for op(A) X = B, op(A) = A or A^T, reading only A's triangle: forward when
    # op(A) is lower triangular, backward when upper.
    n, k = b.shape
    x = np.empty((n, k), b.dtype)
    forward = lower != trans
    for step in range(n):
        i = step if forward else n - 1 - step
        lo, hi = (0, i) if forward else (i + 1, n)
        for c in range(k):
            acc = b[i, c]
            for j in range(lo, hi):
                acc -= (a[j, i] if trans else a[i, j]) * x[j, c]
            x[i, c] = acc if unit else acc / a[i, i]
    return x
'''


# Per-kernel helpers, emitted once above the kernel when a lowering calls them.
def _revolve_helpers() -> str:
    """Revolve's schedule maker, compiled into the kernels that run a Revolve sweep: the one
    the interpreter runs (adjit.control.loops), from its source."""
    from adjit.control import loops

    parts = ["ADVANCE, STORE, RESTORE, ADJOINT = 0, 1, 2, 3"]
    for fn in (loops._beta, loops._repetitions, loops.revolve_schedule):
        parts.append('@numba.njit(cache=True, error_model="numpy")\n' + inspect.getsource(fn))
    return "\n\n".join(parts)


# C's tgamma (libm), not math.gamma: Numba lowers that to its own helper library, which a
# kernel built ahead of time (adjit.aot) cannot link.
_TGAMMA = "_tgamma = numba.types.ExternalFunction('tgamma', numba.float64(numba.float64))\n"
HELPERS = {"digamma": _DIGAMMA, "polygamma": _POLYGAMMA, "revolve": _revolve_helpers(),
           "gamma": _TGAMMA, "triangular_solve": _TRIANGULAR_SOLVE, **vecmath.HELPERS,
           "gammainc_da": '@numba.njit(cache=True, error_model="numpy")\n'
                          + inspect.getsource(special.gammainc_da_scalar)}
# Importing scipy_special registers the function's symbol before the kernel is compiled or
# loaded from the disk cache.
HELPERS.update({name: "from adjit.backend.numba_cpu.scipy_special import external\n"
                      f"_scipy_{name} = external({name!r}, {n})\n"
                for name, n in SCIPY_SPECIAL.items()})
# The other helpers a primitive's lowering or helper calls: emitted with it.
HELPER_NEEDS = {"logistic": ("exp",)}


def _beyond(limit):
    return lambda a, *, out_dtype, **_: (
        f"abs({a}) > {limit!r}" if out_dtype in (np.float64, np.float32) else None)


def _exact(*_, **__):
    return None


# The libm lowering of each primitive whose lowering above is a vecmath helper: prim -> (the
# condition on an element, as text, under which the helper is not exact, or None where it
# is; the libm lowering). The generator uses them for a loop nest that LLVM will not
# vectorize (one element at a time libm is as fast), and runs a nest again with them when
# an element met a condition: a rare second pass, so that the common one vectorizes.
LIBM_LOWERINGS = {
    "sin": (_beyond(vecmath.SINCOS_LIMIT), _math("sin")),
    "cos": (_beyond(vecmath.SINCOS_LIMIT), _math("cos")),
    **{prim: (_exact, _math(prim)) for prim in ("exp", "log", "tanh")},
    "expm1": (_exact, _expm1),
    "log1p": (_exact, _log1p),
    "logistic": (_exact, lambda a, *, out_dtype, **_: (
        f"({const_text(1.0, out_dtype)} / ({const_text(1.0, out_dtype)} + math.exp(-{a})))")),
}


# --------------------------------------------------------------------------- gathers


def _iota(g: Generator, eqn, read, index):
    return f"np.{eqn.params['dtype'].name}({index[eqn.params['dimension']]})"


def _take(g: Generator, eqn, read, index):
    x, idx = eqn.inputs
    axis = eqn.params["axis"]
    k = len(idx.aval.shape)
    i_expr = read(idx, index[axis:axis + k])
    n = g.dim(x.aval.shape[axis])
    return read(x, [*index[:axis], g.bound(g.clip_index(i_expr, n)), *index[axis + k:]])


def _placed(g: Generator, i: str, start, n: int, step: int = 1):
    """Where element ``i`` of an axis holding an input of length ``n`` placed from ``start``
    every ``step`` elements reads it: ``(condition, index)``, the texts of whether it reads
    the input and of the input's index there. The index is clamped into the input (``n`` >=
    1), so the read is safe and the nest stays branch-free: the element is the read value or
    zero (a select). Both are numbers where ``i`` is one (an unrolled shared loop)."""
    static = not is_symbolic(start)
    q = i if static and start == 0 else f"({i} - {g.dim(start)})"
    conditions = []
    if not (static and start == 0):
        conditions.append(f"0 <= {q}")
    if step > 1:
        conditions.append(f"{q} % {step} == 0")
        q = f"({q} // {step})"
    conditions.append(f"{q} <= {n - 1}")
    return _folded(" & ".join(f"({c})" for c in conditions)), g.clamp(q, n - 1)


def _folded(text: str) -> str:
    """``text``, or its value where it has no names (``codegen.constant``)."""
    value = constant(text)
    return text if value is None else str(value)


def _pad_element(g: Generator, eqn, read, index):
    """The padded array's element (fusion's ``placed_elementwise``); where the index is
    known (an unrolled shared loop's element), the input's element or zero."""
    (x,) = eqn.inputs
    p = eqn.params
    at, conditions = [], []
    for i, n, lo, hi, k in zip(index, x.aval.shape, p["lo"], p["hi"], p["interior"]):
        if not pad_moves(lo, hi, k):
            at.append(i)
            continue
        condition, j = _placed(g, i, lo, n, k + 1)
        if condition != "True":
            conditions.append(condition)
        at.append(j)
    zero = g.const(0, x.aval.dtype)
    if "False" in conditions:
        return zero
    value = read(x, at)
    return g.select(" & ".join(conditions), value, zero) if conditions else value


def _concatenate_element(g: Generator, eqn, read, index):
    """The joined array's element: each part's read at a clamped index, the one whose place
    holds the index kept (fusion's ``placed_elementwise``); where the index is known (an
    unrolled shared loop's element), that part's element."""
    axis = eqn.params["dimension"]
    known = constant(index[axis])
    parts, start = [], 0
    for x in eqn.inputs:
        n = x.aval.shape[axis]
        if known is not None:
            if known < start + n:
                return read(x, [*index[:axis], str(known - start), *index[axis + 1:]])
        else:
            _, j = _placed(g, index[axis], start, n)
            parts.append((read(x, [*index[:axis], j, *index[axis + 1:]]), start + n))
        start += n
    value = parts[-1][0]
    for part, end in reversed(parts[:-1]):
        value = g.select(f"{index[axis]} < {end}", part, value)
    return value


# An element read at a computed index: lower(gen, eqn, read, index) -> expression. Pads and
# concatenations are here for the nests that compute them (fusion's ``placed_elementwise``);
# the others are whole-array equations (ARRAY_LOWERINGS).
GATHER_LOWERINGS = {"iota": _iota, "take": _take, "pad": _pad_element,
                    "concatenate": _concatenate_element}


# --------------------------------------------------------------------------- reductions


def _accumulate(op):
    return lambda acc, value: [f"{acc} {op}= {value}"]


def _keep_extremum(cmp):
    # NaN wins, as in np.max: `value != value` is true only for NaN. One select, no branch.
    return lambda acc, value: [
        f"{acc} = rt.select(({value} {cmp} {acc}) | ({value} != {value}), {value}, {acc})"]


# prim -> (initial value, update(acc, value) -> the lines run once per element)
REDUCE_LOWERINGS = {
    "reduce_sum": (0, _accumulate("+")),
    "reduce_prod": (1, _accumulate("*")),
    "reduce_max": (-np.inf, _keep_extremum(">")),
    "reduce_min": (np.inf, _keep_extremum("<")),
}


# --------------------------------------------------------------------------- array lowerings


def _matmul(g: Generator, eqn):
    """np.dot: BLAS. A transposed matrix is passed as the transposed view of its source (BLAS
    reads it with its transpose flag, no copy); a vector made a row on the left or a column on
    the right makes a matrix-vector product (gemv), copied into the product's shape (a loop:
    a reshape would call Numba's runtime, which an ahead-of-time library lacks)."""
    if eqn.out.aval.ndim > 2:
        _stacked_matmul(g, eqn)
        return
    texts, vectors = [], []
    views = g.schedule.views
    for side, x in enumerate(eqn.inputs):
        # (the same view may be read as it is by one product and computed for another)
        view = views[x.id] if x.id in g.schedule.blas_views and blas_view(
            views[x.id], views, side) else None
        if view is None:
            texts.append(contiguous(g.atom(x)))
        else:
            source = contiguous(g.atom(view.inputs[0]))
            texts.append(f"{source}.T" if view.prim == "transpose" else source)
        vectors.append(view is not None and view.prim == "reshape")
    out = g.name(eqn.out)
    product = f"rt.dot({texts[0]}, {texts[1]})"
    if not any(vectors):
        g.w(f"{out} = {product}")
        return
    g.alloc(eqn.out)
    if all(vectors):  # a row times a column
        g.w(f"{out}[0, 0] = {product}")
        return
    flat, j = g.fresh("gemv"), g.fresh("j")
    g.w(f"{flat} = {product}")
    g.w(f"for {j} in range({flat}.shape[0]):")
    g.w(f"    {out}[{f'0, {j}' if vectors[0] else f'{j}, 0'}] = {flat}[{j}]")


# Below this many multiply-adds per matrix (m * k * n) a product of stacks is written as loops:
# a BLAS call through Numba's np.dot costs 100-400 ns however small its matrices. Measured on
# one core (float64, 2*10^6 multiply-adds in all): a stack of 2x2 products 30 ms by BLAS calls
# against 1.2 ms by loops, 4x4 4.2 against 0.7, 8x8 0.80 against 0.57, 12x12 0.38 against
# 0.53, 24x24 0.16 against 0.33.
BLAS_MIN_WORK = 1000


def _stacked_matmul(g: Generator, eqn):
    """A product of stacks of matrices: loops over the batch axes, each step one BLAS ``gemm``
    of two 2-D slices written into the output's slice (``rt.gemm_into``: the BLAS call written
    in the kernel where the slices' types are contiguous, else a strided implementation
    compiled once per layout and cached on disk). ``gemm_into`` reads a matrix in place
    wherever its rows or its columns are contiguous, so an operand that is a view (axes
    permuted, a broadcast along the batch) is read in its source (``Schedule.stacked``):
    ``x[:, b, :]`` of an (n, K, d) array, ``x[b].T``; a non-contiguous input is copied once,
    before the loop. Below
    ``BLAS_MIN_WORK`` multiply-adds per matrix, or for integers and booleans, the step is
    plain loops instead (chosen in the kernel when the lengths are symbolic). A stack times
    one matrix is one product of the stack's rows."""
    x, y = eqn.inputs
    batch = eqn.out.aval.shape[:-2]
    standard = [*range(len(batch)), "i", "j"]
    operands = []
    for a in eqn.inputs:
        source, axes = g.schedule.stacked.get(a.id) or (a, standard)
        name = g.fresh("m")
        g.w(f"{name} = {contiguous(g.atom(source))}")
        operands.append((name, axes))
    out = g.name(eqn.out)
    g.alloc(eqn.out)
    index = [g.fresh("b") for _ in batch]

    def at(axes, i=":", j=":"):
        return ", ".join(i if t == "i" else j if t == "j" else "0" if t is None else index[t]
                         for t in axes)

    def matrix(name, axes):
        if axes == ["i", "j"]:
            return name
        if axes[-2:] in (["i", "j"], ["j", "i"]) and all(t is not None for t in axes[:-2]):
            # x[b] (.T): Numba types it C-contiguous (x[b, :, :] it does not), and
            # gemm_into calls BLAS in the kernel on operands of such types.
            rows = f"{name}[{at(axes[:-2])}]" if len(axes) > 2 else name
            return rows + (".T" if axes[-2] == "j" else "")
        return f"{name}[{at(axes)}]" + (".T" if axes.index("j") < axes.index("i") else "")

    def loops():
        i, j, p, acc = g.fresh("i"), g.fresh("j"), g.fresh("p"), g.fresh("acc")
        (left, left_axes), (right, right_axes) = operands
        g.w(f"for {i} in range({g.dim(m)}):")
        g.w(f"    for {j} in range({g.dim(n)}):")
        g.w(f"        {acc} = {g.const(0, eqn.out.aval.dtype)}")
        g.w(f"        for {p} in range({g.dim(k)}):")
        g.w(f"            {acc} += {left}[{at(left_axes, i, p)}] * "
            f"{right}[{at(right_axes, p, j)}]")
        g.w(f"        {out}[{', '.join([*index, i, j])}] = {acc}")

    m, k, n = x.aval.shape[-2], x.aval.shape[-1], y.aval.shape[-1]
    (left, left_axes), right = operands
    if np.dtype(eqn.out.aval.dtype).kind not in "fc":  # integers, booleans: BLAS has none
        _loops(g, batch, index)
        loops()
        g.w.depth -= len(batch)
        return
    if left_axes == standard and all(t in ("i", "j", None) for t in right[1]):
        # One matrix for the whole stack on the right (x @ W of a layer over a batch): the
        # batch axes fold into the rows of the left operand and the output, one BLAS call.
        rows = " * ".join(g.dim(d) for d in (*batch, m))
        g.w(f"rt.gemm_into(rt.reshape({left}, ({rows}, {g.dim(k)})), {matrix(*right)}, "
            f"rt.reshape({out}, ({rows}, {g.dim(n)})))")
        return
    blas = (f"rt.gemm_into({matrix(*operands[0])}, {matrix(*operands[1])}, "
            f"{out}[{', '.join(index)}])")
    _loops(g, batch, index)
    if not any(is_symbolic(d) for d in (m, k, n)):
        if m * k * n >= BLAS_MIN_WORK:
            g.w(blas)
        else:
            loops()
    else:
        g.w(f"if {g.dim(m)} * {g.dim(k)} * {g.dim(n)} >= {BLAS_MIN_WORK}:")
        g.w(f"    {blas}")
        g.w("else:")
        g.w.depth += 1
        loops()
        g.w.depth -= 1
    g.w.depth -= len(batch)


def _reshape(g: Generator, eqn):
    (x,) = eqn.inputs
    out = g.name(eqn.out)
    new = eqn.out.aval.shape
    if x.aval.shape == ():
        g.w(f"{out} = {g.new_array(new, None, fill=g.atom(x))}")
    elif new == ():
        g.w(f"{out} = {contiguous(g.atom(x))}.ravel()[0]")
    else:
        g.w(f"{out} = rt.reshape({contiguous(g.atom(x))}, {g.shape(new)})")


def _copy_into(g: Generator, x, out: str, starts: list[str], steps=None):
    """``out[start + j * step, ...] = x[j, ...]`` as plain loops: Numba types and lowers a
    loop of scalar assignments much faster than a slice assignment (an overload per slice
    signature, compiled in the kernel's compilation)."""
    shape = x.aval.shape
    index = [f"j{k}" for k in range(len(shape))]
    steps = steps or [1] * len(shape)
    _loops(g, shape, index)
    at = [f"{s} + {j}" if step == 1 else f"{s} + {j} * {step}"
          for s, j, step in zip(starts, index, steps)]
    g.w(f"{out}[{', '.join(at)}] = {g.atom(x)}[{', '.join(index)}]")
    g.w.depth -= len(shape)


def _pad(g: Generator, eqn):
    (x,) = eqn.inputs
    p = eqn.params
    g.alloc(eqn.out, zeros=True)
    _copy_into(g, x, g.name(eqn.out), [g.dim(lo) for lo in p["lo"]],
               [k + 1 for k in p["interior"]])


def _concatenate(g: Generator, eqn):
    """Each part written into its place in one array (allocated once where in a loop)."""
    out, axis = g.name(eqn.out), eqn.params["dimension"]
    g.alloc(eqn.out)
    start = "0"
    for x in eqn.inputs:
        _copy_into(g, x, out, [start if k == axis else "0" for k in range(x.aval.ndim)])
        start = f"{start} + {g.dim(x.aval.shape[axis])}" if start != "0" else \
            g.dim(x.aval.shape[axis])


def _shape_size(g: Generator, eqn):
    dims = " * ".join(g.dim(d) for d in eqn.params["dims"]) or "1"
    g.w(f"{g.name(eqn.out)} = np.{eqn.params['dtype'].name}({dims})")


def _loops(g: Generator, shape, names):
    for k, d in enumerate(shape):
        g.w(f"for {names[k]} in range({g.dim(d)}):")
        g.w.depth += 1


def _scatter_add(g: Generator, eqn):
    """Adds each update into the row its index names. In a parallel kernel the updates' first
    axis is split among threads, each adding into a copy of its own (two threads adding into
    one element would race), and the copies are summed after."""
    x, idx, upd = eqn.inputs
    axis = eqn.params["axis"]
    out = g.name(eqn.out)
    g.w(f"{out} = rt.copy({g.atom(x)})")
    shape = upd.aval.shape
    index = [f"j{k}" for k in range(len(shape))]
    k = len(idx.aval.shape)
    target, depth = f"{out}[", len(shape)
    if g.parallel and shape:
        chunks = g.chunk_count(shape[0], shape)
        chunk, copies = g.fresh("chunk"), g.fresh("copies")
        g.w(f"{copies} = np.zeros(({chunks},) + {out}.shape, {out}.dtype)")
        g.w(f"for {chunk} in numba.prange({chunks}):")
        g.w(f"    for {index[0]} in range({chunk} * {g.dim(shape[0])} // {chunks}, "
            f"({chunk} + 1) * {g.dim(shape[0])} // {chunks}):")
        g.w.depth += 2
        _loops(g, shape[1:], index[1:])
        target, depth = f"{copies}[{chunk}, ", depth + 1
    else:
        _loops(g, shape, index)
    n = f"{out}.shape[{axis}]"
    i_expr = f"{g.atom(idx)}[{', '.join(index[axis:axis + k])}]" if k else g.atom(idx)
    g.w(f"p = {i_expr}")
    g.w(f"p = {g.clip_index('p', n)}")
    at = ", ".join([*index[:axis], "p", *index[axis + k:]])
    g.w(f"{target}{at}] += {g.atom(upd)}[{', '.join(index)}]")
    g.w.depth -= depth
    if depth > len(shape):
        g.w(f"for {chunk} in range({chunks}):")
        g.w(f"    {out} += {copies}[{chunk}]")


def _along_axis(g: Generator, eqn, axis, emit):
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


def _cumsum(g: Generator, eqn):
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
    def lower(g: Generator, eqn):
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
    def lower(g: Generator, eqn):
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


def _per_matrix(call):
    """A NumPy linear-algebra call (Numba's np.linalg: LAPACK through SciPy) on each matrix of
    a stack: loops over the leading (batch) axes, which every operand and output share.
    ``call(*operand_texts, **params)`` is the expression of the results of one matrix."""
    def lower(g: Generator, eqn):
        batch = eqn.inputs[0].aval.shape[:-2]
        outs = [g.name(v) for v in eqn.outs]
        index = [g.fresh("b") for _ in batch]
        if batch:
            for v, name in zip(eqn.outs, outs):
                g.w(f"{name} = np.empty({g.shape(v.aval.shape)}, np.{v.aval.dtype.name})")
            _loops(g, batch, index)

        def at(text):
            return f"{text}[{', '.join(index)}]" if index else text

        results = [g.fresh("r") for _ in outs] if batch else outs
        g.w(f"{', '.join(results)} = {call(*(at(g.atom(x)) for x in eqn.inputs), **eqn.params)}")
        if batch:
            for name, r in zip(outs, results):
                g.w(f"{at(name)} = {r}")
            g.w.depth -= len(batch)

    return lower
def _fft(g: Generator, eqn):
    # np.fft as rocket-fft compiles it; the transformed axes are the last ones.
    require_rocket_fft()
    (x,) = eqn.inputs
    fft_type, lengths = eqn.params["fft_type"], eqn.params["fft_lengths"]
    ndim = x.aval.ndim
    axes = tuple(range(ndim - len(lengths), ndim))
    size = f"s={lengths}, " if fft_type == "irfft" else ""
    g.w(f"{g.name(eqn.out)} = np.fft.{fft_type}n({contiguous(g.atom(x))}, {size}axes={axes})"
        f".astype(np.{eqn.out.aval.dtype.name})")


ARRAY_LOWERINGS = {
    "matmul": _matmul,
    "solve": _per_matrix(lambda a, b: f"np.linalg.solve({a}, {b})"),
    "slogdet": _per_matrix(lambda a: f"np.linalg.slogdet({a})"),
    "cholesky": _per_matrix(lambda a: f"np.linalg.cholesky({a})"),
    "eigh": _per_matrix(lambda a: f"np.linalg.eigh({a})"),
    "svd": _per_matrix(lambda a: f"np.linalg.svd({a}, full_matrices=False)"),
    "qr": _per_matrix(lambda a: f"np.linalg.qr({a})"),
    "triangular_solve": _per_matrix(lambda a, b, *, lower, transpose_a, unit_diagonal:
                                    f"_triangular_solve({a}, {b}, {lower}, {transpose_a}, "
                                    f"{unit_diagonal})"),
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
    "fft": _fft,
}


# --------------------------------------------------------------------------- control flow
# A carried graph's outputs become the equation's variables; an output that is one of the
# graph's inputs (an operand passed through) is copied, so that every path gives a fresh,
# writable array of one type (Numba unifies a variable's type across branches and steps).


def _owned(text: str, var, graph) -> str:
    if var.aval.shape and any(var is v for v in graph.invars):
        return f"rt.copy({text})"
    return text


def _cond(g: Generator, eqn):
    index, *operands = eqn.inputs
    branches = eqn.params["branches"]
    args = [g.atom(a) for a in operands]
    which = g.fresh("branch")
    g.w(f"{which} = {g.atom(index)}")
    g.w(f"{which} = {g.clamp(which, len(branches) - 1)}")
    for i, branch in enumerate(branches):
        if len(branches) > 1:
            g.w(f"if {which} == 0:" if i == 0 else
                f"elif {which} == {i}:" if i < len(branches) - 1 else "else:")
            g.w.depth += 1
        outs = g.inline_graph(branch, args)
        for var, text, inner in zip(eqn.outs, outs, branch.outvars):
            g.w(f"{g.name(var)} = {_owned(text, inner, branch)}")
        if len(branches) > 1:
            g.w.depth -= 1


def _spare_buffers(g: Generator, outs, names, graph) -> dict:
    """For each carry whose new value a loop nest of the body computes: a second buffer,
    allocated once before the loop, that the body writes the new value into (a destination of
    ``inline_graph``); the two then swap, so no array is allocated per step."""
    inputs = {v.id for v in graph.invars}
    spare = {}
    for out, name in zip(outs, names):
        if out.aval.shape and not isinstance(out, Literal) and out.id not in inputs \
                and out.id not in spare:
            spare[out.id] = g.fresh("next")
            g.w(f"{spare[out.id]} = rt.empty({name}.shape, {name}.dtype)")
    return spare


def _assign_carry(g: Generator, names, texts, graph, carried_vars, spare=None, written=()):
    """``c0, c1 = new0, new1`` at once (a carry may take another's value); a carry written
    into its spare buffer swaps with it; a carry that keeps its own value is left as it is."""
    targets, values = [], []
    for name, text, out, own in zip(names, texts, graph.outvars, carried_vars):
        if out is own:
            continue
        if spare and not isinstance(out, Literal) and out.id in spare and out.id in written:
            targets += [name, spare[out.id]]
            values += [spare[out.id], name]
        else:
            targets.append(name)
            values.append(_owned(text, out, graph))
    if targets:
        g.w(f"{', '.join(targets)} = {', '.join(values)}")


def _init_carry(g: Generator, eqn, atoms):
    names = [g.name(v) for v in eqn.outs[:len(atoms)]]
    for name, a in zip(names, atoms):
        g.w(f"{name} = rt.copy({g.atom(a)})" if a.aval.shape else f"{name} = {g.atom(a)}")
    return names


def _store(g: Generator, target: str, text: str, aval) -> None:
    """``target = text`` where ``target`` is an element or a row of an array: an array value
    is copied by ``rt.copy_into`` (see ``runtime.py``)."""
    g.w(f"rt.copy_into({target}, {text})" if aval.shape else f"{target} = {text}")


def _scan(g: Generator, eqn):
    """A loop over the steps. A carry computed element by element is written into a second
    buffer allocated once, then the two swap; a y computed so is written into its row of the
    stacked output: no array is allocated per step for them."""
    p = eqn.params
    body, n_consts, n_carry = p["body"], p["n_consts"], p["n_carry"]
    consts = [g.atom(a) for a in eqn.inputs[:n_consts]]
    carry = _init_carry(g, eqn, eqn.inputs[n_consts:n_consts + n_carry])
    xs = eqn.inputs[n_consts + n_carry:]
    for y in eqn.outs[n_carry:]:
        g.w(f"{g.name(y)} = rt.empty({g.shape(y.aval.shape)}, np.{y.aval.dtype.name})")
    step, n = g.fresh("step"), g.dim(p["length"])
    spare = _spare_buffers(g, body.outvars[:n_carry], carry, body)
    destinations = dict(spare)
    inputs = {v.id for v in body.invars}
    in_row = set()  # the ys whose row is their value's destination
    for k, (out, y) in enumerate(zip(body.outvars[n_carry:], eqn.outs[n_carry:])):
        if out.aval.shape and not isinstance(out, Literal) and out.id not in inputs \
                and out.id not in destinations:
            destinations[out.id] = f"{g.name(y)}[{step}]"
            in_row.add(k)
    g.w(f"for {step} in range({n} - 1, -1, -1):" if p["reverse"] else
        f"for {step} in range({n}):")
    g.w.depth += 1
    slices = []
    for x in xs:
        slices.append(g.fresh("x"))
        g.w(f"{slices[-1]} = {g.atom(x)}[{step}]")
    written = set()
    outs = g.inline_graph(body, [*consts, *carry, *slices], destinations, written, loop=True)
    for k, (out, y, text) in enumerate(zip(body.outvars[n_carry:], eqn.outs[n_carry:],
                                           outs[n_carry:])):
        if k not in in_row or out.id not in written:
            _store(g, f"{g.name(y)}[{step}]", text, out.aval)
    _assign_carry(g, carry, outs[:n_carry], body, body.invars[n_consts:n_consts + n_carry],
                  spare, written)
    g.w.depth -= 1


def _while(g: Generator, eqn):
    p = eqn.params
    cond, body, n_cc, n_bc = p["cond"], p["body"], p["n_cond_consts"], p["n_body_consts"]
    cond_consts = [g.atom(a) for a in eqn.inputs[:n_cc]]
    body_consts = [g.atom(a) for a in eqn.inputs[n_cc:n_cc + n_bc]]
    carry = _init_carry(g, eqn, eqn.inputs[n_cc + n_bc:])
    spare = _spare_buffers(g, body.outvars, carry, body)
    g.w("while True:")
    g.w.depth += 1
    (going,) = g.inline_graph(cond, [*cond_consts, *carry], loop=True)
    g.w(f"if not {going}:")
    g.w("    break")
    written = set()
    outs = g.inline_graph(body, [*body_consts, *carry], dict(spare), written, loop=True)
    _assign_carry(g, carry, outs, body, body.invars[n_bc:], spare, written)
    g.w.depth -= 1


def _revolve(g: Generator, eqn):
    """The Revolve driver (adjit.control.loops): the schedule of (action, argument) rows is
    made when the kernel runs (the trip count may be known only then: a while loop's), by
    ``revolve_schedule`` compiled above the kernel; the carry lives in variables, the
    snapshots in slot arrays."""
    p = eqn.params
    counts = p["counts"]
    n_ctc, n_lx = counts[3], counts[6]
    it = iter(eqn.inputs[1:])
    kc, carry0, kx, ct_carry0, ct_ys, acc0 = ([next(it) for _ in range(n)] for n in counts[:6])
    kc = [g.atom(a) for a in kc]
    carry = [g.fresh("carry") for _ in carry0]
    slots = [g.fresh("slots") for _ in carry0]
    n_slots = p["snapshots"]
    for name, slot, a in zip(carry, slots, carry0):
        g.w(f"{name} = rt.copy({g.atom(a)})" if a.aval.shape else f"{name} = {g.atom(a)}")
        g.w(f"{slot} = rt.empty({g.shape((n_slots, *a.aval.shape))}, np.{a.aval.dtype.name})")
        _store(g, f"{slot}[0]", name, a.aval)  # slot 0 holds the start
    spare = _spare_buffers(g, p["forward"].outvars, carry, p["forward"])
    slot_step, step, action = g.fresh("slot_step"), g.fresh("step"), g.fresh("action")
    g.w(f"{slot_step} = rt.zeros({n_slots}, np.int64)")
    g.w(f"{step} = 0")
    outs = eqn.outs
    ct_carry = [g.name(v) for v in outs[:n_ctc]]
    ct_xs = outs[n_ctc:n_ctc + n_lx]
    acc = [g.name(v) for v in outs[n_ctc + n_lx:]]
    for name, a in zip([*ct_carry, *acc], [*ct_carry0, *acc0]):
        g.w(f"{name} = rt.copy({g.atom(a)})" if a.aval.shape else f"{name} = {g.atom(a)}")
    for v in ct_xs:
        g.w(f"{g.name(v)} = rt.zeros({g.shape(v.aval.shape)}, np.{v.aval.dtype.name})")
    n = g.dim(p["length"])

    def at(i):
        return f"({n} - 1 - {i})" if p["reverse"] else i

    def slices(atoms, i):
        names = []
        for a in atoms:
            names.append(g.fresh("x"))
            g.w(f"{names[-1]} = {g.atom(a)}[{at(i)}]")
        return names

    schedule = g.fresh("schedule")
    g.w(f"{schedule} = revolve_schedule({g.atom(eqn.inputs[0])}, {p['snapshots']})")
    g.w(f"for {action} in range({schedule}.shape[0]):")
    g.w.depth += 1
    kind, arg = g.fresh("kind"), g.fresh("arg")
    g.w(f"{kind} = {schedule}[{action}, 0]")
    g.w(f"{arg} = {schedule}[{action}, 1]")
    g.w(f"if {kind} == 0:  # advance")
    g.w.depth += 1
    g.w(f"for _ in range({arg}):")
    g.w.depth += 1
    forward = p["forward"]
    written = set()
    new = g.inline_graph(forward, [*kc, *carry, *slices(kx, step)], dict(spare), written,
                         loop=True)
    _assign_carry(g, carry, new, forward, [None] * len(carry), spare, written)
    g.w(f"{step} += 1")
    g.w.depth -= 2
    g.w(f"elif {kind} == 1:  # store")
    g.w.depth += 1
    for name, slot, a in zip(carry, slots, carry0):
        _store(g, f"{slot}[{arg}]", name, a.aval)
    g.w(f"{slot_step}[{arg}] = {step}")
    g.w.depth -= 1
    g.w(f"elif {kind} == 2:  # restore")
    g.w.depth += 1
    for name, slot, a in zip(carry, slots, carry0):
        g.w(f"{name} = rt.copy({slot}[{arg}])" if a.aval.shape else f"{name} = {slot}[{arg}]")
    g.w(f"{step} = {slot_step}[{arg}]")
    g.w.depth -= 1
    g.w("else:  # the adjoint of step arg")
    g.w.depth += 1
    adjoint = p["adjoint"]
    results = g.inline_graph(adjoint, [*kc, *carry, *slices(kx, arg), *ct_carry,
                                       *slices(ct_ys, arg), *acc], loop=True)
    for v, text, out in zip(ct_xs, results[n_ctc:n_ctc + n_lx],
                            adjoint.outvars[n_ctc:n_ctc + n_lx]):
        _store(g, f"{g.name(v)}[{at(arg)}]", text, out.aval)
    targets = [*ct_carry, *acc]
    texts = [*results[:n_ctc], *results[n_ctc + n_lx:]]
    if targets:
        g.w(f"{', '.join(targets)} = {', '.join(texts)}")
    g.w.depth -= 2


CONTROL_LOWERINGS = {
    "cond": _cond,
    "scan": _scan,
    "while": _while,
    "revolve": _revolve,
}


LOWERINGS = {
    "elementwise": SCALAR_LOWERINGS,
    "gather": GATHER_LOWERINGS,
    "reduction": REDUCE_LOWERINGS,
    "array": ARRAY_LOWERINGS,
    "control": CONTROL_LOWERINGS,
    "helpers": HELPERS,
    "helper_needs": HELPER_NEEDS,
    "libm": LIBM_LOWERINGS,
}
