"""Hypothesis profiles for the property suite.

- ``ci`` (the default): about 100 examples a property, derandomized so that a CI run is
  repeatable (the same draws every time); the whole suite stays well under two minutes.
- ``thorough``: 2,000 fresh random examples a property, for a local run: ``HYPOTHESIS_PROFILE=thorough pytest``.

Both have ``deadline=None``: timing is not correctness, and the machines running this are shared.
The example database is hypothesis's default ``.hypothesis/`` directory, which is gitignored
(it replays a found failure first on the next run, and never enters the repo).

The property files import their shared helpers (strategies.py, naive.py,
strict_numerics.py) as top-level modules; this directory is put on ``sys.path``
so that works under any ``--import-mode``.
"""
import os
import sys

from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
