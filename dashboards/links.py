"""Where a finding or an alert should land in Grafana: `dashboard_url(alertname, labels, base_url)`.

Every alert name points at one panel of one dashboard (stable uids and panel ids, see docs/dashboards.md); the
finding's dimensions become template variables, so the panel opens already narrowed to what fired. Standard
library only: the alerts engineer calls this from alert payloads, the dashboards' findings tables build the
same link in SQL (`dashboard_url_sql`), and a test keeps the two identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode


@dataclass(frozen=True, slots=True)
class PanelRef:
    uid: str
    slug: str
    panel_id: int


# Dashboard uids are part of the public surface (alerts, review links, bookmarks): never change them.
OVERVIEW = "llmpulse-overview"
COST = "llmpulse-cost"
LATENCY = "llmpulse-latency"
RELIABILITY = "llmpulse-reliability"
QUALITY = "llmpulse-quality"
WEEKLY = "llmpulse-weekly"
EVENTS = "llmpulse-events"

SLUGS: dict[str, str] = {
    OVERVIEW: "llm-overview",
    COST: "llm-cost",
    LATENCY: "llm-latency",
    RELIABILITY: "llm-reliability",
    QUALITY: "llm-quality-and-drift",
    WEEKLY: "llm-weekly-review",
    EVENTS: "llm-event-and-trace",
}

# Panel ids each alert lands on; the dashboards define panels with these ids (tests check both sides).
PANEL_COST_PER_REQUEST = 7
PANEL_SPEND_VS_BUDGET = 5
PANEL_TOP_TRACES = 11
PANEL_LATENCY_BY_MODEL = 2
PANEL_LATENCY_SLO_BURN = 5
PANEL_ERRORS_BY_PROVIDER = 2
PANEL_ERROR_RATIO_BY_APP = 3
PANEL_TRAFFIC_BY_APP = 1
PANEL_AVAILABILITY_SLO_BURN = 5
PANEL_JUDGE_SCORES = 1
PANEL_JUDGE_AGREEMENT = 3
PANEL_DRIFT_SCORES = 5

ALERT_PANELS: dict[str, PanelRef] = {
    "LLMCostSpike": PanelRef(COST, SLUGS[COST], PANEL_COST_PER_REQUEST),
    "LLMBudgetBurn": PanelRef(COST, SLUGS[COST], PANEL_SPEND_VS_BUDGET),
    "LLMRunawayTrace": PanelRef(COST, SLUGS[COST], PANEL_TOP_TRACES),
    "LLMLatencyRegression": PanelRef(LATENCY, SLUGS[LATENCY], PANEL_LATENCY_BY_MODEL),
    "LLMLatencySLOBurn": PanelRef(LATENCY, SLUGS[LATENCY], PANEL_LATENCY_SLO_BURN),
    "LLMProviderOutage": PanelRef(RELIABILITY, SLUGS[RELIABILITY], PANEL_ERRORS_BY_PROVIDER),
    "LLMErrorRateHigh": PanelRef(RELIABILITY, SLUGS[RELIABILITY], PANEL_ERROR_RATIO_BY_APP),
    "LLMAvailabilitySLOBurn": PanelRef(RELIABILITY, SLUGS[RELIABILITY], PANEL_AVAILABILITY_SLO_BURN),
    "LLMTrafficAbsent": PanelRef(RELIABILITY, SLUGS[RELIABILITY], PANEL_TRAFFIC_BY_APP),
    "LLMInputDrift": PanelRef(QUALITY, SLUGS[QUALITY], PANEL_DRIFT_SCORES),
    "LLMOutputDrift": PanelRef(QUALITY, SLUGS[QUALITY], PANEL_DRIFT_SCORES),
    "LLMQualityRegression": PanelRef(QUALITY, SLUGS[QUALITY], PANEL_JUDGE_SCORES),
    "LLMJudgeDisagreement": PanelRef(QUALITY, SLUGS[QUALITY], PANEL_JUDGE_AGREEMENT),
}

# Finding labels that are template variables of every dashboard (var-<name>), in URL order.
VARIABLE_LABELS: tuple[str, ...] = ("app", "environment", "provider", "model", "feature")
# Labels that narrow a drill-down dashboard instead.
_TRACE_LABEL = "trace_id"

# The time window a link opens: from an hour before the finding fired to half an hour after it resolved
# (or now, while it fires), so the panel shows the change and what came before it.
LEAD = timedelta(hours=1)
TRAIL = timedelta(minutes=30)


def panel_for(alertname: str) -> PanelRef:
    """The panel an alert name lands on (the Overview's findings table for a name this module doesn't know)."""
    return ALERT_PANELS.get(str(alertname), PanelRef(OVERVIEW, SLUGS[OVERVIEW], 11))


def dashboard_url(
    alertname: str,
    labels: Mapping[str, str],
    base_url: str,
    *,
    started_at: datetime | None = None,
    resolved_at: datetime | None = None,
) -> str:
    """Link to the panel that shows `alertname` for these labels, e.g.

    dashboard_url("LLMCostSpike", {"app": "support-bot", "model": "gpt-4o"}, "https://grafana.example.com")
    -> https://grafana.example.com/d/llmpulse-cost/llm-cost?orgId=1&viewPanel=7&var-app=support-bot&var-model=gpt-4o

    With `started_at` the link also carries the time range (an hour before it to 30 minutes after
    `resolved_at`, or now). Labels that are not dashboard variables are left out, except a runaway trace's
    trace_id, which opens the trace on the Event & trace dashboard from the Top traces panel's link.
    """
    ref = panel_for(alertname)
    query: list[tuple[str, str]] = [("orgId", "1"), ("viewPanel", str(ref.panel_id))]
    for key in VARIABLE_LABELS:
        value = labels.get(key)
        if value:
            query.append((f"var-{key}", str(value)))
    if labels.get(_TRACE_LABEL):
        query.append((f"var-{_TRACE_LABEL}", str(labels[_TRACE_LABEL])))
    if started_at is not None:
        query.append(("from", str(int((started_at - LEAD).timestamp() * 1000))))
        query.append(("to", str(int((resolved_at + TRAIL).timestamp() * 1000)) if resolved_at else "now"))
    return f"{base_url.rstrip('/')}/d/{ref.uid}/{ref.slug}?{urlencode(query, safe='', quote_via=quote)}"


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dashboard_url_sql(
    *,
    alertname: str = "alertname",
    labels: str = "labels",
    started_at: str = "fired_at",
    resolved_at: str = "resolved_at",
) -> str:
    """ClickHouse expression building `dashboard_url(...)` with an empty base URL (a link inside Grafana)
    from a findings row: the same panel, variables and time window as the Python function."""
    cases = ", ".join(
        f"{alertname} = {_sql_string(name)}, {_sql_string(f'/d/{ref.uid}/{ref.slug}?orgId=1&viewPanel={ref.panel_id}')}"
        for name, ref in sorted(ALERT_PANELS.items())
    )
    fallback = panel_for("")
    default = _sql_string(f"/d/{fallback.uid}/{fallback.slug}?orgId=1&viewPanel={fallback.panel_id}")
    parts = [f"multiIf({cases}, {default})"]
    for key in (*VARIABLE_LABELS, _TRACE_LABEL):
        parts.append(
            f"if({labels}['{key}'] != '', concat('&var-{key}=', encodeURLComponent({labels}['{key}'])), '')"
        )
    lead_ms, trail_ms = int(LEAD.total_seconds() * 1000), int(TRAIL.total_seconds() * 1000)
    start_ms = f"toUnixTimestamp64Milli(assumeNotNull({started_at}))"
    end_ms = f"toUnixTimestamp64Milli(assumeNotNull({resolved_at}))"
    parts.append(
        f"if({started_at} IS NULL, '', concat('&from=', toString({start_ms} - {lead_ms}), "
        f"'&to=', if({resolved_at} IS NULL, 'now', toString({end_ms} + {trail_ms}))))"
    )
    return "concat(" + ", ".join(parts) + ")"
