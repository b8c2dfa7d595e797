"""docs/PRIMITIVES.md, generated from the rule tables: every primitive and which rules it has.

    python3 -m adjit.primitives.doc        # rewrites docs/PRIMITIVES.md

``markdown()`` returns the text; tests/test_primitives_doc.py asserts that the file equals it,
so a primitive added without regenerating the file fails there. The Numba lowering column is
read from the fusion pass's sets and the code generator's tables (``lowerings``).
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import adjit  # noqa: F401  (registers every primitive, the custom-rule call primitives too)
from adjit.backend.numba_cpu.lowering import (
    ARRAY_LOWERINGS,
    CONTROL_LOWERINGS,
    GATHER_LOWERINGS,
    REDUCE_LOWERINGS,
    SCALAR_LOWERINGS,
)
from adjit.ir.graph import ShapedArray
from adjit.ir.rules import (
    abstract_rules,
    batching_rules,
    impl_rules,
    jvp_rules,
    kind_of,
    linear_prims,
    nondiff_prims,
    transpose_rules,
)
from adjit.passes.fusion import is_view

# One line each; a primitive missing here falls back to the first line of its impl's docstring.
DESCRIPTIONS = {
    "neg": "-x",
    "add": "x + y",
    "sub": "x - y",
    "mul": "x * y",
    "div": "x / y (floor division for integers)",
    "max": "elementwise maximum; NaN wins, as in np.maximum",
    "min": "elementwise minimum; NaN wins, as in np.minimum",
    "pow": "x ** y with an array exponent",
    "integer_pow": "x ** y for a constant integer y (param `y`)",
    "atan2": "arctan2(y, x)",
    "sin": "sine",
    "cos": "cosine",
    "tan": "tangent",
    "asin": "arcsine",
    "acos": "arccosine",
    "atan": "arctangent",
    "sinh": "hyperbolic sine",
    "cosh": "hyperbolic cosine",
    "tanh": "hyperbolic tangent",
    "asinh": "inverse hyperbolic sine",
    "acosh": "inverse hyperbolic cosine",
    "atanh": "inverse hyperbolic tangent",
    "exp": "e ** x",
    "expm1": "e ** x - 1, accurate near 0",
    "log": "natural logarithm",
    "log1p": "log(1 + x), accurate near 0",
    "sqrt": "square root",
    "cbrt": "cube root",
    "logistic": "1 / (1 + e ** -x) (expit)",
    "erf": "the error function",
    "lgamma": "log |Gamma(x)|",
    "digamma": "d/dx lgamma(x)",
    "polygamma": "the m-th derivative of digamma (param `m`)",
    "abs": "|x|",
    "sign": "-1, 0 or 1 (piecewise constant)",
    "floor": "round down (piecewise constant)",
    "ceil": "round up (piecewise constant)",
    "round": "round half to even (piecewise constant)",
    "eq": "x == y (boolean)",
    "ne": "x != y (boolean)",
    "lt": "x < y (boolean)",
    "le": "x <= y (boolean)",
    "gt": "x > y (boolean)",
    "ge": "x >= y (boolean)",
    "and": "logical and",
    "or": "logical or",
    "not": "logical not",
    "select": "where(pred, x, y)",
    "convert_element_type": "cast to `new_dtype`",
    "stop_gradient": "identity whose derivative is zero",
    "broadcast_in_dim": "broadcast to `shape`, input axes placed at `broadcast_dimensions`",
    "reshape": "reshape to `new_sizes`",
    "transpose": "permute axes by `permutation`",
    "slice": "strided slice (`start_indices`, `limit_indices`, `strides`)",
    "pad": "pad with zeros: `lo`/`hi` at each axis's ends, `interior` between elements",
    "concatenate": "join arrays along `axis`",
    "iota": "0, 1, 2, ... along `dimension` of `shape`",
    "shape_size": "the number of elements of a (possibly symbolic) shape, as a scalar",
    "reduce_sum": "sum over `axes`",
    "reduce_prod": "product over `axes`",
    "reduce_max": "maximum over `axes`",
    "reduce_min": "minimum over `axes`",
    "argmax": "index of the maximum along `axis`",
    "argmin": "index of the minimum along `axis`",
    "cumsum": "cumulative sum along `axis` (optionally `reverse`)",
    "sort": "stable sort along `axis`",
    "argsort": "indices that sort along `axis` (stable)",
    "take": "gather along `axis` at integer indices (negative indices wrap)",
    "scatter_add": "add values into a copy of x at indices along `axis` (the transpose of take)",
    "matmul": "matrix product over equal leading batch axes",
    "revolve": "reverse sweep of a scan with checkpoint='binomial' (Revolve schedule)",
    "remat": "a function whose values reverse mode recomputes (`adjit.checkpoint`)",
    "cond": "run the branch graph `index` picks (`adjit.cond`, `adjit.switch`)",
    "scan": "a loop over the leading axis of xs carrying state (`adjit.scan`, `fori_loop`)",
    "while": "a loop while a condition graph holds (`adjit.while_loop`); reverse mode on Revolve",
    "custom_jvp_call": "a function with a user JVP rule (`adjit.custom_jvp`)",
    "custom_vjp_call": "a function with a user VJP rule (`adjit.custom_vjp`)",
    "custom_vjp_lin": "the linear part of a custom_vjp function, transposed by its VJP rule",
}

_INDEX_VALUES = {"iota"}    # gathers computed from the loop index alone, per element


def _probe_view(name: str) -> bool:
    """Whether the fusion pass treats ``name`` as a view (reshape: when it only drops unit
    axes, probed with a (1, 3) -> (3,) reshape)."""
    x = SimpleNamespace(aval=ShapedArray((1, 3), "float64"))
    out = SimpleNamespace(aval=ShapedArray((3,), "float64"))
    return bool(is_view(SimpleNamespace(prim=name, inputs=[x], out=out, params={})))


def lowerings(name: str) -> list[str]:
    """How the Numba backend lowers ``name``: a list of the kinds that apply (may be empty)."""
    kinds = []
    kind = kind_of(name)
    if kind == "call":
        kinds.append("inlined call")
    if kind == "elementwise" and name in SCALAR_LOWERINGS or \
            kind == "gather" and name in _INDEX_VALUES:
        kinds.append("fused elementwise")
    if kind == "reduction" and name in REDUCE_LOWERINGS:
        kinds.append("fused reduction")
    if _probe_view(name):
        kinds.append("view")
    if kind == "gather" and name not in _INDEX_VALUES or \
            kind == "array" and name in GATHER_LOWERINGS:  # pads, concatenations
        kinds.append("gather")
    if name in ARRAY_LOWERINGS:
        kinds.append("array op")
    if kind == "control" and name in CONTROL_LOWERINGS:
        kinds.append("control flow")
    return kinds


def description(name: str) -> str:
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name].splitlines()[0]
    doc = getattr(impl_rules.get(name), "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _mark(present: bool) -> str:
    return "✓" if present else "**missing**"


def row(name: str) -> list[str]:
    if name in nondiff_prims:
        jvp = "zero" if name in jvp_rules else _mark(False)
    else:
        jvp = _mark(name in jvp_rules)
    if name in linear_prims:
        transpose = _mark(name in transpose_rules)
    else:
        transpose = "✓" if name in transpose_rules else "—"
    marks = [_mark(name in abstract_rules), _mark(name in impl_rules), jvp, transpose,
             _mark(name in batching_rules)]
    return [f"`{name}`", kind_of(name), *marks, ", ".join(lowerings(name)) or "**none**",
            description(name).replace("|", "\\|")]


HEADER = """\
# adjit primitives

