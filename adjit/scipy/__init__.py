"""SciPy's names over adjit's primitives (``adjit.scipy.special``)."""

from adjit.scipy import linalg, special  # noqa: F401
