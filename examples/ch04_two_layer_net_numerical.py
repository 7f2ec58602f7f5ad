"""Chapter 4: TwoLayerNet trained one image at a time with numerical gradients, and how long that takes.

Run:  python examples/ch04_two_layer_net_numerical.py     (a few seconds, offline)

The book's train_neuralnet.py leaves ``network.numerical_gradient`` commented
out: its element-by-element loop over 39,760 parameters makes each step take
a long time. Here each step uses the library's numerical gradient (central
differences of the same loss for every parameter, computed a layer at a time
rather than one parameter at a time), and the book's loop is timed on 400
parameters to estimate what one of its steps would cost on this machine.
"""
import time

import numpy as np

import minigrad_nets as mg

STEPS = 300  # one image per step: SGD at batch size 1
LR = 0.1

(x_train, t_train), (x_test, t_test) = mg.datasets.load_mnist(dtype="float64")
net = mg.mlp(784, [50], 10, activation="sigmoid", init=0.01)  # the book's TwoLayerNet (sigmoid, std 0.01)
params = net.init(0)
count = sum(p.size for layer in params for p in layer.values())
x_check, t_check = x_train[-1000:], t_train[-1000:]  # a fixed set to watch the loss on
before = net.loss(params, x_check, t_check)
print(f"TwoLayerNet 784-50-10, {count:,} parameters; loss on 1,000 training images before: {before:.4f}")

optimizer = mg.sgd(lr=LR)
state = optimizer.init(params)
rng = np.random.default_rng(0)
started = time.perf_counter()
for i in range(STEPS):
    k = rng.integers(len(x_train) - 1000)
    x, t = x_train[k:k + 1], t_train[k:k + 1]
    grads = mg.grad(net, params, x, t, method="numerical")
    params, state = optimizer.update(params, grads, state)
per_step = (time.perf_counter() - started) / STEPS
after = net.loss(params, x_check, t_check)
print(f"{STEPS} steps of one image each, numerical gradients: {per_step * 1000:.1f} ms a step; "
      f"loss on the same 1,000 images after: {after:.4f}")

# The book's way: one parameter at a time, two loss evaluations each. Time it on the first 400 entries of W1.
sample, h = 400, 1e-4
W1 = params[0]["W"].reshape(-1)  # a view into params: perturb, evaluate, restore, as the book's loop does
started = time.perf_counter()
for i in range(sample):
    keep = W1[i]
    W1[i] = keep + h
    plus = net.loss(params, x, t)
    W1[i] = keep - h
    minus = net.loss(params, x, t)
    W1[i] = keep
    _ = (plus - minus) / (2 * h)
per_param = (time.perf_counter() - started) / sample
print(f"element by element, as the book's loop: {per_param * 1e6:.0f} µs a parameter, "
      f"so about {per_param * count:.1f} s a step ({per_param * count / per_step:.0f}x ours)")

# the numerical gradient is the gradient: it agrees with autograd on the last step's image
g_num, g_auto = mg.grad(net, params, x, t, method="numerical"), mg.grad(net, params, x, t)
worst = max(np.max(np.abs(a[k] - b[k])) for a, b in zip(g_num, g_auto) for k in a)
print(f"numerical vs autograd on the last image: max |difference| {worst:.1e}")
assert worst < 1e-6
assert after < before - 0.03, (before, after)  # 300 single images at the book's lr 0.1: a slow but real start
