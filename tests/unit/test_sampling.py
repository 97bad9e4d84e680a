"""Deterministic hash sampling: the share it selects, stability across runs, nested rates."""

from __future__ import annotations

import pytest

from analyzers.judge.rules import RuleFilters, SamplingRule
from analyzers.judge.sampling import is_sampled, sample_sql_condition, sample_unit, threshold

IDS = [f"{i:016x}{(i * 2654435761) % 2**32:08x}" for i in range(100_000)]


def test_rate_point_one_selects_ten_percent_of_100k_events_and_the_same_ones_on_rerun() -> None:
    first = {e for e in IDS if is_sampled(e, 0.1)}
    again = {e for e in IDS if is_sampled(e, 0.1)}

    assert abs(len(first) / len(IDS) - 0.10) <= 0.005
    assert first == again


def test_lower_rate_picks_a_subset_of_the_higher_rate_sample() -> None:
    tenth = {e for e in IDS if is_sampled(e, 0.1)}
    twentieth = {e for e in IDS if is_sampled(e, 0.05)}

    assert twentieth < tenth
    assert abs(len(twentieth) / len(IDS) - 0.05) <= 0.005


def test_uuid_like_ids_are_sampled_uniformly_too() -> None:
    ids = [f"evt-{i:06d}" for i in range(100_000)]
    share = sum(sample_unit(e) < 0.1 for e in ids) / len(ids)
    assert abs(share - 0.1) <= 0.005


def test_edge_rates() -> None:
    assert not any(is_sampled(e, 0.0) for e in IDS[:1000])
    assert all(is_sampled(e, 1.0) for e in IDS[:1000])
    assert threshold(1.0) == 2**64
    assert sample_sql_condition(1.0) == "1" and sample_sql_condition(0.0) == "0"
    with pytest.raises(ValueError, match="sampling rate"):
        threshold(-0.1)


def test_rule_selects_by_filters_and_hash() -> None:
    rule = SamplingRule(name="r", rubric="helpfulness", rate=0.5,
                        filters=RuleFilters(app=("support-bot",), status=("ok",)))
    base = {"app": "support-bot", "status": "ok", "operation": "chat"}
    picked = [e for e in IDS[:2000] if rule.selects({**base, "event_id": e})]

    assert abs(len(picked) / 2000 - 0.5) < 0.05
    assert not any(rule.selects({**base, "app": "other", "event_id": e}) for e in picked)
    assert not any(rule.selects({**base, "operation": "execute_tool", "event_id": e}) for e in picked)