Generated by `python3 -m adjit.primitives.doc` from the rule tables in `adjit/ir/rules.py`
(filled by each primitive's block in `adjit/primitives/`) and the lowering tables of the CPU
target in `adjit/backend/numba_cpu/lowering.py`. Do not edit by hand:
`tests/test_primitives_doc.py` fails when this file differs from what the tables say.

Columns: **kind** what the compiler may do with it, declared with the primitive (elementwise,
reduction, view, gather, call, control, array: see `adjit/ir/rules.py`); **shape** the abstract
(shape and dtype) rule; **impl** the NumPy reference implementation (the interpreter); **jvp**
the forward-mode rule ("zero": the output is piecewise constant or discrete, its tangent is
zero); **transpose** the rule reverse mode uses for a
primitive linear in (some of) its inputs ("—": not linear, never transposed); **batching** the
`adjit.vmap` rule; **Numba lowering**: *fused elementwise* (one expression per element inside a
loop nest), *fused reduction* (an accumulator in the loop nest of its input), *view* (never
computed: readers index its input at a mapped index), *gather* (an indexed read inside the loop
nest; a pad or a concatenation along axes of known length is one), *array op* (statements over
whole arrays), *control flow* (a branch or a loop in the kernel, each carried graph's code
placed inside it), *inlined call* (the call's graph is inlined before fusion, so its equations
are lowered as above).
"""


def markdown() -> str:
    names = sorted(abstract_rules)
    lines = [HEADER, f"{len(names)} primitives.", "",
             "| primitive | kind | shape | impl | jvp | transpose | batching | Numba lowering "
             "| description |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        lines.append("| " + " | ".join(row(name)) + " |")
    return "\n".join(lines) + "\n"


def default_path() -> str:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "docs", "PRIMITIVES.md")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else default_path()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(markdown())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
