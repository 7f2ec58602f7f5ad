"""Write your own layer: a LeakyReLU with a hand-written backward rule, checked, used in a network, trained.

Run:  python examples/custom_layer.py     (a few seconds, offline: the MNIST subset shipped with the package)
"""
import autograd.numpy as anp
import numpy as np

import minigrad_nets as mg

SLOPE = 0.01  # the leak: y = x for x > 0, SLOPE * x otherwise

# 1. The layer. `elementwise` needs the function, written with autograd.numpy (autograd
#    differentiates it: the independent reference), and the backward rule dx = f'(x) * dy.
#    `kinks` says where f has no derivative, so gradient checks keep their probes away from it.
LeakyRelu = mg.elementwise(
    "LeakyRelu",
    lambda x: anp.where(x > 0, x, SLOPE * x),
    lambda x, dy: dy * np.where(x > 0, 1.0, SLOPE),
    kinks=(0.0,),
)

# 2. Check the rule on the layer alone: backward vs autograd vs central differences,
#    for a random batch and a random upstream gradient.
report = mg.check_layer(LeakyRelu, (8, 20))
print(report)
assert report.ok

# A rule with a 1% error in the leak is caught, and the report names the input as the culprit.
wrong = mg.elementwise("LeakyRelu (wrong)", lambda x: anp.where(x > 0, x, SLOPE * x),
                       lambda x, dy: dy * np.where(x > 0, 1.0, 1.01 * SLOPE), kinks=(0.0,))
assert mg.check_layer(wrong, (8, 20)).suspects() == {"x": "backprop"}

# 3. Use it in a network like any built-in layer: every gradient path works through it.
net = mg.Network((mg.Dense(50), LeakyRelu, mg.Dense(50), LeakyRelu, mg.Dense(10)), input_shape=(784,),
                 output_size=10)
params = net.init(0)
(x_train, t_train), (x_test, t_test) = mg.datasets.load_mnist()  # the shipped subset when MNIST is not found
batch = slice(0, 32)
check = mg.check_gradients(net, params, x_train[batch], t_train[batch], mode="directional", train=True)
print(f"network gradient check: {'PASS' if check.ok else 'FAIL'} ({len(check.comparisons)} comparisons)")
assert check.ok

# 4. Train it with fit.
result = mg.fit(net, params, mg.adam(), (x_train, t_train), test_data=(x_test, t_test), epochs=1,
                batch_size=100, progress=False)
print(f"after one epoch: test accuracy {result.history['test_acc'][-1]:.3f}")
assert result.history["test_acc"][-1] > 0.85
