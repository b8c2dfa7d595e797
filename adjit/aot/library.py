"""``adjit.aot.build``: a C shared library, its header and a ctypes loader, from functions.

For each exported function the CPU target generates its kernel (``adjit.aot.stage``); here a
``numba.cfunc`` taking raw pointers wraps it (:func:`cfunc_source`), its LLVM IR becomes an
object file (``compat.object_code``), and a generated C file (:func:`stub_source`) holds the
exported C functions, which check the shapes and call it, and the few runtime functions the
kernel needs. ``cc -shared`` links them. The ABI is described in :func:`header_source`'s text.
"""

from __future__ import annotations

import inspect
import os
import re
import tempfile
from dataclasses import dataclass

import numpy as np

from adjit.aot import compat
from adjit.aot.stage import Staged, check_flat_outputs
from adjit.backend.numba_cpu.codegen import KernelSource
from adjit.backend.numba_cpu.runner import load_source
from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.ir.graph import Dim

STATUS = {
    "ADJIT_OK": (0, "success; every output was written"),
    "ADJIT_ERROR_SHAPE": (1, "an array's dimensions disagree with the others or with a fixed "
                             "length, or a length is below its minimum; nothing was written"),
    "ADJIT_ERROR_NULL": (2, "a data pointer is NULL; nothing was written"),
    "ADJIT_ERROR_INTERNAL": (3, "the kernel failed (out of memory for its temporaries); "
                                "outputs are undefined"),
}

C_TYPES = {
    np.dtype(np.float64): "double",
    np.dtype(np.float32): "float",
    np.dtype(np.int64): "int64_t",
    np.dtype(np.int32): "int32_t",
}
CTYPES_NAMES = {"double": "c_double", "float": "c_float", "int64_t": "c_int64",
                "int32_t": "c_int32"}


def _c_type(dtype, what: str) -> str:
    c = C_TYPES.get(np.dtype(dtype))
    if c is None:
        raise AdjitTypeError(f"adjit.aot: {what} has dtype {np.dtype(dtype)}; exported "
                             f"functions take and return {', '.join(map(str, C_TYPES))}")
    return c


# --------------------------------------------------------------------------- one export


@dataclass
class Param:
    name: str           # C parameter name (the data pointer, or the scalar)
    ctype: str          # element type
    shape: tuple        # () for a scalar; ints and Dims
    dims: list          # C names of the dimension parameters (arrays)


