"""Fit the parameters of an ODE to data: Lotka-Volterra predator and prey, integrated with
fourth-order Runge-Kutta in `adjit.fori_loop`, differentiated in reverse mode through all the
steps with binomial checkpointing (at most 16 states kept instead of one per step), and fitted
with SciPy's L-BFGS-B, which takes the loss and its gradient from one adjit call.

    python examples/ode_fit.py
"""

import numpy as np
import scipy.optimize

import adjit
import adjit.numpy as anp

STEPS, DT = 2000, 0.005  # integrate over t in [0, 10]
OBSERVE_EVERY = 100


def vector_field(state, params):
    prey, predator = state[0], state[1]
    a, b, c, d = params[0], params[1], params[2], params[3]
    return anp.stack([a * prey - b * prey * predator, d * prey * predator - c * predator])


def rk4_step(state, params):
    k1 = vector_field(state, params)
    k2 = vector_field(state + 0.5 * DT * k1, params)
    k3 = vector_field(state + 0.5 * DT * k2, params)
    k4 = vector_field(state + DT * k3, params)
    return state + DT / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def trajectory(params, state0):
    """The states every OBSERVE_EVERY steps: a scan over observations, each a fori_loop."""
    def observe(state, _):
        state = adjit.fori_loop(0, OBSERVE_EVERY, lambda i, s: rk4_step(s, params), state)
        return state, state

    _, observed = adjit.scan(observe, state0, None, length=STEPS // OBSERVE_EVERY,
                             checkpoint="binomial", snapshots=16)
    return observed


def loss(params, state0, data):
    return anp.mean((anp.log(trajectory(params, state0)) - anp.log(data)) ** 2)


def main():
    true_params = np.array([1.1, 0.4, 0.4, 0.1])
    state0 = np.array([10.0, 5.0])
    data = adjit.jit(trajectory)(true_params, state0)
    rng = np.random.default_rng(0)
    data = data * np.exp(0.01 * rng.standard_normal(data.shape))  # 1% noise

    value_and_grad = adjit.value_and_grad(loss)
    params = np.array([1.0, 0.45, 0.45, 0.09])
    print(f"initial loss = {float(loss(params, state0, data)):.6f}")
    result = scipy.optimize.minimize(
        lambda p: value_and_grad(p, state0, data), params, jac=True, method="L-BFGS-B",
        bounds=[(0.01, 5.0)] * 4, options={"gtol": 1e-10})
    params = result.x
    print(f"final loss = {result.fun:.6f} after {result.nit} iterations")
    print("fitted params =", np.array2string(params, precision=4))
    print("true params =", np.array2string(true_params, precision=4))
    # The same gradient storing every step (no checkpointing), for comparison.
    def loss_stored(p):
        def observe(state, _):
            state = adjit.fori_loop(0, OBSERVE_EVERY, lambda i, s: rk4_step(s, p), state)
            return state, state

        _, observed = adjit.scan(observe, state0, None, length=STEPS // OBSERVE_EVERY)
        return anp.mean((anp.log(observed) - anp.log(data)) ** 2)

    g_binomial = adjit.grad(lambda p: loss(p, state0, data))(params)
    g_stored = adjit.grad(loss_stored)(params)
    print(f"gradient, binomial vs stored: max relative difference = "
          f"{np.max(np.abs(g_binomial - g_stored) / np.abs(g_stored)):.1e}")


if __name__ == "__main__":
    main()
