"""The suite can fail: every core property, run against the naive implementations, finds a counterexample.

The naive softmax is exp(x) / sum(exp(x)) and the naive loss -log(p_y + 1e-7)
(tests/naive.py). Each property body from the other test_properties_* files is
searched with ``hypothesis.find`` for an input on which it fails; the search is
derandomized, so it finds the same counterexample on every run (unshrunk: any will do). Each naive
function runs twice: as is (its overflow warnings are failures, as for the
library), and "quiet" (warnings silenced inside it), so the property's own
assertions, not just the warning guard, must catch the wrong values.
The library then passes the very same input.

The search budget (1,000 examples) is far above need: over ten random seeds each
property failed the naive code within 2-40 examples. The network property, which
has no naive twin, is shown to fail on a backprop path that forgets weight decay.
These searches use their own fixed settings, the same under every profile.
"""
import functools
import warnings

import autograd
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, settings

import minigrad_nets as mg
import naive
import test_properties_cross_entropy as ce
import test_properties_gradients as gr
import test_properties_softmax as sm
from minigrad_nets.gradients import backprop
from strategies import (arrays_and_axes, dyadic_arrays_and_shifts, logits_and_labels, logits_and_targets,
                        network_problems)

# A warning raised by the test's own arithmetic is a bug in the test: make it fail too.
pytestmark = pytest.mark.filterwarnings("error")

FIND_SETTINGS = settings(max_examples=1000, derandomize=True, database=None, deadline=None,
                         phases=[Phase.generate],  # any counterexample will do: no shrinking
                         suppress_health_check=list(HealthCheck))


def quiet(fn):
    """``fn`` with its floating-point warnings silenced inside it (the guard's outer errstate does not reach in)."""
    @functools.wraps(fn)
    def silenced(*args):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*args)
    return silenced


def naive_functions(loud):
    """The naive implementations, as is (``loud``) or with their warnings silenced."""
    wrap = (lambda f: f) if loud else quiet
    return {"softmax": wrap(naive.softmax), "log_softmax": wrap(naive.log_softmax), "logsumexp": wrap(naive.logsumexp),
            "cross_entropy": wrap(naive.cross_entropy),
            "logit_gradient": wrap(autograd.grad(naive.cross_entropy)),
            "sigmoid": wrap(naive.sigmoid), "tanh": wrap(naive.tanh), "relu": wrap(naive.relu)}


LIBRARY = {"softmax": mg.softmax, "log_softmax": mg.log_softmax, "logsumexp": mg.logsumexp,
           "cross_entropy": mg.cross_entropy,
           "logit_gradient": gr.autograd_logit_gradient, "sigmoid": mg.sigmoid, "tanh": mg.tanh, "relu": mg.relu}

# property name -> (its body, the implementations it takes, the strategy it is tested with)
PROPERTIES = {
    "softmax is a distribution": (sm.check_softmax_is_a_distribution, ["softmax"], arrays_and_axes()),
    "log_softmax is a log-distribution": (sm.check_log_softmax_is_a_log_distribution, ["log_softmax"],
                                          arrays_and_axes()),
    "exp(log_softmax) = softmax": (sm.check_exp_log_softmax_is_softmax, ["softmax", "log_softmax"],
                                   arrays_and_axes()),
    "argmax preserved": (sm.check_argmax_preserved, ["softmax", "log_softmax"], arrays_and_axes()),
    "monotone": (sm.check_monotone, ["softmax", "log_softmax"], arrays_and_axes()),
    "permutation-equivariant": (sm.check_permutation_equivariant, ["softmax", "log_softmax"],
                                sm.arrays_axes_and_permutations()),
    "shift-invariant": (sm.check_shift_invariant, ["softmax", "log_softmax"], dyadic_arrays_and_shifts()),
    "logsumexp bounds": (sm.check_logsumexp_bounds, ["logsumexp"], arrays_and_axes()),
    "masked classes": (sm.check_masked_classes, ["softmax", "log_softmax"], sm.arrays_axes_and_masks()),
    "cross_entropy >= 0": (ce.check_nonnegative, ["cross_entropy"], logits_and_targets()),
    "labels = one-hot": (ce.check_labels_equal_one_hot, ["cross_entropy"], logits_and_labels()),
    "cross_entropy bounds": (ce.check_within_bounds, ["cross_entropy"], logits_and_targets()),
    "cross_entropy finite": (ce.check_finite_when_representable, ["cross_entropy"], logits_and_targets()),
    "underflowing target": (ce.check_within_bounds, ["cross_entropy"], ce.logits_with_underflowing_target()),
    "one class gives 0": (ce.check_single_class_is_zero, ["cross_entropy"], ce.single_class_logits()),
    "gradient = (softmax - onehot) / B": (gr.check_logit_gradient_is_softmax_minus_onehot, ["logit_gradient"],
                                          logits_and_targets()),
    "softmax / log_softmax VJPs": (gr.check_softmax_vjps, ["softmax", "log_softmax"],
                                   gr.arrays_axes_and_cotangents()),
    "activation slopes": (gr.check_activation_slopes, ["sigmoid", "tanh", "relu"],
                          arrays_and_axes().map(lambda case: case[:1])),
    "gradient signs and bounds": (gr.check_logit_gradient_signs_and_bounds, ["logit_gradient"],
                                  logits_and_labels()),
}


def fails(check, functions, case):
    """Whether property ``check`` fails on ``case``: a false assertion, a floating-point error or a warning."""
    try:
        check(*functions, *case)
    except (AssertionError, ArithmeticError, Warning):
        return True
    return False


@pytest.mark.parametrize("loud", [True, False], ids=["as-is", "quiet"])
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_property_finds_a_counterexample_in_the_naive_implementation(name, loud):
    check, needs, strategy = PROPERTIES[name]
    naive_fns = [naive_functions(loud)[n] for n in needs]
    counterexample = find(strategy, lambda case: fails(check, naive_fns, case), settings=FIND_SETTINGS)
    check(*[LIBRARY[n] for n in needs], *counterexample)  # the library passes where the naive one fails


@pytest.mark.parametrize("loud", [True, False], ids=["as-is", "quiet"])
def test_known_values_fail_for_the_naive_softmax(loud):
    fns = naive_functions(loud)
    assert fails(sm.check_known_values, [fns["softmax"], fns["log_softmax"]], ())
    sm.check_known_values(mg.softmax, mg.log_softmax)


def test_path_agreement_catches_a_backprop_path_that_forgets_weight_decay(monkeypatch):
    """The network property, run with a backprop path whose gradient lacks the λW term, finds a network."""
    def forgetful(net, params, x, t, *rest):
        loss, grads, state = correct(net, params, x, t, *rest)
        return loss, [dict(g, W=g["W"] - net.weight_decay * p["W"]) for g, p in zip(grads, params)], state

    def disagrees(problem):
        net, params, x, t, key = problem
        if gr.relu_kink_distance(net, params, x, key) <= 1e-3:
            return False
        return fails(gr.check_gradient_paths_agree, [], (net, params, x, t, key, ["autograd", "backprop"]))

    correct = backprop.value_and_grad
    monkeypatch.setattr(backprop, "value_and_grad", forgetful)
    net, params, x, t, key = find(network_problems(), disagrees, settings=FIND_SETTINGS)
    assert net.weight_decay > 0
    monkeypatch.setattr(backprop, "value_and_grad", correct)
    gr.check_gradient_paths_agree(net, params, x, t, key, ["autograd", "backprop"])
