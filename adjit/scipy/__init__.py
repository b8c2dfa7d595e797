"""SciPy's names over adjit's primitives (``adjit.scipy.special``, ``adjit.scipy.fft``)."""

from adjit.scipy import fft, special  # noqa: F401
