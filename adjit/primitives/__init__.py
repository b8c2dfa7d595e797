"""Every primitive, registered on import. See registry.py for the tables."""

from adjit.primitives import elementwise, indexing, linalg, reductions, structural  # noqa: F401
from adjit.primitives.registry import missing_rules  # noqa: F401
