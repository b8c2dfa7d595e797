"""Graph-to-graph optimization passes and the pipeline that runs them (pipeline.py)."""

from adjit.passes.pipeline import PIPELINE, optimize  # noqa: F401
