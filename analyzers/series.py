"""How analyzers read the store: the `SeriesSource` seam, live (SQL per run) and preloaded (backtests).

Analyzers never write SQL themselves. They ask for aggregates of the per-minute rollup (`events_1m`) over
a list of time ranges, grouped by some label dimensions, and for per-key (trace/session) activity. The
live source answers each question with one ClickHouse query; the preloaded source loads a whole replay
range once and answers from memory, so a backtest runs the very same analyzer code at every step
without thousands of rounds of SQL. Both return identical results for minute-aligned ranges (a test
checks this).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from analyzers.stats import HIST_BINS

ROLLUP_DIMS: tuple[str, ...] = ("app", "environment", "provider", "model", "feature", "prompt_version", "operation")
_SCALARS: tuple[tuple[str, str], ...] = (
    ("requests", "requests"),
    ("errors", "errors"),
    ("ok_requests", "ok_requests"),
    ("priced", "priced_requests"),
    ("cost_usd", "cost_usd_sum"),
    ("input_tokens", "input_tokens_sum"),
    ("output_tokens", "output_tokens_sum"),
    ("latency_ok_ms_sum", "latency_ok_ms_sum"),
)
KEY_KINDS = ("trace_id", "session_id")

F64 = npt.NDArray[np.float64]
Range = tuple[datetime, datetime]


def floor_minute(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.replace(second=0, microsecond=0)


def _sql_dt(ts: datetime) -> str:
    ts = ts.astimezone(UTC)
    return f"toDateTime('{ts:%Y-%m-%d %H:%M:%S}', 'UTC')"


def _sql_dt64(ts: datetime) -> str:
    ts = ts.astimezone(UTC)
    return f"toDateTime64('{ts:%Y-%m-%d %H:%M:%S.%f}', 3, 'UTC')"


def _sql_str_list(values: Sequence[str]) -> str:
    if not values:
        return "('')"
    return "(" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + ")"


def _check_dims(dims: Sequence[str]) -> None:
    unknown = [d for d in dims if d not in ROLLUP_DIMS]
    if unknown:
        raise ValueError(f"unknown rollup dimensions {unknown}; use some of {ROLLUP_DIMS}")


@dataclass(slots=True)
class WindowSet:
    """Rollup aggregates for R time ranges × G groups (groups with traffic in at least one range)."""

    dims: tuple[str, ...]
    ranges: list[Range]
    keys: list[tuple[str, ...]]
    scalars: dict[str, F64]  # name -> (R, G)
    errors_by_type: dict[str, F64]  # error type -> (R, G)
    latency_hist: F64 | None = None  # (R, G, HIST_BINS)
    ttft_hist: F64 | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.scalars[name]
        except KeyError:
            raise AttributeError(name) from None

    def labels(self, g: int) -> dict[str, str]:
        return dict(zip(self.dims, self.keys[g], strict=True))

    @property
    def size(self) -> int:
        return len(self.keys)


@dataclass(frozen=True, slots=True)
class KeyActivity:
    """One trace or session in a window: how much it did, and when."""

    kind: str
    key: str
    app: str
    environment: str
    feature: str
    provider: str
    model: str
    calls: int
    tokens: int
    cost_usd: float
    first_call: datetime
    last_call: datetime


@dataclass(frozen=True, slots=True)
class KeyHourQuantile:
    """A high quantile of per-key activity within one hour, for one app."""

    app: str
    environment: str
    hour: datetime
    calls: float
    tokens: float
    cost_usd: float


class SeriesSource(Protocol):
    exclude_operations: tuple[str, ...]

    def first_minute(self) -> datetime | None: ...

    def windows(self, dims: Sequence[str], ranges: Sequence[Range], *, hist: bool = False) -> WindowSet: ...

    def heavy_keys(
        self, kind: str, start: datetime, end: datetime, *, min_calls: int, min_tokens: int, min_cost: float
    ) -> list[KeyActivity]: ...

    def key_hour_quantiles(self, kind: str, start: datetime, end: datetime, q: float) -> list[KeyHourQuantile]: ...

    def independent_calls(
        self, labels: Mapping[str, str], start: datetime, end: datetime, *, priced: bool = False
    ) -> IndependentCalls: ...


@dataclass(frozen=True, slots=True)
class IndependentCalls:
    """A slice's calls in a window counted once per trace (calls without a trace id: each), and of those
    the traces with a failed call."""

    calls: int
    failed: int


_SLICE_COLUMNS = frozenset({"app", "environment", "provider", "model", "feature", "prompt_version"})


def independent_calls_query(
    labels: Mapping[str, str], start: datetime, end: datetime, exclude_operations: Sequence[str], *, priced: bool
) -> tuple[str, dict[str, str]]:
    """SQL and parameters counting a slice's calls in [start, end) once per trace (calls without one: each),
    and the traces among them with a failed call."""
    unknown = set(labels) - _SLICE_COLUMNS
    if unknown:
        raise ValueError(f"cannot count calls by {sorted(unknown)}; slice labels are {sorted(_SLICE_COLUMNS)}")
    where = [f"{name} = {{{name}:String}}" for name in sorted(labels)]
    if priced:
        where.append("cost_usd IS NOT NULL")
    sql = (
        "SELECT uniqExact(if(trace_id = '', event_id, trace_id)), "
        "uniqExactIf(if(trace_id = '', event_id, trace_id), status = 'error') FROM events "
        f"WHERE start_time >= {_sql_dt64(start)} AND start_time < {_sql_dt64(end)} "
        f"AND operation NOT IN {_sql_str_list(exclude_operations)} AND {' AND '.join(where)}"
    )
    return sql, dict(labels)


def _empty_set(dims: tuple[str, ...], ranges: list[Range], hist: bool) -> WindowSet:
    r = len(ranges)
    return WindowSet(
        dims=dims,
        ranges=ranges,
        keys=[],
        scalars={name: np.zeros((r, 0)) for name, _ in _SCALARS},
        errors_by_type={},
        latency_hist=np.zeros((r, 0, HIST_BINS)) if hist else None,
        ttft_hist=np.zeros((r, 0, HIST_BINS)) if hist else None,
    )


def _hist_dense(mapping: dict[int, int] | None) -> F64:
    out = np.zeros(HIST_BINS, dtype=np.float64)
    if mapping:
        for b, c in mapping.items():
            out[min(int(b), HIST_BINS - 1)] += c
    return out


# ------------------------------------------------------------------------------------------ live


class LiveSeriesSource:
    """Answers each question with one query against ClickHouse (the scheduler, `llmpulse analyze`)."""

    def __init__(self, client: Client, *, exclude_operations: Sequence[str] = ()) -> None:
        self.client = client
        self.exclude_operations = tuple(exclude_operations)

    def first_minute(self) -> datetime | None:
        rows = self.client.query("SELECT min(minute), count() FROM events_1m").result_rows
        if not rows or not rows[0][1]:
            return None
        first: datetime = rows[0][0]
        return first if first.tzinfo else first.replace(tzinfo=UTC)

    def windows(self, dims: Sequence[str], ranges: Sequence[Range], *, hist: bool = False) -> WindowSet:
        dims = tuple(dims)
        _check_dims(dims)
        ranges = [(floor_minute(s), floor_minute(e)) for s, e in ranges]
        if not ranges:
            return _empty_set(dims, [], hist)
        starts = "[" + ", ".join(_sql_dt(s) for s, _ in ranges) + "]"
        ends = "[" + ", ".join(_sql_dt(e) for _, e in ranges) + "]"
        where = " OR ".join(f"(minute >= {_sql_dt(s)} AND minute < {_sql_dt(e)})" for s, e in ranges)
        dim_sql = ", ".join(dims)
        select_dims = (dim_sql + ", ") if dims else ""
        group_dims = (", " + dim_sql) if dims else ""
        measures = ", ".join(f"sum({col})" for _, col in _SCALARS)
        hist_sql = ", sumMap(latency_hist), sumMap(ttft_hist)" if hist else ""
        sql = (
            f"SELECT idx, {select_dims}{measures}, sumMap(errors_by_type){hist_sql} "
            f"FROM events_1m "
            f"ARRAY JOIN arrayFilter(i -> minute >= {starts}[i] AND minute < {ends}[i], "
            f"range(1, {len(ranges) + 1})) AS idx "
            f"WHERE ({where}) AND operation NOT IN {_sql_str_list(self.exclude_operations)} "
            f"GROUP BY idx{group_dims}"
        )
        rows = self.client.query(sql).result_rows
        nd = len(dims)
        keyset = sorted({tuple(str(v) for v in row[1 : 1 + nd]) for row in rows})
        index = {k: i for i, k in enumerate(keyset)}
        r, g = len(ranges), len(keyset)
        scalars = {name: np.zeros((r, g)) for name, _ in _SCALARS}
        by_type: dict[str, F64] = {}
        lat = np.zeros((r, g, HIST_BINS)) if hist else None
        ttft = np.zeros((r, g, HIST_BINS)) if hist else None
        for row in rows:
            ri = int(row[0]) - 1
            gi = index[tuple(str(v) for v in row[1 : 1 + nd])]
            base = 1 + nd
            for j, (name, _) in enumerate(_SCALARS):
                scalars[name][ri, gi] = float(row[base + j])
            errs = row[base + len(_SCALARS)] or {}
            for etype, count in errs.items():
                arr = by_type.setdefault(str(etype), np.zeros((r, g)))
                arr[ri, gi] += float(count)
            if hist and lat is not None and ttft is not None:
                lat[ri, gi] = _hist_dense(row[base + len(_SCALARS) + 1])
                ttft[ri, gi] = _hist_dense(row[base + len(_SCALARS) + 2])
        return WindowSet(dims, ranges, keyset, scalars, by_type, lat, ttft)

    def heavy_keys(
        self, kind: str, start: datetime, end: datetime, *, min_calls: int, min_tokens: int, min_cost: float
    ) -> list[KeyActivity]:
        if kind not in KEY_KINDS:
            raise ValueError(f"unknown key kind {kind!r}; use one of {KEY_KINDS}")
        sql = (
            f"SELECT app, environment, {kind} AS k, count() AS calls, "
            f"sum(toUInt64(input_tokens) + output_tokens) AS tokens, sum(ifNull(cost_usd, 0)) AS cost, "
            f"min(start_time), max(start_time), any(feature), any(provider), any(model) "
            f"FROM events WHERE start_time >= {_sql_dt64(start)} AND start_time < {_sql_dt64(end)} "
            f"AND {kind} != '' AND operation NOT IN {_sql_str_list(self.exclude_operations)} "
            f"GROUP BY app, environment, k "
            f"HAVING calls >= {int(min_calls)} OR tokens >= {int(min_tokens)} OR cost >= {float(min_cost)}"
        )
        out = []
        for app, env, key, calls, tokens, cost, first, last, feature, provider, model in self.client.query(
            sql
        ).result_rows:
            out.append(
                KeyActivity(kind, str(key), str(app), str(env), str(feature), str(provider), str(model),
                            int(calls), int(tokens), float(cost), _utc(first), _utc(last))
            )
        out.sort(key=lambda a: (a.app, a.environment, a.key))
        return out

    def independent_calls(
        self, labels: Mapping[str, str], start: datetime, end: datetime, *, priced: bool = False
    ) -> IndependentCalls:
        """A slice's calls counted once per trace: the calls of one agent run share its context (so its cost)
        and its failures (a retried error), so they are one piece of evidence, not many."""
        sql, parameters = independent_calls_query(labels, start, end, self.exclude_operations, priced=priced)
        rows = self.client.query(sql, parameters=parameters).result_rows
        return IndependentCalls(int(rows[0][0]), int(rows[0][1])) if rows else IndependentCalls(0, 0)

    def key_hour_quantiles(self, kind: str, start: datetime, end: datetime, q: float) -> list[KeyHourQuantile]:
        if kind not in KEY_KINDS:
            raise ValueError(f"unknown key kind {kind!r}; use one of {KEY_KINDS}")
        sql = (
            f"SELECT app, environment, h, quantileExact({q})(calls), quantileExact({q})(tokens), "
            f"quantileExact({q})(cost) FROM ("
            f"SELECT app, environment, toStartOfHour(start_time) AS h, {kind} AS k, count() AS calls, "
            f"sum(toUInt64(input_tokens) + output_tokens) AS tokens, sum(ifNull(cost_usd, 0)) AS cost "
            f"FROM events WHERE start_time >= {_sql_dt64(start)} AND start_time < {_sql_dt64(end)} "
            f"AND {kind} != '' AND operation NOT IN {_sql_str_list(self.exclude_operations)} "
            f"GROUP BY app, environment, h, k) GROUP BY app, environment, h ORDER BY app, environment, h"
        )
        return [
            KeyHourQuantile(str(a), str(e), _utc(h), float(c), float(t), float(x))
            for a, e, h, c, t, x in self.client.query(sql).result_rows
        ]


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------- preloaded


@dataclass(slots=True)
class _Level:
    keys: list[tuple[str, ...]]
    of_fine: npt.NDArray[np.int64]  # fine group -> level group
    onehot: F64  # (fine groups, level groups)


@dataclass(slots=True)
class _KeyTable:
    """Per-minute activity of the keys that could ever pass the heavy-key floor in the loaded range."""

    ident: list[tuple[str, str, str, str, str, str]]  # app, env, key, feature, provider, model
    offsets: npt.NDArray[np.int64]
    minute: npt.NDArray[np.int64]
    calls: npt.NDArray[np.float64]
    tokens: npt.NDArray[np.float64]
    cost: npt.NDArray[np.float64]
    first_ms: npt.NDArray[np.int64]
    last_ms: npt.NDArray[np.int64]


@dataclass(slots=True)
class _Loaded:
    start: datetime
    end: datetime
    fine_keys: list[tuple[str, ...]]
    offsets: npt.NDArray[np.int64]  # fine group g owns rows [offsets[g], offsets[g+1])
    minute: npt.NDArray[np.int64]  # minutes since `start`, sorted within each group
    cums: dict[str, F64]  # name -> cumulative sums over rows, with a leading 0
    err_cums: dict[str, F64]
    lat_hist: npt.NDArray[Any]  # (rows, bins)
    ttft_hist: npt.NDArray[Any]
    levels: dict[tuple[str, ...], _Level] = field(default_factory=dict)
    # Cumulative histograms over rows with a leading zero row, built on first use: a window's histogram is
    # then one subtraction, which matters once analyzers ask for a ladder of windows at every step.
    hist_cums: tuple[F64, F64] | None = None

    def cumulative_hists(self) -> tuple[F64, F64]:
        if self.hist_cums is None:
            zero = np.zeros((1, HIST_BINS))
            self.hist_cums = (
                np.concatenate([zero, np.cumsum(np.asarray(self.lat_hist, dtype=np.float64), axis=0)]),
                np.concatenate([zero, np.cumsum(np.asarray(self.ttft_hist, dtype=np.float64), axis=0)]),
            )
        return self.hist_cums


class PreloadedSeriesSource:
    """A replay range of the rollup (and heavy keys) held in memory; answers like `LiveSeriesSource`.

    `lookback` must cover the longest baseline the analyzers ask for (see `required_lookback`); asking for a
    range outside what was loaded raises instead of silently reading zeros.
    """

    def __init__(
        self,
        client: Client,
        start: datetime,
        end: datetime,
        *,
        exclude_operations: Sequence[str] = (),
        key_floor: tuple[int, int, float] = (50, 2_000_000, 20.0),
        key_quantile: float = 0.999,
        key_kinds: Sequence[str] = KEY_KINDS,
    ) -> None:
        self.exclude_operations = tuple(exclude_operations)
        self._start = floor_minute(start)
        self._end = floor_minute(end)
        self._live = LiveSeriesSource(client, exclude_operations=self.exclude_operations)
        self._first = self._live.first_minute()
        self._data = self._load_rollup(client)
        self._pos: npt.NDArray[np.int64] | None = None
        self._key_floor = key_floor
        self._keys: dict[str, _KeyTable] = {}
        self._key_q: dict[str, list[KeyHourQuantile]] = {}
        self._key_quantile = key_quantile
        for kind in key_kinds:
            self._keys[kind] = self._load_keys(client, kind)
            self._key_q[kind] = LiveSeriesSource(
                client, exclude_operations=self.exclude_operations
            ).key_hour_quantiles(kind, self._start, self._end, key_quantile)

    # -- loading

    def _load_rollup(self, client: Client) -> _Loaded:
        lo, hi = self._start, self._end
        dims = ", ".join(ROLLUP_DIMS)
        measures = ", ".join(f"sum({col}) AS {name}" for name, col in _SCALARS)
        sql = (
            f"SELECT {dims}, toInt64(intDiv(toUInt32(minute) - toUInt32({_sql_dt(lo)}), 60)) AS mi, {measures}, "
            f"mapKeys(sumMap(errors_by_type)) AS ek, mapValues(sumMap(errors_by_type)) AS ev, "
            f"mapKeys(sumMap(latency_hist)) AS lk, mapValues(sumMap(latency_hist)) AS lv, "
            f"mapKeys(sumMap(ttft_hist)) AS tk, mapValues(sumMap(ttft_hist)) AS tv "
            f"FROM events_1m WHERE minute >= {_sql_dt(lo)} AND minute < {_sql_dt(hi)} "
            f"AND operation NOT IN {_sql_str_list(self.exclude_operations)} "
            f"GROUP BY {dims}, minute ORDER BY {dims}, minute"
        )
        table: pa.Table = client.query_arrow(sql)
        n = table.num_rows
        dim_cols = [table.column(d).to_pylist() for d in ROLLUP_DIMS]
        fine_keys: list[tuple[str, ...]] = []
        starts: list[int] = []
        prev: tuple[str, ...] | None = None
        for i, key in enumerate(zip(*dim_cols, strict=True)):
            if key != prev:
                fine_keys.append(tuple(str(v) for v in key))
                starts.append(i)
                prev = key
        offsets = np.array([*starts, n], dtype=np.int64)
        minute = table.column("mi").to_numpy().astype(np.int64) if n else np.zeros(0, dtype=np.int64)
        cums: dict[str, F64] = {}
        for name, _ in _SCALARS:
            col = table.column(name).to_numpy().astype(np.float64) if n else np.zeros(0)
            cums[name] = np.concatenate([[0.0], np.cumsum(col)])
        err_cums: dict[str, F64] = {}
        if n:
            ek = table.column("ek").combine_chunks()
            ev = table.column("ev").combine_chunks()
            types = [str(t) for t in ek.flatten().to_pylist()]
            counts = ev.flatten().to_numpy().astype(np.float64)
            row_of = np.repeat(np.arange(n), np.diff(ek.offsets.to_numpy()))
            for etype in sorted(set(types)):
                mask = np.array([t == etype for t in types], dtype=np.bool_)
                dense = np.zeros(n)
                np.add.at(dense, row_of[mask], counts[mask])
                err_cums[etype] = np.concatenate([[0.0], np.cumsum(dense)])
        lat = self._dense_hist(table, "lk", "lv", n)
        ttft = self._dense_hist(table, "tk", "tv", n)
        return _Loaded(lo, hi, fine_keys, offsets, minute, cums, err_cums, lat, ttft)

    @staticmethod
    def _dense_hist(table: pa.Table, key_col: str, val_col: str, n: int) -> npt.NDArray[Any]:
        if not n:
            return np.zeros((0, HIST_BINS), dtype=np.uint32)
        keys = table.column(key_col).combine_chunks()
        vals = table.column(val_col).combine_chunks()
        bins = np.minimum(keys.flatten().to_numpy().astype(np.int64), HIST_BINS - 1)
        counts = vals.flatten().to_numpy().astype(np.int64)
        rows = np.repeat(np.arange(n), np.diff(keys.offsets.to_numpy()))
        dtype = np.uint16 if (counts.max(initial=0) < 60_000) else np.uint32
        dense = np.zeros((n, HIST_BINS), dtype=dtype)
        np.add.at(dense, (rows, bins), counts.astype(dtype))
        return dense

    def _load_keys(self, client: Client, kind: str) -> _KeyTable:
        min_calls, min_tokens, min_cost = self._key_floor
        lo, hi = _sql_dt64(self._start), _sql_dt64(self._end)
        excl = _sql_str_list(self.exclude_operations)
        base = f"start_time >= {lo} AND start_time < {hi} AND {kind} != '' AND operation NOT IN {excl}"
        sql = (
            f"SELECT app, environment, {kind} AS k, "
            f"toInt64(intDiv(toUInt32(toStartOfMinute(start_time)) - toUInt32({_sql_dt(self._start)}), 60)) AS mi, "
            f"count() AS calls, sum(toUInt64(input_tokens) + output_tokens) AS tokens, "
            f"sum(ifNull(cost_usd, 0)) AS cost, toInt64(toUnixTimestamp64Milli(min(start_time))) AS f, "
            f"toInt64(toUnixTimestamp64Milli(max(start_time))) AS l, any(feature), any(provider), any(model) "
            f"FROM events WHERE {base} AND (app, environment, {kind}) IN ("
            f"SELECT app, environment, {kind} FROM events WHERE {base} GROUP BY app, environment, {kind} "
            f"HAVING count() >= {int(min_calls)} OR sum(toUInt64(input_tokens) + output_tokens) >= {int(min_tokens)} "
            f"OR sum(ifNull(cost_usd, 0)) >= {float(min_cost)}) "
            f"GROUP BY app, environment, k, mi ORDER BY app, environment, k, mi"
        )
        rows = client.query(sql).result_rows
        ident: list[tuple[str, str, str, str, str, str]] = []
        starts: list[int] = []
        prev: tuple[str, str, str] | None = None
        for i, row in enumerate(rows):
            key = (str(row[0]), str(row[1]), str(row[2]))
            if key != prev:
                # Feature/model/provider as `any()` over the first minute: the live query's any() may pick
                # another call's, which only matters for keys spanning several features.
                ident.append((*key, str(row[9]), str(row[10]), str(row[11])))
                starts.append(i)
                prev = key
        n = len(rows)

        def col(j: int, dtype: Any) -> Any:
            return np.array([r[j] for r in rows], dtype=dtype) if n else np.zeros(0, dtype=dtype)

        return _KeyTable(
            ident,
            np.array([*starts, n], dtype=np.int64),
            col(3, np.int64),
            col(4, np.float64),
            col(5, np.float64),
            col(6, np.float64),
            col(7, np.int64),
            col(8, np.int64),
        )

    # -- answering

    def first_minute(self) -> datetime | None:
        return self._first

    def _minute_index(self, ts: datetime) -> int:
        return int((floor_minute(ts) - self._start) // timedelta(minutes=1))

    def _row_position(self) -> npt.NDArray[np.int64]:
        """pos[g, m]: index of fine group g's first row at or after minute m (clipped to the loaded span)."""
        pos = self._pos
        if pos is None:
            d = self._data
            n_min = self._minute_index(self._end) + 1
            pos = np.empty((len(d.fine_keys), n_min + 1), dtype=np.int64)
            grid = np.arange(n_min + 1)
            for g in range(len(d.fine_keys)):
                a, b = d.offsets[g], d.offsets[g + 1]
                pos[g] = a + np.searchsorted(d.minute[a:b], grid, side="left")
            self._pos = pos
        return pos

    def _check_range(self, start: datetime, end: datetime) -> None:
        lo = self._start if self._first is None or self._first < self._start else None
        if (lo is not None and floor_minute(start) < lo and floor_minute(end) > floor_minute(start)) or (
            floor_minute(end) > self._end
        ):
            raise ValueError(
                f"range {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} is outside the preloaded "
                f"{self._start:%Y-%m-%d %H:%M}..{self._end:%Y-%m-%d %H:%M}: increase the lookback"
            )

    def _level(self, dims: tuple[str, ...]) -> _Level:
        d = self._data
        level = d.levels.get(dims)
        if level is None:
            idx = [ROLLUP_DIMS.index(x) for x in dims]
            projected = [tuple(k[i] for i in idx) for k in d.fine_keys]
            keys = sorted(set(projected))
            pos = {k: i for i, k in enumerate(keys)}
            of_fine = np.array([pos[p] for p in projected], dtype=np.int64)
            onehot = np.zeros((len(d.fine_keys), len(keys)))
            onehot[np.arange(len(d.fine_keys)), of_fine] = 1.0
            level = _Level(keys, of_fine, onehot)
            d.levels[dims] = level
        return level

    def windows(self, dims: Sequence[str], ranges: Sequence[Range], *, hist: bool = False) -> WindowSet:
        dims = tuple(dims)
        _check_dims(dims)
        ranges = list(ranges)
        d = self._data
        n_fine = len(d.fine_keys)
        r = len(ranges)
        if n_fine == 0 or r == 0:
            return _empty_set(dims, ranges, hist)
        t0 = self._start.timestamp()
        bounds = (np.array([(s.timestamp(), e.timestamp()) for s, e in ranges]) - t0) // 60
        bounds = bounds.astype(np.int64)
        nonempty = bounds[:, 1] > bounds[:, 0]
        if nonempty.any():
            lo_range = int(np.argmin(np.where(nonempty, bounds[:, 0], np.iinfo(np.int64).max)))
            hi_range = int(np.argmax(bounds[:, 1]))
            self._check_range(ranges[lo_range][0], ranges[lo_range][1])
            self._check_range(ranges[hi_range][0], ranges[hi_range][1])
        level = self._level(dims)
        pos = self._row_position()
        n_min = pos.shape[1] - 1
        bounds = np.clip(bounds, 0, n_min)
        lo_idx = pos[:, bounds[:, 0]].T  # (R, G_fine)
        hi_idx = pos[:, bounds[:, 1]].T
        fine_scalars = {name: c[hi_idx] - c[lo_idx] for name, c in d.cums.items()}
        level_requests = fine_scalars["requests"] @ level.onehot
        present = level_requests.sum(axis=0) > 0
        scalars = {name: (v @ level.onehot)[:, present] for name, v in fine_scalars.items()}
        by_type = {}
        for etype, c in d.err_cums.items():
            arr = ((c[hi_idx] - c[lo_idx]) @ level.onehot)[:, present]
            if arr.any():
                by_type[etype] = arr
        lat = ttft = None
        if hist:
            lat_cum, ttft_cum = d.cumulative_hists()
            lat = np.einsum("rgb,gl->rlb", lat_cum[hi_idx] - lat_cum[lo_idx], level.onehot)[:, present]
            ttft = np.einsum("rgb,gl->rlb", ttft_cum[hi_idx] - ttft_cum[lo_idx], level.onehot)[:, present]
        keys = [k for k, p in zip(level.keys, present, strict=True) if p]
        return WindowSet(dims, ranges, keys, scalars, by_type, lat, ttft)

    def heavy_keys(
        self, kind: str, start: datetime, end: datetime, *, min_calls: int, min_tokens: int, min_cost: float
    ) -> list[KeyActivity]:
        floor_calls, floor_tokens, floor_cost = self._key_floor
        if min_calls < floor_calls or min_tokens < floor_tokens or min_cost < floor_cost:
            raise ValueError("heavy_keys thresholds below the floor the source was preloaded with")
        self._check_range(start, end)
        table = self._keys.get(kind)
        if table is None:
            raise ValueError(f"key kind {kind!r} was not preloaded")
        s, e = self._minute_index(start), self._minute_index(end)
        out = []
        for i, ident in enumerate(table.ident):
            a, b = table.offsets[i], table.offsets[i + 1]
            mins = table.minute[a:b]
            lo = a + int(np.searchsorted(mins, s, side="left"))
            hi = a + int(np.searchsorted(mins, e, side="left"))
            if hi <= lo:
                continue
            calls = int(table.calls[lo:hi].sum())
            tokens = int(table.tokens[lo:hi].sum())
            cost = float(table.cost[lo:hi].sum())
            if calls >= min_calls or tokens >= min_tokens or cost >= min_cost:
                app, env, key, feature, provider, model = ident
                out.append(
                    KeyActivity(
                        kind, key, app, env, feature, provider, model, calls, tokens, cost,
                        datetime.fromtimestamp(int(table.first_ms[lo:hi].min()) / 1000, UTC),
                        datetime.fromtimestamp(int(table.last_ms[lo:hi].max()) / 1000, UTC),
                    )
                )
        out.sort(key=lambda a: (a.app, a.environment, a.key))
        return out

    def independent_calls(
        self, labels: Mapping[str, str], start: datetime, end: datetime, *, priced: bool = False
    ) -> IndependentCalls:
        # Asked only for the rare slice that already shows an effect, so straight from the events table.
        self._check_range(start, end)
        return self._live.independent_calls(labels, start, end, priced=priced)

    def key_hour_quantiles(self, kind: str, start: datetime, end: datetime, q: float) -> list[KeyHourQuantile]:
        if q != self._key_quantile:
            raise ValueError(f"preloaded with quantile {self._key_quantile}, asked for {q}")
        self._check_range(start, end)
        s, e = floor_minute(start), floor_minute(end)
        return [x for x in self._key_q.get(kind, []) if s <= x.hour < e]
