"""Primitives that carry graphs in their parameters (calls now; conditionals and loops next).
Their rules transform the carried graphs with the graph-to-graph transformations of
``adjit.ad`` and ``adjit.batching``, so this layer sits above those."""
