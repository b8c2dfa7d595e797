"""SciPy's names over adjit's primitives (``adjit.scipy.special``, ``adjit.scipy.stats``)."""

from adjit.scipy import (
    special,  # noqa: F401
    stats,  # noqa: F401
)
