"""minigrad_nets: small, exact neural networks as pure functions over parameter pytrees."""
from . import functions, initializers, layers, tree
from .functions import (cross_entropy, log_softmax, logsumexp, mean_squared_error, relu, sigmoid,
                        softmax, tanh)
from .gradients import grad, value_and_grad
from .gradients.check import GradientCheckError, GradientReport, check_gradients
from .gradients.check_layer import check_layer
from .gradients.numerical import numerical_grad
from .layers import BatchNorm, Dense, Dropout, Elementwise, Flatten, Layer, Relu, Sigmoid, Tanh, elementwise, serial
from .conv import AvgPool2D, Conv2D, MaxPool2D
from .network import Network, mlp, simple_convnet
from . import datasets, optimizers
from .optimizers import Optimizer, adagrad, adam, momentum, nesterov, rmsprop, sgd
from .training import FitResult, NonFiniteLossError, fit
from .datasets import EmbeddedDataWarning
from . import experiments  # mg.plotting is imported on demand: matplotlib stays optional

__version__ = "0.1.0"
