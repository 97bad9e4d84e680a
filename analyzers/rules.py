"""Analyzer rules: sensible defaults, overridable globally and per app in a YAML file (`llmpulse.yaml`).

    defaults:                 # every app (and provider-level checks) unless overridden
      latency: {ratio: 1.5}
    apps:
      support-bot:
        cost: {spike_ratio: 3}
        budget: {daily_usd: 50}
        slo: {availability: 0.995, latency_threshold_ms: 8000, latency_objective: 0.99}
    baseline: {seasonal_days: 7, seasonal_weeks: 4}
    tests: {alpha: 0.001, method: bh}

Per-app sections are merged key by key over `defaults`. Mistakes are reported with the file, the line and
the path of the offending key (`llmpulse.yaml:7: apps.support-bot.cost.spike_ratio: ...`).
"""

from __future__ import annotations

import copy
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError

from llmpulse.simulate.traffic import parse_duration


def _duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 5m, 1h or 2d")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        if value.strip() in ("0", "0s", "0m", "0h"):
            return timedelta(0)
        return parse_duration(value)
    raise ValueError("expected a duration such as 5m, 1h or 2d")


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[timedelta, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str)]


# Detectors fire as soon as the evidence suffices (no `for` hold); a finding then outlives one run that no
# longer sees it by this much, so a condition at its threshold is one episode, not a flicker of pages.
KEEP_FIRING_FOR = timedelta(minutes=10)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CostRules(_Section):
    enabled: bool = True
    window: Duration = Field(default=timedelta(minutes=5), description="Shortest window a slice is judged over.")
    max_window: Duration = Field(
        default=timedelta(hours=6), description="Longest: a quiet slice is judged over the shortest that has the calls."
    )
    spike_ratio: float = Field(default=2.0, gt=1, description="Cost per request vs baseline that counts.")
    critical_ratio: float = Field(default=5.0, gt=1)
    # Per-call cost is long-tailed, so a mean of a dozen calls is skewed and a normal tail at z = 4 is far too
    # optimistic; z >= 6 keeps quiet slices calibrated while a 4x spike over 10 calls still reaches z ~ 9.
    min_z: float = Field(default=6.0, gt=0, description="z of the window's mean against the baseline per-call spread.")
    min_requests: int = Field(default=10, ge=3, description="Priced requests the window must hold (it widens).")
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = Field(default=KEEP_FIRING_FOR, description="Stays firing this long unobserved.")
    spend_window: Duration = timedelta(minutes=10)
    spend_max_window: Duration = timedelta(hours=6)
    spend_spike_ratio: float = Field(default=2.0, gt=1, description="App spend rate vs seasonal baseline.")
    spend_min_requests: int = Field(default=100, ge=1, description="Requests the seasonal windows must expect.")
    spend_for: Duration = timedelta(0)


class LatencyRules(_Section):
    enabled: bool = True
    window: Duration = Field(default=timedelta(minutes=5), description="Shortest window a slice is judged over.")
    max_window: Duration = timedelta(hours=6)
    ratio: float = Field(default=1.5, gt=1, description="p50 or p95 vs baseline that counts as slower.")
    critical_ratio: float = Field(default=3.0, gt=1)
    min_delta_ms: float = Field(default=100.0, ge=0, description="Ignore regressions smaller than this.")
    min_samples: int = Field(default=8, ge=3, description="Successful calls the window must hold (it widens).")
    min_baseline_samples: int = Field(default=50, ge=10)
    trailing: Duration = timedelta(hours=2)
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = Field(default=KEEP_FIRING_FOR, description="Stays firing this long unobserved.")


class ErrorRules(_Section):
    enabled: bool = True
    window: Duration = Field(default=timedelta(minutes=5), description="Shortest window a slice is judged over.")
    max_window: Duration = timedelta(hours=6)
    min_ratio: float = Field(default=0.05, gt=0, lt=1, description="Error ratio that can count as high.")
    baseline_multiplier: float = Field(default=3.0, ge=1, description="... and at least this x baseline.")
    critical_ratio: float = Field(default=0.25, gt=0, le=1)
    min_requests: int = Field(default=20, ge=1, description="Calls the window must hold (it widens).")
    min_errors: int = Field(default=4, ge=1)
    trailing: Duration = timedelta(hours=1)
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = Field(default=KEEP_FIRING_FOR, description="Stays firing this long unobserved.")


