"""The CUDA target's lowering tables: the CPU target's where its text is valid CUDA device code,
overridden where it is not, and the whole-array equations as kernels.

* ``elementwise``: the CPU table (``math.*``, operators, typed constants and casts all type in
  numba-cuda), except NumPy ufuncs, which numba-cuda does not lower on scalars
  (``np.floor``/``ceil``/``rint``/``cbrt``: libdevice's function of the output's precision,
  ``libdevice.floorf`` for float32; ``np.sign``: an expression with typed constants). The
  runner gives the module ``libdevice`` (NumPy stand-ins in the simulator, see compat).
* ``gather``, ``reduction``: the CPU tables as they are (index arithmetic, update lines).
* ``helpers``: device functions; the CPU's digamma and polygamma sources with a
  ``@cuda.jit(device=True)`` decorator. They compute in float64, as on the CPU, and the
  lowering casts the result to the output's type, so the chain around them stays float32.
* ``array``: each whole-array equation as kernels (``codegen.Generator`` API): a tiled matrix
  product in shared memory, reshape/pad/concatenate one thread per output element, scatter-add
  with atomics, and cumsum/argmax/argmin/sort one thread per row.
"""

from __future__ import annotations

import re

import numpy as np

from adjit.backend.numba_cpu.codegen import const_text
from adjit.backend.numba_cpu.lowering import (
    GATHER_LOWERINGS,
    REDUCE_LOWERINGS,
    SCALAR_LOWERINGS,
)
from adjit.backend.numba_cpu.lowering import (
    HELPERS as CPU_HELPERS,
)
from adjit.backend.numba_cuda.codegen import Generator, numba_type

# --------------------------------------------------------------------------- scalar lowerings


def _helper(fn):
    """A call of a float64 device helper, cast back to the output's type."""
    return lambda a, *, out_dtype, **_: f"np.{out_dtype.name}({fn}({a}))"


def _libdevice(fn):
    """libdevice's function of the output's precision: ``floor`` (float64), ``floorf``."""
    return lambda a, *, out_dtype, **_: (
        f"libdevice.{fn}{'f' if out_dtype == np.float32 else ''}({a})")


def _sign(a, *, out_dtype, **_):
    one, zero = const_text(1, out_dtype), const_text(0, out_dtype)
    return f"({one} if {a} > {zero} else (-{one} if {a} < {zero} else {a}))"


def _polygamma(a, *, m, out_dtype, **_):
    return f"np.{out_dtype.name}(_polygamma({a}, {int(m)}))"


SCALAR_LOWERINGS_CUDA = {
    **SCALAR_LOWERINGS,
    "floor": _libdevice("floor"),
    "ceil": _libdevice("ceil"),
    "round": _libdevice("rint"),
    "cbrt": _libdevice("cbrt"),
    "digamma": _helper("_digamma"),
    "polygamma": _polygamma,
    "sign": _sign,
}


def _on_device(source: str) -> str:
    """A CPU helper's source as a CUDA device function."""
    return re.sub(r"@numba\.njit\([^)]*\)", "@cuda.jit(device=True)", source)


HELPERS = {
    "digamma": _on_device(CPU_HELPERS["digamma"]),
    "polygamma": _on_device(CPU_HELPERS["polygamma"]),
}


# --------------------------------------------------------------------------- array lowerings


