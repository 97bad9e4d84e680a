"""The findings engine: observations in, findings with a lifecycle out, stored and deduplicated.

A finding is one episode of one condition, identified by (alertname, labels):

    first observed        -> pending (first_seen)
    observed for `for`    -> firing (fired_at)
    not observed in a run that evaluated its labels -> resolved (resolved_at), once it has gone
                             unobserved for its `keep_firing_for`; a pending one that never fired is dropped
                             at once (resolved, fired_at empty)

Observing the same condition again while it is pending or firing updates that finding (value, severity,
evidence, last_seen); it never creates a second one. After it resolves, the next occurrence is a new
episode with a new finding_id. The scheduler, `llmpulse analyze` and backtests all go through `Engine`;
only the store differs (ClickHouse, or memory for a backtest).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from clickhouse_connect.driver.client import Client

from analyzers.findings import (
    FINDING_LABEL_KEYS,
    AlertName,
    AnalysisContext,
    Analyzer,
    AnalyzerResult,
    FindingState,
    Observation,
    Severity,
)

log = logging.getLogger(__name__)

_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def ordered_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels in the canonical order (FINDING_LABEL_KEYS first), empty values dropped."""
    known = [k for k in FINDING_LABEL_KEYS if labels.get(k)]
    rest = sorted(k for k in labels if k not in FINDING_LABEL_KEYS and labels[k])
    return {k: str(labels[k]) for k in [*known, *rest]}