class Export:
    """One exported function: its staged kernel and its C signature."""

    def __init__(self, name: str, fun, example_args):
        if not name.isidentifier():
            raise AdjitValueError(f"adjit.aot: {name!r} is not a C identifier")
        if not isinstance(example_args, (tuple, list)):
            example_args = (example_args,)
        self.name = name
        self.staged = Staged(fun, example_args, f"adjit.aot export {name}")
        check_flat_outputs(self.staged, "adjit.aot")
        self.fun = fun
        names = _leaf_names(fun, self.staged.in_tree)
        self.inputs = []
        for leaf_name, aval in zip(names, self.staged.in_avals):
            ctype = _c_type(aval.dtype, f"{name}'s argument {leaf_name}")
            dims = [f"{leaf_name}_dim{k}" for k in range(len(aval.shape))]
            self.inputs.append(Param(leaf_name, ctype, aval.shape, dims))
        outs = self.staged.out_avals
        self.outputs = []
        for k, aval in enumerate(outs):
            out_name = "out" if len(outs) == 1 else f"out{k}"
            ctype = _c_type(aval.dtype, f"{name}'s output {k}")
            self.outputs.append(Param(out_name, ctype, aval.shape, []))
        # double df(double x): scalars in, one scalar out.
        self.plain = (all(not p.shape for p in self.inputs) and len(outs) == 1
                      and not outs[0].shape and self.staged.out_tree.kind is None)
        # A plain function is the cfunc itself, exported under its name (nothing to check, so
        # no C wrapper and no extra call in a caller's loop).
        self.impl = name if self.plain else f"adjit_impl_{name}"
        # The generator's text with Python loops, edited, and then its loops made nests: the
        # nests' memory groups (nests.py) then hold the caller's output arrays with the other
        # arguments, as a C caller may pass an output that overlaps an input.
        staged = self.staged.compiled.source
        plain, self.in_place = writing_into_outputs(
            staged.plain, len(outs), [len(aval.shape) for aval in outs])
        self.kernel_source = KernelSource(plain, staged.n_loops, staged.scalar_outputs, True)

    def kernel(self):
        """The kernel the cfunc calls: the staged one, or the one writing into outputs."""
        if not self.in_place:
            return self.staged.kernel()
        import numba

        out_types = [numba.typeof(np.empty((2,) * len(self.outputs[k].shape),
                                           self.staged.out_avals[k].dtype))
                     for k in self.in_place]
        return load_source(self.kernel_source, (*self.staged.arg_types(), *out_types),
                           "adjit.aot")

    def symbols(self) -> dict[str, str]:
        """symbol -> C expression of its value (the first dimension parameter carrying it)."""
        where = {}
        for p in self.inputs:
            for d, dim in zip(p.shape, p.dims):
                if isinstance(d, Dim):
                    where.setdefault(d.name, dim)
        return where

    def c_signature(self) -> str:
        if self.plain:
            params = ", ".join(f"{p.ctype} {p.name}" for p in self.inputs) or "void"
            return f"{self.outputs[0].ctype} {self.name}({params})"
        return f"int {self.name}({', '.join(self.c_params())})"

    def c_params(self) -> list[str]:
        params = []
        for p in self.inputs:
            if p.shape:
                params.append(f"const {p.ctype} *{p.name}")
                params += [f"int64_t {d}" for d in p.dims]
            else:
                params.append(f"{p.ctype} {p.name}")
        if not self.plain:
            params += [f"{p.ctype} *{p.name}" for p in self.outputs]
        return params

    def impl_params(self) -> list[str]:
        """The cfunc's parameters: the same as the exported function's."""
        return [p.rsplit(" ", 1)[1].lstrip("*") for p in self.c_params()]

    def describe(self) -> list[str]:
        """The header's comment lines for this function."""
        lines = [f"{self.name}: adjit's {_transform_text(self.fun)}, traced at "
                 + ", ".join(_describe_example(p) for p in self.inputs)]
        for p in self.inputs:
            if p.shape:
                lines.append(f"  {p.name}: {p.ctype}[{_shape_text(p.shape)}], C order "
                             f"(row-major, contiguous); then its dimensions "
                             f"{', '.join(p.dims)}")
        for p in self.outputs:
            if self.plain:
                lines.append(f"  returns {p.ctype}")
            elif p.shape:
                lines.append(f"  {p.name}: {p.ctype}[{_shape_text(p.shape)}], caller-allocated, "
                             f"{_size_text(p.shape)} elements, written in C order")
            else:
                lines.append(f"  {p.name}: {p.ctype}[1], caller-allocated, one element")
        symbols = self.symbols()
        if symbols:
            lines.append(f"  lengths: {', '.join(symbols)} >= 2; equal names must be equal")
        if not self.plain:
            lines.append("  returns ADJIT_OK or an error status (see above)")
        if self.staged.consts:
            lines.append(f"  ({len(self.staged.consts)} array(s) the function read from outside "
                         "its arguments are baked in as of the build)")
        return lines


def _transform_text(fun) -> str:
    """``vmap(grad(f))``: the transforms of an adjit entry function, down to the user's."""
    staged = getattr(fun, "staged", None)
    inner = getattr(staged, "fun", None)
    if inner is not None and isinstance(getattr(staged, "name", None), str):
        return f"{staged.name}({_transform_text(inner)})"
    return getattr(fun, "__qualname__", getattr(fun, "__name__", type(fun).__name__))


