"""The findings lifecycle, driven by a scripted analyzer (no store needed: the engine's store is an interface)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analyzers.engine import Engine, Finding, MemoryFindingStore
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, FindingState, Observation, Severity

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


class Scripted:
    name = "scripted"
    alertnames: tuple[AlertName, ...] = (AlertName.ERROR_RATE_HIGH,)
    interval = timedelta(minutes=5)

    def __init__(self) -> None:
        self.next: list[Observation] = []
        self.evaluated: Sequence[dict[str, str]] | None = None
        self.fail = False

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        if self.fail:
            raise RuntimeError("store unreachable")
        return AnalyzerResult([o for o in self.next], self.evaluated)


def obs(at: datetime, app: str = "support-bot", *, value: float = 0.2, severity: Severity = Severity.WARNING,
        for_: timedelta = STEP) -> Observation:
    return Observation(
        alertname=AlertName.ERROR_RATE_HIGH, severity=severity, labels={"environment": "prod", "app": app}, at=at,
        value=value, baseline=0.01, threshold=0.05, summary=f"{app} fails", for_duration=for_,
    )


def run(engine: Engine, analyzer: Scripted, at: datetime, *observations: Observation) -> list[Finding]:
    analyzer.next = list(observations)
    report = engine.run(analyzer, AnalysisContext(client=None, at=at, rules=None))  # type: ignore[arg-type]
    return report.changed


def test_pending_then_firing_after_for_then_resolved() -> None:
    store = MemoryFindingStore()
    engine = Engine(store)
    a = Scripted()
    assert run(engine, a, T0, obs(T0)) == []
    (pending,) = engine.open_findings()
    assert pending.state == FindingState.PENDING and pending.fired_at is None
    (fired,) = run(engine, a, T0 + STEP, obs(T0 + STEP, value=0.3))
    assert fired.state == FindingState.FIRING
    assert fired.fired_at == T0 + STEP
    assert fired.first_seen == T0
    assert fired.observation.value == 0.3
    assert fired.finding_id == pending.finding_id  # the same finding, updated, not a second one
    (resolved,) = run(engine, a, T0 + 2 * STEP)
    assert resolved.state == FindingState.RESOLVED and resolved.resolved_at == T0 + 2 * STEP
    assert engine.open_findings() == []
    assert len(store.episodes) == 1


def test_a_blip_shorter_than_for_never_fires() -> None:
    store = MemoryFindingStore()
    engine = Engine(store)
    a = Scripted()
    run(engine, a, T0, obs(T0))
    assert run(engine, a, T0 + STEP) == []  # cancelled, no transition to report
    (episode,) = store.episodes.values()
    assert episode.state == FindingState.RESOLVED and episode.fired_at is None


def test_zero_for_fires_at_once_and_a_recurrence_is_a_new_episode() -> None:
    store = MemoryFindingStore()
    engine = Engine(store)
    a = Scripted()
    (first,) = run(engine, a, T0, obs(T0, for_=timedelta(0)))
    assert first.state == FindingState.FIRING
    run(engine, a, T0 + STEP)
    (second,) = run(engine, a, T0 + 2 * STEP, obs(T0 + 2 * STEP, for_=timedelta(0)))
    assert second.finding_id != first.finding_id
    assert len(store.episodes) == 2


def test_severity_follows_the_latest_observation_and_peak_is_kept() -> None:
    engine = Engine(MemoryFindingStore())
    a = Scripted()
    run(engine, a, T0, obs(T0))
    run(engine, a, T0 + STEP, obs(T0 + STEP, severity=Severity.CRITICAL))
    run(engine, a, T0 + 2 * STEP, obs(T0 + 2 * STEP, severity=Severity.WARNING))
    (f,) = engine.open_findings()
    assert f.severity == Severity.WARNING and f.peak_severity == Severity.CRITICAL


def test_only_evaluated_labels_resolve() -> None:
    engine = Engine(MemoryFindingStore())
    a = Scripted()
    run(engine, a, T0, obs(T0, "support-bot"), obs(T0, "search-rag"))
    a.evaluated = [{"app": "search-rag"}]  # this run looked at search-rag only
    run(engine, a, T0 + STEP)
    assert [f.labels["app"] for f in engine.open_findings()] == ["support-bot"]


def test_a_failing_analyzer_resolves_nothing_and_listeners_hear_transitions() -> None:
    heard: list[list[str]] = []
    engine = Engine(MemoryFindingStore(), listeners=[lambda fs: heard.append([f.state.value for f in fs])])
    a = Scripted()
    run(engine, a, T0, obs(T0, for_=timedelta(0)))
    a.fail = True
    report = engine.run(a, AnalysisContext(client=None, at=T0 + STEP, rules=None))  # type: ignore[arg-type]
    assert report.error and "store unreachable" in report.error
    assert len(engine.open_findings()) == 1
    a.fail = False
    run(engine, a, T0 + 2 * STEP)
    assert heard == [["firing"], ["resolved"]]


def test_state_survives_a_restart_through_the_store() -> None:
    store = MemoryFindingStore()
    a = Scripted()
    run(Engine(store), a, T0, obs(T0))
    restarted = Engine(store)
    (fired,) = run(restarted, a, T0 + STEP, obs(T0 + STEP))
    assert fired.first_seen == T0


def test_an_analyzer_cannot_emit_someone_elses_alert() -> None:
    engine = Engine(MemoryFindingStore())
    a = Scripted()
    bad: Any = Observation(
        alertname=AlertName.COST_SPIKE, severity=Severity.WARNING, labels={"app": "x"}, at=T0, value=1.0,
        baseline=1.0, threshold=1.0, summary="x",
    )
    with pytest.raises(ValueError, match="not in its alertnames"):
        engine.apply(a, AnalyzerResult([bad]), T0)


def test_a_second_engine_on_the_same_store_continues_the_open_episode() -> None:
    # The scheduler and a manual `llmpulse analyze` on one store: one finding (and one page) per condition.
    store = MemoryFindingStore()
    scheduler, manual = Engine(store), Engine(store)
    a = Scripted()
    run(scheduler, a, T0, obs(T0))
    (fired,) = run(manual, a, T0 + STEP, obs(T0 + STEP))
    (opened,) = store.load_open()
    assert fired.finding_id == opened.finding_id and fired.first_seen == T0
    assert fired.state == FindingState.FIRING
    assert run(scheduler, a, T0 + 2 * STEP, obs(T0 + 2 * STEP)) == []  # already firing: no second page
    assert len(store.episodes) == 1
