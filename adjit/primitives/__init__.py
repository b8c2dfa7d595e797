"""Every primitive, registered on import. See registry.py for the tables."""

from adjit.primitives import (  # noqa: F401
    decompositions,
    elementwise,
    fft,
    indexing,
    linalg,
    reductions,
    sorting,
    special,
    structural,
)
from adjit.primitives.registry import missing_rules  # noqa: F401
