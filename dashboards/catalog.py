# ruff: noqa: E501  -- panel SQL reads best one clause per line, whatever its length
"""The dashboards as data: every panel's SQL, what it shows, the columns it returns and the tables it reads.

`dashboards/generate.py` turns these into Grafana JSON (grafana-foundation-sdk); `llmpulse report --week` runs the
Weekly review's SQL through the same macro expansion (dashboards/macros.py) and renders it as HTML; the panel
test runs every query against a store the analyzers filled. One definition, three readers.

SQL conventions (the plugin's macro parser is unforgiving, tests/unit/test_dashboards.py enforces them):
- Panels read rollups (`events_1m`, `trace_costs_1h`, `user_costs_1h`) and analyzer tables (`findings`,
  `judgments`, `review_labels`, drift tables), never a range scan of raw `events`; the two exceptions are lookups
  by event_id/trace_id (bloom-filter indexes) for a handful of ids.
- Macro arguments are plain column names; argument-less macros sit right before a closing parenthesis, e.g.
  `($__fromTime)`, `($__interval_s / 60)`, so old and new plugin parsers expand them alike.
- Template variables are filtered with `$__conditionalAll(col IN (${var:singlequote}), $var)`.
- Time series return long rows `(time, <series label columns>, <values>)` ordered by time; the plugin turns
  them into one series per label value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from analyzers.findings import FINDING_LABEL_KEYS
from analyzers.rules import DEFAULT_EXCLUDED_OPERATIONS
from dashboards import links

DATASOURCE_UID = "llmpulse-clickhouse"
DATASOURCE_TYPE = "grafana-clickhouse-datasource"
FOLDER = "llmpulse"


class Viz(StrEnum):
    TIMESERIES = "timeseries"
    STAT = "stat"
    TABLE = "table"
    BARCHART = "barchart"


@dataclass(frozen=True, slots=True)
class Column:
    """How a table column reads: unit, header, a link, hidden."""

    name: str
    unit: str | None = None
    display: str | None = None
    decimals: int | None = None
    link: str | None = None  # data link URL; ${__data.fields.<col>} and ${__value.raw} are Grafana's
    link_title: str | None = None
    hidden: bool = False
    thresholds: tuple[tuple[str, float | None], ...] = ()  # colours the cell background
    width: int | None = None


@dataclass(frozen=True, slots=True)
class Panel:
    id: int
    title: str
    description: str
    viz: Viz
    sql: str
    columns: tuple[str, ...]  # what the query returns, in order
    tables: tuple[str, ...]  # what it reads
    grid: tuple[int, int, int, int]  # x, y, w, h on Grafana's 24-column grid
    unit: str = "short"
    decimals: int | None = None
    min_interval: str | None = None  # never bucket finer than the rollup the query reads
    thresholds: tuple[tuple[str, float | None], ...] = (("green", None),)
    series_name: str | None = None  # legend: e.g. "${__field.labels.app}"
    column_styles: tuple[Column, ...] = ()
    stacked: bool = False
    bars: bool = False
    time_from: str | None = None  # panel-relative time range (e.g. now/M)
    min: float | None = None
    max: float | None = None
    soft_max: float | None = None
    threshold_lines: bool = False
    in_report: bool = False  # `llmpulse report --week` renders it

    @property
    def is_time_series(self) -> bool:
        return self.viz in (Viz.TIMESERIES,)


@dataclass(frozen=True, slots=True)
class TextVariable:
    name: str
    label: str
    default: str
    description: str


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    time_from: str = "now-24h"
    tags: tuple[str, ...] = ("llmpulse",)
    filters: bool = True  # the app/environment/provider/model/feature variables
    text_variables: tuple[TextVariable, ...] = ()
    refresh: str = "1m"
    folder: str = FOLDER

    @property
    def slug(self) -> str:
        return links.SLUGS[self.uid]

    def panel(self, panel_id: int) -> Panel:
        for panel in self.panels:
            if panel.id == panel_id:
                return panel
        raise KeyError(f"{self.uid} has no panel {panel_id}")


# --- template variables ---------------------------------------------------------------------------------

FILTER_VARIABLES: tuple[str, ...] = ("app", "environment", "provider", "model", "feature")
_VARIABLE_LABELS = {"app": "App", "environment": "Environment", "provider": "Provider", "model": "Model",
                    "feature": "Feature"}
# Which earlier selections narrow each variable's options (cascading drop-downs).
_VARIABLE_PARENTS: dict[str, tuple[str, ...]] = {
    "app": (),
    "environment": ("app",),
    "provider": ("app", "environment"),
    "model": ("app", "environment", "provider"),
    "feature": ("app", "environment"),
}


def cond(variable: str, condition: str) -> str:
    return f"$__conditionalAll({condition}, ${variable})"


def filters(columns: dict[str, str] | None = None, variables: tuple[str, ...] = FILTER_VARIABLES) -> str:
    """`AND`-joined conditionalAll filters; `columns` maps a variable to the SQL expression it filters."""
    columns = columns or {}
    return " AND ".join(
        cond(v, f"{columns.get(v, v)} IN (${{{v}:singlequote}})") for v in variables
    )


def variable_sql(name: str) -> str:
    parents = _VARIABLE_PARENTS[name]
    where = "$__timeFilter(minute)"
    if parents:
        where += " AND " + filters(variables=parents)
    return f"SELECT DISTINCT {name} FROM events_1m WHERE {where} AND {name} != '' ORDER BY {name}"


def variable_label(name: str) -> str:
    return _VARIABLE_LABELS[name]


_EXCLUDED = ", ".join(f"'{op}'" for op in DEFAULT_EXCLUDED_OPERATIONS)
LLM_CALLS = f"operation NOT IN ({_EXCLUDED})"
F = filters()
# A finding without a dimension (e.g. no model label) still shows when that variable is narrowed.
FF = " AND ".join(
    cond(v, f"(labels['{v}'] = '' OR labels['{v}'] IN (${{{v}:singlequote}}))") for v in FILTER_VARIABLES
)
FJ = filters()  # judgments carry the same dimension columns as the rollup
SCOPE_SQL = (
    "arrayStringConcat(arrayFilter(x -> x != '', ["
    + ", ".join(f"if(labels['{k}'] != '', concat('{k}=', labels['{k}']), '')" for k in FINDING_LABEL_KEYS)
    + "]), ', ')"
)
DASHBOARD_URL_SQL = links.dashboard_url_sql()
P95 = "quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_q)"
TTFT = "quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(ttft_q)"

GREEN_RED_RATIO = (("green", None), ("orange", 0.02), ("red", 0.05))
LATENCY_STEPS = (("green", None), ("orange", 5000.0), ("red", 15000.0))
SEVERITY_COLOURS = (("blue", None),)

FINDING_COLUMNS = (
    Column("alertname", display="Alert", link="${__data.fields.dashboard_url}", link_title="Open the panel"),
    Column("severity", display="Severity", width=90),
    Column("scope", display="Scope"),
    Column("dashboard_url", hidden=True),
)

TRACE_LINK = f"/d/{links.EVENTS}/{links.SLUGS[links.EVENTS]}?orgId=1&var-trace_id=${{__value.raw}}"
EVENT_LINK = f"/d/{links.EVENTS}/{links.SLUGS[links.EVENTS]}?orgId=1&var-event_id=${{__value.raw}}"


def _findings_table_sql(where: str, order: str = "fired_at DESC") -> str:
    return f"""SELECT
    alertname,
    severity,
    {SCOPE_SQL} AS scope,
    state,
    value,
    baseline,
    fired_at,
    resolved_at,
    summary,
    {DASHBOARD_URL_SQL} AS dashboard_url
