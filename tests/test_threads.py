"""The BLAS thread policy: parsing, where the setting comes from, fixed counts, and the 'auto' decision."""
import os

import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets import threads


@pytest.fixture(autouse=True)
def no_fixed_setting(monkeypatch):
    monkeypatch.setattr(threads, "_chosen", None)
    monkeypatch.setattr(threads, "_last_choice", (float("-inf"), None))
    monkeypatch.setattr(threads, "_last_sample", None)
    monkeypatch.delenv(threads.ENV_VAR, raising=False)


def test_parse():
    assert threads.parse("auto") == "auto" and threads.parse(" AUTO ") == "auto"
    assert threads.parse("2") == 2 and threads.parse(3) == 3
    for bad in ("0", "-1", "two", "", 0, True, 1.5):
        with pytest.raises(ValueError, match="positive number of threads or 'auto'"):
            threads.parse(bad)


def test_setting_comes_from_set_threads_then_the_environment_then_auto(monkeypatch):
    assert threads.setting() == "auto"
    monkeypatch.setenv(threads.ENV_VAR, "1")
    assert threads.setting() == 1
    assert threads.set_threads("2") == 2
    assert threads.set_threads(None) == 1
    monkeypatch.setenv(threads.ENV_VAR, "lots")
    with pytest.raises(ValueError, match=threads.ENV_VAR):
        threads.setting()


def blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


def test_a_fixed_count_holds_inside_and_is_restored_after():
    before = blas_threads()
    if not before:
        pytest.skip("numpy has no BLAS that threadpoolctl can see")
    with threads.training_threads(1):
        assert set(blas_threads()) == {1}
    assert blas_threads() == before


class FakeLib:
    def __init__(self):
        self.calls = []

    def set_num_threads(self, n):
        self.calls.append(n)


class FakeController:
    def __init__(self):
        self.lib_controllers = [FakeLib()]


def auto_after(others_cores, cpus=2, own_cores=1.0, most=2):
    """The thread count 'auto' picks after one look at a second in which other processes used ``others_cores``."""
    auto = threads._Auto.__new__(threads._Auto)
    auto.controller, auto.most, auto.cpus, auto.threads = FakeController(), most, list(range(cpus)), most
    threads._last_sample = (0.0, 0.0, 0.0)
    auto.next_look = 0.0
    auto._sample = lambda: (1.0, others_cores + own_cores, own_cores)  # busy CPU s includes our own
    auto.tick()
    threads._last_sample = None
    return auto.threads, auto.controller.lib_controllers[0].calls


def test_auto_uses_the_cores_others_leave_idle():
    assert auto_after(0.0) == (2, [])  # quiet: BLAS's default, untouched
    assert auto_after(0.2) == (2, [])  # a little background work does not count
    assert auto_after(0.7) == (1, [1])  # a busy neighbour (sharing the cores with our two threads)
    assert auto_after(2.0) == (1, [1])  # never below one
    assert auto_after(1.0, cpus=8, most=8) == (7, [7])
    assert auto_after(0.0, cpus=8, most=4) == (4, [])  # never above BLAS's own default


def test_auto_looks_only_when_a_look_is_due():
    auto = threads._Auto.__new__(threads._Auto)
    auto.next_look = float("inf")
    auto._sample = lambda: pytest.fail("sampled before the look was due")
    auto.tick()


def test_without_threadpoolctl_an_explicit_setting_warns_once(monkeypatch):
    monkeypatch.setattr(threads, "_blas_controller", lambda: None)
    monkeypatch.setattr(threads, "_warned", False)
    with pytest.warns(RuntimeWarning, match="threadpoolctl is not installed"):
        with threads.training_threads(1) as governor:
            governor.tick()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with threads.training_threads(1):
            pass
        with threads.training_threads():  # the default, 'auto', is silent
            pass


def test_fit_takes_threads_and_refuses_nonsense():
    net = mg.mlp(3, [4], 2)
    x, t = np.random.default_rng(0).random((8, 3)), np.arange(8) % 2
    with pytest.raises(ValueError, match="threads must be"):
        mg.fit(net, net.init(0), mg.sgd(), (x, t), iterations=1, progress=False, threads=0)
    result = mg.fit(net, net.init(0), mg.sgd(), (x, t), iterations=2, progress=False, threads=1)
    assert len(result.history["loss"]) == 2


def test_auto_runs_one_thread_until_its_first_look():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("'auto' reads /proc/stat: Linux only")
    controller = FakeController()
    auto = threads._Auto(controller, 2)
    assert auto.threads == 1 and controller.lib_controllers[0].calls == [1]
