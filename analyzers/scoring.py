"""Score a findings timeline against a simulation's ground truth (tests, bench/detection.py, `make demo`).

An incident is detected when an episode of its expected alert, on labels that overlap the incident's slice
of traffic, fires within `detect_within` of its start; it is resolved in time when every such episode has
resolved by `resolve_within` after its end. An episode is a false alarm when it matches no incident, not
even as one of the incident's legitimate side effects (`secondary_alertnames`), between the incident's
start and `grace` after its end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from analyzers.backtest import Episode

SLICE_KEYS = ("app", "feature", "provider", "model")
ID_KEYS = ("trace_id", "session_id", "prompt_version")
Slice = tuple[str, str, str, str]


def traffic_slices(apps: Iterable[Any], models: Iterable[Any]) -> list[Slice]:
    """(app, feature, provider, model) combinations that carry traffic, from simulator profiles."""
    provider_of = {m.name: m.provider for m in models}
    out: list[Slice] = []
    for app in apps:
        for f in app.features:
            for model in [*f.models, *([f.retrieval_model] if getattr(f, "retrieval_model", None) else [])]:
                if model in provider_of:
                    out.append((app.name, f.name, provider_of[model], model))
    return out


def labels_overlap(a: Mapping[str, str], b: Mapping[str, str], slices: Sequence[Slice]) -> bool:
    """Whether two label sets can describe the same traffic (some slice satisfies both)."""
    for key in ID_KEYS:
        if key in a and key in b and a[key] != b[key]:
            return False
    if not any(k in a for k in SLICE_KEYS) or not any(k in b for k in SLICE_KEYS):
        return True
    return any(
        all(a.get(k, s[i]) == s[i] and b.get(k, s[i]) == s[i] for i, k in enumerate(SLICE_KEYS)) for s in slices
    )


def _ts(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(slots=True)
class IncidentOutcome:
    incident: dict[str, Any]
    start: datetime
    end: datetime
    episodes: list[Episode] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.incident["kind"])

    @property
    def fired_at(self) -> datetime | None:
        return min((e.fired_at for e in self.episodes), default=None)

    @property
    def delay(self) -> timedelta | None:
        return None if self.fired_at is None else self.fired_at - self.start

    @property
    def resolved_at(self) -> datetime | None:
        if not self.episodes or any(e.resolved_at is None for e in self.episodes):
            return None
        return max(e.resolved_at for e in self.episodes if e.resolved_at is not None)

    @property
    def resolve_delay(self) -> timedelta | None:
        return None if self.resolved_at is None else self.resolved_at - self.end


@dataclass(slots=True)
class Score:
    outcomes: list[IncidentOutcome]
    false_alarms: list[Episode]
    detect_within: timedelta
    resolve_within: timedelta

    def ok(self, o: IncidentOutcome) -> bool:
        d, r = o.delay, o.resolve_delay
        return d is not None and d <= self.detect_within and r is not None and r <= self.resolve_within

    def detected_in_time(self, o: IncidentOutcome) -> bool:
        return o.delay is not None and o.delay <= self.detect_within

    def rate(self, kinds: Sequence[str] | None = None) -> float:
        chosen = [o for o in self.outcomes if kinds is None or o.kind in kinds]
        return sum(self.ok(o) for o in chosen) / len(chosen) if chosen else 1.0

    def false_alarms_by_app(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.false_alarms:
            key = e.labels.get("app") or f"{e.labels.get('provider', '-')}/{e.labels.get('model', '-')}"
            out[key] = out.get(key, 0) + 1
        return out


# Drift and quality verdicts come from hour-long windows with persistence across runs, so a real detection
# can fire up to a couple of runs after the incident ended; it is still that incident's detection (and late).
WINDOWED_ALERTS: frozenset[str] = frozenset({"LLMInputDrift", "LLMOutputDrift", "LLMQualityRegression"})


def score(
    episodes: Sequence[Episode],
    truth: Sequence[Mapping[str, Any]],
    slices: Sequence[Slice],
    *,
    detect_within: timedelta = timedelta(minutes=15),
    resolve_within: timedelta = timedelta(minutes=30),
    grace: timedelta = timedelta(minutes=30),
    windowed_grace: timedelta = timedelta(hours=2),
) -> Score:
    outcomes = [IncidentOutcome(dict(i), _ts(i["start"]), _ts(i["end"])) for i in truth]
    explained: set[int] = set()
    for idx, e in enumerate(episodes):
        for o in outcomes:
            inc = o.incident
            allowed = windowed_grace if e.alertname in WINDOWED_ALERTS else grace
            if not (o.start <= e.fired_at <= o.end + allowed):
                continue
            if not labels_overlap(e.labels, inc.get("labels", {}), slices):
                continue
            if e.alertname == inc.get("expected_alertname"):
                o.episodes.append(e)
                explained.add(idx)
            elif e.alertname in inc.get("secondary_alertnames", ()):
                explained.add(idx)
    false = [e for i, e in enumerate(episodes) if i not in explained]
    return Score(outcomes, false, detect_within, resolve_within)


def minutes(td: timedelta | None) -> str:
    return "-" if td is None else f"{td.total_seconds() / 60:.0f}m"


IN_SCOPE_KINDS: tuple[str, ...] = ("cost_spike", "latency_regression", "error_burst", "provider_outage")
MEASURED_KINDS: tuple[str, ...] = (*IN_SCOPE_KINDS, "runaway_trace", "traffic_absent")


def score_rows(sc: Score) -> list[dict[str, str]]:
    """One row per incident: what was injected and what was detected, as display strings."""
    rows = []
    for o in sc.outcomes:
        inc = o.incident
        labels = ", ".join(f"{k}={v[:12] if k == 'trace_id' else v}" for k, v in inc.get("labels", {}).items())
        if o.delay is None:
            verdict = "missed"
        elif sc.ok(o):
            verdict = "ok"
        elif not sc.detected_in_time(o):
            verdict = "late"
        else:
            verdict = "slow to resolve"
        rows.append(
            {
                "kind": o.kind,
                "window": f"{o.start:%m-%d %H:%M}–{o.end:%H:%M}",
                "labels": labels,
                "expected": str(inc.get("expected_alertname", "")),
                "fired": "-" if o.fired_at is None else f"{o.fired_at:%H:%M} (+{minutes(o.delay)})",
                "resolved": "-"
                if o.resolved_at is None
                else f"{o.resolved_at:%H:%M} ({'+' if (o.resolve_delay or timedelta(0)) >= timedelta(0) else ''}"
                f"{minutes(o.resolve_delay)} after end)",
                "verdict": verdict,
            }
        )
    return rows


def print_score(console: Any, sc: Score, *, title: str = "Detected vs injected") -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in ("incident", "window (UTC)", "labels", "expected alert", "fired", "resolved", "verdict"):
        table.add_column(column, overflow="fold")
    for row in score_rows(sc):
        style = {"ok": "green", "missed": "red"}.get(row["verdict"], "yellow")
        table.add_row(row["kind"], row["window"], row["labels"], row["expected"], row["fired"], row["resolved"],
                      f"[{style}]{row['verdict']}[/]")
    console.print(table)
    kinds = [k for k in MEASURED_KINDS if any(o.kind == k for o in sc.outcomes)]
    if kinds:
        summary = ", ".join(
            f"{k} {sum(sc.ok(o) for o in sc.outcomes if o.kind == k)}/{sum(o.kind == k for o in sc.outcomes)}"
            for k in kinds
        )
        console.print(f"detected within {minutes(sc.detect_within)} and resolved within "
                      f"{minutes(sc.resolve_within)} of the end: {summary}")
    others = sorted({o.kind for o in sc.outcomes} - set(MEASURED_KINDS))
    if others:
        console.print(
            f"({', '.join(others)}: judged on hour-long windows with 2-of-3 persistence, so drift is reported an "
            "hour or two after onset by design; quality needs an LLM judge endpoint, LLMPULSE_JUDGE_BASE_URL)"
        )
    fa = sc.false_alarms_by_app()
    console.print(
        f"false alarms: {len(sc.false_alarms)}"
        + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(fa.items())) + ")" if fa else "")
    )
    for e in sc.false_alarms[:10]:
        console.print(f"  {e.fired_at:%m-%d %H:%M} {e.alertname} {e.labels}: {e.summary}")
