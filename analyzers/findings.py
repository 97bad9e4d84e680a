"""What analyzers report, and the seam every analyzer plugs into.

An analyzer run produces `Observation`s: "this condition holds for these labels, as of `at`". The findings
engine (analyzers/engine.py) turns the stream of observations into `Finding`s with a lifecycle
(pending → firing → resolved, with a `for` duration before firing), stores them, and hands firing and
resolved findings to the alerting step. Backtests and the scheduler drive the same analyzers through the
same engine, so an analyzer never knows whether it runs live or in a replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from clickhouse_connect.driver.client import Client


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertName(StrEnum):
    """The fixed, public set of alert names (backtest JSON, Alertmanager labels, runbook file names)."""

    COST_SPIKE = "LLMCostSpike"
    LATENCY_REGRESSION = "LLMLatencyRegression"
    LATENCY_SLO_BURN = "LLMLatencySLOBurn"
    PROVIDER_OUTAGE = "LLMProviderOutage"
    ERROR_RATE_HIGH = "LLMErrorRateHigh"
    AVAILABILITY_SLO_BURN = "LLMAvailabilitySLOBurn"
    TRAFFIC_ABSENT = "LLMTrafficAbsent"
    BUDGET_BURN = "LLMBudgetBurn"
    RUNAWAY_TRACE = "LLMRunawayTrace"
    INPUT_DRIFT = "LLMInputDrift"
    OUTPUT_DRIFT = "LLMOutputDrift"
    QUALITY_REGRESSION = "LLMQualityRegression"
    JUDGE_DISAGREEMENT = "LLMJudgeDisagreement"


class FindingState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


# Label keys a finding may carry, in the order they identify it.
FINDING_LABEL_KEYS: tuple[str, ...] = (
    "app",
    "environment",
    "provider",
    "model",
    "feature",
    "prompt_version",
    "trace_id",
    "rubric",
    "drift_feature",
    "session_id",
)


@dataclass(frozen=True, slots=True)
class Observation:
    """One condition that holds now, as one analyzer run saw it.

    Analyzers emit only conditions that currently hold; a finding whose condition an analyzer stops
    observing (in a run that did evaluate its labels) resolves. `for_duration` is how long the condition
    must keep holding before the finding fires (zero fires at once).
    """

    alertname: AlertName
    severity: Severity
    labels: Mapping[str, str]
    at: datetime
    value: float | None
    baseline: float | None
    threshold: float | None
    summary: str
    evidence: str = ""
    for_duration: timedelta = timedelta(0)
    details: Mapping[str, Any] = field(default_factory=dict)
    # A firing finding that a run no longer observes stays firing this long (Prometheus' keep_firing_for):
    # a condition judged on a handful of calls flickers at its threshold, and one incident must stay one page.
    keep_firing_for: timedelta = timedelta(0)

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Identity across runs: the same alert on the same labels is the same finding."""
        return self.alertname.value, tuple(sorted(self.labels.items()))


@dataclass(frozen=True, slots=True)
class AnalysisContext:
    """What an analyzer run gets: the store, the instant it runs "as of", and the rules in force."""

    client: Client
    at: datetime
    rules: Any  # analyzers.rules.Rules once defined; kept loose so analyzers can be built in parallel
    dashboard_base_url: str = ""
    # analyzers.series.SeriesSource to read rollups through (a preloaded one in backtests); None = live.
    source: Any = None


@dataclass(frozen=True, slots=True)
class AnalyzerResult:
    """Observations, plus the label sets the analyzer evaluated (so the engine knows what may resolve)."""

    observations: Sequence[Observation]
    evaluated: Sequence[Mapping[str, str]] | None = None  # None: everything this analyzer owns was evaluated


class Analyzer(Protocol):
    """A scheduled analysis. `alertnames` lists what it can emit, so the engine can resolve them."""

    name: str
    alertnames: tuple[AlertName, ...]
    interval: timedelta

    def run(self, ctx: AnalysisContext) -> AnalyzerResult: ...
