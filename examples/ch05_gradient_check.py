"""Chapter 5: the gradient check (the book's gradient_check.py): numerical vs backprop on TwoLayerNet.

Run:  python examples/ch05_gradient_check.py     (about a second, offline)

The book prints, for each parameter, the mean absolute difference between the
two gradients on three training images; with float64 and central differences
both are tiny (the book shows about 1e-10 to 1e-13).
"""
import numpy as np

import minigrad_nets as mg

(x_train, t_train), _ = mg.datasets.load_mnist(dtype="float64", one_hot=True)
network = mg.mlp(784, [50], 10, activation="relu", init=0.01)  # ch05's TwoLayerNet: Affine-Relu-Affine
params = network.init(0)

x_batch = x_train[:3]
t_batch = t_train[:3]

grad_numerical = mg.grad(network, params, x_batch, t_batch, method="numerical")
grad_backprop = mg.grad(network, params, x_batch, t_batch, method="backprop")

for number, (num, back) in enumerate(zip(grad_numerical, grad_backprop), start=1):
    for name in ("W", "b"):
        diff = np.average(np.abs(back[name] - num[name]))
        print(f"{name}{number}:{diff}")
        assert diff < 1e-8

# the library's own check compares every path leaf by leaf, with thresholds, and says where they disagree
report = mg.check_gradients(network, params, x_batch, t_batch)
print(str(report).splitlines()[0], "(print(report) shows every leaf of every comparison)")
assert report.ok
