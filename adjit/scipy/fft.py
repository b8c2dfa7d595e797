"""``scipy.fft``: the transforms of ``adjit.numpy.fft`` under SciPy's names (the same
arguments: ``n``/``s``, ``axis``/``axes``, ``norm``)."""

from adjit.numpy.fft import (  # noqa: F401
    fft,
    fft2,
    fftfreq,
    fftn,
    fftshift,
    ifft,
    ifft2,
    ifftn,
    ifftshift,
    irfft,
    irfft2,
    irfftn,
    rfft,
    rfft2,
    rfftfreq,
    rfftn,
)
