"""Mann–Whitney from score histograms, Cliff's delta, the proportion test and the comparison plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

import numpy as np
import pytest

from analyzers.judge.quality import GroupKey, GroupScores, evaluate, plan_comparisons
from analyzers.judge.stats import (
    cliffs_delta,
    mann_whitney,
    mann_whitney_counts,
    normal_quantile,
    two_proportion_test,
)


def test_u_and_cliffs_delta_match_brute_force_pair_counting() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(1, 6, 40).tolist()
    y = rng.integers(2, 6, 55).tolist()
    greater = sum(a > b for a, b in product(x, y))
    ties = sum(a == b for a, b in product(x, y))
    result = mann_whitney(x, y)

    assert result.u == pytest.approx(greater + 0.5 * ties)
    assert result.cliffs_delta == pytest.approx(cliffs_delta(x, y))
    assert result.p_less + result.p_greater == pytest.approx(1.0, abs=0.05)


def test_small_textbook_case() -> None:
    # X = 1..4, Y = 3..7: 2 ties, 1 pair with X > Y -> U = 2; Cliff's delta = (1 - 17) / 20 = -0.8.
    result = mann_whitney_counts([1, 2, 3, 4, 5, 6, 7], [1, 1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1, 1])
    assert result.u == 2.0 and result.cliffs_delta == pytest.approx(-0.8)
    assert result.p_less < 0.05


def test_same_distribution_is_not_significant_and_a_drop_is() -> None:
    same = mann_whitney_counts([1, 2, 3, 4, 5], [2, 3, 10, 40, 45], [4, 6, 20, 80, 90])
    drop = mann_whitney_counts([1, 2, 3, 4, 5], [20, 15, 5, 5, 5], [4, 6, 20, 80, 90])
    assert same.p_less > 0.2 and abs(same.cliffs_delta) < 0.05
    assert drop.p_less < 1e-9 and drop.cliffs_delta < -0.5


def test_cliffs_delta_of_pass_fail_is_the_pass_rate_difference() -> None:
    result = mann_whitney_counts([0, 1], [30, 70], [10, 90])
    assert result.cliffs_delta == pytest.approx(0.70 - 0.90)
    prop = two_proportion_test(70, 100, 90, 100)
    assert prop.difference == pytest.approx(-0.2) and prop.p_less < 0.001


def test_normal_quantile() -> None:
    assert normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert normal_quantile(0.5) == pytest.approx(0.0, abs=1e-9)
    assert normal_quantile(1e-6) == pytest.approx(-4.753424, abs=1e-5)


def _key(pv: str, model: str = "gpt-4o-mini") -> GroupKey:
    return GroupKey("helpfulness", "support-bot", "prod", "answer", "openai", model, pv)


def test_a_new_prompt_version_is_compared_with_the_version_it_replaced() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    old, new, peer = _key("v12"), _key("v13"), _key("v12", "claude-3-5-haiku-latest")
    groups = {
        old: GroupScores(current={5.0: 30}, baseline={5.0: 200, 4.0: 100}, first_seen=start,
                         baseline_last_seen=start + timedelta(days=6)),
        peer: GroupScores(current={5.0: 30}, baseline={5.0: 100}, first_seen=start,
                          baseline_last_seen=start + timedelta(days=6)),
        new: GroupScores(current={1.0: 20, 5.0: 20}, baseline={}, first_seen=start + timedelta(days=7)),
    }
    plans = plan_comparisons(groups, baseline_start=start - timedelta(hours=1), window=timedelta(hours=3),
                             min_samples=25)
    by_group = {p.group: p for p in plans}

    assert by_group[new].reference == old and by_group[new].replaced
    # Two models that started together are peers, each compared with its own past.
    assert by_group[peer].reference == peer and not by_group[peer].replaced
    verdict = evaluate(by_group[new], groups, alpha=0.001, min_effect=0.2)
    # P(X > Y) = 0.5 * 100/300 (a 5 over a 4), P(X < Y) = 0.5 (every 1): delta = 1/6 - 1/2.
    assert verdict.regressed and verdict.cliffs_delta == pytest.approx(-1 / 3)


def test_groups_without_enough_scores_are_not_compared() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    groups = {_key("v1"): GroupScores(current={5.0: 10}, baseline={5.0: 100}, first_seen=start)}
    assert plan_comparisons(groups, baseline_start=start, window=timedelta(hours=3), min_samples=25) == []
