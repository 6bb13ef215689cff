"""Hypothesis profiles for the property tests.

`tests/conftest.py` imports this module so that every property test shares
one budget knob: `HYPOTHESIS_PROFILE=ci` (the default, sized so the whole
suite stays within its time budget on 2 cores), `soak` (thousands of
examples, for a long run before a release) or `dev` (a quick smoke run while
editing). The test modules import it too, so they keep working when run on
their own. A soak outlives pytest-timeout's default, so give it room:

    HYPOTHESIS_PROFILE=soak .venv/bin/python -m pytest --timeout=3600 tests/test_vfs_differential.py

Why `deadline=None`: every step does real SQLite and disk I/O on a shared,
noisy machine; a per-example deadline would only measure the neighbours.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

settings.register_profile("ci", max_examples=150, stateful_step_count=40, **_COMMON)
settings.register_profile("dev", max_examples=20, stateful_step_count=20, **_COMMON)
settings.register_profile(
    "soak", max_examples=3000, stateful_step_count=80, print_blob=True, **_COMMON
)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def scaled(fraction: float, *, steps: int | None = None) -> settings:
    """Settings for a heavier property test: a fraction of the profile's examples.

    The profile stays the single knob (soak scales every test up together),
    while a test whose examples cost ten times more asks for a tenth of them.
    """
    current = settings()
    return settings(
        current,
        max_examples=max(5, int(current.max_examples * fraction)),
        stateful_step_count=steps or current.stateful_step_count,
    )
