"""Baselines at the evidence limit: what a quiet slice's history says is normal."""

from __future__ import annotations

import numpy as np

from analyzers.common import trimmed_ratio
from analyzers.errors import trailing_expectation


def test_a_quiet_slices_ordinary_errors_stay_in_its_baseline() -> None:
    # 60 calls per window at a 1% error ratio: most windows count no error, some one or two.
    rng = np.random.default_rng(5)
    calls = np.full(200, 60.0)
    errors = rng.binomial(60, 0.01, 200).astype(np.float64)
    pooled = trimmed_ratio(errors, calls)
    assert pooled is not None and 0.007 < pooled < 0.013, pooled  # a fixed-share trim would say ~0.3%


def test_an_incident_in_the_baseline_is_left_out() -> None:
    calls = np.full(20, 100.0)
    errors = np.ones(20)
    errors[3] = 60.0  # an outage on one of the previous days
    assert trimmed_ratio(errors, calls) == 0.01


def test_calls_clustered_over_minutes_widen_the_absence_test() -> None:
    # One burst of 12 calls every 20 minutes, spread over 4 minutes: per minute it looks only mildly bursty.
    minutes = np.zeros(180)
    for start in range(0, 180, 20):
        minutes[start : start + 4] = 3.0
    expected, dispersion = trailing_expectation(minutes, 10, 180, 0) or (0.0, 0.0)
    per_minute = float(minutes.var() / minutes.mean())
    assert dispersion > per_minute, (dispersion, per_minute)
    assert expected >= 0
