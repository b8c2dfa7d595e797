"""Fit a signal's parameters to its spectrum: a sum of damped complex exponentials (as in an
NMR free-induction decay), s(t) = sum_k c_k exp((-g_k + 2 pi i f_k) t), with complex
amplitudes c_k, frequencies f_k and dampings g_k, fitted by gradient descent so that its FFT
matches a noisy target spectrum.

The loss is real and the amplitudes complex: adjit.grad follows JAX's convention and returns
conj(dL/dRe c + i dL/dIm c), so the steepest-descent step on c is along -conj(grad). The
gradient is checked against central finite differences (in the real and imaginary direction
of each amplitude) before the fit.

    pip install '.[fft]'   # rocket-fft: compiled FFTs (an optional extra)
    python examples/spectrum_fit.py
"""

import numpy as np

import adjit
import adjit.numpy as anp

N, DT = 256, 1.0 / 256  # one second sampled 256 times: frequencies are whole numbers of Hz


def signal(amps, freqs, damps):
    t = anp.arange(N) * DT
    phase = anp.outer(t, 2j * np.pi * freqs - damps)  # (N, K): one column per component
    return anp.sum(amps * anp.exp(phase), axis=1)


def loss(amps, freqs, damps, target):
    spectrum = anp.fft.fft(signal(amps, freqs, damps), norm="ortho")
    return anp.mean(anp.abs(spectrum - target) ** 2)


def check_gradient(value_and_grad, params, target, eps=1e-6):
    """The largest relative difference between adjit's gradient and central differences."""
    _, grads = value_and_grad(*params, target)
    worst = 0.0
    for i, (p, g) in enumerate(zip(params, grads)):
        # For a complex parameter grad is conj(dL/dx + i dL/dy): compare both parts.
        directions = [(1.0, np.real(np.conj(g)))] + (
            [(1j, np.imag(np.conj(g)))] if np.iscomplexobj(p) else [])
        for step, analytic in directions:
            for k in range(p.size):
                def at(delta, k=k, step=step):
                    moved = [q.copy() for q in params]
                    moved[i][k] += delta * step
                    return float(loss(*moved, target))

                numeric = (at(eps) - at(-eps)) / (2 * eps)
                worst = max(worst, abs(numeric - analytic[k]) / max(1.0, abs(numeric)))
    return worst


def main():
    true = (np.array([1.0 + 0.5j, 0.6 - 0.8j, 0.4 + 0.1j]),  # amplitudes
            np.array([20.0, 45.0, 90.0]),                      # frequencies (Hz)
            np.array([3.0, 6.0, 2.0]))                         # dampings (1/s)
    rng = np.random.default_rng(0)
    clean = np.fft.fft(adjit.jit(signal)(*true), norm="ortho")
    target = clean + 0.02 * (rng.standard_normal(N) + 1j * rng.standard_normal(N))

    params = [np.array([0.8 + 0.0j, 0.8 + 0.0j, 0.8 + 0.0j]),
              np.array([20.6, 44.5, 90.4]), np.array([5.0, 5.0, 5.0])]
    value_and_grad = adjit.value_and_grad(loss, argnums=(0, 1, 2))
    print(f"gradient vs finite differences: max relative error = "
          f"{check_gradient(value_and_grad, params, target):.2e}")
    print(f"initial loss = {float(loss(*params, target)):.6f}")

    # Plain gradient descent, one step size per parameter group (the loss is far more
    # sensitive to a frequency than to an amplitude).
    rates = (1.0, 0.2, 40.0)
    for _ in range(1000):
        value, grads = value_and_grad(*params, target)
        # Complex parameters descend along conj(grad) (JAX's convention), real ones along grad.
        params = [p - rate * np.conj(g) for p, g, rate in zip(params, grads, rates)]
    print(f"final loss = {float(value):.6f} (noise floor {0.02 ** 2 * 2:.6f})")
    names = ("amplitudes", "frequencies", "dampings")
    for name, fitted, want in zip(names, params, true):
        print(f"{name} = {np.round(fitted, 3).tolist()} (true {want.tolist()})")


if __name__ == "__main__":
    main()