def _matmul(g: Generator, eqn):
    """out = a @ b in tile x tile blocks: each block stages a tile of a and of b in shared
    memory, each thread accumulates one output element."""
    a, b = eqn.inputs
    out = eqn.out
    g.alloc(out)
    t = g.tile
    dt = out.aval.dtype
    m, kdim = a.aval.shape
    n = b.aval.shape[1]
    with g.kernel("mm") as k:
        w = k.w
        zero = g.const(0, dt)
        ms, ks, ns = g.dim(m), g.dim(kdim), g.dim(n)
        an, bn, on = g.atom(a), g.atom(b), g.name(out)
        g.param(on)
        w(f"sa = cuda.shared.array(({t}, {t}), {numba_type(dt)})")
        w(f"sb = cuda.shared.array(({t}, {t}), {numba_type(dt)})")
        w("tx = cuda.threadIdx.x")
        w("ty = cuda.threadIdx.y")
        w(f"row = cuda.blockIdx.y * {t} + ty")
        w(f"col = cuda.blockIdx.x * {t} + tx")
        w(f"acc = {zero}")
        w(f"for tile in range(({ks} + {t - 1}) // {t}):")
        w(f"    q = tile * {t} + tx")
        w(f"    sa[ty, tx] = {an}[row, q] if row < {ms} and q < {ks} else {zero}")
        w(f"    q = tile * {t} + ty")
        w(f"    sb[ty, tx] = {bn}[q, col] if q < {ks} and col < {ns} else {zero}")
        w("    cuda.syncthreads()")
        w(f"    for q in range({t}):")
        w("        acc += sa[ty, q] * sb[q, tx]")
        w("    cuda.syncthreads()")
        w(f"if row < {ms} and col < {ns}:")
        w(f"    {on}[row, col] = acc")
    grid = f"(({g.dim(n)} + {t - 1}) // {t}, ({g.dim(m)} + {t - 1}) // {t})"
    g.launch(k, grid, f"({t}, {t})")


def _reshape(g: Generator, eqn):
    (x,) = eqn.inputs
    out = eqn.out
    g.alloc(out)
    in_shape = x.aval.shape

    def emit(w, index):
        if in_shape:
            at = [g.fresh("p") for _ in in_shape]
            flat = g.fresh("flat")
            w(f"{flat} = " + (" + ".join(
                f"{i} * {' * '.join(g.dim(d) for d in out.aval.shape[k + 1:]) or '1'}"
                for k, i in enumerate(index)) or "0"))
            g.unravel(w, flat, in_shape, at)
        else:
            at = []
        w(f"{g.store(out, index)} = {g.elem(x, at)}")

    g.per_element(out.aval.shape, emit, "reshape")


def _pad(g: Generator, eqn):
    (x,) = eqn.inputs
    out, p = eqn.out, eqn.params
    g.alloc(out)

    def emit(w, index):
        conds, at = [], []
        for k, (i, lo, step) in enumerate(zip(index, p["lo"], p["interior"])):
            j = g.fresh("q")
            w(f"{j} = {i} - {g.dim(lo)}")
            conds.append(f"{j} >= 0")
            if step:
                conds.append(f"{j} % {step + 1} == 0")
                at.append(f"{j} // {step + 1}")
            else:
                at.append(j)
            conds.append(f"{at[-1]} < {g.dim(x.aval.shape[k])}")
        zero = g.const(0, out.aval.dtype)
        cond = " and ".join(conds) or "True"
        w(f"{g.store(out, index)} = {g.elem(x, at)} if {cond} else {zero}")

    g.per_element(out.aval.shape, emit, "pad")


def _concatenate(g: Generator, eqn):
    out, axis = eqn.out, eqn.params["dimension"]
    g.alloc(out)

    def emit(w, index):
        start = "0"
        target = g.store(out, index)
        for n, x in enumerate(eqn.inputs):
            at = list(index)
            at[axis] = f"({index[axis]} - {start})"
            end = f"{start} + {g.dim(x.aval.shape[axis])}"
            keyword = "if" if n == 0 else "elif"
            if n == len(eqn.inputs) - 1:
                w("else:")
            else:
                w(f"{keyword} {index[axis]} < {end}:")
            w(f"    {target} = {g.elem(x, at)}")
            start = f"({end})"

    g.per_element(out.aval.shape, emit, "concat")


def _shape_size(g: Generator, eqn):
    dims = " * ".join(g.dim(d) for d in eqn.params["dims"]) or "1"
    g.h(f"{g.alloc(eqn.out, 'host')} = np.{eqn.params['dtype'].name}({dims})")


def _scatter_add(g: Generator, eqn):
    """out = x, then every update added at its index with an atomic add (indices repeat)."""
    x, idx, upd = eqn.inputs
    out, axis = eqn.out, eqn.params["axis"]
    g.alloc(out)
    g.per_element(out.aval.shape,
                  lambda w, index: w(f"{g.store(out, index)} = {g.elem(x, index)}"), "copy")
    k = len(idx.aval.shape)

    def emit(w, index):
        n = g.dim(out.aval.shape[axis])
        w(f"p = {g.elem(idx, index[axis:axis + k])}")
        w(f"p = min(max(p + ({n} if p < 0 else 0), 0), {n} - 1)")
        at = [*index[:axis], "p", *index[axis + k:]]
        where = at[0] if len(at) == 1 else f"({', '.join(at)})"
        w(f"cuda.atomic.add({g.param(g.name(out))}, {where}, {g.elem(upd, index)})")

    g.per_element(upd.aval.shape, emit, "scatter")


