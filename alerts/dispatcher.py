"""Delivers alert states to Alertmanager the way Prometheus does, and records their history.

- Every state change (an alert starts firing, or resolves) is recorded in the history and sent at once
  to every configured Alertmanager (an HA pair gets both copies; Alertmanager deduplicates).
- Every `resend_interval` all tracked alerts are sent again: firing ones with endsAt four intervals
  ahead (so Alertmanager resolves them by itself if llmpulse dies), resolved ones with endsAt = the
  resolution time, for `resolved_retention` after they resolved.
- Per Alertmanager, the dispatcher remembers which version of each alert it has accepted. An
  Alertmanager that is down or erroring keeps its undelivered alerts queued and is retried with
  exponential backoff; a resolved alert is forgotten only once every Alertmanager has accepted it, even
  past its retention, so no state change is dropped. Each Alertmanager has its own worker thread, so a
  hung one does not delay the other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.history import AlertHistory, AlertRecord, record_of
from alerts.metrics import AlertMetrics
from alerts.model import AlertState, AlertStatus, FindingsSource
from alerts.payload import AlertLinks, alert_annotations, to_alertmanager
from alerts.sender import AlertSink, DeliveryError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Tracked:
    state: AlertState
    version: int  # bumped at every transition; an Alertmanager is up to date when it accepted this version


@dataclass(slots=True)
class _Target:
    sink: AlertSink
    acked: dict[str, int] = field(default_factory=dict)
    next_full_at: datetime | None = None  # None: a full send is due now
    retry_at: datetime | None = None
    failures: int = 0
    last_error: str = ""
    last_success: datetime | None = None
    send_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True, slots=True)
class TargetStatus:
    name: str
    undelivered: int
    consecutive_failures: int
    last_error: str
    last_success: datetime | None
    retry_at: datetime | None


def _transition(current: AlertState | None, incoming: AlertState) -> str:
    """'new' (a state change to send and record), 'refresh' (same state, newer numbers) or 'stale'."""
    if current is None:
        return "new"
    if incoming.started_at > current.started_at:
        return "new"  # a new episode of the same alert
    if incoming.started_at < current.started_at:
        return "stale"
    if current.status is incoming.status:
        return "refresh"
    # Same episode: firing → resolved is the transition; resolved → firing is an out-of-order report.
    return "new" if incoming.status is AlertStatus.RESOLVED else "stale"


class AlertDispatcher:
    """Sends alert states to Alertmanager(s) with Prometheus' resend contract, retries, and history.

    Use: `dispatch(states)` whenever the findings engine reports firing/resolved findings (unchanged
    states may be re-dispatched: only transitions are recorded and sent at once); `start()` for a
    long-running process (resends and retries in the background), `stop()` at shutdown; `flush()` in a
    one-shot run to deliver now. Zero sinks is valid: alerts are only recorded in the history.
    """

    def __init__(
        self,
        sinks: Sequence[AlertSink],
        links: AlertLinks,
        *,
        resend_interval: timedelta = timedelta(minutes=1),
        resolved_retention: timedelta = timedelta(minutes=15),
        clock: Clock = utc_now,
        history: AlertHistory | None = None,
        metrics: AlertMetrics | None = None,
        retry_initial: timedelta = timedelta(seconds=1),
        retry_max: timedelta | None = None,
        batch_size: int = 64,
    ) -> None:
        if resend_interval <= timedelta(0):
            raise ValueError(f"resend_interval must be positive, got {resend_interval}")
        if resolved_retention < timedelta(0):
            raise ValueError(f"resolved_retention must not be negative, got {resolved_retention}")
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"the same Alertmanager is configured twice: {names}")
        self.links = links
        self.resend_interval = resend_interval
        self.resolved_retention = resolved_retention
        self.clock = clock
        self.history = history
        self.metrics = metrics or AlertMetrics()
        self.retry_initial = retry_initial
        self.retry_max = retry_max if retry_max is not None else max(resend_interval, retry_initial)
        self.batch_size = batch_size
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._tracked: dict[str, _Tracked] = {}
        self._targets = [_Target(sink) for sink in sinks]
        self._pending_history: list[AlertRecord] = []
        self._history_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._stop_event = threading.Event()

    # -- input ---------------------------------------------------------------------------------------

    def dispatch(self, states: Iterable[AlertState]) -> list[AlertState]:
        """Take the latest states; returns the transitions among them (recorded, and sent at once): an alert
        that starts firing, resolves, or fires with a new severity."""
        now = self.clock()
        changed: list[AlertState] = []
        recorded: list[AlertState] = []
        with self._lock:
            for state in states:
                fingerprint = state.fingerprint
                current = self._tracked.get(fingerprint)
                kind = _transition(current.state if current else None, state)
                if kind == "stale":
                    continue
                if current is not None and current.state.firing and current.state.severity is not state.severity:
                    # Severity is a label: the new severity is another alert for Alertmanager. Resolve the old
                    # one explicitly instead of letting it linger until its endsAt.
                    self._retire(current.state, now)
                    if kind == "refresh":
                        kind = "severity"
                if kind == "new":
                    self._tracked[fingerprint] = _Tracked(state, (current.version + 1) if current else 1)
                    changed.append(state)
                    recorded.append(state)
                elif kind == "severity" and current is not None:
                    # For Alertmanager a new alert starts firing; the episode's history row shows the new severity.
                    self._tracked[fingerprint] = _Tracked(state, current.version + 1)
                    changed.append(state)
                    recorded.append(state)
                elif current is not None:
                    current.state = state
            for state in recorded:
                self._pending_history.append(self._record(state, now))
            for state in changed:
                self.metrics.transitions.labels(state.alertname.value, state.status.value).inc()
            self._prune(now)
            self._update_gauges()
            if recorded:
                self._wake.notify_all()
        self._write_history()
        return changed

    def _retire(self, old: AlertState, now: datetime) -> None:
        """Track a resolved copy of `old` under its own key, so every Alertmanager gets it resolved."""
        key = f"{old.fingerprint}~{old.severity.value}"
        previous = self._tracked.get(key)
        resolved = old.resolve(max(now, old.started_at))
        self._tracked[key] = _Tracked(resolved, (previous.version + 1) if previous else 1)

    def sync(self, source: FindingsSource) -> list[AlertState]:
        """Catch up with the findings: everything firing, and what fired or resolved within the resolved
        retention. For a restart of `serve` and for each `analyze` run; returns the transitions."""
        since = self.clock() - self.resolved_retention
        return self.dispatch([*source.active(), *source.changed_since(since)])

    def _record(self, state: AlertState, now: datetime) -> AlertRecord:
        annotations = alert_annotations(state, self.links, now=now)
        return record_of(
            state, recorded_at=now, summary=annotations["summary"], description=annotations["description"],
            runbook_url=annotations["runbook_url"], dashboard_url=annotations["dashboard_url"],
            generator_url=self.links.generator_url(state),
        )

    def _write_history(self) -> None:
        if self.history is None:
            with self._lock:
                self._pending_history.clear()
            return
        with self._history_lock:
            with self._lock:
                batch, self._pending_history = self._pending_history, []
            if not batch:
                return
            try:
                self.history.record(batch)
            except Exception as exc:  # the store being down must not stop delivery to Alertmanager
                self.metrics.history_failures.inc()
                log.warning("could not record %d alert transition(s) in ClickHouse (will retry): %s", len(batch), exc)
                with self._lock:
                    self._pending_history[:0] = batch

    # -- delivery ------------------------------------------------------------------------------------

    def _deliver(self, target: _Target, now: datetime, *, force: bool) -> bool:
        """One attempt for one Alertmanager. `force`: send everything now, ignoring backoff.
        Returns True when that Alertmanager is up to date afterwards."""
        with target.send_lock:
            with self._lock:
                if not force and target.retry_at is not None and now < target.retry_at:
                    return False
                full = force or target.next_full_at is None or now >= target.next_full_at
                entries = [
                    (fingerprint, tracked.state, tracked.version)
                    for fingerprint, tracked in self._tracked.items()
                    if full or target.acked.get(fingerprint, 0) < tracked.version
                ]
            name = target.sink.name
            for start in range(0, len(entries), self.batch_size):
                chunk = entries[start : start + self.batch_size]
                payload = [
                    to_alertmanager(state, self.links, now=now, resend_interval=self.resend_interval)
                    for _, state, _ in chunk
                ]
                began = time.perf_counter()
                try:
                    target.sink.post(payload)
                except Exception as exc:
                    reason = exc.reason if isinstance(exc, DeliveryError) else "error"
                    self._failed(target, now, reason, str(exc), queued=len(entries) - start)
                    return False
                finally:
                    self.metrics.send_seconds.labels(name).observe(time.perf_counter() - began)
                self.metrics.alerts_sent.labels(name).inc(len(chunk))
                with self._lock:
                    for fingerprint, _, version in chunk:
                        if target.acked.get(fingerprint, 0) < version:
                            target.acked[fingerprint] = version
            with self._lock:
                if target.failures:
                    log.info("alertmanager %s accepts alerts again (after %d failed attempt(s))", name, target.failures)
                target.failures = 0
                target.retry_at = None
                target.last_error = ""
                if entries:
                    target.last_success = now
                    self.metrics.last_success.labels(name).set(now.timestamp())
                if full:
                    target.next_full_at = now + self.resend_interval
                self._prune(now)
                self._update_gauges()
            return True

    def _failed(self, target: _Target, now: datetime, reason: str, message: str, *, queued: int) -> None:
        with self._lock:
            target.failures += 1
            backoff = min(self.retry_max, self.retry_initial * (2 ** min(target.failures - 1, 30)))
            target.retry_at = now + backoff
            target.last_error = message
            self.metrics.send_failures.labels(target.sink.name, reason).inc()
            self._update_gauges()
            failures = target.failures
        # Loud on the first failure, then once in a while: an outage of Alertmanager can last hours.
        if failures == 1 or failures % 10 == 0:
            log.warning(
                "alertmanager %s: %s; %d alert(s) stay queued, retrying in %.0fs (attempt %d failed)",
                target.sink.name, message, queued, backoff.total_seconds(), failures,
            )

    def _prune(self, now: datetime) -> None:
        """Forget resolved alerts past their retention that every Alertmanager has accepted."""
        for fingerprint in [fp for fp, t in self._tracked.items() if not t.state.firing]:
            tracked = self._tracked[fingerprint]
            resolved_at = tracked.state.resolved_at or now
            if now < resolved_at + self.resolved_retention:
                continue
            if all(target.acked.get(fingerprint, 0) >= tracked.version for target in self._targets):
                del self._tracked[fingerprint]
                for target in self._targets:
                    target.acked.pop(fingerprint, None)

    def _update_gauges(self) -> None:
        firing = sum(1 for t in self._tracked.values() if t.state.firing)
        self.metrics.alerts_tracked.labels("firing").set(firing)
        self.metrics.alerts_tracked.labels("resolved").set(len(self._tracked) - firing)
        for target in self._targets:
            self.metrics.undelivered.labels(target.sink.name).set(self._undelivered(target))
            self.metrics.consecutive_failures.labels(target.sink.name).set(target.failures)

    def _undelivered(self, target: _Target) -> int:
        return sum(1 for fp, t in self._tracked.items() if target.acked.get(fp, 0) < t.version)

    def _next_due(self, target: _Target, now: datetime) -> float:
        if target.retry_at is not None:
            return max(0.0, (target.retry_at - now).total_seconds())
        if target.next_full_at is None or self._undelivered(target):
            return 0.0
        return max(0.0, (target.next_full_at - now).total_seconds())

    def run_pending(self) -> bool:
        """One delivery round to every Alertmanager that is due (what the workers do; for tests and
        callers that drive time themselves). True when every Alertmanager is up to date."""
        now = self.clock()
        results = [self._deliver(target, now, force=False) for target in self._targets]
        self._write_history()
        with self._lock:
            return all(results) and not any(self._undelivered(t) for t in self._targets)

    def flush(self, timeout: float = 30.0) -> bool:
        """Send every tracked alert to every Alertmanager now, retrying failed ones with backoff until
        `timeout` seconds have passed. True when all accepted; False leaves the rest queued."""
        deadline = time.monotonic() + timeout
        remaining = list(self._targets)
        while True:
            now = self.clock()
            remaining = [t for t in remaining if not self._deliver(t, now, force=True)]
            self._write_history()
            if not remaining:
                return True
            with self._lock:
                wait = min((t.retry_at - now).total_seconds() for t in remaining if t.retry_at is not None)
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(max(0.01, min(wait, left)))

    # -- background workers --------------------------------------------------------------------------

    def start(self, source: FindingsSource | None = None) -> None:
        """One worker thread per Alertmanager (immediate sends, resends, retries) and, with a `source`,
        one that calls `sync(source)` every resend interval: the engine tells its listeners only about
        transitions, so this is what picks up a severity that escalated, fresher numbers for the
        annotations, and anything a listener call missed."""
        with self._lock:
            if self._threads:
                return
            self._stopping = False
            self._stop_event.clear()
            for target in self._targets:
                thread = threading.Thread(
                    target=self._run, args=(target,), name=f"alerts-{target.sink.name}", daemon=True
                )
                self._threads.append(thread)
            if source is not None:
                self._threads.append(
                    threading.Thread(target=self._sync_loop, args=(source,), name="alerts-sync", daemon=True)
                )
        for thread in self._threads:
            thread.start()

    def _sync_loop(self, source: FindingsSource) -> None:
        while True:
            try:
                self.sync(source)
            except Exception:  # the store may be briefly unavailable; the next round catches up
                log.exception("could not read findings for alerting (will retry)")
            if self._stop_event.wait(timeout=self.resend_interval.total_seconds()):
                return

    def _run(self, target: _Target) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
            try:
                self._deliver(target, self.clock(), force=False)
            except Exception:  # a bug must not silently end delivery
                log.exception("alert delivery to %s failed unexpectedly", target.sink.name)
            with self._lock:
                if self._stopping:
                    return
                delay = self._next_due(target, self.clock())
                if delay > 0:
                    self._wake.wait(timeout=min(delay, 3600.0))

    def stop(self, flush_timeout: float = 5.0) -> bool:
        """Stop the workers, then try for up to `flush_timeout` s to deliver what is still queued.
        Returns True when nothing was left undelivered."""
        with self._lock:
            self._stopping = True
            self._stop_event.set()
            self._wake.notify_all()
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()
        with self._lock:
            pending = [t for t in self._targets if self._undelivered(t)]
        delivered = True
        if pending and flush_timeout > 0:
            delivered = self.flush(timeout=flush_timeout)
        elif pending:
            delivered = False
        self._write_history()
        return delivered

    # -- inspection ----------------------------------------------------------------------------------

    def tracked(self) -> list[AlertState]:
        with self._lock:
            return [t.state for t in self._tracked.values()]

    def status(self) -> list[TargetStatus]:
        with self._lock:
            return [
                TargetStatus(
                    name=t.sink.name,
                    undelivered=self._undelivered(t),
                    consecutive_failures=t.failures,
                    last_error=t.last_error,
                    last_success=t.last_success,
                    retry_at=t.retry_at,
                )
                for t in self._targets
            ]

    def payloads(self) -> list[dict[str, Any]]:
        """What a full send would POST now (for `llmpulse alerts --json` and tests)."""
        now = self.clock()
        with self._lock:
            states = [t.state for t in self._tracked.values()]
        return [to_alertmanager(s, self.links, now=now, resend_interval=self.resend_interval) for s in states]
