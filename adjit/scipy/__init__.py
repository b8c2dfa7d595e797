"""SciPy's names over adjit's primitives (``adjit.scipy.special``, ``adjit.scipy.stats``,
``adjit.scipy.linalg``, ``adjit.scipy.fft``)."""

from adjit.scipy import fft, linalg, special, stats  # noqa: F401
