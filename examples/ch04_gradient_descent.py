"""Chapter 4: gradient descent on f(x0, x1) = x0² + x1² with numerical gradients (the book's gradient_method.py).

Run:  python examples/ch04_gradient_descent.py     (well under a second)

The library's ``numerical_grad`` differentiates any pure scalar function of a
pytree by central differences; here the pytree is one array of two numbers.
"""
import numpy as np

import minigrad_nets as mg


def function_2(params):
    """The book's function_2: x0² + x1²."""
    x = params["x"]
    return x[0] ** 2 + x[1] ** 2


def gradient_descent(f, init_x, lr=0.01, step_num=100):
    """The book's gradient_descent: ``step_num`` steps of x <- x - lr * grad f(x); returns the last x."""
    params = {"x": np.array(init_x, dtype=np.float64)}
    for _ in range(step_num):
        grad = mg.numerical_grad(f, params)
        params = {"x": params["x"] - lr * grad["x"]}
    return params["x"]


init_x = [-3.0, 4.0]
print("gradient at (3, 4):", mg.numerical_grad(function_2, {"x": np.array([3.0, 4.0])})["x"], "(exact: [6. 8.])")
for lr in (0.1, 10.0, 1e-10):
    x = gradient_descent(function_2, init_x, lr=lr, step_num=100)
    print(f"lr {lr:<6g}: 100 steps from (-3, 4) end at {np.array2string(x, precision=4)}")

# lr 0.1 shrinks x by 0.8 a step: 0.8**100 * (-3, 4) ≈ (-6e-10, 8e-10), the minimum (0, 0) to 1e-9.
assert np.allclose(gradient_descent(function_2, init_x, lr=0.1), 0.8 ** 100 * np.array(init_x), atol=1e-12)
