"""Words for a tired person: what each alert means and its numbers with units.

Pure functions. What `value`, `baseline` and `threshold` mean differs per alert name (and, for some, per
`details["metric"]`): the table below follows what the analyzers in analyzers/ put there, so a
description never shows a number in the wrong unit. The analyzer's own `summary` and `evidence` carry
the specifics; this adds the plain-language frame around them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from analyzers.findings import FINDING_LABEL_KEYS, AlertName


def _usd(value: float) -> str:
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}"


def _ms(value: float) -> str:
    return f"{value / 1000:,.1f} s" if value >= 10_000 else f"{value:,.0f} ms"


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _times(value: float) -> str:
    return f"{value:,.1f}×"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _score(value: float) -> str:
    return f"{value:.3f}"


UNIT_FORMATS: dict[str, Callable[[float], str]] = {
    "usd": _usd,
    "ms": _ms,
    "ratio": _percent,
    "burn_rate": _times,
    "count": _count,
    "score": _score,
}


@dataclass(frozen=True, slots=True)
class AlertKind:
    title: str  # what is wrong, as a short sentence
    metric: str  # what `value` measures
    unit: str  # key of UNIT_FORMATS
    baseline_word: str | None = "usually"  # None: `baseline` is not shown
    threshold_word: str | None = "alert threshold"  # None: `threshold` is not shown (another unit)
    compare: bool = True  # show "N× the usual" / "N% below the usual"
    note: str = ""


_BURN_NOTE = "1× would use up the error budget exactly at the end of the SLO period"

ALERT_KINDS: dict[AlertName, AlertKind] = {
    AlertName.COST_SPIKE: AlertKind("LLM spend per request jumped", "cost per request", "usd"),
    AlertName.LATENCY_REGRESSION: AlertKind("LLM responses got slower", "latency", "ms"),
    AlertName.LATENCY_SLO_BURN: AlertKind(
        "The latency SLO's error budget is burning fast", "burn rate", "burn_rate", baseline_word=None,
        compare=False, note=_BURN_NOTE,
    ),
    AlertName.PROVIDER_OUTAGE: AlertKind("The model provider is failing calls", "share of failed calls", "ratio"),
    AlertName.ERROR_RATE_HIGH: AlertKind("Too many LLM calls fail", "error ratio", "ratio"),
    AlertName.AVAILABILITY_SLO_BURN: AlertKind(
        "The availability SLO's error budget is burning fast", "burn rate", "burn_rate", baseline_word=None,
        compare=False, note=_BURN_NOTE,
    ),
    AlertName.TRAFFIC_ABSENT: AlertKind(
        "LLM traffic stopped or nearly stopped", "calls in the window", "count", baseline_word="expected"
    ),
    AlertName.BUDGET_BURN: AlertKind(
        "Spend is on course to exceed the budget", "projected spend", "usd", baseline_word="spent so far",
        threshold_word="budget", compare=False,
    ),
    AlertName.RUNAWAY_TRACE: AlertKind(
        "One trace keeps calling the model (agent loop?)", "LLM calls", "count",
        baseline_word="a normal heavy trace", compare=False,
    ),
    AlertName.INPUT_DRIFT: AlertKind("Users send different inputs than usual", "input drift score", "score"),
    AlertName.OUTPUT_DRIFT: AlertKind("The model answers differently than usual", "output drift score", "score"),
    AlertName.QUALITY_REGRESSION: AlertKind(
        "Answer quality dropped", "mean judge score", "score", baseline_word="in the reference period",
        threshold_word=None, compare=False,
    ),
    AlertName.JUDGE_DISAGREEMENT: AlertKind(
        "The quality judge disagrees with its reference labels", "judge agreement (Cohen's kappa)", "score",
        baseline_word=None, threshold_word="floor", compare=False,
    ),
}

# details["metric"] of an observation → (what `value` measures, unit), where one alert name covers several.
METRICS: dict[tuple[AlertName, str], tuple[str, str]] = {
    (AlertName.COST_SPIKE, "cost_per_request"): ("cost per request", "usd"),
    (AlertName.COST_SPIKE, "tokens_per_request"): ("tokens per request (model has no price)", "count"),
    (AlertName.COST_SPIKE, "spend"): ("spend in the window", "usd"),
    (AlertName.LATENCY_REGRESSION, "latency"): ("latency", "ms"),
    (AlertName.LATENCY_REGRESSION, "ttft"): ("time to first token", "ms"),
    (AlertName.RUNAWAY_TRACE, "calls"): ("LLM calls", "count"),
    (AlertName.RUNAWAY_TRACE, "tokens"): ("tokens", "count"),
    (AlertName.RUNAWAY_TRACE, "cost_usd"): ("cost", "usd"),
}


def kind_of(alertname: AlertName, details: Mapping[str, object] | None = None) -> AlertKind:
    kind = ALERT_KINDS[alertname]
    details = details or {}
    metric = METRICS.get((alertname, str(details.get("metric", ""))))
    if metric is not None:
        kind = replace(kind, metric=metric[0], unit=metric[1])
    quantile = details.get("quantile")
    if alertname is AlertName.LATENCY_REGRESSION and isinstance(quantile, str) and quantile:
        kind = replace(kind, metric=f"{kind.metric} {quantile}")
    unit = details.get("unit")
    if isinstance(unit, str) and unit in UNIT_FORMATS:
        kind = replace(kind, unit=unit)
    return kind


def format_value(value: float, unit: str) -> str:
    return UNIT_FORMATS.get(unit, _score)(value)


def scope(labels: Mapping[str, str]) -> str:
    """'app=support-bot, provider=anthropic' in the order that identifies a finding."""
    ordered = [k for k in FINDING_LABEL_KEYS if labels.get(k)] + sorted(
        k for k in labels if k not in FINDING_LABEL_KEYS and labels[k]
    )
    return ", ".join(f"{k}={labels[k]}" for k in ordered) or "all traffic"


def default_summary(alertname: AlertName, labels: Mapping[str, str]) -> str:
    return f"{ALERT_KINDS[alertname].title} ({scope(labels)})"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def numbers_sentence(kind: AlertKind, value: float, baseline: float | None, threshold: float | None, *,
                     resolved: bool) -> str:
    metric = kind.metric[0].upper() + kind.metric[1:]
    text = f"{metric} {'at the end' if resolved else 'now'}: {format_value(value, kind.unit)}"
    context = []
    if baseline is not None and kind.baseline_word is not None:
        usual = f"{kind.baseline_word} {format_value(baseline, kind.unit)}"
        if kind.compare and baseline > 0:
            ratio = value / baseline
            usual += f", {ratio:,.1f}× the usual" if ratio >= 1 else f", {1 - ratio:.0%} below the usual"
        context.append(usual)
    if threshold is not None and kind.threshold_word is not None:
        context.append(f"{kind.threshold_word} {format_value(threshold, kind.unit)}")
    if kind.note:
        context.append(kind.note)
    return text + (f" ({'; '.join(context)})" if context else "") + "."


def describe(
    alertname: AlertName,
    labels: Mapping[str, str],
    *,
    value: float | None,
    baseline: float | None,
    threshold: float | None,
    started_at: datetime,
    resolved_at: datetime | None = None,
    now: datetime | None = None,
    evidence: str = "",
    details: Mapping[str, object] | None = None,
) -> str:
    """One paragraph: what, the number against usual and the threshold, since when, then the evidence."""
    kind = kind_of(alertname, details)
    parts = [f"{kind.title} for {scope(labels)}."]
    if value is not None:
        parts.append(numbers_sentence(kind, value, baseline, threshold, resolved=resolved_at is not None))
    if resolved_at is not None:
        lasted = _duration((resolved_at - started_at).total_seconds())
        parts.append(f"Resolved at {resolved_at:%H:%M} UTC after {lasted} (started {started_at:%Y-%m-%d %H:%M} UTC).")
    else:
        since = f"Firing since {started_at:%Y-%m-%d %H:%M} UTC"
        if now is not None and now >= started_at:
            since += f" ({_duration((now - started_at).total_seconds())})"
        parts.append(since + ".")
    if evidence:
        parts.append("Evidence: " + evidence.strip().rstrip(".") + ".")
    return " ".join(parts)
