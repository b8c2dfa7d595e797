"""SciPy's names over adjit's primitives (``adjit.scipy.special``, ``adjit.scipy.stats``,
``adjit.scipy.linalg``)."""

from adjit.scipy import linalg, special, stats  # noqa: F401
