"""Scheduled analysis inside `llmpulse serve`: one APScheduler job per analyzer interval.

    sched = start_scheduler(client, settings)            # returns once the jobs are scheduled
    ...
    sched.stop()                                          # waits for running jobs

Each job runs its analyzers as of `now - analyzers_lag_seconds` (rounded down to the minute, so events that
arrive a little late are in the window) through the shared `Engine`, which stores findings in ClickHouse.
Jobs never overlap themselves (max_instances=1) and a missed run is coalesced into one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from clickhouse_connect.driver.client import Client

from analyzers.engine import ClickHouseFindingStore, Engine, Listener, RunReport
from analyzers.findings import AnalysisContext, Analyzer
from analyzers.registry import build_analyzers
from analyzers.rules import Rules, load_rules
from analyzers.series import floor_minute
from llmpulse.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_RULES_FILE = Path("llmpulse.yaml")


def rules_from_settings(settings: Settings) -> Rules:
    """The rules file named in settings, else ./llmpulse.yaml when present, else the defaults."""
    path = settings.analyzers_rules_file
    if path is None and DEFAULT_RULES_FILE.is_file():
        path = DEFAULT_RULES_FILE
    return load_rules(path)


def dashboard_base_url(settings: Settings) -> str:
    return settings.analyzers_dashboard_base_url or getattr(settings, "alert_dashboard_base_url", "") or ""


class AnalyzerScheduler:
    """The engine plus the background jobs that feed it; `run_once` runs every analyzer now (or as of `at`)."""

    def __init__(
        self,
        client: Client,
        settings: Settings,
        *,
        rules: Rules | None = None,
        analyzers: Sequence[Analyzer] | None = None,
        engine: Engine | None = None,
        listeners: Sequence[Listener] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.settings = settings
        self.rules = rules if rules is not None else rules_from_settings(settings)
        self.analyzers = list(analyzers) if analyzers is not None else build_analyzers(
            settings, plugins=settings.analyzers_plugins
        )
        self.engine = engine or Engine(ClickHouseFindingStore(client), listeners=listeners)
        self.clock = clock
        self.lag = timedelta(seconds=settings.analyzers_lag_seconds)
        self.dashboard_base_url = dashboard_base_url(settings)
        self._scheduler: BackgroundScheduler | None = None

    def as_of_now(self) -> datetime:
        return floor_minute(self.clock() - self.lag)

    def run_analyzers(self, analyzers: Sequence[Analyzer], at: datetime | None = None) -> list[RunReport]:
        at = floor_minute(at) if at is not None else self.as_of_now()
        ctx = AnalysisContext(client=self.client, at=at, rules=self.rules, dashboard_base_url=self.dashboard_base_url)
        reports = [self.engine.run(a, ctx) for a in analyzers]
        for r in reports:
            if r.changed:
                log.info("%s at %s: %d finding(s) changed state", r.analyzer, at, len(r.changed))
        return reports

    def run_once(self, at: datetime | None = None) -> list[RunReport]:
        return self.run_analyzers(self.analyzers, at)

    def start(self) -> None:
        if self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        by_interval: dict[timedelta, list[Analyzer]] = {}
        for a in self.analyzers:
            by_interval.setdefault(a.interval, []).append(a)
        for interval, group in sorted(by_interval.items()):
            names = ",".join(a.name for a in group)
            scheduler.add_job(
                self.run_analyzers,
                IntervalTrigger(seconds=max(1, int(interval.total_seconds())), timezone=UTC),
                args=[group],
                id=f"analyzers-{int(interval.total_seconds())}s",
                name=f"analyzers every {interval}: {names}",
                next_run_time=datetime.now(UTC) + timedelta(seconds=2),
                misfire_grace_time=int(interval.total_seconds()),
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("analyzer scheduler started: %s", ", ".join(f"{a.name}/{a.interval}" for a in self.analyzers))

    def stop(self, wait: bool = True) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=wait)
            self._scheduler = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running


def start_scheduler(
    client: Client,
    settings: Settings,
    *,
    rules: Rules | None = None,
    analyzers: Sequence[Analyzer] | None = None,
    listeners: Sequence[Listener] = (),
) -> AnalyzerScheduler:
    """Build the engine and start one background job per analyzer interval; call `.stop()` on shutdown.

    `client` must be a migrated store (runtime.open_store). `listeners` receive every batch of findings
    that started firing or resolved (e.g. the alert dispatcher). Raises RulesError for a bad rules file.
    """
    sched = AnalyzerScheduler(client, settings, rules=rules, analyzers=analyzers, listeners=listeners)
    sched.start()
    return sched
