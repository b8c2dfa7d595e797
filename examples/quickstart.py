"""The README's first example: gradients of the seed function f(x) = x**2 + sin(x)."""

import numpy as np

import adjit
import adjit.numpy as anp


def f(x):
    return x**2 + anp.sin(x)


df = adjit.grad(f)
print("grad(f)(0.0)               =", df(0.0))                       # 1.0 = 2x + cos x
print("grad(grad(f))(0.0)         =", adjit.grad(adjit.grad(f))(0.0))  # 2.0 = 2 - sin x
print("grad(x0**2 + x1**3)([1,2]) =",
      adjit.grad(lambda x: x[0]**2 + x[1]**3)(np.array([1.0, 2.0])))  # [ 2. 12.]
val, g = adjit.value_and_grad(f)(0.0)
print("value_and_grad(f)(0.0)     =", (val, g))                        # (0.0, 1.0)


@adjit.grad
def h(x):
    return anp.tanh(x) * x


print("h(0.5) = d/dx tanh(x) x    =", h(0.5))
print("grad(x e^y, argnums=(0,1)) =",
      adjit.grad(lambda x, y: x * anp.exp(y), argnums=(0, 1))(2.0, 0.5))
print("jvp(f, (1.0,), (1.0,))     =", adjit.jvp(f, (1.0,), (1.0,)))     # (f(1), f'(1))
y, f_vjp = adjit.vjp(f, 1.0)
print("vjp(f, 1.0)[1](1.0)        =", f_vjp(1.0))                       # (f'(1),)
print("the graph of f:")
print(adjit.make_graph(f)(1.0))
