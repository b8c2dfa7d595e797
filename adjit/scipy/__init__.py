"""SciPy's names over adjit's primitives (``adjit.scipy.special``)."""

from adjit.scipy import special  # noqa: F401