def fingerprint(alertname: str, labels: Mapping[str, str]) -> str:
    text = "\x1f".join([alertname, *(f"{k}\x1e{v}" for k, v in sorted(labels.items()) if v)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(slots=True)
class Finding:
    """One episode of a condition, with its lifecycle and the latest observation of it."""

    finding_id: str
    fingerprint: str
    analyzer: str
    observation: Observation
    state: FindingState
    first_seen: datetime
    last_seen: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    peak_severity: Severity = Severity.INFO
    fired_observation: Observation | None = None  # what it looked like when it started firing
    revision: int = 0

    @property
    def alertname(self) -> AlertName:
        return self.observation.alertname

    @property
    def labels(self) -> dict[str, str]:
        return ordered_labels(self.observation.labels)

    @property
    def severity(self) -> Severity:
        return self.observation.severity

    @property
    def links(self) -> list[str]:
        url = self.observation.details.get("dashboard_url")
        return [url] if isinstance(url, str) and url else []

    def to_dict(self) -> dict[str, Any]:
        obs = self.observation
        return {
            "finding_id": self.finding_id,
            "fingerprint": self.fingerprint,
            "alertname": obs.alertname.value,
            "severity": obs.severity.value,
            "state": self.state.value,
            "analyzer": self.analyzer,
            "labels": self.labels,
            "value": obs.value,
            "baseline": obs.baseline,
            "threshold": obs.threshold,
            "summary": obs.summary,
            "evidence": obs.evidence,
            "links": self.links,
            "for_seconds": int(obs.for_duration.total_seconds()),
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "fired_at": _iso(self.fired_at),
            "resolved_at": _iso(self.resolved_at),
            "details": _jsonable(dict(obs.details)),
        }


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ts.microsecond // 1000:03d}" if ts.microsecond else "") + "Z"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if isinstance(value, datetime):
        return _iso(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


# ------------------------------------------------------------------------------------------- stores


class FindingStore(Protocol):
    def load_open(self) -> list[Finding]: ...

    def open_with(self, analyzer: str, fingerprints: Collection[str]) -> list[Finding]:
        """Open findings of `analyzer` with one of `fingerprints`, whoever opened them."""
        ...

    def save(self, findings: Sequence[Finding]) -> None: ...


class MemoryFindingStore:
    """Keeps every episode in memory (backtests, tests)."""

    def __init__(self) -> None:
        self.episodes: dict[str, Finding] = {}

    def load_open(self) -> list[Finding]:
        return [f for f in self.episodes.values() if f.state != FindingState.RESOLVED]

    def open_with(self, analyzer: str, fingerprints: Collection[str]) -> list[Finding]:
        return [replace(f) for f in self.load_open() if f.analyzer == analyzer and f.fingerprint in fingerprints]

    def save(self, findings: Sequence[Finding]) -> None:
        for f in findings:
            self.episodes[f.finding_id] = replace(f)


FINDING_COLUMNS = (
    "finding_id", "fingerprint", "alertname", "severity", "state", "analyzer", "labels", "value", "baseline",
    "threshold", "summary", "evidence", "links", "for_seconds", "first_seen", "last_seen", "fired_at",
    "resolved_at", "details", "revision",
)


@dataclass(frozen=True, slots=True)
class FindingQuery:
    state: str | None = None
    alertname: str | None = None
    app: str | None = None
    since: datetime | None = None
    limit: int = 200


class ClickHouseFindingStore:
    """The `findings` table: each save inserts the new revision; reads collapse revisions with FINAL."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def save(self, findings: Sequence[Finding]) -> None:
        if not findings:
            return
        rows = []
        for f in findings:
            obs = f.observation
            rows.append(
                [
                    f.finding_id, f.fingerprint, obs.alertname.value, obs.severity.value, f.state.value, f.analyzer,
                    f.labels, obs.value, obs.baseline, obs.threshold, obs.summary, obs.evidence, f.links,
                    int(obs.for_duration.total_seconds()), f.first_seen, f.last_seen, f.fired_at, f.resolved_at,
                    json.dumps(_jsonable(_details_with_fired(f))), f.revision,
                ]
            )
        self.client.insert("findings", rows, column_names=list(FINDING_COLUMNS))

    def load_open(self) -> list[Finding]:
        return self._select("state != 'resolved'", {})

    def open_with(self, analyzer: str, fingerprints: Collection[str]) -> list[Finding]:
        return self._select(
            "state != 'resolved' AND analyzer = {analyzer:String} AND fingerprint IN {fingerprints:Array(String)}",
            {"analyzer": analyzer, "fingerprints": sorted(fingerprints)},
        )

    def query(self, q: FindingQuery) -> list[Finding]:
        conds = ["1"]
        params: dict[str, Any] = {}
        if q.state:
            conds.append("state = {state:String}")
            params["state"] = q.state
        if q.alertname:
            conds.append("alertname = {alertname:String}")
            params["alertname"] = q.alertname
        if q.app:
            conds.append("labels['app'] = {app:String}")
            params["app"] = q.app
        if q.since:
            conds.append("last_seen >= {since:DateTime64(3, 'UTC')}")
            params["since"] = q.since
        return self._select(" AND ".join(conds), params, limit=q.limit)

    def get(self, finding_id: str) -> Finding | None:
        found = self._select("finding_id = {id:String}", {"id": finding_id}, limit=1)
        return found[0] if found else None

    def firing(self) -> list[Finding]:
        return self._select("state = 'firing'", {})

    def changed_since(self, since: datetime) -> list[Finding]:
        """Findings that started firing or resolved after `since` (for the alerting step)."""
        return self._select(
            "(fired_at >= {s:DateTime64(3, 'UTC')} OR resolved_at >= {s:DateTime64(3, 'UTC')}) "
            "AND fired_at IS NOT NULL",
            {"s": since},
        )

    def _select(self, where: str, params: dict[str, Any], limit: int | None = None) -> list[Finding]:
        cols = ", ".join(FINDING_COLUMNS)
        sql = f"SELECT {cols} FROM findings FINAL WHERE {where} ORDER BY last_seen DESC, finding_id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for row in self.client.query(sql, parameters=params).result_rows:
            rec = dict(zip(FINDING_COLUMNS, row, strict=True))
            details = json.loads(rec["details"] or "{}")
            fired_obs = details.pop("_fired", None)
            keep_seconds = float(details.pop("_keep_firing_seconds", 0) or 0)
            obs = Observation(
                alertname=AlertName(rec["alertname"]),
                severity=Severity(rec["severity"]),
                labels=dict(rec["labels"]),
                at=_utc(rec["last_seen"]),
                value=rec["value"],
                baseline=rec["baseline"],
                threshold=rec["threshold"],
                summary=rec["summary"],
                evidence=rec["evidence"],
                for_duration=timedelta(seconds=int(rec["for_seconds"])),
                details=details,
                keep_firing_for=timedelta(seconds=keep_seconds),
            )
            fired = None
            if isinstance(fired_obs, dict):
                fired = replace(
                    obs, value=fired_obs.get("value"), baseline=fired_obs.get("baseline"),
                    summary=str(fired_obs.get("summary", obs.summary)),
                )
            out.append(
                Finding(
                    finding_id=rec["finding_id"], fingerprint=rec["fingerprint"], analyzer=rec["analyzer"],
                    observation=obs, state=FindingState(rec["state"]), first_seen=_utc(rec["first_seen"]),
                    last_seen=_utc(rec["last_seen"]), fired_at=_utc_opt(rec["fired_at"]),
                    resolved_at=_utc_opt(rec["resolved_at"]),
                    peak_severity=Severity(details.get("_peak_severity", rec["severity"])),
                    fired_observation=fired, revision=int(rec["revision"]),
                )
            )
        return out


def _details_with_fired(f: Finding) -> dict[str, Any]:
    details = dict(f.observation.details)
    details["_peak_severity"] = f.peak_severity.value
    if f.observation.keep_firing_for:
        details["_keep_firing_seconds"] = f.observation.keep_firing_for.total_seconds()
    if f.fired_observation is not None:
        fo = f.fired_observation
        details["_fired"] = {"value": fo.value, "baseline": fo.baseline, "summary": fo.summary}
    return details


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _utc_opt(ts: datetime | None) -> datetime | None:
    return None if ts is None else _utc(ts)


# ------------------------------------------------------------------------------------------- engine


@dataclass(slots=True)
class RunReport:
    analyzer: str
    at: datetime
    observations: int
    changed: list[Finding] = field(default_factory=list)
    error: str | None = None


Listener = Callable[[Sequence[Finding]], None]


def _covered(labels: Mapping[str, str], evaluated: Sequence[Mapping[str, str]] | None) -> bool:
    if evaluated is None:
        return True
    return any(all(labels.get(k) == v for k, v in ev.items()) for ev in evaluated)


class Engine:
    """Applies analyzer results to the open findings; thread-safe (scheduler jobs run concurrently).

    `listeners` get every batch of findings whose state changed (fired or resolved), e.g. the alerting
    step; they must not block for long.
    """

    def __init__(self, store: FindingStore, *, listeners: Iterable[Listener] = ()) -> None:
        self.store = store
        self.listeners = list(listeners)
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], Finding] = {}  # (analyzer, fingerprint) -> open finding
        for f in store.load_open():
            self._open[(f.analyzer, f.fingerprint)] = f

    def open_findings(self) -> list[Finding]:
        with self._lock:
            return [replace(f) for f in self._open.values()]

    def run(self, analyzer: Analyzer, ctx: AnalysisContext) -> RunReport:
        """Run one analyzer as of ctx.at and apply its result; an analyzer error resolves nothing."""
        try:
            result = analyzer.run(ctx)
        except Exception as exc:  # one broken analyzer must not stop the others
            log.exception("analyzer %s failed at %s", analyzer.name, ctx.at)
            return RunReport(analyzer.name, ctx.at, 0, error=f"{type(exc).__name__}: {exc}")
        try:
            changed = self.apply(analyzer, result, ctx.at)
        except ValueError as exc:  # e.g. an alertname the analyzer does not own: its result is dropped
            log.error("analyzer %s at %s: %s", analyzer.name, ctx.at, exc)
            return RunReport(analyzer.name, ctx.at, 0, error=str(exc))
        return RunReport(analyzer.name, ctx.at, len(result.observations), changed)

    def apply(self, analyzer: Analyzer, result: AnalyzerResult, at: datetime) -> list[Finding]:
        """Fold one run's observations into the findings; returns the findings whose state changed."""
        name = analyzer.name
        owned = {a.value for a in analyzer.alertnames}
        to_save: list[Finding] = []
        transitions: list[Finding] = []
        with self._lock:
            seen: dict[str, Observation] = {}
            for obs in result.observations:
                if obs.alertname.value not in owned:
                    raise ValueError(f"analyzer {name} emitted {obs.alertname.value}, not in its alertnames")
                labels = ordered_labels(obs.labels)
                fp = fingerprint(obs.alertname.value, labels)
                prev = seen.get(fp)
                if prev is None or _SEVERITY_RANK[obs.severity] > _SEVERITY_RANK[prev.severity]:
                    seen[fp] = replace(obs, labels=labels)
            # Another engine on the same store (a manual `llmpulse analyze` next to the scheduler) may have
            # opened, or moved on, an episode of these conditions: continue from the stored state rather than
            # open a second finding for the same condition, or fire one that already fired.
            if seen:
                for stored in self.store.open_with(name, list(seen)):
                    key = (name, stored.fingerprint)
                    mine = self._open.get(key)
                    if mine is None or (stored.finding_id == mine.finding_id and stored.revision > mine.revision):
                        self._open[key] = stored
            for fp, obs in seen.items():
                key = (name, fp)
                f = self._open.get(key)
                if f is None:
                    f = Finding(
                        finding_id=uuid.uuid4().hex[:20],
                        fingerprint=fp,
                        analyzer=name,
                        observation=obs,
                        state=FindingState.PENDING,
                        first_seen=at,
                        last_seen=at,
                        peak_severity=obs.severity,
                    )
                    self._open[key] = f
                else:
                    f.observation = obs
                    f.last_seen = at
                    if _SEVERITY_RANK[obs.severity] > _SEVERITY_RANK[f.peak_severity]:
                        f.peak_severity = obs.severity
                if f.state == FindingState.PENDING and at - f.first_seen >= obs.for_duration:
                    f.state = FindingState.FIRING
                    f.fired_at = at
                    f.fired_observation = obs
                    transitions.append(f)
                f.revision += 1
                to_save.append(f)
            for key, f in list(self._open.items()):
                if key[0] != name or key[1] in seen:
                    continue
                if f.alertname.value not in owned or not _covered(f.labels, result.evaluated):
                    continue
                if f.state == FindingState.FIRING and at - f.last_seen < f.observation.keep_firing_for:
                    continue
                was_firing = f.state == FindingState.FIRING
                f.state = FindingState.RESOLVED
                f.resolved_at = at
                f.revision += 1
                del self._open[key]
                to_save.append(f)
                if was_firing:
                    transitions.append(f)
            snapshot = [replace(f) for f in to_save]
            changed = [replace(f) for f in transitions]
        self.store.save(snapshot)
        if changed:
            for listener in self.listeners:
                try:
                    listener(changed)
                except Exception:
                    log.exception("findings listener failed")
        return changed
