"""Reproducers of adjit bugs the program fuzzer found (issue 9), not fixed yet; run
``python tests/fuzz/known_bugs.py``: each prints what adjit gives and what it should.

1. The reference interpreter runs a graph carried by cond or scan (a transposed branch, a
   second-order scan body) whose equations name a symbolic length that none of that graph's
   inputs carries: ``KeyError: 'n0'`` from ``resolve_param`` in adjit/ir/interpret.py. The
   compiled kernel gives the right answer. fuzz_programs.KNOWN_BUG_HITS counts the draws
   that hit it. (The scan case passes from d82746b; the cond case still fails.)
2. ``anp.hypot(x, 1.5)`` with a float32 ``x`` is float64 (NumPy: float32): hypot is
   ``sqrt(add(square(x), square(y)))`` and ``square(1.5)`` is a float64 array, no longer a
   weak Python scalar. The generator draws ``hypot(x, ones_like(x) * 1.5)`` instead.
3. The Hessian-vector product through a fori_loop whose body alternates its update with the
   loop index and reads a differentiated closure: compiled nan or ~1e222 garbage, interpreted
   a wrong value; finite differences of the gradient and adjit at e7b7d47 (through c4d9324)
   agree on the right one; wrong from e308900 ("Scan kernels allocate nothing per step"),
   fixed by 8ed0208 (kept here as a check).
"""

import numpy as np

import adjit
import adjit.numpy as anp


def cond_with_an_unread_operand():
    def f(x, y):  # neither branch reads the operand y (its length is n0 when traced)
        return adjit.cond(x > 0.0, lambda b: x * 2.0, lambda b: x * 3.0, y)

    return adjit.grad(f, argnums=(0, 1))(0.5, np.array([1.0, 2.0]))


def scan_reverse_over_reverse_with_a_dead_closure_read():
    def f(x):
        def step(c, row):
            anp.tanh(x) * 0.9  # a dead read of the closure x
            return c + 0.1 * anp.tanh(row), row

        c, ys = adjit.scan(step, x, x)
        return anp.sum(ys) + 0.5 * anp.sum(c)

    x, u = np.array([[0.4], [-0.7]]), np.array([[1.0], [2.0]])
    return adjit.vjp(lambda x: adjit.vjp(f, x)[1](1.0), x)[1]((u,))


def hessian_vector_product_through_a_fori_loop():
    def f(x0, x1):
        def body(i, a):
            t = anp.log1p(anp.exp(anp.tanh(a * x0[0, 0])))
            return a + 0.1 * anp.tanh(anp.where(i % 2 == 0, t, -t))

        return anp.sum(x0 - adjit.fori_loop(0, 4, body, x1))

    x0 = np.array([[[0.18, -0.92], [0.07, -0.87]]])
    x1 = np.array([[[0.33, -0.004]], [[0.82, -0.47]], [[1.14, -0.06]]])
    v = (np.ones_like(x0), np.full_like(x1, 0.5))
    grad = adjit.grad(f, argnums=(0, 1))
    return np.round(adjit.jvp(grad, (x0, x1), v)[1][0].ravel(), 6)


def hypot_float32_and_a_python_float():
    return adjit.jit(lambda x: anp.hypot(x, 1.5))(np.float32(0.25)).dtype


if __name__ == "__main__":
    cases = [(cond_with_an_unread_operand, "(2.0, [0., 0.]) as compiled"),
             (scan_reverse_over_reverse_with_a_dead_closure_read,
              "[[-0.0650], [0.1534]] as compiled"),
             (hypot_float32_and_a_python_float, "float32, as NumPy"),
             (hessian_vector_product_through_a_fori_loop,
              "[-0.01572, 0.008721, 0, 0] (finite differences of the gradient)")]
    for fun, want in cases:
        for jit in (True, False):
            adjit.config.update("jit", jit)
            try:
                got = fun()
            except Exception as exc:  # noqa: BLE001
                got = f"{type(exc).__name__}: {exc}"
            print(f"{fun.__name__} ({'compiled' if jit else 'interpreted'}): {got!r}; "
                  f"should be {want}")
