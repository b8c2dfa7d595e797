"""``adjit.to_numba(fun, *example_args)``: a function a user's own ``@njit`` code can call.

    dfdx = adjit.to_numba(adjit.grad(f), 0.0)

    @numba.njit
    def newton(x):
        for _ in range(50):
            x = x - f_numba(x) / dfdx(x)
        return x

What comes back is the CPU target's generated kernel itself (a Numba dispatcher) where the
signature allows it: scalars and flat arguments in, one value or a flat tuple out, no closed-over
arrays. Otherwise it is a thin ``@njit`` wrapper, generated here, that checks the arrays'
lengths (a mismatch raises ValueError inside Numba instead of reading out of bounds), unpacks
tuple arguments, passes closed-over arrays (baked in as constants when ``to_numba`` is called)
and rebuilds nested tuple results. Numba links the kernel into the caller's module, so LLVM can
inline it into the user's loop.
"""

from __future__ import annotations

import linecache
import threading

from adjit.aot.stage import Staged, check_flat_outputs

_counter = [0]
_counter_lock = threading.Lock()


def to_numba(fun, *example_args):
    """A Numba-callable function computing ``fun`` for the signature (dtypes, ranks) of
    ``example_args``; call it from ``@numba.njit`` code (or from Python, through Numba).

    Arrays may have any length (each symbolic length >= 2; arrays of equal length in the
    example share one length, which the wrapper checks), outputs are NumPy arrays, scalars and
    tuples. Arrays ``fun`` reads from outside its arguments are copied in as constants now.
    """
    staged = Staged(fun, example_args, "adjit.to_numba")
    check_flat_outputs(staged, "adjit.to_numba")
    kernel = staged.kernel()
    flat_in = all(c.kind is None for c in staged.in_tree.children)
    flat_out = staged.out_tree.kind is None or (
        staged.out_tree.kind is tuple and all(c.kind is None for c in staged.out_tree.children))
    has_arrays = any(a.shape for a in staged.in_avals)
    if not staged.consts and flat_in and flat_out and not has_arrays:
        return kernel
    return _wrapper(staged, kernel)


def wrapper_source(staged: Staged, name: str) -> str:
    """Source of the njit wrapper: length checks, leaf unpacking, the call, the result tree."""
    params = [f"a{i}" for i in range(len(staged.in_tree.children))]
    leaf_exprs = []
    for i, child in enumerate(staged.in_tree.children):
        leaf_exprs += _leaf_paths(child, params[i])
    lines = [f"def {name}({', '.join(params)}):"]
    for symbol, where in staged.symbol_checks():
        (i0, axis0), rest = where[0], where[1:]
        first = f"{leaf_exprs[i0]}.shape[{axis0}]"
        lines.append(f"    {symbol} = {first}")
        lines.append(f"    if {symbol} < 2:")
        lines.append(f"        raise ValueError(\"adjit.to_numba({staged.name}): length {symbol} "
                     "of an argument is below 2\")")
        for i, axis in rest:
            lines.append(f"    if {leaf_exprs[i]}.shape[{axis}] != {symbol}:")
            lines.append(f"        raise ValueError(\"adjit.to_numba({staged.name}): arguments' "
                         f"lengths {symbol} differ\")")
    for i, aval in enumerate(staged.in_avals):
        for axis, d in enumerate(aval.shape):
            if isinstance(d, int):
                lines.append(f"    if {leaf_exprs[i]}.shape[{axis}] != {d}:")
                lines.append(f"        raise ValueError(\"adjit.to_numba({staged.name}): axis "
                             f"{axis} of argument leaf {i} must have length {d}\")")
    args = [f"c{k}" for k in range(len(staged.consts))] + leaf_exprs
    lines.append(f"    r = kernel({', '.join(args)})")
    n_out = len(staged.out_avals)
    outs = ["r"] if n_out == 1 else [f"r[{k}]" for k in range(n_out)]
    lines.append(f"    return {_rebuild(staged.out_tree, iter(outs))}")
    return "\n".join(lines) + "\n"


def _leaf_paths(td, expr: str) -> list[str]:
    if td.kind is None:
        return [expr]
    if td.kind is dict:
        raise ValueError("adjit.to_numba: dict arguments are not supported; pass tuples")
    paths = []
    for k, child in enumerate(td.children):
        paths += _leaf_paths(child, f"{expr}[{k}]")
    return paths


def _rebuild(td, outs) -> str:
    if td.kind is None:
        return next(outs)
    items = [_rebuild(c, outs) for c in td.children]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _wrapper(staged: Staged, kernel):
    import numba

    with _counter_lock:
        _counter[0] += 1
        n = _counter[0]
    name = f"{_identifier(staged.name)}_numba"
    source = wrapper_source(staged, name)
    filename = f"<adjit.to_numba {n}: {staged.name}>"
    # Numba's typing errors show generated lines through linecache.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"kernel": kernel, **{f"c{k}": c for k, c in enumerate(staged.consts)}}
    exec(compile(source, filename, "exec"), namespace)
    fn = numba.njit(nogil=True)(namespace[name])
    fn.adjit_source = source
    fn.adjit_kernel_source = staged.source
    return fn


def _identifier(name: str) -> str:
    text = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    return text if text and not text[0].isdigit() else f"f_{text}"


__all__ = ["to_numba", "wrapper_source"]