# Error types that say the request was wrong, not the provider (after the collector's normalization of
# instrumentation class names): they never count toward an outage.
CLIENT_ERROR_TYPES: tuple[str, ...] = (
    "invalid_request",
    "bad_request",
    "authentication",
    "permission_denied",
    "not_found",
    "conflict",
    "unprocessable_entity",
    "context_length_exceeded",
    "content_filter",
    "quota_exceeded",
    "cancelled",
)


class OutageRules(_Section):
    enabled: bool = True
    window: Duration = Field(default=timedelta(minutes=3), description="Shortest window a model is judged over.")
    max_window: Duration = Field(default=timedelta(hours=2), description="Longest: a quiet model's window widens.")
    min_error_ratio: float = Field(default=0.5, gt=0, le=1, description="'Most calls fail'.")
    min_requests: int = Field(default=6, ge=1, description="Calls the window must hold (it widens).")
    min_errors: int = Field(default=4, ge=1)
    client_error_types: tuple[str, ...] = CLIENT_ERROR_TYPES
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = Field(default=KEEP_FIRING_FOR, description="Stays firing this long unobserved.")


class AbsenceRules(_Section):
    enabled: bool = True
    window: Duration = Field(default=timedelta(minutes=5), description="Shortest window a slice is judged over.")
    max_window: Duration = Field(default=timedelta(hours=6), description="Longest: quiet slices widen to this.")
    max_ratio: float = Field(default=0.1, ge=0, lt=1, description="Observed/expected at or below this.")
    min_expected: float = Field(default=10.0, gt=0, description="Expected calls the window must hold (it widens).")
    trailing: Duration = timedelta(hours=3)
    recent: Duration = Field(default=timedelta(hours=24), description="Must have had traffic this recently.")
    levels: tuple[Literal["app", "feature", "model"], ...] = ("app", "feature", "model")
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = Field(default=KEEP_FIRING_FOR, description="Stays firing this long unobserved.")


class RunawayRules(_Section):
    enabled: bool = True
    window: Duration = timedelta(minutes=30)
    idle: Duration = Field(default=timedelta(minutes=5), description="Over once the key is quiet this long.")
    min_calls: int = Field(default=50, ge=2)
    min_tokens: int = Field(default=2_000_000, ge=1)
    min_cost_usd: float = Field(default=20.0, gt=0)
    multiplier: float = Field(default=5.0, gt=1, description="x the p99.9 of a normal key's hour.")
    baseline: Duration = timedelta(hours=6)
    keys: tuple[Literal["trace_id", "session_id"], ...] = ("trace_id", "session_id")
    for_: Duration = Field(default=timedelta(0), alias="for")


class BudgetRules(_Section):
    daily_usd: float | None = Field(default=None, gt=0)
    monthly_usd: float | None = Field(default=None, gt=0)
    projection_window: Duration = Field(default=timedelta(hours=1), description="Spend rate to project.")


class SLORules(_Section):
    availability: float | None = Field(default=None, gt=0, lt=1, description="e.g. 0.995")
    latency_threshold_ms: float | None = Field(default=None, gt=0)
    latency_objective: float | None = Field(default=None, gt=0, lt=1, description="Share under threshold.")


class AppRules(_Section):
    cost: CostRules = CostRules()
    latency: LatencyRules = LatencyRules()
    errors: ErrorRules = ErrorRules()
    outage: OutageRules = OutageRules()
    absence: AbsenceRules = AbsenceRules()
    runaway: RunawayRules = RunawayRules()
    budget: BudgetRules = BudgetRules()
    slo: SLORules = SLORules()


