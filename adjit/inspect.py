"""``adjit.inspect(fun, *args)``: every stage of what adjit does with a function, for reading.

    info = adjit.inspect(adjit.value_and_grad(f), x)
    print(info)                  # a summary with counts
    info.graph, info.passes      # the traced graph, and (pass name, graph) after each pass
    info.source                  # the generated Python/Numba kernel
    info.llvm, info.asm          # LLVM IR and assembly of the compiled kernel
"""

from __future__ import annotations

import numpy as np

from adjit import tree
from adjit.backend import get_target
from adjit.trace import trace_symbolic


class Inspection:
    def __init__(self, graph, consts, leaves):
        self.graph = graph
        compiled = get_target("cpu").compile(graph, reason="adjit.inspect")
        from adjit.backend.numba_cpu import compat  # (loaded by get_target("cpu"))

        self.passes = compiled.trail
        self.optimized = compiled.optimized
        self.schedule = compiled.schedule
        self.source = compiled.source.text
        inputs = [*consts, *[x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x
                             for x in leaves]]
        compiled.compile_for(inputs)
        signature = compiled.arg_types
        # (a kernel loaded from the disk cache has no IR to show: compiled afresh for this)
        dispatcher = compat.inspectable(compiled.dispatcher, signature, self.source)
        self.llvm = dispatcher.inspect_llvm(signature)
        self.asm = dispatcher.inspect_asm(signature)

    @property
    def counts(self) -> dict:
        return {
            "equations_traced": len(self.graph.eqns),
            "equations_optimized": len(self.optimized.eqns),
            "loops": self.schedule.loop_count,
        }

    def __str__(self):
        parts = [f"== traced graph ({len(self.graph.eqns)} equations)", str(self.graph)]
        for name, graph in self.passes:
            parts += [f"== after {name} ({len(graph.eqns)} equations)", str(graph)]
        parts += [f"== generated kernel ({self.schedule.loop_count} loop nests)", self.source]
        parts += [f"== counts: {self.counts}"]
        return "\n".join(parts)

    __repr__ = __str__


def inspect(fun, *args) -> Inspection:
    leaves, in_tree = tree.flatten(args)

    def flat_fun(*flat):
        return tree.leaves(fun(*tree.unflatten(in_tree, flat)))

    graph, consts = trace_symbolic(flat_fun, leaves)
    return Inspection(graph, consts, leaves)
