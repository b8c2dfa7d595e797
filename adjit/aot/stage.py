"""From a transformed function and example arguments to the CPU target's kernel for them.

Both ``adjit.to_numba`` and ``adjit.aot.build`` start here: the function is traced for the
signature of its example arguments (lengths symbolic, as in a call), and the CPU target
(``adjit/backend/numba_cpu/``) runs its pipeline, fusion and code generator on the graph. The
kernel source is the one a call would run; nothing here generates kernel code.
"""

from __future__ import annotations

import numba
import numpy as np

from adjit import tree
from adjit.backend import get_target
from adjit.backend.numba_cpu.runner import load_source
from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.ir.graph import Dim
from adjit.trace import get_aval, trace_symbolic


class Staged:
    """One function at one signature: the graph, its constants, its kernel.

    ``graph`` takes its constvars (``consts``, closed-over arrays, baked in by both users of
    this class) then one input per leaf of the example arguments; ``in_tree``/``out_tree``
    describe the argument and result pytrees; ``source`` is the generated kernel module text;
    ``kernel()`` the Numba dispatcher compiled for exactly these argument types."""

    def __init__(self, fun, example_args, what: str):
        self.name = getattr(fun, "__name__", type(fun).__name__)
        leaves, self.in_tree = tree.flatten(tuple(example_args))
        self.leaves = [_as_leaf(x, what, i) for i, x in enumerate(leaves)]
        out_trees = []

        def flat_fun(*flat):
            out_leaves, out_tree = tree.flatten(fun(*tree.unflatten(self.in_tree, flat)))
            out_trees.append(out_tree)
            return out_leaves

        self.graph, self.consts = trace_symbolic(flat_fun, self.leaves)
        self.out_tree = out_trees[-1]
        self.compiled = get_target("cpu").compile(self.graph, reason=what)
        self.source = self.compiled.source.text
        self._kernel = None

    @property
    def in_avals(self):
        return [v.aval for v in self.graph.invars]

    @property
    def out_avals(self):
        return [v.aval for v in self.graph.outvars]

    def arg_types(self) -> tuple:
        """Numba types of the kernel's arguments: constants, then the example leaves (arrays
        C-contiguous and writable, as ``numba.carray`` and NumPy's defaults give)."""
        return tuple(numba.typeof(_typical(x)) for x in (*self.consts, *self.leaves))

    def kernel(self):
        """The njit dispatcher of the kernel, compiled for :meth:`arg_types` (disk-cached)."""
        if self._kernel is None:
            self._kernel = load_source(self.compiled.source, self.arg_types(), "to_numba/aot")
        return self._kernel

    def symbol_checks(self):
        """[(symbol, [(input index, axis), ...])]: where each symbolic length is read."""
        where: dict[str, list] = {}
        for i, aval in enumerate(self.in_avals):
            for axis, d in enumerate(aval.shape):
                if isinstance(d, Dim):
                    where.setdefault(d.name, []).append((i, axis))
        return list(where.items())


def _as_leaf(x, what: str, i: int):
    """A leaf of the example arguments as the kernel takes it (0-d arrays are scalars)."""
    get_aval(x)  # strings, None, objects: an AdjitTypeError naming the value
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return x[()]
    if isinstance(x, (bool, int, float, np.generic, np.ndarray)):
        return x
    raise AdjitTypeError(f"adjit: {what}: example argument leaf {i} is a "
                         f"{type(x).__name__}; expected an array or a number")


def _typical(x):
    """``x`` as a C-contiguous writable array (or the scalar itself), for its Numba type."""
    if isinstance(x, np.ndarray):
        return np.empty(x.shape, x.dtype)
    return x


def check_flat_outputs(staged: Staged, what: str) -> None:
    """Outputs must be leaves or (nested) tuples/lists of leaves: what Numba and C return."""
    def walk(td):
        if td.kind is None:
            return
        if td.kind not in (tuple, list) or td.aux is not None:
            raise AdjitValueError(
                f"adjit: {what} of {staged.name}: outputs may be arrays, numbers and tuples "
                f"or lists of them, not {getattr(td.kind, '__name__', td.kind)}")
        for c in td.children:
            walk(c)

    walk(staged.out_tree)
