"""Primitives that carry graphs in their parameters: calls (``call.py``, with
``checkpoint``), conditionals (``cond.py``: cond, switch) and loops (``loops.py``: scan,
fori_loop, while_loop). Their rules transform the carried graphs with the graph-to-graph
transformations of ``adjit.ad`` and ``adjit.batching``, so this layer sits above those."""

from adjit.control.call import checkpoint  # noqa: F401
from adjit.control.cond import cond, switch  # noqa: F401
from adjit.control.loops import fori_loop, scan, while_loop  # noqa: F401