FROM findings FINAL
WHERE {where} AND {FF}
ORDER BY {order}
LIMIT 200"""


# --- Overview -------------------------------------------------------------------------------------------

OVERVIEW = Dashboard(
    uid=links.OVERVIEW,
    title="LLM overview",
    description="Traffic, errors, spend and latency of every LLM app at a glance, and what is firing now.",
    time_from="now-24h",
    panels=(
        Panel(1, "LLM calls", "Model calls in the range (tool runs and agent spans left out).", Viz.STAT,
              f"SELECT sum(requests) AS llm_calls FROM events_1m WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}",
              ("llm_calls",), ("events_1m",), (0, 0, 4, 4), unit="short", thresholds=(("blue", None),)),
        Panel(2, "Error ratio", "Share of model calls that failed.", Viz.STAT,
              f"SELECT sum(errors) / greatest(sum(requests), 1) AS error_ratio FROM events_1m "
              f"WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}",
              ("error_ratio",), ("events_1m",), (4, 0, 4, 4), unit="percentunit", decimals=2,
              thresholds=GREEN_RED_RATIO),
        Panel(3, "Spend", "Priced spend in the range (calls on models without a price count as 0).", Viz.STAT,
              f"SELECT sum(cost_usd_sum) AS spend_usd FROM events_1m WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}",
              ("spend_usd",), ("events_1m",), (8, 0, 4, 4), unit="currencyUSD", decimals=2,
              thresholds=(("blue", None),)),
        Panel(4, "Spend rate", "Average spend per hour over the range.", Viz.STAT,
              f"SELECT sum(cost_usd_sum) * 3600 / greatest(toUnixTimestamp($__toTime) - toUnixTimestamp($__fromTime), 1) "
              f"AS spend_usd_per_hour FROM events_1m WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}",
              ("spend_usd_per_hour",), ("events_1m",), (12, 0, 4, 4), unit="currencyUSD", decimals=2,
              thresholds=(("blue", None),)),
        Panel(5, "p95 latency", "95th percentile latency of successful model calls.", Viz.STAT,
              f"SELECT {P95}[3] AS p95_ms FROM events_1m WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}",
              ("p95_ms",), ("events_1m",), (16, 0, 4, 4), unit="ms", decimals=0, thresholds=LATENCY_STEPS),
        Panel(6, "Firing findings", "Findings firing now (all analyzers).", Viz.STAT,
              f"SELECT count() AS firing FROM findings FINAL WHERE state = 'firing' AND {FF}",
              ("firing",), ("findings",), (20, 0, 4, 4), unit="short", thresholds=(("green", None), ("red", 1.0))),
        Panel(7, "Traffic by app", "Model calls per minute.", Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, app, sum(requests) / ($__interval_s / 60) AS calls_per_min
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, app
ORDER BY time, app""",
              ("time", "app", "calls_per_min"), ("events_1m",), (0, 4, 12, 8), unit="short", decimals=1,
              min_interval="1m", series_name="${__field.labels.app}"),
        Panel(8, "Error ratio by app", "Share of model calls that failed.", Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, app, sum(errors) / sum(requests) AS error_ratio
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, app
ORDER BY time, app""",
              ("time", "app", "error_ratio"), ("events_1m",), (12, 4, 12, 8), unit="percentunit", decimals=1,
              min_interval="1m", series_name="${__field.labels.app}", thresholds=GREEN_RED_RATIO,
              threshold_lines=True, min=0),
        Panel(9, "Spend rate by app", "Spend per hour.", Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, app, sum(cost_usd_sum) * 3600 / ($__interval_s) AS spend_usd_per_hour
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, app
ORDER BY time, app""",
              ("time", "app", "spend_usd_per_hour"), ("events_1m",), (0, 12, 12, 8), unit="currencyUSD",
              decimals=2, min_interval="1m", series_name="${__field.labels.app}", min=0),
        Panel(10, "p95 latency by app", "95th percentile latency of successful model calls.", Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, app, {P95}[3] AS p95_ms
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, app
HAVING sum(ok_requests) > 0
ORDER BY time, app""",
              ("time", "app", "p95_ms"), ("events_1m",), (12, 12, 12, 8), unit="ms", decimals=0,
              min_interval="1m", series_name="${__field.labels.app}", min=0),
        Panel(11, "Firing findings", "What the analyzers see now; the alert name opens the panel that shows it.",
              Viz.TABLE, _findings_table_sql("state = 'firing'", "severity = 'critical' DESC, fired_at DESC"),
              ("alertname", "severity", "scope", "state", "value", "baseline", "fired_at", "resolved_at", "summary",
               "dashboard_url"),
              ("findings",), (0, 20, 24, 8), column_styles=FINDING_COLUMNS),
    ),
)

# --- Cost -----------------------------------------------------------------------------------------------

BUDGET = TextVariable(
    "monthly_budget_usd", "Monthly budget (USD)", "1000",
    "The monthly budget the projection is compared with; set it to the apps' budget.monthly_usd in llmpulse.yaml.",
)
_NOW = "least(now(), $__toTime)"
_MONTH_TO_DATE = (
    f"(SELECT sum(cost_usd_sum) FROM events_1m WHERE minute >= toStartOfMonth({_NOW}) AND minute <= ({_NOW}) "
    f"AND {LLM_CALLS} AND {F})"
)
_SPEND_PER_DAY = (
    f"(SELECT sum(cost_usd_sum) * 86400 / greatest(toUnixTimestamp({_NOW}) - toUnixTimestamp(min(minute)), 3600) "
    f"FROM events_1m WHERE minute > ({_NOW} - INTERVAL 7 DAY) AND minute <= ({_NOW}) AND {LLM_CALLS} AND {F})"
)
_SECONDS_LEFT_IN_MONTH = f"(toUnixTimestamp(toStartOfMonth({_NOW}) + INTERVAL 1 MONTH) - toUnixTimestamp({_NOW}))"

COST = Dashboard(
    uid=links.COST,
    title="LLM cost",
    description="Where the money goes: spend by model, feature and prompt version, the month against its "
                "budget, the most expensive traces and users, and models without a known price.",
    time_from="now-7d",
    text_variables=(BUDGET,),
    panels=(
        Panel(1, "Spend", "Priced spend in the range.", Viz.STAT,
              f"SELECT sum(cost_usd_sum) AS spend_usd FROM events_1m WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}",
              ("spend_usd",), ("events_1m",), (0, 0, 6, 4), unit="currencyUSD", decimals=2,
              thresholds=(("blue", None),)),
        Panel(2, "Cost per request", "Priced spend over priced model calls.", Viz.STAT,
              f"SELECT sum(cost_usd_sum) / greatest(sum(priced_requests), 1) AS cost_per_request_usd FROM events_1m "
              f"WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}",
              ("cost_per_request_usd",), ("events_1m",), (6, 0, 6, 4), unit="currencyUSD", decimals=5,
              thresholds=(("blue", None),)),
        Panel(3, "Projected month-end spend", "Month to date plus the last 7 days' daily spend for the rest of "
              "the month, and that projection as a share of the monthly budget (red past it).", Viz.STAT,
              f"""SELECT
    {_MONTH_TO_DATE} + {_SPEND_PER_DAY} * {_SECONDS_LEFT_IN_MONTH} / 86400 AS projected_month_usd,
    projected_month_usd / nullIf(toFloat64OrZero('${{monthly_budget_usd}}'), 0) AS projected_share_of_budget""",
              ("projected_month_usd", "projected_share_of_budget"), ("events_1m",), (12, 0, 6, 4),
              unit="currencyUSD", decimals=0, thresholds=(("green", None),),
              column_styles=(Column("projected_month_usd", "currencyUSD", "Projected", 0),
                             Column("projected_share_of_budget", "percentunit", "of budget", 0,
                                    thresholds=(("green", None), ("orange", 0.9), ("red", 1.0))))),
        Panel(4, "Calls without a price", "Model calls stored with an unknown cost: add a price override "
              "(LLMPULSE_PRICES_FILE).", Viz.STAT,
              f"SELECT sum(requests) - sum(priced_requests) AS unpriced_calls FROM events_1m "
              f"WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}",
              ("unpriced_calls",), ("events_1m",), (18, 0, 6, 4), unit="short",
              thresholds=(("green", None), ("orange", 1.0))),
        Panel(5, "Spend this month vs budget", "Cumulative spend by day, its projection to the month's end, and "
              "the budget.", Viz.TIMESERIES,
              f"""SELECT time, spend_usd, projected_usd, toFloat64OrZero('${{monthly_budget_usd}}') AS budget_usd
FROM
(
    SELECT day AS time,
           sum(day_spend) OVER (ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS spend_usd,
           CAST(NULL, 'Nullable(Float64)') AS projected_usd
    FROM
    (
        SELECT toDateTime(toStartOfDay(minute), 'UTC') AS day, sum(cost_usd_sum) AS day_spend
        FROM events_1m
        WHERE minute >= toStartOfMonth({_NOW}) AND minute <= ({_NOW}) AND {LLM_CALLS} AND {F}
        GROUP BY day
    )
    UNION ALL
    SELECT toDateTime(toStartOfDay({_NOW}), 'UTC') + toIntervalDay(n + 1) AS time,
           CAST(NULL, 'Nullable(Float64)') AS spend_usd,
           {_MONTH_TO_DATE} + {_SPEND_PER_DAY} * (toUnixTimestamp(time) - toUnixTimestamp({_NOW})) / 86400 AS projected_usd
    FROM (SELECT arrayJoin(range(toUInt64(dateDiff('day', toStartOfDay({_NOW}), toStartOfMonth({_NOW}) + INTERVAL 1 MONTH)))) AS n)
)
ORDER BY time""",
              ("time", "spend_usd", "projected_usd", "budget_usd"), ("events_1m",), (0, 4, 12, 8),
              unit="currencyUSD", decimals=0, time_from="now/M", min=0),
        Panel(6, "Spend rate by model", "Spend per hour.", Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, concat(provider, '/', model) AS model_name,
       sum(cost_usd_sum) * 3600 / ($__interval_s) AS spend_usd_per_hour
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, model_name
ORDER BY time, model_name""",
              ("time", "model_name", "spend_usd_per_hour"), ("events_1m",), (12, 4, 12, 8), unit="currencyUSD",
              decimals=2, min_interval="5m", series_name="${__field.labels.model_name}", stacked=True, min=0),
        Panel(7, "Cost per request by model", "Priced spend per priced call: a jump is what LLMCostSpike fires on.",
              Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, concat(provider, '/', model) AS model_name,
       sum(cost_usd_sum) / sum(priced_requests) AS cost_per_request_usd
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, model_name
HAVING sum(priced_requests) > 0
ORDER BY time, model_name""",
              ("time", "model_name", "cost_per_request_usd"), ("events_1m",), (0, 12, 12, 8), unit="currencyUSD",
              decimals=4, min_interval="5m", series_name="${__field.labels.model_name}", min=0),
        Panel(8, "Cost by model", "Calls, spend and cost per request per model.", Viz.TABLE,
              f"""SELECT provider, model, sum(requests) AS calls, sum(cost_usd_sum) AS spend_usd,
       sum(cost_usd_sum) / greatest(sum(priced_requests), 1) AS cost_per_request_usd,
       1 - sum(priced_requests) / sum(requests) AS unpriced_share
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY provider, model
ORDER BY spend_usd DESC""",
              ("provider", "model", "calls", "spend_usd", "cost_per_request_usd", "unpriced_share"), ("events_1m",),
              (12, 12, 12, 8),
              column_styles=(Column("spend_usd", "currencyUSD", "Spend", 2),
                             Column("cost_per_request_usd", "currencyUSD", "Per request", 5),
                             Column("unpriced_share", "percentunit", "Unpriced", 1,
                                    thresholds=(("transparent", None), ("orange", 0.001))))),
        Panel(9, "Cost per request by feature", "Which product features cost the most per call.", Viz.TABLE,
              f"""SELECT app, feature, sum(requests) AS calls, sum(cost_usd_sum) AS spend_usd,
       sum(cost_usd_sum) / greatest(sum(priced_requests), 1) AS cost_per_request_usd
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY app, feature
ORDER BY spend_usd DESC""",
              ("app", "feature", "calls", "spend_usd", "cost_per_request_usd"), ("events_1m",), (0, 20, 12, 8),
              column_styles=(Column("spend_usd", "currencyUSD", "Spend", 2),
                             Column("cost_per_request_usd", "currencyUSD", "Per request", 5))),
        Panel(10, "Cost per request by prompt version", "Did a prompt change make calls dearer?", Viz.TABLE,
              f"""SELECT app, feature, prompt_version, min(minute) AS first_seen, sum(requests) AS calls,
       sum(cost_usd_sum) AS spend_usd, sum(cost_usd_sum) / greatest(sum(priced_requests), 1) AS cost_per_request_usd,
       sum(input_tokens_sum) / sum(requests) AS input_tokens_per_call,
       sum(output_tokens_sum) / sum(requests) AS output_tokens_per_call
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY app, feature, prompt_version
ORDER BY app, feature, first_seen""",
              ("app", "feature", "prompt_version", "first_seen", "calls", "spend_usd", "cost_per_request_usd",
               "input_tokens_per_call", "output_tokens_per_call"), ("events_1m",), (12, 20, 12, 8),
              column_styles=(Column("spend_usd", "currencyUSD", "Spend", 2),
                             Column("cost_per_request_usd", "currencyUSD", "Per request", 5),
                             Column("input_tokens_per_call", "short", "Input tokens/call", 0),
                             Column("output_tokens_per_call", "short", "Output tokens/call", 0))),
        Panel(11, "Most expensive traces", "Traces ranked by spend (a runaway agent loop shows here); the trace "
              "id opens its calls.", Viz.TABLE,
              f"""SELECT trace_id, any(app) AS trace_app, arrayStringConcat(groupUniqArrayArray(features), ', ') AS trace_features,
       any(user_id) AS trace_user, sum(calls) AS llm_calls, sum(cost_usd_sum) AS spend_usd,
       dateDiff('millisecond', min(first_start), max(last_end)) / 1000 AS duration_s
FROM trace_costs_1h
WHERE hour >= toStartOfHour($__fromTime) AND hour <= ($__toTime)
  AND {filters(variables=("app", "environment"))}
  AND {cond("provider", "hasAny(providers, [${provider:singlequote}])")}
  AND {cond("model", "hasAny(models, [${model:singlequote}])")}
  AND {cond("feature", "hasAny(features, [${feature:singlequote}])")}
GROUP BY trace_id
ORDER BY spend_usd DESC
LIMIT 20""",
              ("trace_id", "trace_app", "trace_features", "trace_user", "llm_calls", "spend_usd", "duration_s"),
              ("trace_costs_1h",), (0, 28, 12, 9),
              column_styles=(Column("trace_id", display="Trace", link=TRACE_LINK, link_title="Open the trace"),
                             Column("trace_app", display="App"), Column("trace_features", display="Features"),
                             Column("trace_user", display="User"),
                             Column("spend_usd", "currencyUSD", "Spend", 4),
                             Column("duration_s", "s", "Duration", 1))),
        Panel(12, "Top users by spend", "Users ranked by spend; a single user far ahead is worth a look.",
              Viz.TABLE,
              f"""SELECT user_id, arrayStringConcat(groupUniqArray(app), ', ') AS apps, sum(calls) AS llm_calls,
       sum(cost_usd_sum) AS spend_usd, sum(cost_usd_sum) / greatest(sum(calls) - sum(unpriced_calls), 1) AS cost_per_request_usd
FROM user_costs_1h
WHERE hour >= toStartOfHour($__fromTime) AND hour <= ($__toTime)
  AND {filters(variables=("app", "environment"))}
  AND {cond("provider", "hasAny(providers, [${provider:singlequote}])")}
  AND {cond("model", "hasAny(models, [${model:singlequote}])")}
  AND {cond("feature", "hasAny(features, [${feature:singlequote}])")}
GROUP BY user_id
ORDER BY spend_usd DESC
LIMIT 20""",
              ("user_id", "apps", "llm_calls", "spend_usd", "cost_per_request_usd"), ("user_costs_1h",),
              (12, 28, 12, 9),
              column_styles=(Column("spend_usd", "currencyUSD", "Spend", 4),
                             Column("cost_per_request_usd", "currencyUSD", "Per request", 5))),
        Panel(13, "Models without a known price", "Their calls are stored with a NULL cost and count as $0 "
              "above; add a price override.", Viz.TABLE,
              f"""SELECT provider, model, sum(requests) - sum(priced_requests) AS unpriced_calls, sum(requests) AS calls,
       min(minute) AS first_seen, max(minute) AS last_seen
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY provider, model
HAVING unpriced_calls > 0
ORDER BY unpriced_calls DESC""",
              ("provider", "model", "unpriced_calls", "calls", "first_seen", "last_seen"), ("events_1m",),
              (0, 37, 24, 6)),
    ),
)

# --- Latency --------------------------------------------------------------------------------------------

LATENCY_SLO = TextVariable("latency_slo_ms", "Latency SLO (ms)", "8000",
                           "A call slower than this misses the latency SLO (slo.latency_threshold_ms in llmpulse.yaml).")
LATENCY_OBJECTIVE = TextVariable("latency_objective", "Latency objective", "0.99",
                                 "Share of calls that must be faster (slo.latency_objective).")
# Bins of the rollup's latency histogram whose lower bound is at or above the SLO threshold
# (bin b >= 1 holds [10 * 1.26^(b-1), 10 * 1.26^b) ms): the share of calls slower than ~the threshold.
_SLOW_BIN = "toUInt8(least(greatest(ceil(1 + log(greatest(toFloat64OrZero('${latency_slo_ms}'), 10) / 10) / log(1.26)), 1), 47))"

LATENCY = Dashboard(
    uid=links.LATENCY,
    title="LLM latency",
    description="How long model calls take: percentiles, time to first token by provider and model, and the "
                "latency SLO's error-budget burn.",
    time_from="now-24h",
    text_variables=(LATENCY_SLO, LATENCY_OBJECTIVE),
    panels=(
        Panel(1, "Latency percentiles", "p50, p95 and p99 of successful model calls.", Viz.TIMESERIES,
              f"""SELECT time, q[1] AS p50_ms, q[3] AS p95_ms, q[4] AS p99_ms
FROM
(
    SELECT $__timeInterval(minute) AS time, {P95} AS q
    FROM events_1m
    WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
    GROUP BY time
    HAVING sum(ok_requests) > 0
)
ORDER BY time""",
              ("time", "p50_ms", "p95_ms", "p99_ms"), ("events_1m",), (0, 0, 12, 8), unit="ms", decimals=0,
              min_interval="1m", min=0),
        Panel(2, "p95 latency by provider / model", "A step up is what LLMLatencyRegression fires on.",
              Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, concat(provider, '/', model) AS model_name, {P95}[3] AS p95_ms
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, model_name
HAVING sum(ok_requests) > 0
ORDER BY time, model_name""",
              ("time", "model_name", "p95_ms"), ("events_1m",), (12, 0, 12, 8), unit="ms", decimals=0,
              min_interval="5m", series_name="${__field.labels.model_name}", min=0),
        Panel(3, "Time to first token p95 by provider / model", "Streaming calls only.", Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, concat(provider, '/', model) AS model_name, {TTFT}[3] AS ttft_p95_ms
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, model_name
HAVING notEmpty(mapKeys(sumMap(ttft_hist)))
ORDER BY time, model_name""",
              ("time", "model_name", "ttft_p95_ms"), ("events_1m",), (0, 8, 12, 8), unit="ms", decimals=0,
              min_interval="5m", series_name="${__field.labels.model_name}", min=0),
        Panel(4, "Latency by provider / model", "Percentiles over the whole range.", Viz.TABLE,
              f"""SELECT provider, model, calls, q[1] AS p50_ms, q[3] AS p95_ms, q[4] AS p99_ms,
       if(ttft_calls > 0, t[1], NULL) AS ttft_p50_ms, if(ttft_calls > 0, t[3], NULL) AS ttft_p95_ms, error_ratio
FROM
(
    SELECT provider, model, sum(requests) AS calls, {P95} AS q, {TTFT} AS t,
           arraySum(mapValues(sumMap(ttft_hist))) AS ttft_calls, sum(errors) / sum(requests) AS error_ratio
    FROM events_1m
    WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
    GROUP BY provider, model
    HAVING sum(ok_requests) > 0
)
ORDER BY p95_ms DESC""",
              ("provider", "model", "calls", "p50_ms", "p95_ms", "p99_ms", "ttft_p50_ms", "ttft_p95_ms",
               "error_ratio"), ("events_1m",), (12, 8, 12, 8),
              column_styles=(Column("p50_ms", "ms", "p50", 0), Column("p95_ms", "ms", "p95", 0,
                                                                         thresholds=LATENCY_STEPS),
                             Column("p99_ms", "ms", "p99", 0), Column("ttft_p50_ms", "ms", "TTFT p50", 0),
                             Column("ttft_p95_ms", "ms", "TTFT p95", 0),
                             Column("error_ratio", "percentunit", "Errors", 2, thresholds=GREEN_RED_RATIO))),
        Panel(5, "Latency SLO burn rate", "Share of calls slower than the SLO over the share the objective "
              "allows: 1 spends the error budget exactly over the SLO period, 14.4 pages (1h window), 6 pages "
              "(6h window).", Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, app,
       arraySum(mapValues(mapFilter((k, v) -> k >= {_SLOW_BIN}, sumMap(latency_hist)))) / sum(ok_requests)
           / greatest(1 - toFloat64OrZero('${{latency_objective}}'), 0.0001) AS burn_rate
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, app
HAVING sum(ok_requests) > 0
ORDER BY time, app""",
              ("time", "app", "burn_rate"), ("events_1m",), (0, 16, 12, 8), unit="x", decimals=1,
              min_interval="5m", series_name="${__field.labels.app}",
              thresholds=(("green", None), ("orange", 6.0), ("red", 14.4)), threshold_lines=True, min=0),
        Panel(6, "Calls slower than the SLO", "Share of successful calls slower than the SLO threshold.",
              Viz.STAT,
              f"""SELECT arraySum(mapValues(mapFilter((k, v) -> k >= {_SLOW_BIN}, sumMap(latency_hist))))
           / greatest(sum(ok_requests), 1) AS slow_share
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}""",
              ("slow_share",), ("events_1m",), (12, 16, 12, 8), unit="percentunit", decimals=2,
              thresholds=(("green", None), ("orange", 0.01), ("red", 0.05))),
    ),
)

