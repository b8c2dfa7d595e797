"""The CUDA target's lowering tables: the CPU target's where its text is valid CUDA device code,
overridden where it is not, and the whole-array equations as kernels.

* ``elementwise``: the CPU table (``math.*``, operators, typed constants and casts all type in
  numba-cuda), except NumPy ufuncs, which numba-cuda does not lower on scalars
  (``np.floor``/``ceil``/``rint``/``cbrt``: libdevice's function of the output's precision,
  ``libdevice.floorf`` for float32; ``np.sign``: an expression with typed constants), and
  SciPy's special functions, which the CPU calls in ``scipy.special.cython_special``:
  libdevice's where it has one (``erfinv``, ``erfcx``, ``normcdfinv`` for ``ndtri``, the
  Bessel functions ``j0 j1 y0 y1``), else ``DECLINED``. The runner gives the module
  ``libdevice`` (NumPy and SciPy stand-ins in the simulator, see compat).
* ``gather``, ``reduction``: the CPU tables as they are (index arithmetic, update lines).
* ``helpers``: device functions; the CPU's digamma and polygamma sources with a
  ``@cuda.jit(device=True)`` decorator. They compute in float64, as on the CPU, and the
  lowering casts the result to the output's type, so the chain around them stays float32.
* ``array``: each whole-array equation as kernels (``codegen.Generator`` API): a tiled matrix
  product in shared memory, reshape/pad/concatenate one thread per output element, scatter-add
  with atomics, and cumsum/argmax/argmin/sort one thread per row.
* ``control``: ``cond``, ``scan``, ``while`` and ``revolve`` as control flow on the host
  (``Generator.inline_graph`` places each carried graph's launches inside): a branch index or
  loop predicate is read back to the host; carries stay on the device (scalars as 0-d device
  arrays) and are rebound, never copied, between steps (no kernel writes an array it did not
  allocate); stacked inputs are read as rows (a device view, or ``xs[step]`` inside kernels for
  scalars) and stacked outputs written by a row-copy kernel per step.
"""

from __future__ import annotations

import re

import numpy as np

from adjit.backend.numba_cpu.codegen import const_text
from adjit.backend.numba_cpu.lowering import (
    GATHER_LOWERINGS,
    LIBM_LOWERINGS,
    REDUCE_LOWERINGS,
    SCALAR_LOWERINGS,
    SCIPY_SPECIAL,
)
from adjit.backend.numba_cpu.lowering import (
    HELPERS as CPU_HELPERS,
)
from adjit.backend.numba_cuda.codegen import Generator, clamped_index, numba_type

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


def _extremum(cmp):
    # NaN wins, as in np.maximum: `a != a` is true only for NaN. (The CPU's is runtime.py's
    # select, a host intrinsic.)
    return lambda a, b, **_: f"({a} if ({a} {cmp} {b} or {a} != {a}) else {b})"


def _keep_extremum(cmp):
    return lambda acc, value: [f"if {value} {cmp} {acc} or {value} != {value}:",
                               f"    {acc} = {value}"]


def _polygamma(a, *, m, out_dtype, **_):
    return f"np.{out_dtype.name}(_polygamma({a}, {int(m)}))"