def _rows(g: Generator, x, axis, emit, hint):
    """One thread per row along ``axis``: ``emit(w, index)`` with ``index[axis]`` free."""
    shape = x.aval.shape
    outer = [d for k, d in enumerate(shape) if k != axis]

    def body(w, outer_index):
        index = list(outer_index)
        index.insert(axis, g.fresh("a"))
        emit(w, index)

    g.per_element(outer, body, hint)


def _cumsum(g: Generator, eqn):
    (x,) = eqn.inputs
    axis, reverse, out = eqn.params["axis"], eqn.params["reverse"], eqn.out
    g.alloc(out)

    def emit(w, index):
        n = g.dim(x.aval.shape[axis])
        w(f"acc = {g.const(0, x.aval.dtype)}")
        w(f"for {index[axis]} in " +
          (f"range({n} - 1, -1, -1):" if reverse else f"range({n}):"))
        w(f"    acc += {g.elem(x, index)}")
        w(f"    {g.store(out, index)} = acc")

    _rows(g, x, axis, emit, "cumsum")


def _arg_extremum(cmp):
    def lower(g: Generator, eqn):
        (x,) = eqn.inputs
        axis, out = eqn.params["axis"], eqn.out
        g.alloc(out)

        def emit(w, index):
            kept = [i for k, i in enumerate(index) if k != axis]
            first = list(index)
            first[axis] = "0"
            w(f"best = {g.elem(x, first)}")
            w("best_i = 0")
            w(f"for {index[axis]} in range({g.dim(x.aval.shape[axis])}):")
            w(f"    u = {g.elem(x, index)}")
            # NaN wins, as in np.argmax: the first NaN.
            w(f"    if u {cmp} best or (u != u and best == best):")
            w("        best = u")
            w(f"        best_i = {index[axis]}")
            w(f"{g.store(out, kept)} = best_i")

        _rows(g, x, axis, emit, "arg")

    return lower


def _sort_rows(values: bool):
    """``sort``/``argsort`` along an axis: a stable insertion sort of each row's positions
    (NaN last, as NumPy), one thread per row. O(n^2) per row: right for short rows only."""
    def lower(g: Generator, eqn):
        (x,) = eqn.inputs
        axis, out = eqn.params["axis"], eqn.out
        g.alloc(out)
        if values:
            perm = g.fresh("perm")
            g.h(f"{perm} = _empty({g.shape(x.aval.shape)}, np.int64)")
        else:
            perm = g.name(out)

        def emit(w, index):
            n = g.dim(x.aval.shape[axis])
            g.param(perm)

            def at(pos):
                return f"{perm}[{', '.join([*index[:axis], pos, *index[axis + 1:]])}]"

            def val(pos):
                full = list(index)
                full[axis] = pos
                return g.elem(x, full)

            w(f"for q in range({n}):")
            w(f"    {at('q')} = q")
            w(f"for q in range(1, {n}):")
            w(f"    p = {at('q')}")
            w(f"    key = {val('p')}")
            w("    r = q - 1")
            w("    while r >= 0:")
            w(f"        u = {val(at('r'))}")
            # u goes after key: strictly greater, or NaN before a number (stable).
            w("        if not (u > key or (u != u and key == key)):")
            w("            break")
            w(f"        {at('r + 1')} = {at('r')}")
            w("        r -= 1")
            w(f"    {at('r + 1')} = p")
            if values:
                w(f"for q in range({n}):")
                w(f"    {g.store(out, [*index[:axis], 'q', *index[axis + 1:]])} = "
                  f"{val(at('q'))}")

        _rows(g, x, axis, emit, "sort")

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


LOWERINGS = {
    "elementwise": SCALAR_LOWERINGS_CUDA,
    "gather": GATHER_LOWERINGS,
    "reduction": REDUCE_LOWERINGS,
    "array": ARRAY_LOWERINGS,
    "helpers": HELPERS,
}