# --- Reliability ----------------------------------------------------------------------------------------

AVAILABILITY_OBJECTIVE = TextVariable("availability_objective", "Availability objective", "0.995",
                                      "Share of calls that must succeed (slo.availability in llmpulse.yaml).")
RELIABILITY_ALERTS = ("LLMProviderOutage", "LLMErrorRateHigh", "LLMAvailabilitySLOBurn", "LLMTrafficAbsent")

RELIABILITY = Dashboard(
    uid=links.RELIABILITY,
    title="LLM reliability",
    description="Is traffic flowing and are calls succeeding: traffic, errors by provider and type, and the "
                "availability SLO's burn.",
    time_from="now-24h",
    text_variables=(AVAILABILITY_OBJECTIVE,),
    panels=(
        Panel(1, "Traffic by app", "Model calls per minute; a drop to near zero is what LLMTrafficAbsent fires on.",
              Viz.TIMESERIES, OVERVIEW.panel(7).sql, ("time", "app", "calls_per_min"), ("events_1m",),
              (0, 0, 12, 8), decimals=1, min_interval="1m", series_name="${__field.labels.app}", min=0),
        Panel(2, "Error ratio by provider", "Most calls to one provider failing is what LLMProviderOutage fires on.",
              Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, provider, sum(errors) / sum(requests) AS error_ratio
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, provider
ORDER BY time, provider""",
              ("time", "provider", "error_ratio"), ("events_1m",), (12, 0, 12, 8), unit="percentunit", decimals=1,
              min_interval="1m", series_name="${__field.labels.provider}", thresholds=GREEN_RED_RATIO,
              threshold_lines=True, min=0, soft_max=0.1),
        Panel(3, "Error ratio by app", "What LLMErrorRateHigh fires on.", Viz.TIMESERIES, OVERVIEW.panel(8).sql,
              ("time", "app", "error_ratio"), ("events_1m",), (0, 8, 12, 8), unit="percentunit", decimals=1,
              min_interval="1m", series_name="${__field.labels.app}", thresholds=GREEN_RED_RATIO,
              threshold_lines=True, min=0, soft_max=0.1),
        Panel(4, "Errors by type", "Failed calls per minute by error type.", Viz.TIMESERIES,
              f"""SELECT time, error_type, sum(n) / ($__interval_s / 60) AS errors_per_min
FROM
(
    SELECT $__timeInterval(minute) AS time, errors_by_type
    FROM events_1m
    WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F} AND errors > 0
)
ARRAY JOIN mapKeys(errors_by_type) AS error_type, mapValues(errors_by_type) AS n
GROUP BY time, error_type
ORDER BY time, error_type""",
              ("time", "error_type", "errors_per_min"), ("events_1m",), (12, 8, 12, 8), decimals=2,
              min_interval="5m", series_name="${__field.labels.error_type}", stacked=True, bars=True, min=0),
        Panel(5, "Availability SLO burn rate", "Error ratio over the share the objective allows (1 = on budget).",
              Viz.TIMESERIES,
              f"""SELECT $__timeInterval(minute) AS time, app,
       sum(errors) / sum(requests) / greatest(1 - toFloat64OrZero('${{availability_objective}}'), 0.0001) AS burn_rate
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, app
ORDER BY time, app""",
              ("time", "app", "burn_rate"), ("events_1m",), (0, 16, 12, 8), unit="x", decimals=1,
              min_interval="5m", series_name="${__field.labels.app}",
              thresholds=(("green", None), ("orange", 6.0), ("red", 14.4)), threshold_lines=True, min=0),
        Panel(6, "Reliability findings", "Outages, error-rate, SLO and traffic findings in the range.", Viz.TABLE,
              _findings_table_sql(
                  "alertname IN (" + ", ".join(f"'{a}'" for a in RELIABILITY_ALERTS) + ") "
                  "AND (state = 'firing' OR $__timeFilter(first_seen))"),
              ("alertname", "severity", "scope", "state", "value", "baseline", "fired_at", "resolved_at", "summary",
               "dashboard_url"), ("findings",), (12, 16, 12, 8), column_styles=FINDING_COLUMNS),
    ),
)

# --- Quality & drift ------------------------------------------------------------------------------------

QUALITY_ALERTS = ("LLMQualityRegression", "LLMJudgeDisagreement", "LLMInputDrift", "LLMOutputDrift")
_LATEST_SCORED = f"""SELECT rubric, event_id, any(score_type) AS kind, argMax(score, judged_at) AS latest_score,
           any(event_time) AS judged_event_time
    FROM judgments
    WHERE status = 'scored' AND score IS NOT NULL AND $__timeFilter(event_time) AND {FJ}
    GROUP BY rubric, event_id"""

QUALITY_PANELS: list[Panel] = [
    Panel(1, "Judge score by rubric", "Mean LLM-judge score of scale rubrics (1 = worst); a drop is what "
          "LLMQualityRegression fires on.", Viz.TIMESERIES,
          f"""SELECT $__timeInterval(judged_event_time) AS time, rubric, avg(latest_score) AS mean_score, count() AS judgments
FROM
(
    {_LATEST_SCORED}
)
WHERE kind = 'scale'
GROUP BY time, rubric
ORDER BY time, rubric""",
          ("time", "rubric", "mean_score", "judgments"), ("judgments",), (0, 0, 12, 8), decimals=2,
          min_interval="15m", series_name="${__field.labels.rubric}"),
    Panel(2, "Pass rate by rubric", "Share of judgments passing pass/fail rubrics.", Viz.TIMESERIES,
          f"""SELECT $__timeInterval(judged_event_time) AS time, rubric, avg(latest_score) AS pass_rate
FROM
(
    {_LATEST_SCORED}
)
WHERE kind = 'pass_fail'
GROUP BY time, rubric
ORDER BY time, rubric""",
          ("time", "rubric", "pass_rate"), ("judgments",), (12, 0, 12, 8), unit="percentunit", decimals=1,
          min_interval="15m", series_name="${__field.labels.rubric}", min=0, max=1),
    Panel(3, "Judge–human agreement", "Human review labels against the judge's latest score of the same event "
          "and rubric (LLMJudgeDisagreement fires when they part).", Viz.TABLE,
          f"""SELECT h.rubric AS rubric, count() AS labelled_events,
       avg(j.judge_score = h.human_score) AS exact_agreement,
       avg(abs(j.judge_score - h.human_score) <= 1) AS within_one_point,
       avg(abs(j.judge_score - h.human_score)) AS mean_abs_difference
FROM
(
    SELECT rubric, event_id, argMax(score, labeled_at) AS human_score
    FROM review_labels FINAL
    WHERE score IS NOT NULL AND $__timeFilter(labeled_at)
      AND {filters(variables=("app", "model", "feature"))}
    GROUP BY rubric, event_id
) AS h
INNER JOIN
(
    SELECT rubric, event_id, argMax(score, judged_at) AS judge_score
    FROM judgments
    WHERE status = 'scored' AND score IS NOT NULL AND event_id IN (SELECT event_id FROM review_labels)
    GROUP BY rubric, event_id
) AS j ON h.rubric = j.rubric AND h.event_id = j.event_id
GROUP BY rubric
ORDER BY rubric""",
          ("rubric", "labelled_events", "exact_agreement", "within_one_point", "mean_abs_difference"),
          ("review_labels", "judgments"), (0, 8, 12, 8),
          column_styles=(Column("exact_agreement", "percentunit", "Exact agreement", 1,
                                thresholds=(("red", None), ("orange", 0.6), ("green", 0.8))),
                         Column("within_one_point", "percentunit", "Within one point", 1),
                         Column("mean_abs_difference", "short", "Mean |judge − human|", 2))),
    Panel(4, "Judge activity", "Judgments per hour by outcome: parse failures and errors mean the judge model "
          "or its endpoint needs attention.", Viz.TIMESERIES,
          f"""SELECT $__timeInterval(judged_at) AS time, status, count() * 3600 / ($__interval_s) AS judgments_per_hour
FROM judgments
WHERE $__timeFilter(judged_at) AND {FJ}
GROUP BY time, status
ORDER BY time, status""",
          ("time", "status", "judgments_per_hour"), ("judgments",), (12, 8, 12, 8), decimals=1,
          min_interval="15m", series_name="${__field.labels.status}", stacked=True, bars=True, min=0),
]


def _quality_findings_panel(panel_id: int, grid: tuple[int, int, int, int]) -> Panel:
    return Panel(panel_id, "Quality & drift findings", "Quality, judge and drift findings in the range.", Viz.TABLE,
                 _findings_table_sql(
                     "alertname IN (" + ", ".join(f"'{a}'" for a in QUALITY_ALERTS) + ") "
                     "AND (state = 'firing' OR $__timeFilter(first_seen))"),
                 ("alertname", "severity", "scope", "state", "value", "baseline", "fired_at", "resolved_at",
                  "summary", "dashboard_url"), ("findings",), grid, column_styles=FINDING_COLUMNS)


# Drift panels join when the drift tables exist (issue 6 is landing in parallel): see `drift_panels()`.
QUALITY_BASE_PANELS: tuple[Panel, ...] = tuple(QUALITY_PANELS)


# --- Weekly review --------------------------------------------------------------------------------------

_WEEK_FINDINGS = f"fired_at IS NOT NULL AND $__timeFilter(fired_at) AND {FF}"

WEEKLY = Dashboard(
    uid=links.WEEKLY,
    title="LLM weekly review",
    description="The week in one page: what fired and how fast it was resolved, week-over-week changes per "
                "app, the lowest-scored outputs and what new prompt versions did.",
    time_from="now-7d",
    refresh="",
    panels=(
        Panel(1, "Findings fired", "Findings that started firing this week.", Viz.STAT,
              f"SELECT count() AS fired FROM findings FINAL WHERE {_WEEK_FINDINGS}",
              ("fired",), ("findings",), (0, 0, 6, 4), thresholds=(("blue", None),), in_report=True),
        Panel(2, "Resolved", "Of those, resolved by now.", Viz.STAT,
              f"SELECT countIf(resolved_at IS NOT NULL) AS resolved FROM findings FINAL WHERE {_WEEK_FINDINGS}",
              ("resolved",), ("findings",), (6, 0, 6, 4), thresholds=(("green", None),), in_report=True),
        Panel(3, "Median time to resolve", "From firing to resolved, over the resolved ones.", Viz.STAT,
              f"SELECT quantileIf(0.5)(dateDiff('second', fired_at, resolved_at), resolved_at IS NOT NULL) AS median_time_to_resolve_s "
              f"FROM findings FINAL WHERE {_WEEK_FINDINGS}",
              ("median_time_to_resolve_s",), ("findings",), (12, 0, 6, 4), unit="s", decimals=0,
              thresholds=(("green", None), ("orange", 3600.0), ("red", 4 * 3600.0)), in_report=True),
        Panel(4, "Still firing", "Findings firing now.", Viz.STAT,
              f"SELECT count() AS still_firing FROM findings FINAL WHERE state = 'firing' AND {FF}",
              ("still_firing",), ("findings",), (18, 0, 6, 4), thresholds=(("green", None), ("red", 1.0)),
              in_report=True),
        Panel(5, "This week's findings", "Every finding that fired this week, its resolution time and a link to "
              "the panel that shows it.", Viz.TABLE,
              f"""SELECT alertname, severity, {SCOPE_SQL} AS scope, state, fired_at, resolved_at,
       if(resolved_at IS NULL, NULL, dateDiff('second', fired_at, resolved_at)) AS time_to_resolve_s,
       summary, {DASHBOARD_URL_SQL} AS dashboard_url
FROM findings FINAL
WHERE {_WEEK_FINDINGS}
ORDER BY fired_at""",
              ("alertname", "severity", "scope", "state", "fired_at", "resolved_at", "time_to_resolve_s", "summary",
               "dashboard_url"), ("findings",), (0, 4, 24, 9),
              column_styles=(*FINDING_COLUMNS, Column("time_to_resolve_s", "s", "Time to resolve", 0)),
              in_report=True),
        Panel(6, "Week over week by app", "This range against the same range a week earlier.", Viz.TABLE,
              f"""SELECT app,
       sumIf(requests, this_week) AS calls, calls / nullIf(sumIf(requests, NOT this_week), 0) - 1 AS calls_change,
       sumIf(cost_usd_sum, this_week) AS spend_usd,
       spend_usd / nullIf(sumIf(cost_usd_sum, NOT this_week), 0) - 1 AS spend_change,
       sumIf(errors, this_week) / nullIf(calls, 0) AS error_ratio,
       error_ratio - sumIf(errors, NOT this_week) / nullIf(sumIf(requests, NOT this_week), 0) AS error_ratio_change,
       quantilesTDigestMergeIf(0.5, 0.9, 0.95, 0.99)(latency_q, this_week AND ok_requests > 0)[3] AS p95_ms,
       p95_ms / nullIf(quantilesTDigestMergeIf(0.5, 0.9, 0.95, 0.99)(latency_q, NOT this_week AND ok_requests > 0)[3], 0) - 1 AS p95_change
FROM
(
    SELECT app, requests, errors, ok_requests, cost_usd_sum, latency_q,
           minute >= ($__fromTime) AS this_week
    FROM events_1m
    WHERE ((minute >= ($__fromTime) AND minute <= ($__toTime))
           OR (minute >= ($__fromTime - INTERVAL 7 DAY) AND minute <= ($__toTime - INTERVAL 7 DAY)))
      AND {LLM_CALLS} AND {F}
)
GROUP BY app
ORDER BY spend_usd DESC""",
              ("app", "calls", "calls_change", "spend_usd", "spend_change", "error_ratio", "error_ratio_change",
               "p95_ms", "p95_change"), ("events_1m",), (0, 13, 24, 7),
              column_styles=(Column("app", display="App"), Column("calls", "short", "LLM calls", 0),
                             Column("calls_change", "percentunit", "Calls Δ", 1),
                             Column("spend_usd", "currencyUSD", "Spend", 2),
                             Column("spend_change", "percentunit", "Spend Δ", 1,
                                    thresholds=(("transparent", None), ("orange", 0.25), ("red", 1.0))),
                             Column("error_ratio", "percentunit", "Errors", 2, thresholds=GREEN_RED_RATIO),
                             Column("error_ratio_change", "percentunit", "Errors Δ (points)", 2),
                             Column("p95_ms", "ms", "p95", 0),
                             Column("p95_change", "percentunit", "p95 Δ", 1,
                                    thresholds=(("transparent", None), ("orange", 0.25), ("red", 1.0)))),
              in_report=True),
        Panel(7, "Daily spend by app", "Priced spend per day.", Viz.TIMESERIES,
              f"""SELECT toDateTime(toStartOfDay(minute), 'UTC') AS time, app, sum(cost_usd_sum) AS spend_usd
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, app
ORDER BY time, app""",
              ("time", "app", "spend_usd"), ("events_1m",), (0, 20, 12, 8), unit="currencyUSD", decimals=2,
              series_name="${__field.labels.app}", stacked=True, bars=True, min=0, in_report=True),
        Panel(8, "p95 latency by app", "Hourly p95 of successful model calls.", Viz.TIMESERIES,
              f"""SELECT toStartOfHour(minute) AS time, app, {P95}[3] AS p95_ms
FROM events_1m
WHERE $__timeFilter(minute) AND {LLM_CALLS} AND {F}
GROUP BY time, app
HAVING sum(ok_requests) > 0
ORDER BY time, app""",
              ("time", "app", "p95_ms"), ("events_1m",), (12, 20, 12, 8), unit="ms", decimals=0,
              series_name="${__field.labels.app}", min=0, in_report=True),
        Panel(9, "Lowest-scored outputs", "The week's judgments at the bottom of their rubric's range, with what "
              "was asked and answered.", Viz.TABLE,
              f"""WITH lowest AS
(
    SELECT event_id, trace_id, event_time, rubric, score, reason, app, feature, model, prompt_version
    FROM
    (
        SELECT event_id, trace_id, event_time, rubric, score, reason, app, feature, model, prompt_version,
               (score - min(score) OVER (PARTITION BY rubric))
                   / greatest(max(score) OVER (PARTITION BY rubric) - min(score) OVER (PARTITION BY rubric), 1) AS relative
        FROM judgments
        WHERE status = 'scored' AND score IS NOT NULL AND $__timeFilter(event_time) AND {FJ}
    )
    ORDER BY relative ASC, event_time DESC
    LIMIT 15
)
SELECT l.event_time AS time, l.rubric AS rubric, l.score AS score, l.app AS app, l.feature AS feature,
       l.model AS model, l.prompt_version AS prompt_version, l.reason AS reason,
       substring(e.input_text, 1, 240) AS input, substring(e.output_text, 1, 240) AS output, l.event_id AS event_id
FROM lowest AS l
LEFT JOIN
(
    SELECT event_id, any(input_text) AS input_text, any(output_text) AS output_text
    FROM events
    WHERE $__timeFilter(start_time) AND event_id IN (SELECT event_id FROM lowest)
    GROUP BY event_id
) AS e ON e.event_id = l.event_id
ORDER BY score ASC, time DESC""",
              ("time", "rubric", "score", "app", "feature", "model", "prompt_version", "reason", "input", "output",
               "event_id"), ("judgments", "events (lookup by event_id)"), (0, 28, 24, 9),
              column_styles=(Column("event_id", display="Event", link=EVENT_LINK, link_title="Open the event"),),
              in_report=True),
        Panel(10, "New prompt versions and their effect", "Prompt versions first seen in the range, against the "
              "version they followed (stats over the range and the week before it).", Viz.TABLE,
              f"""SELECT app, feature, prompt_version, previous_version, first_seen, calls, cost_per_request_usd,
       cost_per_request_usd / nullIf(previous_cost_per_request_usd, 0) - 1 AS cost_change,
       p95_ms, p95_ms / nullIf(previous_p95_ms, 0) - 1 AS p95_change,
       error_ratio, error_ratio - previous_error_ratio AS error_ratio_change,
       mean_judge_score, mean_judge_score - previous_mean_judge_score AS judge_score_change
FROM
(
    SELECT v.*, j.mean_judge_score AS mean_judge_score,
           lagInFrame(v.prompt_version) OVER w AS previous_version,
           lagInFrame(v.cost_per_request_usd) OVER w AS previous_cost_per_request_usd,
           lagInFrame(v.p95_ms) OVER w AS previous_p95_ms,
           lagInFrame(v.error_ratio) OVER w AS previous_error_ratio,
           lagInFrame(j.mean_judge_score) OVER w AS previous_mean_judge_score,
           row_number() OVER w AS version_index
    FROM
    (
        SELECT app, feature, prompt_version, min(minute) AS first_seen,
               sumIf(requests, recent) AS calls,
               sumIf(cost_usd_sum, recent) / nullIf(sumIf(priced_requests, recent), 0) AS cost_per_request_usd,
               quantilesTDigestMergeIf(0.5, 0.9, 0.95, 0.99)(latency_q, recent AND ok_requests > 0)[3] AS p95_ms,
               sumIf(errors, recent) / nullIf(sumIf(requests, recent), 0) AS error_ratio
        FROM
        (
            SELECT app, feature, prompt_version, minute, requests, errors, ok_requests, priced_requests,
                   cost_usd_sum, latency_q, minute >= ($__fromTime - INTERVAL 7 DAY) AS recent
            FROM events_1m
            WHERE minute <= ($__toTime) AND prompt_version != '' AND {LLM_CALLS} AND {F}
        )
        GROUP BY app, feature, prompt_version
    ) AS v
    LEFT JOIN
    (
        SELECT app, feature, prompt_version, avg(score) AS mean_judge_score
        FROM judgments
        WHERE status = 'scored' AND score_type = 'scale' AND event_time >= ($__fromTime - INTERVAL 7 DAY)
          AND event_time <= ($__toTime) AND {FJ}
        GROUP BY app, feature, prompt_version
    ) AS j ON j.app = v.app AND j.feature = v.feature AND j.prompt_version = v.prompt_version
    WINDOW w AS (PARTITION BY v.app, v.feature ORDER BY v.first_seen ASC)
)
WHERE $__timeFilter(first_seen)
ORDER BY first_seen DESC""",
              ("app", "feature", "prompt_version", "previous_version", "first_seen", "calls", "cost_per_request_usd",
               "cost_change", "p95_ms", "p95_change", "error_ratio", "error_ratio_change", "mean_judge_score",
               "judge_score_change"), ("events_1m", "judgments"), (0, 37, 24, 8),
              column_styles=(Column("cost_per_request_usd", "currencyUSD", "Per request", 5),
                             Column("cost_change", "percentunit", "Cost Δ", 1,
                                    thresholds=(("transparent", None), ("orange", 0.25), ("red", 1.0))),
                             Column("p95_ms", "ms", "p95", 0),
                             Column("p95_change", "percentunit", "p95 Δ", 1),
                             Column("error_ratio", "percentunit", "Errors", 2),
                             Column("error_ratio_change", "percentunit", "Errors Δ (points)", 2),
                             Column("mean_judge_score", "short", "Judge score", 2),
                             Column("judge_score_change", "short", "Judge Δ", 2)),
              in_report=True),
    ),
)

# --- Event & trace drill-down (review links: LLMPULSE_REVIEW_LINK_TEMPLATE) -----------------------------

EVENT_ID = TextVariable("event_id", "Event id", "", "The event to show (review exports link here).")
TRACE_ID = TextVariable("trace_id", "Trace id", "", "The trace whose calls to show.")
_LOOKBACK = "start_time >= now() - INTERVAL 400 DAY"

EVENTS = Dashboard(
    uid=links.EVENTS,
    title="LLM event & trace",
    description="One event or one trace, call by call: the drill-down that review exports, the findings tables "
                "and the most-expensive-traces panel link to. Lookups by id use the bloom-filter indexes.",
    time_from="now-30d",
    filters=False,
    refresh="",
    text_variables=(EVENT_ID, TRACE_ID),
    panels=(
        Panel(1, "Trace calls", "Every call of the trace, in order.", Viz.TABLE,
              f"""SELECT start_time AS time, event_id, operation, provider, model, status, error_type, latency_ms,
       input_tokens, output_tokens, cost_usd, substring(output_text, 1, 200) AS output
FROM events
WHERE trace_id = ${{trace_id:singlequote}} AND trace_id != '' AND {_LOOKBACK}
ORDER BY start_time
LIMIT 1000""",
              ("time", "event_id", "operation", "provider", "model", "status", "error_type", "latency_ms",
               "input_tokens", "output_tokens", "cost_usd", "output"), ("events (lookup by trace_id)",),
              (0, 0, 24, 10),
              column_styles=(Column("event_id", display="Event", link=EVENT_LINK, link_title="Open the event"),
                             Column("latency_ms", "ms", "Latency", 0),
                             Column("cost_usd", "currencyUSD", "Cost", 5))),
        Panel(2, "Event", "The event with its prompt and response.", Viz.TABLE,
              f"""SELECT start_time AS time, app, environment, feature, provider, model, prompt_version, status,
       latency_ms, ttft_ms, cost_usd, trace_id, user_id, input_text, output_text
FROM events
WHERE event_id = ${{event_id:singlequote}} AND event_id != '' AND {_LOOKBACK}
LIMIT 1""",
              ("time", "app", "environment", "feature", "provider", "model", "prompt_version", "status", "latency_ms",
               "ttft_ms", "cost_usd", "trace_id", "user_id", "input_text", "output_text"),
              ("events (lookup by event_id)",), (0, 10, 24, 8),
              column_styles=(Column("trace_id", display="Trace", link=TRACE_LINK, link_title="Open the trace"),
                             Column("latency_ms", "ms", "Latency", 0), Column("ttft_ms", "ms", "TTFT", 0),
                             Column("cost_usd", "currencyUSD", "Cost", 5))),
        Panel(3, "Judgments of the event", "What the LLM judge said about it, per rubric.", Viz.TABLE,
              """SELECT judged_at AS time, rubric, status, score, label, reason, judge_model
FROM judgments
WHERE event_id = ${event_id:singlequote} AND event_id != ''
ORDER BY judged_at DESC""",
              ("time", "rubric", "status", "score", "label", "reason", "judge_model"), ("judgments",),
              (0, 18, 24, 6)),
    ),
)


def quality_dashboard(drift: tuple[Panel, ...] = ()) -> Dashboard:
    findings_row = 16 + (16 if drift else 0)
    return Dashboard(
        uid=links.QUALITY,
        title="LLM quality & drift",
        description="Is the model still answering well: LLM-judge scores by rubric, judge–human agreement, "
                    "and how far inputs and outputs drifted from their reference period.",
        time_from="now-7d",
        panels=(*QUALITY_BASE_PANELS, *drift, _quality_findings_panel(8, (0, findings_row, 24, 8))),
    )


_DRIFT_FINDINGS = (
    "alertname IN ('LLMInputDrift', 'LLMOutputDrift') AND (state = 'firing' OR $__timeFilter(last_seen)) AND " + FF
)


def drift_panels() -> tuple[Panel, ...]:
    """Drift as the drift analyzer stores it per run (`drift_results`: effect, threshold, the reference period),
    and a sample of the inputs of the latest `LLMInputDrift` episode (`findings` joined to `events`)."""
    return (
        Panel(links.PANEL_DRIFT_SCORES, "Drift by feature", "Latest drift check per app, feature and what was "
              "measured: the effect against its threshold (a finding fires past it) and the reference period it "
              "was compared with.", Viz.TABLE,
              f"""SELECT app AS drift_app, feature AS drift_product_feature, direction, drift_feature,
       argMax(effect, at) AS drift_score, argMax(threshold, at) AS drift_threshold,
       argMax(drifted, at) AS drifted_now, argMax(ref_start, at) AS reference_start,
       argMax(ref_end, at) AS reference_end, max(at) AS last_checked
FROM drift_results
WHERE $__timeFilter(at) AND status != 'insufficient' AND {filters(variables=("app", "environment", "model", "feature"))}
GROUP BY drift_app, drift_product_feature, direction, drift_feature
ORDER BY drifted_now DESC, drift_score / greatest(drift_threshold, 1e-9) DESC
LIMIT 100""",
              ("drift_app", "drift_product_feature", "direction", "drift_feature", "drift_score", "drift_threshold",
               "drifted_now", "reference_start", "reference_end", "last_checked"), ("drift_results",),
              (0, 16, 24, 8),
              column_styles=(Column("drift_app", display="App"), Column("drift_product_feature", display="Feature"),
                             Column("direction", display="Inputs/outputs"),
                             Column("drift_feature", display="What was measured"),
                             Column("drift_score", "short", "Effect", 3), Column("drift_threshold", "short", "Threshold", 3),
                             Column("drifted_now", display="Drifted"),
                             Column("reference_start", display="Reference from"),
                             Column("reference_end", display="Reference to"))),
        # A drift finding is observed at the end of the window that drifted, so first_seen is the end of the
        # episode's first window: the episode starts one window earlier (its length is in details.current).
        Panel(6, "Inputs during the latest drift", "A sample of what users sent while the most recent drift "
              "finding held (its app and feature), to see what changed.", Viz.TABLE,
              f"""WITH latest AS
(
    SELECT labels['app'] AS d_app, labels['feature'] AS d_feature,
           first_seen - toIntervalSecond(ifNull(dateDiff('second',
               parseDateTime64BestEffortOrNull(JSONExtractString(details, 'current', 1)),
               parseDateTime64BestEffortOrNull(JSONExtractString(details, 'current', 2))), 0)) AS d_start,
           last_seen AS d_end
    FROM findings FINAL
    WHERE alertname = 'LLMInputDrift' AND (state = 'firing' OR $__timeFilter(last_seen)) AND {FF}
    ORDER BY last_seen DESC
    LIMIT 1
)
SELECT start_time AS time, app, feature, model, substring(input_text, 1, 300) AS input, event_id
FROM events
WHERE (app, feature) IN (SELECT d_app, d_feature FROM latest)
  AND start_time >= (SELECT any(d_start) FROM latest) AND start_time <= (SELECT any(d_end) FROM latest)
  AND input_text != '' AND {LLM_CALLS}
ORDER BY cityHash64(event_id)
LIMIT 20""",
              ("time", "app", "feature", "model", "input", "event_id"),
              ("findings", "events (lookup by app, feature and the finding's window)"), (0, 24, 24, 8),
              column_styles=(Column("event_id", display="Event", link=EVENT_LINK, link_title="Open the event"),)),
    )


def all_dashboards() -> tuple[Dashboard, ...]:
    return (OVERVIEW, COST, LATENCY, RELIABILITY, quality_dashboard(drift_panels()), WEEKLY, EVENTS)


def dashboard(uid: str) -> Dashboard:
    for candidate in all_dashboards():
        if candidate.uid == uid:
            return candidate
    raise KeyError(f"no dashboard with uid {uid!r}")