class BaselineRules(_Section):
    seasonal_days: int = Field(default=7, ge=0, le=28, description="Same window on each previous day.")
    seasonal_weeks: int = Field(default=4, ge=0, le=8, description="Same weekday, weeks 2..N back.")
    min_seasonal_points: int = Field(default=3, ge=1, description="Else fall back to the trailing window.")


class TestingRules(_Section):
    alpha: float = Field(default=0.0001, gt=0, lt=1, description="Per-run false discovery rate.")
    method: Literal["bh", "holm", "none"] = "bh"


DEFAULT_EXCLUDED_OPERATIONS: tuple[str, ...] = ("execute_tool", "invoke_agent")


class Rules(_Section):
    defaults: AppRules = AppRules()
    apps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    baseline: BaselineRules = BaselineRules()
    tests: TestingRules = TestingRules()
    exclude_operations: tuple[str, ...] = Field(
        default=DEFAULT_EXCLUDED_OPERATIONS,
        description="Operations that are not model calls (tool runs, agent spans): left out of LLM stats.",
    )
    plugins: dict[str, Any] = Field(default_factory=dict, description="Free-form sections for plugins.")
    source: str = "defaults"

    @cached_property
    def _per_app(self) -> dict[str, AppRules]:
        base = self.defaults.model_dump(by_alias=True)
        out: dict[str, AppRules] = {}
        for app, override in self.apps.items():
            out[app] = AppRules.model_validate(_deep_merge(copy.deepcopy(base), override))
        return out

    def for_app(self, app: str) -> AppRules:
        return self._per_app.get(app, self.defaults)

    def all_app_rules(self) -> list[AppRules]:
        return [self.defaults, *self._per_app.values()]


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


class RulesError(ValueError):
    """The rules file cannot be used; the message names the file, line and key."""


def _key_lines(node: yaml.Node, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            lines[key] = key_node.start_mark.line + 1
            for sub, line in _key_lines(value_node, key).items():
                if sub != key:
                    lines[sub] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update({k: v for k, v in _key_lines(item, (*path, str(i))).items() if k != path})
    return lines


def _line_of(lines: dict[tuple[str, ...], int], loc: tuple[str, ...]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _describe(exc: ValidationError, where: str, lines: dict[tuple[str, ...], int], prefix: tuple[str, ...]) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = (*prefix, *(str(p) for p in err["loc"]))
        line = _line_of(lines, loc)
        at = f"{where}:{line}" if line else where
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (see docs/analyzers.md for the rules reference)"
        parts.append(f"{at}: {'.'.join(loc) or '<top>'}: {msg}")
    return "\n".join(parts)


def parse_rules(text: str, *, where: str = "<rules>") -> Rules:
    """Rules from YAML text; `where` names the source in error messages."""
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{where}: not valid YAML: {exc}") from None
    if raw is None:
        return Rules(source=where)
    if not isinstance(raw, dict):
        raise RulesError(f"{where}:1: expected a mapping with defaults/apps/baseline/tests at the top")
    lines = _key_lines(node) if node is not None else {}
    try:
        rules = Rules.model_validate({**raw, "source": where})
    except ValidationError as exc:
        raise RulesError(_describe(exc, where, lines, ())) from None
    # Validate each app's merged rules now, so a typo in an app section fails at load, with its line.
    base = rules.defaults.model_dump(by_alias=True)
    for app, override in rules.apps.items():
        if not isinstance(override, dict):
            line = _line_of(lines, ("apps", app))
            raise RulesError(f"{where}:{line}: apps.{app}: expected a mapping of sections (cost, latency, ...)")
        try:
            AppRules.model_validate(_deep_merge(copy.deepcopy(base), override))
        except ValidationError as exc:
            raise RulesError(_describe(exc, where, lines, ("apps", app))) from None
    return rules


def load_rules(path: Path | None) -> Rules:
    """Rules from a file, or the defaults when `path` is None. A named file that is missing is an error."""
    if path is None:
        return Rules()
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror or exc}") from None
    return parse_rules(text, where=str(path))
