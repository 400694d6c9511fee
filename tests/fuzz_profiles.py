"""Hypothesis profiles for the fuzz tests: ``ci`` (default, bounded) and ``fuzz`` (long).

``HYPOTHESIS_PROFILE=fuzz`` (``make fuzz``) selects the long run. Tests that cost more
per example ask for a share of the profile's budget with ``share``, so one knob sizes
every fuzzer.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["PROFILE", "load", "share"]

# ci: all fuzz tests together stay well under a minute on 2 busy cores.
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "fuzz",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


def load() -> None:
    settings.load_profile(PROFILE)


def share(fraction: float) -> settings:
    """Settings for a test that costs more per example: ``fraction`` of the budget."""
    return settings(
        max_examples=max(20, int(settings.get_profile(PROFILE).max_examples * fraction))
    )