def _leaf_names(fun, in_tree) -> list[str]:
    """C names of the argument leaves: the Python parameter names where known."""
    try:
        params = [p.name for p in inspect.signature(fun).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = []
    for i, child in enumerate(in_tree.children):
        base = params[i] if i < len(params) and params[i].isidentifier() else f"arg{i}"
        n = child.num_leaves
        names += [base] if child.kind is None else [f"{base}_{k}" for k in range(n)]
    return [f"{n}_" if n in _RESERVED or re.fullmatch(r"(out|c|i)\d*", n) else n
            for n in names]


# Names the generated C and cfunc sources use themselves, and C's keywords.
_RESERVED = {"r", "kernel", "numba", "auto", "break", "case", "char", "const", "continue",
             "default", "do", "double", "else", "enum", "extern", "float", "for", "goto", "if",
             "inline", "int", "long", "register", "restrict", "return", "short", "signed",
             "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
             "volatile", "while", "bool", "true", "false", "int64_t", "int32_t"}


def _shape_text(shape) -> str:
    return ", ".join(str(d) for d in shape)


def _size_text(shape) -> str:
    return " * ".join(f"({d})" if isinstance(d, Dim) and d.offset else str(d) for d in shape)


def _describe_example(p: Param) -> str:
    return f"{p.name}: {p.ctype}" + (f"[{_shape_text(p.shape)}]" if p.shape else "")


# --------------------------------------------------------------------------- generated text


def writing_into_outputs(source: str, n_outputs: int,
                         ranks: list[int] | None = None) -> tuple[str, list[int]]:
    """The kernel source with array outputs written into arrays it is given, and which.

    The generator allocates an output with one top-level ``v = rt.empty(shape, dtype)`` and
    returns it; such an output becomes a parameter (``o<k>``) of the kernel, appended after
    the others, so the caller's buffer is written directly (no allocation, no copy). An array
    output (``ranks[k] > 0``) made by one top-level ``v = rt.dot(a, b)`` becomes
    ``v = o<k>`` then ``np.dot(a, b, v)`` (NumPy's ``out=``, which Numba's ``np.dot`` takes
    for C-contiguous arrays of the product's shape and dtype, as the caller's buffer is). An
    output made any other way (a view, an input returned as is, the same array twice) is left
    to be copied. The text is the generator's own, edited on exactly these lines."""
    lines = source.split("\n")
    returns = [i for i, line in enumerate(lines) if line.startswith("    return ")]
    defs = [i for i, line in enumerate(lines) if line.startswith("def kernel(")]
    if len(returns) != 1 or len(defs) != 1:
        return source, []
    names = [n.strip() for n in lines[returns[0]][len("    return "):].strip("()").split(",")]
    names = [n for n in names if n]
    if len(names) != n_outputs:
        return source, []
    params = lines[defs[0]][len("def kernel("):-2].split(", ")
    in_place = []
    for k, name in enumerate(names):
        if names.count(name) != 1 or name in params:
            continue
        assigned = [i for i, line in enumerate(lines)
                    if re.match(rf"\s*{re.escape(name)}(\[.*\])? = ", line)
                    and not line.lstrip().startswith(f"{name}[")]
        allocation = re.fullmatch(rf"    {re.escape(name)} = rt\.empty\(.*\)", lines[assigned[0]]) \
            if len(assigned) == 1 else None
        product = re.fullmatch(rf"    {re.escape(name)} = rt\.(dot\(.*\))", lines[assigned[0]]) \
            if len(assigned) == 1 and ranks is not None and ranks[k] > 0 else None
        if allocation:
            lines[assigned[0]] = f"    {name} = o{k}"
            in_place.append(k)
        elif product:
            lines[assigned[0]] = f"    {name} = o{k}\n    np.{product.group(1)[:-1]}, {name})"
            in_place.append(k)
    if not in_place:
        return source, []
    params = [p for p in params if p] + [f"o{k}" for k in in_place]
    lines[defs[0]] = f"def kernel({', '.join(params)}):"
    return "\n".join(lines), in_place


def cfunc_source(export: Export) -> str:
    """The cfunc: view the pointers as arrays, call the kernel, which writes its array outputs
    into the caller's buffers where it can (:func:`writing_into_outputs`); copy the others
    (index loops: no exception path, unlike a slice assignment)."""
    staged = export.staged
    params = export.impl_params()
    lines = [f"def {export.impl}({', '.join(params)}):"]
    args = [f"c{k}" for k in range(len(staged.consts))]
    for p in export.inputs:
        if p.shape:
            lines.append(f"    {p.name}_a = numba.carray({p.name}, "
                         f"({', '.join(p.dims)}{',' if len(p.dims) == 1 else ''}))")
            args.append(f"{p.name}_a")
        else:
            args.append(p.name)
    for symbol, dim in export.symbols().items():
        lines.append(f"    {symbol} = {dim}")
    for k in export.in_place:
        p = export.outputs[k]
        shape = ", ".join(_dim_code(d) for d in p.shape)
        lines.append(f"    {p.name}_a = numba.carray({p.name}, ({shape},))")
        args.append(f"{p.name}_a")
    lines.append(f"    r = kernel({', '.join(args)})")
    if export.plain:
        lines.append("    return r")
        return "\n".join(lines) + "\n"
    results = ["r"] if len(export.outputs) == 1 else [f"r[{k}]" for k in
                                                       range(len(export.outputs))]
    for k, (p, res) in enumerate(zip(export.outputs, results)):
        if not p.shape:
            lines.append(f"    {p.name}[0] = {res}")
            continue
        if k in export.in_place:
            continue
        rank = len(p.shape)
        lines.append(f"    {p.name}_r = {res}")
        lines.append(f"    {p.name}_a = numba.carray({p.name}, {p.name}_r.shape)")
        depth = 1
        for k in range(rank):
            lines.append("    " * depth + f"for i{k} in range({p.name}_r.shape[{k}]):")
            depth += 1
        index = ", ".join(f"i{k}" for k in range(rank))
        lines.append("    " * depth + f"{p.name}_a[{index}] = {p.name}_r[{index}]")
    lines.append("    return 0")
    return "\n".join(lines) + "\n"


def numba_signature(export: Export):
    from numba import types

    scalar = {"double": types.float64, "float": types.float32, "int64_t": types.int64,
              "int32_t": types.int32}
    args = []
    for p in export.inputs:
        if p.shape:
            args.append(types.CPointer(scalar[p.ctype]))
            args += [types.int64] * len(p.dims)
        else:
            args.append(scalar[p.ctype])
    if export.plain:
        return scalar[export.outputs[0].ctype](*args)
    args += [types.CPointer(scalar[p.ctype]) for p in export.outputs]
    return types.int32(*args)


def compile_cfunc(export: Export):
    import numba

    source = cfunc_source(export)
    namespace = {"numba": numba, "kernel": export.kernel(),
                 **{f"c{k}": c for k, c in enumerate(export.staged.consts)}}
    exec(compile(source, f"<adjit.aot {export.name}>", "exec"), namespace)
    return numba.cfunc(numba_signature(export), error_model="numpy", nogil=True)(
        namespace[export.impl]), source


def c_wrapper(export: Export) -> str:
    """The exported C function of an array export: shape and pointer checks, then the cfunc
    (a plain export is the cfunc itself)."""
    call = f"{export.impl}({', '.join(export.impl_params())})"
    lines = [f"ADJIT_EXPORT {export.c_signature()} {{"]
    pointers = [p.name for p in export.inputs if p.shape] + [p.name for p in export.outputs]
    if pointers:
        lines.append(f"    if ({' || '.join(f'!{n}' for n in pointers)}) "
                     "return ADJIT_ERROR_NULL;")
    symbols = export.symbols()
    for symbol, expr in symbols.items():
        lines.append(f"    const int64_t {symbol} = {expr};")
        lines.append(f"    if ({symbol} < 2) return ADJIT_ERROR_SHAPE;")
    for p in export.inputs:
        for d, dim in zip(p.shape, p.dims):
            want = d.name if isinstance(d, Dim) else str(d)
            if dim != symbols.get(getattr(d, "name", None)):
                lines.append(f"    if ({dim} != {want}) return ADJIT_ERROR_SHAPE;")
    if symbols:
        lines.append("    " + " ".join(f"(void){s};" for s in symbols))
    lines.append("    adjit_failed = 0;")
    lines.append(f"    {call};")
    lines.append("    return adjit_failed ? ADJIT_ERROR_INTERNAL : ADJIT_OK;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def impl_declaration(export: Export) -> str:
    params = ", ".join(export.c_params()) or "void"
    ret = export.outputs[0].ctype if export.plain else "int"
    return f"{ret} {export.impl}({params});"


def header_source(name: str, exports: list[Export], target: str, blas: bool = False) -> str:
    """The header; ``blas``: some kernel's matrix products run on the stub's C loops."""
    guard = f"ADJIT_{name.upper()}_H"
    out = [
        f"/* lib{name}: derivatives compiled ahead of time by adjit ({target} CPU).",
        " *",
        " * The library depends on libc and libm only (no Python, no Numba).",
        " * ABI:",
        " *   - a function of scalars returning one scalar is a plain C function;",
        " *   - otherwise each array argument is a pointer to its first element (C order,",
        " *     contiguous) followed by its dimensions as int64_t, one per axis; each output is",
        " *     a pointer the caller allocates with the size given below (a scalar output is a",
        " *     pointer to one element); the int returned is a status below, and nothing is",
        " *     read or written out of bounds when a shape is wrong.",
        " *   - Lengths named alike (n0, ...) must be equal; each is >= 2 (as adjit assumes).",
        " *   - Output buffers must not overlap the inputs.",
        *([" *   - Matrix products run as plain C loops, not an optimized BLAS: matrix-vector",
           " *     products about as fast, large matrix-matrix products several times slower",
           " *     (500x500 by 500x500: about 5x single-threaded OpenBLAS)."] if blas else []),
        " *   - Thread-safe: no global state. Array outputs are written straight into the",
        " *     caller's buffers; temporaries the computation needs (and an output the kernel",
        " *     builds otherwise, e.g. a view, before it is copied) are malloc'd and freed before",
        " *     the function returns; nothing is kept between calls, nothing is for the caller",
        " *     to free.",
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
    ]
    for status, (value, meaning) in STATUS.items():
        out.append(f"#define {status} {value}  /* {meaning} */")
    out.append("")
    for e in exports:
        out += ["/* " + e.describe()[0]] + [" * " + line for line in e.describe()[1:]] + [" */"]
        out += [f"{e.c_signature()};", ""]
    out += ["#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {guard} */", ""]
    return "\n".join(out)


def stub_source(name: str, exports: list[Export], functions: set[str],
                variables: set[str]) -> str:
    out = [
        f"/* lib{name}: the exported functions and the runtime the kernels need (generated by",
        " * adjit.aot; see adjit/aot/compat.py). */",
        "#include <stdint.h>",
        "#include <stdlib.h>",
        "",
        f'#include "{name}.h"',
        "",
        "/* Set by the kernels' exception path (below), read by the exported functions. */",
        "static _Thread_local int adjit_failed;",
        "",
        "/* The library is built with -fvisibility=hidden: only these functions are exported. */",
        '#define ADJIT_EXPORT __attribute__((visibility("default")))',
        "",
    ]
    nrt = [s for s in sorted(functions) if s in compat.NRT_SYMBOLS]
    if nrt:
        out.append(compat.NRT_PRELUDE)
        out += [compat.NRT_SYMBOLS[s] for s in nrt] + [""]
    blas = compat.blas_source(functions)
    if blas:
        out.append(blas)
    errors = [s for s in sorted(functions) if compat.is_error_path(s)]
    if errors:
        out.append("/* Reached only when a kernel raises (its exception path reports through "
                   "CPython): record the failure. */")
        out += [f"void *{s}(void) {{ adjit_failed = 1; return 0; }}" for s in errors]
        out += [f"void *{s};" for s in sorted(variables) if compat.is_error_path(s)] + [""]
    out += [impl_declaration(e) for e in exports if not e.plain] + [""]
    out += [c_wrapper(e) for e in exports if not e.plain]
    return "\n".join(out)


def loader_source(name: str, exports: list[Export]) -> str:
    """A Python module that loads the library with ctypes and checks shapes (NumPy only)."""
    specs = []
    for e in exports:
        ins = [(p.name, CTYPES_NAMES[p.ctype], len(p.shape)) for p in e.inputs]
        outs = [(p.name, CTYPES_NAMES[p.ctype], [_dim_code(d) for d in p.shape])
                for p in e.outputs]
        specs.append(f"    {e.name!r}: ({e.plain!r}, {ins!r}, {outs!r}),")
    symbols = {e.name: {s: _symbol_site(e, s) for s in e.symbols()} for e in exports}
    return _LOADER.format(name=name, specs="\n".join(specs), symbols=repr(symbols),
                          statuses=repr({v: k for k, (v, _) in STATUS.items()}))


def _dim_code(d) -> str:
    """A Python expression of an output length, in the symbols' names."""
    if isinstance(d, Dim):
        return d.name if not d.offset else f"{d.name} {'+' if d.offset > 0 else '-'} " \
                                           f"{abs(d.offset)}"
    return str(d)


_LOADER = '''\
"""Load lib{name} (built by adjit.aot) with ctypes: needs NumPy only, not adjit or Numba.

    import {name}
    lib = {name}.load()          # the .so next to this file
    lib.f(0.5)                   # a scalar function: a float
    lib.vdf(x)                   # array arguments: NumPy arrays in, arrays out
    lib.raw.vdf                  # the ctypes function itself
"""

import ctypes
import os

import numpy as np

# name -> (plain, [(argument, ctype, rank)], [(output, ctype, [length expressions])])
SPECS = {{
{specs}
}}
STATUS = {statuses}


class LibraryError(RuntimeError):
    """A status other than ADJIT_OK."""


class Library:
    def __init__(self, path):
        self.raw = ctypes.CDLL(path)
        for fname, (plain, ins, outs) in SPECS.items():
            fn = getattr(self.raw, fname)
            args = []
            for _, ctype, rank in ins:
                ct = getattr(ctypes, ctype)
                args += [ctypes.POINTER(ct)] + [ctypes.c_int64] * rank if rank else [ct]
            if plain:
                fn.restype = getattr(ctypes, outs[0][1])
            else:
                args += [ctypes.POINTER(getattr(ctypes, ct)) for _, ct, _ in outs]
                fn.restype = ctypes.c_int
            fn.argtypes = args
            setattr(self, fname, self._wrap(fname, fn, plain, ins, outs))

    @staticmethod
    def _wrap(fname, fn, plain, ins, outs):
        dtypes = {{"c_double": np.float64, "c_float": np.float32, "c_int64": np.int64,
                   "c_int32": np.int32}}

        def call(*args):
            if len(args) != len(ins):
                raise TypeError(f"{{fname}} takes {{len(ins)}} arguments, got {{len(args)}}")
            if plain:
                return fn(*args)
            c_args, lengths = [], {{}}
            keep = []
            for value, (_, ctype, rank) in zip(args, ins):
                if rank:
                    a = np.ascontiguousarray(value, dtypes[ctype])
                    if a.ndim != rank:
                        raise ValueError(f"{{fname}}: expected {{rank}}-d, got {{a.ndim}}-d")
                    keep.append(a)
                    c_args.append(a.ctypes.data_as(ctypes.POINTER(getattr(ctypes, ctype))))
                    c_args += list(a.shape)
                else:
                    c_args.append(value)
            # Output lengths from the inputs: the symbols are the lengths of the arguments.
            names = {{}}
            for value, (aname, _, rank) in zip(keep, [i for i in ins if i[2]]):
                names[aname] = value.shape
            env = _symbols(fname, names)
            results = []
            for _, ctype, dims in outs:
                shape = tuple(int(eval(d, {{}}, env)) for d in dims)
                out = np.empty(max(1, int(np.prod(shape))) if not shape else shape,
                               dtypes[ctype])
                results.append(out)
                c_args.append(out.ctypes.data_as(ctypes.POINTER(getattr(ctypes, ctype))))
            status = fn(*c_args)
            if status != 0:
                raise LibraryError(f"{{fname}}: status {{status}} ({{STATUS.get(status, '?')}})")
            results = [r if dims else r[0] for r, (_, _, dims) in zip(results, outs)]
            return results[0] if len(results) == 1 else tuple(results)

        call.__name__ = fname
        return call


# name -> {{symbol: (argument, axis)}}: where each length symbol is read
SYMBOLS = {symbols}


def _symbols(fname, shapes):
    return {{s: (shapes[a][axis] if a in shapes and axis < len(shapes[a]) else 0)
             for s, (a, axis) in SYMBOLS[fname].items()}}


def load(path=None):
    """The library at ``path`` (default: lib{name}.so next to this file)."""
    if path is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib{name}.so")
    return Library(path)
'''


# --------------------------------------------------------------------------- build


@dataclass
class BuiltLibrary:
    """What :func:`build` wrote: the shared library, the header, the loader, the C stub."""
    library: str
    header: str
    loader: str
    stub: str
    exports: list

    def load(self):
        """The library loaded through its ctypes loader (in this process)."""
        import importlib.util

        spec = importlib.util.spec_from_file_location(f"_adjit_aot_{id(self)}", self.loader)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.load(self.library)


def build(functions: dict, name: str, output_dir: str = ".", *, target: str = "host",
          cc: str | None = None) -> BuiltLibrary:
    """Compile ``functions`` (exported name -> ``(fun, example_args)``) into
    ``output_dir/lib<name>.so``, with ``<name>.h`` (the C ABI, documented) and ``<name>.py``
    (a ctypes loader needing only NumPy).

    ``fun`` is any function adjit transforms (``adjit.grad(f)``, ``vmap(grad(f))``, ...);
    ``example_args`` a tuple of arguments (or one argument) giving each argument's dtype and
    rank; arrays of equal length in the examples share one length (checked at each call).
    ``target``: ``"host"`` (the build machine's CPU), ``"generic"`` (any x86-64), or an LLVM
    CPU name. Needs a C compiler (``$CC``, else ``cc``).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise AdjitValueError(f"adjit.aot: the library name must be a C identifier, got {name!r}")
    if not functions:
        raise AdjitValueError("adjit.aot: no functions to export")
    exports = []
    for export_name, spec in functions.items():
        if not (isinstance(spec, (tuple, list)) and len(spec) == 2):
            raise AdjitTypeError(f"adjit.aot: functions[{export_name!r}] must be "
                                 "(fun, example_args)")
        exports.append(Export(export_name, *spec))
    cpu, features = compat.cpu_for(target)
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="adjit-aot-") as tmp:
        objects, functions, variables = [], set(), set()
        for e in exports:
            cfunc, _ = compile_cfunc(e)
            obj, missing_fns, missing_vars = compat.object_code(cfunc, e.impl, cpu, features,
                                                                exported=e.plain)
            path = os.path.join(tmp, f"{e.name}.o")
            with open(path, "wb") as fh:
                fh.write(obj)
            objects.append(path)
            functions |= set(missing_fns)
            variables |= set(missing_vars)
        header = os.path.join(output_dir, f"{name}.h")
        blas = any(f in compat.BLAS_SYMBOLS for f in functions)
        _write(header, header_source(name, exports, target, blas))
        stub = os.path.join(output_dir, f"{name}_stub.c")
        _write(stub, stub_source(name, exports, functions, variables))
        library = os.path.join(output_dir, f"lib{name}.so")
        compat.link(objects, stub, library + ".tmp", cc, compat.stub_flags(target))
        os.replace(library + ".tmp", library)
    loader = os.path.join(output_dir, f"{name}.py")
    _write(loader, loader_source(name, exports))
    return BuiltLibrary(library, header, loader, stub, exports)


def _symbol_site(export: Export, symbol: str):
    for p in export.inputs:
        for axis, d in enumerate(p.shape):
            if isinstance(d, Dim) and d.name == symbol:
                return (p.name, axis)
    raise AssertionError(symbol)


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
