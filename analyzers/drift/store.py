"""drift_references (pinned periods + their bin edges) and drift_results (per-run tests and verdicts)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from analyzers.drift.detect import FeatureTest, Verdict

VERDICT = "__verdict__"
GROUP_COLUMNS: tuple[str, ...] = ("app", "environment", "feature", "model", "prompt_version")


@dataclass(frozen=True, slots=True)
class PinnedReference:
    labels: Mapping[str, str]  # values of GROUP_COLUMNS; '' = any
    start: datetime
    end: datetime
    note: str
    events: int
    edges: Mapping[str, list[float]]
    updated_at: datetime

    def matches(self, group: Mapping[str, str]) -> bool:
        return all(not v or group.get(k, "") == v for k, v in self.labels.items())

    @property
    def specificity(self) -> int:
        return sum(1 for v in self.labels.values() if v)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def pinned_references(client: Client) -> list[PinnedReference]:
    rows = client.query(
        "SELECT app, environment, feature, model, prompt_version, ref_start, ref_end, note, events, edges, "
        "updated_at FROM drift_references FINAL WHERE pinned"
    ).result_rows
    return [
        PinnedReference(dict(zip(GROUP_COLUMNS, (str(v) for v in r[:5]), strict=True)), _utc(r[5]), _utc(r[6]),
                        str(r[7]), int(r[8]), {k: list(v) for k, v in dict(r[9]).items()}, _utc(r[10]))
        for r in rows
    ]


def reference_for(group: Mapping[str, str], pins: Sequence[PinnedReference]) -> PinnedReference | None:
    """The most specific pin matching the group (newest wins a tie)."""
    hits = [p for p in pins if p.matches(group)]
    if not hits:
        return None
    return max(hits, key=lambda p: (p.specificity, p.updated_at))


def save_pin(
    client: Client, labels: Mapping[str, str], start: datetime, end: datetime, note: str, events: int,
    edges: Mapping[str, Sequence[float]], *, pinned: bool = True, now: datetime | None = None,
) -> None:
    row = [labels.get(c, "") for c in GROUP_COLUMNS] + [
        pinned, start, end, note, events, {k: [float(x) for x in v] for k, v in edges.items()},
        now or datetime.now(UTC),
    ]
    client.insert(
        "drift_references", [row],
        column_names=[*GROUP_COLUMNS, "pinned", "ref_start", "ref_end", "note", "events", "edges", "updated_at"],
    )


RESULT_COLUMNS: tuple[str, ...] = (
    "at", *GROUP_COLUMNS, "direction", "drift_feature", "kind", "method", "status", "statistic", "p_value",
    "p_adjusted", "effect_name", "effect", "threshold", "floor", "null_threshold", "n_reference", "n_current",
    "significant", "drifted", "reference_kind", "ref_start", "ref_end", "cur_start", "cur_end", "details",
)


@dataclass(frozen=True, slots=True)
class RunContext:
    at: datetime
    group: Mapping[str, str]
    reference_kind: str
    reference: tuple[datetime, datetime]  # span of the reference ranges
    current: tuple[datetime, datetime]


def _num(x: float) -> float:
    return float(x) if x is not None and math.isfinite(x) else float("nan")


def result_rows(ctx: RunContext, tests: Sequence[FeatureTest], verdicts: Mapping[Any, Verdict],
                persisted: Mapping[Any, bool]) -> list[list[Any]]:
    base = [ctx.at, *(ctx.group.get(c, "") for c in GROUP_COLUMNS)]

    # The verdict row keeps the run's widest current window: a drifted verdict's window is cut out of later
    # references (drifted_windows), and the widest window holds all of the traffic the decision saw.
    def tail(t: FeatureTest | None) -> list[Any]:
        # A test over widening windows stores the window it was decided on (analyzers/drift/windows.py).
        minutes = t.details.get("window_minutes") if t is not None else None
        cur = (ctx.at - timedelta(minutes=float(minutes)), ctx.at) if minutes else ctx.current
        return [ctx.reference_kind, ctx.reference[0], ctx.reference[1], cur[0], cur[1]]

    rows = []
    for t in tests:
        rows.append([
            *base, t.direction.value, t.feature, t.kind, t.method, t.status, _num(t.statistic), _num(t.p_value),
            _num(t.p_adjusted), t.effect_name, _num(t.effect), _num(t.threshold), _num(t.floor),
            _num(t.null_threshold), t.n_reference, t.n_current, t.significant, t.drifted, *tail(t),
            orjson.dumps(t.details, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
        ])
    for direction, v in verdicts.items():
        top = v.top[0] if v.top else None
        rows.append([
            *base, direction.value, VERDICT, "verdict", "bh+effect", v.status, float(len(v.top)),
            _num(top.p_value) if top else float("nan"), _num(top.p_adjusted) if top else float("nan"),
            top.effect_name if top else "", _num(top.effect) if top else float("nan"),
            _num(top.threshold) if top else float("nan"), float("nan"), float("nan"), v.n_reference,
            v.n_current, bool(v.top), v.drifted, *tail(None),
            orjson.dumps({"persisted": bool(persisted.get(direction, False)),
                          "features": [t.feature for t in v.top]}).decode(),
        ])
    return rows


def write_results(client: Client, rows: Sequence[Sequence[Any]]) -> None:
    if rows:
        client.insert("drift_results", list(rows), column_names=list(RESULT_COLUMNS))


def previous_verdicts(
    client: Client, before: datetime, since: datetime
) -> dict[tuple[tuple[str, ...], str], list[tuple[datetime, bool]]]:
    """Raw verdicts of earlier runs, newest first, per (group, direction)."""
    rows = client.query(
        "SELECT app, environment, feature, model, prompt_version, direction, at, drifted "
        "FROM drift_results FINAL WHERE drift_feature = {v:String} AND status = 'ok' "
        "AND at < {b:DateTime64(3, 'UTC')} AND at >= {s:DateTime64(3, 'UTC')} ORDER BY at DESC",
        parameters={"v": VERDICT, "b": before, "s": since},
    ).result_rows
    out: dict[tuple[tuple[str, ...], str], list[tuple[datetime, bool]]] = {}
    for r in rows:
        out.setdefault((tuple(str(x) for x in r[:5]), str(r[5])), []).append((_utc(r[6]), bool(r[7])))
    return out


def drifted_windows(
    client: Client, since: datetime, before: datetime
) -> dict[tuple[str, ...], list[tuple[datetime, datetime]]]:
    """Current windows of earlier runs whose raw verdict (either direction) was drift, per group.

    Unpinned references leave these out, so traffic that was itself drifting never becomes the baseline a
    later window is compared with (which would hide the rest of an incident and flag its end as drift).
    """
    rows = client.query(
        "SELECT app, environment, feature, model, prompt_version, cur_start, cur_end "
        "FROM drift_results FINAL WHERE drift_feature = {v:String} AND status = 'ok' AND drifted "
        "AND at < {b:DateTime64(3, 'UTC')} AND cur_end > {s:DateTime64(3, 'UTC')}",
        parameters={"v": VERDICT, "b": before, "s": since},
    ).result_rows
    out: dict[tuple[str, ...], list[tuple[datetime, datetime]]] = {}
    for r in rows:
        out.setdefault(tuple(str(x) for x in r[:5]), []).append((_utc(r[5]), _utc(r[6])))
    return out
