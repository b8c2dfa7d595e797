"""The optimization pipeline: a visible list of named passes.

``config.dump_ir`` (``ADJIT_DUMP_IR=1``) prints the graph after each pass;
``optimize(graph, trail)`` records them for ``adjit.inspect``.
"""

from __future__ import annotations

import sys

from adjit.config import config
from adjit.ir.graph import Graph
from adjit.passes.cse import cse
from adjit.passes.dce import dce
from adjit.passes.fold import fold_constants
from adjit.passes.inline import inline_calls
from adjit.passes.layout import batch_major
from adjit.passes.simplify import simplify

PIPELINE = [
    ("inline_calls", inline_calls),
    ("dce", dce),
    ("fold_constants", fold_constants),
    ("simplify", simplify),
    ("cse", cse),
    ("batch_major", batch_major),
    ("dce", dce),
]


def optimize(graph: Graph, trail: list | None = None) -> Graph:
    dump = config.dump_ir
    if dump:
        print(f"--- adjit IR: traced ({len(graph.eqns)} equations)\n{graph}", file=sys.stderr)
    for name, run in PIPELINE:
        graph = run(graph)
        if trail is not None:
            trail.append((name, graph))
        if dump:
            print(f"--- adjit IR after {name} ({len(graph.eqns)} equations)\n{graph}",
                  file=sys.stderr)
    return graph
