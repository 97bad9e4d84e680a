from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from analyzers.rules import Rules, RulesError, load_rules, parse_rules


def test_defaults_need_no_file() -> None:
    rules = load_rules(None)
    assert rules.defaults.latency.ratio == 1.5
    assert rules.defaults.errors.window == timedelta(minutes=5)
    assert rules.for_app("anything").cost.spike_ratio == 2.0
    assert "execute_tool" in rules.exclude_operations


def test_per_app_overrides_merge_over_defaults() -> None:
    rules = parse_rules(
        """
defaults:
  latency: {ratio: 1.8}
apps:
  support-bot:
    cost: {spike_ratio: 3, window: 15m}
    budget: {daily_usd: 50}
    slo: {availability: 0.995}
"""
    )
    bot = rules.for_app("support-bot")
    assert bot.cost.spike_ratio == 3.0
    assert bot.cost.window == timedelta(minutes=15)
    assert bot.cost.min_requests == rules.defaults.cost.min_requests  # untouched keys keep the defaults
    assert bot.latency.ratio == 1.8  # the file's defaults apply to the app too
    assert bot.budget.daily_usd == 50
    assert rules.for_app("search-rag").budget.daily_usd is None
    assert rules.for_app("search-rag").latency.ratio == 1.8


def test_for_is_accepted_as_a_key() -> None:
    rules = parse_rules("defaults:\n  errors:\n    for: 10m\n")
    assert rules.defaults.errors.for_ == timedelta(minutes=10)


def test_unknown_key_names_file_line_and_path(tmp_path: Path) -> None:
    path = tmp_path / "llmpulse.yaml"
    path.write_text("defaults:\n  latency:\n    ratio: 1.5\n    ratoi: 2\n", "utf-8")
    with pytest.raises(RulesError) as err:
        load_rules(path)
    message = str(err.value)
    assert f"{path}:4" in message
    assert "defaults.latency.ratoi" in message
    assert "unknown key" in message


def test_bad_value_in_an_app_section_points_at_its_line() -> None:
    text = "apps:\n  support-bot:\n    cost:\n      spike_ratio: 0.5\n"
    with pytest.raises(RulesError) as err:
        parse_rules(text, where="llmpulse.yaml")
    assert "llmpulse.yaml:4" in str(err.value)
    assert "apps.support-bot.cost.spike_ratio" in str(err.value)


def test_bad_duration_and_bad_yaml() -> None:
    with pytest.raises(RulesError, match=r"defaults\.errors\.window"):
        parse_rules("defaults:\n  errors:\n    window: soon\n")
    with pytest.raises(RulesError, match="not valid YAML"):
        parse_rules("defaults: [unclosed\n")
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(Path("/nonexistent/llmpulse.yaml"))


def test_empty_file_means_defaults() -> None:
    assert parse_rules("") == Rules(source="<rules>")


def test_apps_with_different_settings_get_their_own_pass() -> None:
    from analyzers.common import partitions

    rules = parse_rules("apps:\n  a: {latency: {window: 10m}}\n  b: {budget: {daily_usd: 5}}\n")
    parts = partitions(rules, "latency")
    assert len(parts) == 2
    (default_cfg, default_has), (special_cfg, special_has) = parts
    assert default_cfg.window == timedelta(minutes=5) and special_cfg.window == timedelta(minutes=10)
    assert default_has("b") and default_has("other") and not default_has("a")
    assert special_has("a") and not special_has("b")
