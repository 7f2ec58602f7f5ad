"""Chapter 4: the book's simpleNet (gradient_simplenet.py), the gradient of its loss by numerical differences.

Run:  python examples/ch04_simple_net.py     (well under a second)

The class is the book's, line for line, with two differences, both marked:
- our ``cross_entropy`` takes the logits (it applies the softmax itself, in a
  stable way), so ``loss`` hands it ``z`` rather than ``softmax(z)``;
- ``numerical_grad`` never perturbs your arrays in place: it calls ``f`` with
  perturbed copies, so ``f`` must use the weights it is given (the book's
  ``lambda w: net.loss(x, t)`` ignores ``w`` and relies on in-place edits of
  ``net.W``; with copies it would see no change and report a zero gradient).
"""
import numpy as np

from minigrad_nets import cross_entropy, numerical_grad, softmax


class simpleNet:
    def __init__(self):
        self.W = np.random.default_rng(0).standard_normal((2, 3))  # the book: np.random.randn(2, 3)

    def predict(self, x):
        return np.dot(x, self.W)

    def loss(self, x, t):
        z = self.predict(x)
        y = softmax(z)
        loss = cross_entropy(z, t)  # difference 1: the logits z (the book: cross_entropy_error(y, t))
        return loss


x = np.array([0.6, 0.9])
t = np.array([0, 0, 1])  # the correct label as a one-hot row of integers, as the book writes it

net = simpleNet()
print("W:\n", net.W)
print("prediction:", net.predict(x), " label:", np.argmax(t))
print("loss:", net.loss(x, t))


def f(W):  # difference 2: the loss as a function of the weights it is given
    net.W = W
    return net.loss(x, t)


W = net.W
dW = numerical_grad(f, W)
net.W = W
print("dW:\n", dW)

# Check by hand: the gradient of softmax cross-entropy in W is outer(x, softmax(x W) - t).
expected = np.outer(x, softmax(x @ W) - t)
assert np.allclose(dW, expected, atol=1e-8), (dW, expected)
print("matches outer(x, softmax(x W) - t) to", f"{np.max(np.abs(dW - expected)):.1e}")
