"""The macro expansion matches what grafana-clickhouse-datasource does (pkg/macros/macros.go, CHDatasource.ts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.grafana_macros import (
    MacroError,
    QueryContext,
    TimeRange,
    Variable,
    apply_conditional_all,
    apply_template_variables,
    expand,
    expand_backend,
    expand_backend_legacy,
    grafana_interval_ms,
    round_interval_ms,
)

FROM = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
TO = datetime(2026, 11, 21, 10, 0, 0, 500_000, tzinfo=UTC)
F, T = int(FROM.timestamp()), int(TO.timestamp())


def ctx(interval_ms: int = 60_000, **variables: Variable) -> QueryContext:
    return QueryContext(TimeRange(FROM, TO), interval_ms, variables)


def test_time_macros_expand_like_the_plugin() -> None:
    c = ctx(interval_ms=120_000)
    assert expand_backend("WHERE $__timeFilter(minute)", c) == (
        f"WHERE minute >= toDateTime({F}) AND minute <= toDateTime({T})"
    )
    assert expand_backend("$__timeFilter_ms(t)", c) == (
        f"t >= fromUnixTimestamp64Milli({F * 1000}) AND t <= fromUnixTimestamp64Milli({T * 1000 + 500})"
    )
    assert expand_backend("$__timeInterval(minute)", c) == "toStartOfInterval(toDateTime(minute), INTERVAL 120 second)"
    assert expand_backend("$__timeInterval_ms(t)", c) == (
        "toStartOfInterval(toDateTime64(t, 3), INTERVAL 120000 millisecond)"
    )
    assert expand_backend("($__interval_s / 60)", c) == "(120 / 60)"
    assert expand_backend("($__fromTime) ($__toTime)", c) == f"(toDateTime({F})) (toDateTime({T}))"
    assert expand_backend("$__fromTime_ms", c) == f"fromUnixTimestamp64Milli({F * 1000})"
    assert expand_backend("$__dateFilter(d)", c) == "d >= toDate('2026-11-20') AND d <= toDate('2026-11-21')"
    assert expand_backend("$__dt(d, t)", c) == (
        f"(d >= toDate('2026-11-20') AND d <= toDate('2026-11-21')) AND (t >= toDateTime({F}) AND t <= toDateTime({T}))"
    )


def test_interval_s_is_at_least_one_second() -> None:
    assert expand_backend("$__interval_s)", ctx(interval_ms=20)) == "1)"


def test_macro_with_the_wrong_arguments_is_an_error() -> None:
    with pytest.raises(MacroError, match="timeFilter"):
        expand_backend("$__timeFilter(a, b)", ctx())


def test_comments_are_stripped_before_expansion_but_strings_are_kept() -> None:
    out = expand_backend("SELECT '--not a comment' -- $__timeFilter(x)\n, 1 /* $__fromTime */", ctx())
    assert "'--not a comment'" in out
    assert "$__" not in out and "toDateTime" not in out


def test_legacy_parser_lets_an_argumentless_macro_swallow_a_later_group() -> None:
    # Why the shipped SQL writes ($__fromTime): old plugin releases ate everything up to the next ')'.
    sql = "WHERE t >= $__fromTime AND x = count()"
    assert expand_backend_legacy(sql, ctx()) == f"WHERE t >= toDateTime({F})"
    assert expand_backend(sql, ctx()) == f"WHERE t >= toDateTime({F}) AND x = count()"
    safe = "WHERE t >= ($__fromTime) AND x = count()"
    assert expand_backend_legacy(safe, ctx()) == expand_backend(safe, ctx())


def test_conditional_all_drops_the_condition_for_all_or_empty() -> None:
    sql = (
        "WHERE $__conditionalAll(app IN (${app:singlequote}), $app) "
        "AND $__conditionalAll(model IN (${model:singlequote}), ${model})"
    )
    all_app = Variable("app", current=["$__all"], options=["a", "b"])
    one_model = Variable("model", current=["gpt-4o"])
    out = apply_conditional_all(sql, {"app": all_app, "model": one_model})
    assert out == "WHERE 1=1 AND model IN (${model:singlequote})"
    empty = Variable("app", current=[])
    assert apply_conditional_all("$__conditionalAll(x = 1, $app)", {"app": empty}) == "1=1"


def test_conditional_all_with_an_unknown_variable_keeps_the_condition() -> None:
    assert apply_conditional_all("$__conditionalAll(x = 1, $nope)", {}) == "x = 1"


def test_template_variables_follow_grafana_formats() -> None:
    app = Variable("app", current=["support-bot", "o'hara"])
    single = Variable("env", current="prod", multi=False)
    everything = Variable("model", current="$__all", options=["a", "b"])
    custom_all = Variable("feature", current="$__all", options=["x"], all_value=".*")
    variables = {"app": app, "env": single, "model": everything, "feature": custom_all}
    assert apply_template_variables("IN (${app:singlequote})", variables) == "IN ('support-bot','o\\'hara')"
    assert apply_template_variables("IN ($app)", variables) == "IN ('support-bot','o'hara')"  # the plugin's format
    assert apply_template_variables("= '$env' [[env]] ${env}", variables) == "= 'prod' prod prod"
    assert apply_template_variables("IN (${model:singlequote})", variables) == "IN ('a','b')"
    assert apply_template_variables("~ '${feature:singlequote}'", variables) == "~ '.*'"  # custom all: unformatted
    assert apply_template_variables("$__timeFilter(x) $unknown", variables) == "$__timeFilter(x) $unknown"


def test_expand_runs_the_three_steps_and_rejects_leftovers() -> None:
    variables = {"app": Variable("app", current=["support-bot"])}
    out = expand("SELECT 1 WHERE $__timeFilter(minute) AND $__conditionalAll(app IN (${app:singlequote}), $app)",
                 ctx(**variables))
    assert out == f"SELECT 1 WHERE minute >= toDateTime({F}) AND minute <= toDateTime({T}) AND app IN ('support-bot')"
    with pytest.raises(MacroError, match="__nope"):
        expand("SELECT $__nope(x)", ctx())
    with pytest.raises(MacroError, match="missing"):
        expand("SELECT ${missing:singlequote}", ctx())


def test_grafana_interval_rounds_and_respects_the_panel_minimum() -> None:
    day = TimeRange(FROM, FROM + timedelta(days=1))
    assert round_interval_ms(86_400_000 / 1000) == 60_000
    assert grafana_interval_ms(day) == 60_000
    assert grafana_interval_ms(TimeRange(FROM, FROM + timedelta(hours=1))) == 5_000
    assert grafana_interval_ms(TimeRange(FROM, FROM + timedelta(hours=1)), min_interval="1m") == 60_000
    assert grafana_interval_ms(TimeRange(FROM, FROM + timedelta(days=7))) == 600_000


def test_time_range_must_be_aware_and_ordered() -> None:
    with pytest.raises(MacroError):
        TimeRange(datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(MacroError):
        TimeRange(TO, FROM)
