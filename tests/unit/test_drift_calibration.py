"""Calibration and power of the drift decision on simulated traffic (support-bot/answer calls).

200 pairs (100 at 5,000 calls, to keep the suite fast) of same-distribution windows must flag at most
5% of (group, run) verdicts; every shift
of the documented catalogue must be detected in at least 90% of pairs, at 500 and 5,000 calls per window.
The table is printed (pytest -s shows it); bench/drift_vs_evidently.py prints the fuller comparison.
"""

from __future__ import annotations

import numpy as np
import pytest

from analyzers.drift import shifts as S
from analyzers.drift.detect import DriftConfig, group_verdicts

NULL_PAIRS = {500: 200, 5000: 100}  # bench/drift_vs_evidently.py --pairs 200 runs 200 at both sizes
SHIFT_PAIRS = {500: 20, 5000: 10}


@pytest.fixture(scope="module")
def pool() -> S.Pool:
    return S.simulated_pool(hours=24)


def _rate(pool: S.Pool, n: int, pairs: int, shift: S.Shift | None, seed: int, cache: S.DocCache) -> float:
    rng = np.random.default_rng(seed)
    cfg = DriftConfig()
    hits = 0
    for _ in range(pairs):
        ref, cur = S.window_pair(pool, n, rng, shift)
        verdicts, _ = group_verdicts(ref, cur, cfg, rng=rng, docs=cache.window_docs(ref, cur))
        if shift is None:
            hits += any(v.drifted for v in verdicts.values())
        else:
            hits += verdicts[shift.direction].drifted
    return hits / pairs


def test_false_positive_rate_and_power_at_500_and_5000_calls(pool: S.Pool) -> None:
    cache = S.DocCache()
    table: dict[str, dict[int, float]] = {}
    for n in (500, 5000):
        table.setdefault("no shift (false positives)", {})[n] = _rate(pool, n, NULL_PAIRS[n], None, n, cache)
        for k, shift in enumerate(S.SHIFTS):
            table.setdefault(shift.name, {})[n] = _rate(pool, n, SHIFT_PAIRS[n], shift, 1000 * k + n, cache)
    print("\nshift                            n=500    n=5000")
    for name, row in table.items():
        print(f"{name:30s} {row[500]:7.1%}  {row[5000]:7.1%}")
    null = table.pop("no shift (false positives)")
    assert null[500] <= 0.05 and null[5000] <= 0.05, null
    weak = {name: row for name, row in table.items() if min(row.values()) < 0.9}
    assert not weak, weak
