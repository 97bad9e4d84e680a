"""Scheduled incidents of simulated traffic and the ground truth a detector is scored against."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from llmpulse.simulate.catalog import AppProfile, ModelProfile

IncidentKind = Literal[
    "cost_spike",
    "latency_regression",
    "provider_outage",
    "error_burst",
    "input_drift",
    "quality_drop",
    "runaway_trace",
    "traffic_absent",
]
INCIDENT_KINDS: tuple[str, ...] = (
    "cost_spike",
    "latency_regression",
    "provider_outage",
    "error_burst",
    "input_drift",
    "quality_drop",
    "runaway_trace",
    "traffic_absent",
)

EXPECTED_ALERT: dict[str, str] = {
    "cost_spike": "LLMCostSpike",
    "latency_regression": "LLMLatencyRegression",
    "provider_outage": "LLMProviderOutage",
    "error_burst": "LLMErrorRateHigh",
    "input_drift": "LLMInputDrift",
    "quality_drop": "LLMQualityRegression",
    "runaway_trace": "LLMRunawayTrace",
    "traffic_absent": "LLMTrafficAbsent",
}
# Alerts that legitimately fire too, because the incident really changes those signals (an outage raises the
# error rate of every app on that provider and its fallback changes the model mix, a runaway loop costs money,
# 4x tokens are longer inputs and outputs, degraded answers are different outputs); scoring should not count
# them false.
SECONDARY_ALERTS: dict[str, tuple[str, ...]] = {
    "cost_spike": ("LLMLatencyRegression", "LLMInputDrift", "LLMOutputDrift"),
    "latency_regression": (),
    "provider_outage": ("LLMErrorRateHigh", "LLMInputDrift", "LLMOutputDrift"),
    "error_burst": ("LLMOutputDrift",),
    "input_drift": ("LLMCostSpike", "LLMOutputDrift"),
    "quality_drop": ("LLMInputDrift", "LLMOutputDrift"),
    "runaway_trace": ("LLMCostSpike",),
    "traffic_absent": (),
}

# What `magnitude` means per kind, and its default.
MAGNITUDE_MEANING: dict[str, str] = {
    "cost_spike": "multiplier of input and output tokens of the slice",
    "latency_regression": "multiplier of latency and TTFT of successful calls",
    "provider_outage": "share of calls to the provider that fail",
    "error_burst": "error ratio of the app during the window (rate_limit)",
    "input_drift": "share of requests about the new topic",
    "quality_drop": "share of degraded outputs under the new prompt version",
    "runaway_trace": "number of LLM calls made by the runaway trace",
    "traffic_absent": "share of the slice's calls that disappear",
}
DEFAULT_MAGNITUDE: dict[str, float] = {
    "cost_spike": 4.0,
    "latency_regression": 2.5,
    "provider_outage": 0.85,
    "error_burst": 0.15,
    "input_drift": 0.25,
    "quality_drop": 0.6,
    "runaway_trace": 400.0,
    "traffic_absent": 1.0,
}
DEFAULT_DURATION: dict[str, timedelta] = {
    "latency_regression": timedelta(minutes=60),
    "input_drift": timedelta(minutes=90),
    "traffic_absent": timedelta(minutes=45),
    "cost_spike": timedelta(minutes=60),
    "provider_outage": timedelta(minutes=30),
    "error_burst": timedelta(minutes=45),
    "quality_drop": timedelta(minutes=90),
    "runaway_trace": timedelta(minutes=40),
}
# Targets per kind; round r of a long run uses variant r mod len (against the default catalogue).
DEFAULT_TARGETS: dict[str, tuple[dict[str, str], ...]] = {
    "latency_regression": (
        {"provider": "anthropic", "model": "claude-sonnet-4-20250514"},
        {"provider": "openai", "model": "gpt-4o-mini"},
        {"provider": "mistral", "model": "mistral-large-latest"},
    ),
    "input_drift": (
        {"app": "support-bot", "feature": "answer"},
        {"app": "search-rag", "feature": "synthesize"},
        {"app": "code-assistant", "feature": "explain"},
    ),
    "traffic_absent": (
        {"app": "search-rag"},
        {"app": "code-assistant", "feature": "explain"},
        {"app": "support-bot", "feature": "summarize-ticket"},
    ),
    "cost_spike": (
        {"app": "support-bot", "feature": "summarize-ticket"},
        {"app": "search-rag", "feature": "synthesize"},
        {"app": "code-assistant", "feature": "explain"},
    ),
    "provider_outage": ({"provider": "google"}, {"provider": "mistral"}, {"provider": "anthropic"}),
    "error_burst": ({"app": "code-assistant"}, {"app": "support-bot"}, {"app": "search-rag"}),
    "quality_drop": (
        {"app": "support-bot", "feature": "answer"},
        {"app": "search-rag", "feature": "synthesize"},
        {"app": "code-assistant", "feature": "explain"},
    ),
    "runaway_trace": ({"app": "code-assistant", "feature": "agent-step"},),
}
_FALLBACK_MODEL: dict[str, str] = {
    "google": "gpt-4o-mini",
    "mistral": "gpt-4o",
    "anthropic": "gpt-4o",
    "openai": "claude-3-5-haiku-latest",
}
_LABEL_KEYS = frozenset({"app", "feature", "provider", "model"})
_REQUIRED_LABELS: dict[str, tuple[tuple[str, ...], ...]] = {
    # any one of the alternatives must be fully present
    "cost_spike": (("app",),),
    "latency_regression": (("provider",), ("model",)),
    "provider_outage": (("provider",),),
    "error_burst": (("app",),),
    "input_drift": (("app", "feature"),),
    "quality_drop": (("app", "feature"),),
    "runaway_trace": (("app", "feature"),),
    "traffic_absent": (("app",),),
}


def rfc3339(ts: datetime) -> str:
    """2026-11-20T13:04:05.123Z: UTC, millisecond precision, as the event contract writes timestamps."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class Incident(BaseModel):
    """A scheduled fault: during [start, end) the calls matching all `labels` behave as `kind` says."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: IncidentKind
    start: AwareDatetime
    end: AwareDatetime
    labels: dict[str, str]
    magnitude: float = Field(default=math.nan, description="See MAGNITUDE_MEANING; default per kind.")
    id: str = Field(default="", description="Stable id; default kind-YYYYMMDDTHHMMZ of the start.")
    params: dict[str, str | float] = Field(
        default_factory=dict,
        description=(
            "provider_outage: fallback_share (0.5), fallback_model; input_drift: topic ('NovaPay'), "
            "input_scale (1.5); quality_drop: prompt_version (next version of the feature)."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        kind = data.get("kind")
        mag = data.get("magnitude")
        if kind in DEFAULT_MAGNITUDE and (mag is None or (isinstance(mag, float) and math.isnan(mag))):
            data["magnitude"] = DEFAULT_MAGNITUDE[kind]
        start = data.get("start")
        if isinstance(start, str):
            try:
                start = datetime.fromisoformat(start.replace("Z", "+00:00"))
            except ValueError:
                start = None  # field validation reports it
        if (
            not data.get("id")
            and kind is not None
            and isinstance(start, datetime)
            and start.tzinfo is not None
        ):
            data["id"] = f"{kind}-{start.astimezone(UTC):%Y%m%dT%H%MZ}"
        return data

    @model_validator(mode="after")
    def _check(self) -> Incident:
        if self.end <= self.start:
            raise ValueError(f"incident {self.id}: end must be after start")
        unknown = set(self.labels) - _LABEL_KEYS
        if unknown:
            raise ValueError(
                f"incident {self.id}: unknown label keys {sorted(unknown)}; use {sorted(_LABEL_KEYS)}"
            )
        if not any(all(k in self.labels for k in alt) for alt in _REQUIRED_LABELS[self.kind]):
            raise ValueError(f"incident {self.id}: {self.kind} needs labels {_REQUIRED_LABELS[self.kind]}")
        m = self.magnitude
        if self.kind in ("cost_spike", "latency_regression"):
            ok = m > 0
        elif self.kind == "runaway_trace":
            ok = m >= 1
        else:
            ok = 0 < m <= 1
        if not ok or math.isnan(m):
            raise ValueError(f"incident {self.id}: magnitude {m} out of range for {self.kind}")
        return self

    @property
    def expected_alertname(self) -> str:
        return EXPECTED_ALERT[self.kind]

    def param(self, name: str, default: float) -> float:
        value = self.params.get(name, default)
        return float(value)

    def param_str(self, name: str, default: str) -> str:
        return str(self.params.get(name, default))


def runaway_trace_id(seed: int, incident_id: str) -> str:
    """The trace id of a runaway_trace incident: known to the ground truth without generating traffic."""
    return hashlib.blake2b(f"{seed}:{incident_id}".encode(), digest_size=16).hexdigest()


def _next_version(version: str | None) -> str:
    if version and version[0] == "v" and version[1:].isdigit():
        return f"v{int(version[1:]) + 1}"
    return f"{version or 'v1'}-next"


def resolved_params(
    incident: Incident, apps: Sequence[AppProfile], models: Sequence[ModelProfile]
) -> dict[str, Any]:
    """Incident parameters with defaults filled in: what the generator uses and the ground truth shows."""
    p: dict[str, Any] = dict(incident.params)
    if incident.kind == "provider_outage":
        p.setdefault("fallback_share", 0.5)
        provider = incident.labels.get("provider", "")
        fallback = _FALLBACK_MODEL.get(provider)
        if fallback is None or not any(m.name == fallback for m in models):
            fallback = next((m.name for m in models if m.provider != provider and not m.embedding), "")
        p.setdefault("fallback_model", fallback)
    elif incident.kind == "input_drift":
        p.setdefault("topic", "NovaPay")
        p.setdefault("input_scale", 1.5)
    elif incident.kind == "quality_drop":
        current: str | None = None
        for app in apps:
            if app.name == incident.labels.get("app"):
                for f in app.features:
                    if f.name == incident.labels.get("feature"):
                        current = f.prompt_version
        p.setdefault("prompt_version", _next_version(current))
    return p


def ground_truth_entry(
    incident: Incident, seed: int, apps: Sequence[AppProfile], models: Sequence[ModelProfile]
) -> dict[str, Any]:
    labels = dict(incident.labels)
    params = resolved_params(incident, apps, models)
    if incident.kind == "runaway_trace":
        labels["trace_id"] = runaway_trace_id(seed, incident.id)
    if incident.kind == "quality_drop":
        labels["prompt_version"] = str(params["prompt_version"])
    return {
        "id": incident.id,
        "kind": incident.kind,
        "start": rfc3339(incident.start),
        "end": rfc3339(incident.end),
        "labels": labels,
        "magnitude": incident.magnitude,
        "expected_alertname": EXPECTED_ALERT[incident.kind],
        "secondary_alertnames": list(SECONDARY_ALERTS[incident.kind]),
        "params": params,
    }


def target_has_traffic(
    target: dict[str, str], apps: Sequence[AppProfile], models: Sequence[ModelProfile]
) -> bool:
    by_name = {m.name: m for m in models}
    slices: list[tuple[str, str, str, str]] = []  # (app, feature, provider, model) that carry traffic
    for app in apps:
        for f in app.features:
            for model in f.models:
                mp = by_name.get(model)
                if mp is not None:
                    slices.append((app.name, f.name, mp.provider, model))
    keys = ("app", "feature", "provider", "model")
    return any(all(target.get(k, s[i]) == s[i] for i, k in enumerate(keys)) for s in slices)


def _target_apps(
    target: dict[str, str], apps: Sequence[AppProfile], models: Sequence[ModelProfile]
) -> list[tuple[AppProfile, float]]:
    """Apps that carry the target slice, with their share of all traffic."""
    by_name = {m.name: m for m in models}
    total = sum(a.share for a in apps)
    out: list[tuple[AppProfile, float]] = []
    for app in apps:
        if target.get("app", app.name) != app.name:
            continue
        hit = any(
            target.get("model", model) == model and target.get("provider", mp.provider) == mp.provider
            for f in app.features
            if target.get("feature", f.name) == f.name
            for model in f.models
            if (mp := by_name.get(model)) is not None
        )
        if hit:
            out.append((app, app.share / total))
    return out


def _window_load(carriers: list[tuple[AppProfile, float]], begin: datetime, length: timedelta) -> float:
    """Relative traffic of the target slice over a window: incidents go where they have traffic to act on."""
    points = (begin, begin + length / 2, begin + length)
    return sum(w * app.load_factor(t) for app, w in carriers for t in points)


# Placement priority: kinds whose detection needs the most traffic pick their slot first.
_PLACEMENT_PRIORITY: tuple[IncidentKind, ...] = (
    "traffic_absent",
    "input_drift",
    "quality_drop",
    "latency_regression",
    "cost_spike",
    "error_burst",
    "provider_outage",
    "runaway_trace",
)


def default_incidents(
    start: datetime,
    duration: timedelta,
    apps: Sequence[AppProfile] | None = None,
    models: Sequence[ModelProfile] | None = None,
) -> list[Incident]:
    """One incident of each kind per round, spread over the run with clean gaps between them.

    The first 6 hours (the first day of runs longer than two days) stay clean so detectors have a baseline.
    The rest is cut into equal slots holding one incident of 30-90 minutes each, kept away from the slot
    edges so consecutive incidents are separated by clean traffic. Within a round of 8 slots, each kind
    takes the free slot, and the position in it, where its target has the most traffic (a drift at 4 a.m.
    local time would have nothing to drift). A 1-day run gets one round (2h15m slots, incidents centred);
    a 7-day run two rounds with different targets; every further 3 days add a round. Short runs are
    scaled down.
    """
    from llmpulse.simulate.catalog import DEFAULT_MODELS, default_apps

    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    apps = tuple(apps) if apps is not None else default_apps()
    models = tuple(models) if models is not None else DEFAULT_MODELS
    warmup = timedelta(days=1) if duration > timedelta(days=2) else min(timedelta(hours=6), duration / 4)
    available = duration - warmup
    if available <= timedelta(minutes=8):
        return []
    per_round = len(_PLACEMENT_PRIORITY)
    rounds = max(1, int(available / timedelta(days=3)))
    slot = available / (rounds * per_round)
    step = timedelta(minutes=15)
    out: list[Incident] = []
    for rnd in range(rounds):
        free = list(range(rnd * per_round, (rnd + 1) * per_round))
        for kind in _PLACEMENT_PRIORITY:
            variants = DEFAULT_TARGETS[kind]
            target = None
            for v in range(len(variants)):
                candidate = variants[(rnd + v) % len(variants)]
                if target_has_traffic(candidate, apps, models):
                    target = candidate
                    break
            if target is None:
                continue
            carriers = _target_apps(target, apps, models)
            # Whole minutes keep windows aligned with per-minute aggregates of detectors.
            length = timedelta(
                minutes=max(1, int(min(DEFAULT_DURATION[kind], slot * 0.6) / timedelta(minutes=1)))
            )
            slack = slot - length
            margin = min(slack / 2, max(timedelta(minutes=30), slack * 0.15))
            best: tuple[float, int, datetime] | None = None
            for j in free:
                lo = start + warmup + slot * j + margin
                hi = start + warmup + slot * j + slack - margin
                positions = [lo + step * x for x in range(int((hi - lo) / step) + 1)] or [lo]
                for begin in positions:
                    load = _window_load(carriers, begin, length)
                    if best is None or load > best[0] + 1e-9:
                        best = (load, j, begin)
            assert best is not None
            _, j, begin = best
            free.remove(j)
            begin = begin.replace(second=0, microsecond=0)
            out.append(Incident(kind=kind, start=begin, end=begin + length, labels=dict(target)))
    out.sort(key=lambda inc: inc.start)
    return out
