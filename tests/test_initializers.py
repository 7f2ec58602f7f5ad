import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets import initializers


@pytest.mark.parametrize("spec, expected_std", [
    (0.01, 0.01),
    ("xavier", np.sqrt(1 / 400)), ("sigmoid", np.sqrt(1 / 400)),
    ("glorot", np.sqrt(2 / 600)),
    ("he", np.sqrt(2 / 400)), ("relu", np.sqrt(2 / 400)),
])
def test_standard_deviations(spec, expected_std):
    W = initializers.get(spec)(np.random.default_rng(0), 400, 200)
    assert W.shape == (400, 200)
    assert W.std() == pytest.approx(expected_std, rel=0.02)  # 80,000 draws: ~0.25% sampling error
    assert abs(W.mean()) < 4 * expected_std / np.sqrt(W.size)


@pytest.mark.parametrize("bad", ["lecun", -0.1, 0.0, float("nan"), True, None])
def test_unknown_or_invalid_spec(bad):
    with pytest.raises(ValueError):
        initializers.get(bad)


def test_network_init_uses_spec_and_seed():
    net = mg.mlp(20, [30], 5, init=0.5)
    p = net.init(3)
    assert p[0]["W"].std() == pytest.approx(0.5, rel=0.1)
    np.testing.assert_array_equal(p[0]["b"], np.zeros(30))
    q = net.init(np.random.default_rng(3))
    np.testing.assert_array_equal(p[0]["W"], q[0]["W"])