SCALAR_LOWERINGS_CUDA = {
    # The CPU's calls of SciPy's compiled special functions have no device version; libdevice
    # has some of them (below), the others are DECLINED, and so is gammainc_da, which only
    # their derivatives call.
    **{name: lower for name, lower in SCALAR_LOWERINGS.items()
       if name not in SCIPY_SPECIAL and name != "gammainc_da"},
    # The device has its own math library (libdevice): the CPU's vectorizable helpers are
    # not for it.
    **{name: libm for name, (_, libm) in LIBM_LOWERINGS.items()},
    "gamma": lambda a, **_: f"math.gamma({a})",
    "erfcx": _libdevice("erfcx"),
    "erfinv": _libdevice("erfinv"),
    "ndtri": _libdevice("normcdfinv"),
    "j0": _libdevice("j0"),
    "j1": _libdevice("j1"),
    "y0": _libdevice("y0"),
    "y1": _libdevice("y1"),
    "floor": _libdevice("floor"),
    "ceil": _libdevice("ceil"),
    "round": _libdevice("rint"),
    "cbrt": _libdevice("cbrt"),
    "digamma": _helper("_digamma"),
    "polygamma": _polygamma,
    "sign": _sign,
    "max": _extremum(">"), "min": _extremum("<"),
    "select": lambda p, a, b, **_: f"({a} if {p} else {b})",
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
    memory, each thread accumulates one output element. A stack of products spreads its
    matrices over the grid's third axis (grid-stride beyond 65535)."""
    a, b = eqn.inputs
    out = eqn.out
    g.alloc(out)
    t = g.tile
    dt = out.aval.dtype
    *batch, m, kdim = a.aval.shape
    n = b.aval.shape[-1]
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
        index = [g.fresh("b") for _ in batch]
        if batch:
            flat = g.fresh("f")
            w(f"for {flat} in range(cuda.blockIdx.z, {g.size(batch)}, cuda.gridDim.z):")
            w.depth += 1
            g.unravel(w, flat, batch, index)
        lead = "".join(f"{i}, " for i in index)
        w(f"acc = {zero}")
        w(f"for tile in range(({ks} + {t - 1}) // {t}):")
        w(f"    q = tile * {t} + tx")
        w(f"    sa[ty, tx] = {an}[{lead}row, q] if row < {ms} and q < {ks} else {zero}")
        w(f"    q = tile * {t} + ty")
        w(f"    sb[ty, tx] = {bn}[{lead}q, col] if q < {ks} and col < {ns} else {zero}")
        w("    cuda.syncthreads()")
        w(f"    for q in range({t}):")
        w("        acc += sa[ty, q] * sb[q, tx]")
        w("    cuda.syncthreads()")
        w(f"if row < {ms} and col < {ns}:")
        w(f"    {on}[{lead}row, col] = acc")
        w.depth -= bool(batch)
    stacks = f", min({g.size(batch)}, 65535)" if batch else ""
    grid = f"(({g.dim(n)} + {t - 1}) // {t}, ({g.dim(m)} + {t - 1}) // {t}{stacks})"
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
        w(f"p = {clamped_index('p', n)}")
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


# --------------------------------------------------------------------------- control flow


def _device_kind(var) -> str:
    return "array" if var.aval.shape else "dev0"


def _assign(g: Generator, names, outs, own=None):
    """``c0, c1 = new0, new1`` at once on the host (a carry may take another's value), each
    new value on the device; a carry that keeps its own value (``own``) is left as it is."""
    own = own or [None] * len(names)
    pairs = [(n, g.device_value(o)) for n, o, mine in zip(names, outs, own) if o is not mine]
    if pairs:
        g.h(f"{', '.join(n for n, _ in pairs)} = {', '.join(t for _, t in pairs)}")


def _carries(g: Generator, outs, inits):
    """The carry variables (named as the equation's outputs ``outs``, which hold the final
    values), set to ``inits`` on the device."""
    names = []
    for out in outs:
        g.kinds[out.id] = _device_kind(out)
        names.append(g.name(out))
    _assign(g, names, inits)
    return names


def _block(g: Generator, write):
    """An indented host block written by ``write()``; ``pass`` when it wrote nothing."""
    g.h.depth += 1
    before = len(g.h.lines)
    write()
    if len(g.h.lines) == before:
        g.h("pass")
    g.h.depth -= 1


def _cond(g: Generator, eqn):
    index, *operands = eqn.inputs
    branches = eqn.params["branches"]
    names = [g.name(v) for v in eqn.outs]
    for v in eqn.outs:
        g.kinds[v.id] = _device_kind(v)
    which = g.fresh("branch")
    g.h(f"{which} = _index({g.host_value(index)}, {len(branches)}, {which!r})")
    for i, branch in enumerate(branches):
        def write(branch=branch):
            outs = g.inline_graph(branch, operands)
            _assign(g, names, outs)
        if len(branches) == 1:
            write()
            continue
        g.h(f"if {which} == 0:" if i == 0 else
            f"elif {which} == {i}:" if i < len(branches) - 1 else "else:")
        _block(g, write)


def _xs_args(g: Generator, xs, at: str):
    """The body's arguments for row ``at`` (a host name) of each stacked input: a device
    view of the row, or for a scalar row the ``row`` kind (read as ``xs[at]`` in kernels)."""
    args = []
    for x in xs:
        name = g.atom(x)
        if len(x.aval.shape) == 1:
            args.append((name, "row", (name, at)))
        else:
            row = g.fresh("x")
            g.h(f"{row} = {name}[{at}]")
            args.append((row, "array"))
    return args


def _scan(g: Generator, eqn):
    p = eqn.params
    body, n_consts, n_carry = p["body"], p["n_consts"], p["n_carry"]
    consts = eqn.inputs[:n_consts]
    carry = _carries(g, eqn.outs[:n_carry], eqn.inputs[n_consts:n_consts + n_carry])
    xs = eqn.inputs[n_consts + n_carry:]
    ys = eqn.outs[n_carry:]
    for y in ys:
        g.alloc(y)
    step, n = g.fresh("step"), g.dim(p["length"])
    g.h(f"for {step} in range({n} - 1, -1, -1):" if p["reverse"] else
        f"for {step} in range({n}):")

    def write():
        args = [*consts, *[(c, _device_kind(v)) for c, v in zip(carry, eqn.outs)],
                *_xs_args(g, xs, step)]
        outs = g.inline_graph(body, args)
        for y, out in zip(ys, outs[n_carry:]):
            g.copy_rows(g.name(y), step, out, out.aval.shape)
        _assign(g, carry, outs[:n_carry], body.invars[n_consts:n_consts + n_carry])

    _block(g, write)


def _while(g: Generator, eqn):
    p = eqn.params
    cond, body, n_cc, n_bc = p["cond"], p["body"], p["n_cond_consts"], p["n_body_consts"]
    cond_consts = eqn.inputs[:n_cc]
    body_consts = eqn.inputs[n_cc:n_cc + n_bc]
    carry = _carries(g, eqn.outs, eqn.inputs[n_cc + n_bc:])
    carry_args = [(c, _device_kind(v)) for c, v in zip(carry, eqn.outs)]
    site = g.fresh("loop")
    g.h("while True:")

    def write():
        (going,) = g.inline_graph(cond, [*cond_consts, *carry_args])
        g.h(f"if not _going({g.host_value(going)}, {site!r}):")
        g.h("    break")
        outs = g.inline_graph(body, [*body_consts, *carry_args])
        _assign(g, carry, outs, body.invars[n_bc:])

    _block(g, write)


def _revolve(g: Generator, eqn):
    """The Revolve driver (adjit.control.loops) on the host: the schedule of (action,
    argument) rows is made on the host from the step count (a while loop's is known only
    when it runs); the carry lives in device values, the snapshots
    in slot arrays (one per carry, ``snapshots`` rows), stored and restored by row copies."""
    p = eqn.params
    counts = p["counts"]
    n_ctc, n_lx = counts[3], counts[6]
    it = iter(eqn.inputs[1:])
    kc, carry0, kx, ct_carry0, ct_ys, acc0 = ([next(it) for _ in range(n)] for n in counts[:6])
    n_slots = p["snapshots"]
    carry, slots = [], []
    for a in carry0:
        carry.append(g.fresh("carry"))
        slots.append(g.fresh("slots"))
        g.h(f"{carry[-1]} = {g.device_value(a)}")
        g.h(f"{slots[-1]} = _empty({g.shape((n_slots, *a.aval.shape))}, "
            f"np.{a.aval.dtype.name})")
    zero = g.fresh("zero")
    g.h(f"{zero} = 0")
    for slot, name, a in zip(slots, carry, carry0):
        g.copy_rows(slot, zero, name, a.aval.shape)  # slot 0 holds the start
    slot_step, step = g.fresh("slot_step"), g.fresh("step")
    g.h(f"{slot_step} = [0] * {n_slots}")
    g.h(f"{step} = 0")
    outs = eqn.outs
    ct_carry = _carries(g, outs[:n_ctc], ct_carry0)
    ct_xs = outs[n_ctc:n_ctc + n_lx]
    acc = _carries(g, outs[n_ctc + n_lx:], acc0)
    for v in ct_xs:
        g.alloc(v)
        zero_v = g.const(0, v.aval.dtype)
        g.per_element(v.aval.shape, lambda w, index, v=v, zero_v=zero_v: w(
            f"{g.store(v, index)} = {zero_v}"), "zeros")
    n = g.dim(p["length"])
    schedule = g.fresh("schedule")
    g.h(f"{schedule} = _revolve_schedule(int(_host_array({g.atom(eqn.inputs[0])})), "
        f"{n_slots})")
    kind, arg, at = g.fresh("kind"), g.fresh("arg"), g.fresh("at")
    carry_args = [(c, _device_kind(a)) for c, a in zip(carry, carry0)]
    g.h(f"for {kind}, {arg} in {schedule}.tolist():")
    g.h.depth += 1
    g.h(f"if {kind} == 0:  # advance")

    def advance():
        g.h(f"for _ in range({arg}):")

        def one():
            g.h(f"{at} = {n} - 1 - {step}" if p["reverse"] else f"{at} = {step}")
            new = g.inline_graph(p["forward"], [*kc, *carry_args, *_xs_args(g, kx, at)])
            _assign(g, carry, new)
            g.h(f"{step} += 1")

        _block(g, one)

    _block(g, advance)
    g.h(f"elif {kind} == 1:  # store")

    def store():
        for slot, name, a in zip(slots, carry, carry0):
            g.copy_rows(slot, arg, name, a.aval.shape)
        g.h(f"{slot_step}[{arg}] = {step}")

    _block(g, store)
    g.h(f"elif {kind} == 2:  # restore")

    def restore():
        for slot, name, a in zip(slots, carry, carry0):
            g.h(f"{name} = _empty({g.shape(a.aval.shape)}, np.{a.aval.dtype.name})")
            g.copy_rows(slot, arg, name, a.aval.shape, reading=True)
        g.h(f"{step} = {slot_step}[{arg}]")

    _block(g, restore)
    g.h("else:  # the adjoint of step arg")

    def adjoint():
        g.h(f"{at} = {n} - 1 - {arg}" if p["reverse"] else f"{at} = {arg}")
        results = g.inline_graph(p["adjoint"], [
            *kc, *carry_args, *_xs_args(g, kx, at),
            *[(c, _device_kind(v)) for c, v in zip(ct_carry, outs[:n_ctc])],
            *_xs_args(g, ct_ys, at),
            *[(c, _device_kind(v)) for c, v in zip(acc, outs[n_ctc + n_lx:])]])
        for v, r in zip(ct_xs, results[n_ctc:n_ctc + n_lx]):
            g.copy_rows(g.name(v), at, r, r.aval.shape)
        _assign(g, [*ct_carry, *acc], [*results[:n_ctc], *results[n_ctc + n_lx:]])

    _block(g, adjoint)
    g.h.depth -= 1


CONTROL_LOWERINGS = {
    "cond": _cond,
    "scan": _scan,
    "while": _while,
    "revolve": _revolve,
}


# Primitives this target declines on purpose (a library call with no device version); meeting
# one is the MissingRuleError of backend.targets.find_lowering, naming it and the target.
DECLINED: frozenset[str] = frozenset({
    # SciPy special functions libdevice lacks (the CPU calls scipy.special.cython_special)
    "i0e", "i1e", "gammainc", "gammaincc", "gammaincinv", "gammainc_da", "betainc",
    "betaincinv",
    # Dense linear algebra: LAPACK on the host (numba-cuda has no np.linalg).
    "cholesky", "eigh", "qr", "slogdet", "solve", "svd", "triangular_solve",
    # The FFT: rocket-fft teaches Numba np.fft on the host only.
    "fft",
})


LOWERINGS = {
    "elementwise": SCALAR_LOWERINGS_CUDA,
    "gather": GATHER_LOWERINGS,
    "reduction": {**REDUCE_LOWERINGS,
                  "reduce_max": (-np.inf, _keep_extremum(">")),
                  "reduce_min": (np.inf, _keep_extremum("<"))},
    "array": ARRAY_LOWERINGS,
    "control": CONTROL_LOWERINGS,
    "helpers": HELPERS,
}
