"""ClickHouse side of drift: which events a run compares, and the aggregates it needs.

Everything that can be aggregated is aggregated in ClickHouse (group sizes, reference quantiles, bin
counts with the reference's edges, category counts, descriptor flags); raw rows leave the store only as a
bounded, seeded text sample (`ORDER BY cityHash64(event_id, seed) LIMIT n BY group, side`).

Each event is on a side: 1 = current window, 0 = its group's reference, -1 = neither. When
`one_call_per_trace` is set, each (group, side, trace) contributes one call, chosen by a seeded hash: the
calls of one agent run share their task, and counting them as independent samples makes every test
over-confident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from clickhouse_connect.driver.client import Client

from analyzers.drift.features import CATEGORICAL, NUMERIC, Feature

GroupKey = tuple[str, ...]
Range = tuple[datetime, datetime]


def ts(t: datetime) -> str:
    return f"toDateTime64('{t.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}', 3, 'UTC')"


def lit(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def in_ranges(ranges: Sequence[Range]) -> str:
    if not ranges:
        return "0"
    return "(" + " OR ".join(f"(start_time >= {ts(a)} AND start_time < {ts(b)})" for a, b in ranges) + ")"


@dataclass(frozen=True, slots=True)
class Scope:
    """What one run reads: group columns, operations, the current window and each group's reference."""

    group_by: tuple[str, ...]
    operations: tuple[str, ...]
    current: Range
    references: Mapping[GroupKey, tuple[Range, ...]] = field(default_factory=dict)
    one_call_per_trace: bool = True
    seed: int = 0

    @property
    def group_cols(self) -> str:
        return ", ".join(self.group_by)

    def group_tuple(self) -> str:
        return f"tuple({self.group_cols})"

    def key_expr(self) -> str:
        return "concat(" + ", '\\x1f', ".join(f"toString({c})" for c in self.group_by) + ")"

    def ops(self) -> str:
        return "operation IN (" + ", ".join(lit(o) for o in self.operations) + ")"

    def all_ranges(self) -> list[Range]:
        out = [self.current]
        for rs in self.references.values():
            out.extend(rs)
        return _merge(out)

    def side_expr(self) -> str:
        by_ranges: dict[tuple[Range, ...], list[GroupKey]] = {}
        for key, rs in self.references.items():
            by_ranges.setdefault(tuple(rs), []).append(key)
        conds = []
        for rs, keys in by_ranges.items():
            tuples = ", ".join("(" + ", ".join(lit(v) for v in k) + ")" for k in keys)
            conds.append(f"({self.group_tuple()} IN ({tuples}) AND {in_ranges(rs)})")
        ref = " OR ".join(conds) if conds else "0"
        return f"multiIf({in_ranges([self.current])}, 1, {ref}, 0, -1)"

    def where(self) -> str:
        base = f"{self.ops()} AND {in_ranges(self.all_ranges())}"
        if not self.one_call_per_trace:
            return f"{base} AND {self.side_expr()} >= 0"
        keep = (
            f"SELECT argMin(event_id, cityHash64(event_id, {int(self.seed)})) FROM events WHERE {base} "
            f"GROUP BY {self.group_cols}, {self.side_expr()} AS _side, if(trace_id = '', event_id, trace_id) "
            f"HAVING _side >= 0"
        )
        return f"{base} AND event_id IN ({keep})"


def _merge(ranges: Sequence[Range]) -> list[Range]:
    out: list[Range] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


# ------------------------------------------------------------------------------------- group sizes


def window_counts(
    client: Client, group_by: Sequence[str], operations: Sequence[str], windows: Mapping[str, Sequence[Range]]
) -> dict[GroupKey, dict[str, int]]:
    """Events per group in each named set of ranges (e.g. current, seasonal, trailing): one scan."""
    scope = Scope(tuple(group_by), tuple(operations), next(iter(windows.values()))[0])
    everything = _merge([r for rs in windows.values() for r in rs])
    names = list(windows)
    cols = ", ".join(f"countIf({in_ranges(windows[n])})" for n in names)
    sql = (
        f"SELECT {scope.group_cols}, {cols} FROM events WHERE {scope.ops()} AND {in_ranges(everything)} "
        f"GROUP BY {scope.group_cols}"
    )
    out: dict[GroupKey, dict[str, int]] = {}
    k = len(group_by)
    for row in client.query(sql).result_rows:
        out[tuple(str(v) for v in row[:k])] = {n: int(v) for n, v in zip(names, row[k:], strict=True)}
    return out


def side_counts(client: Client, scope: Scope) -> dict[GroupKey, tuple[int, int]]:
    """(reference, current) calls per group, as the tests will count them (one per trace if so set)."""
    sql = (
        f"SELECT {scope.group_cols}, countIf(_side = 0), countIf(_side = 1) FROM "
        f"(SELECT {scope.group_cols}, {scope.side_expr()} AS _side FROM events WHERE {scope.where()}) "
        f"GROUP BY {scope.group_cols}"
    )
    k = len(scope.group_by)
    return {tuple(str(v) for v in r[:k]): (int(r[k]), int(r[k + 1])) for r in client.query(sql).result_rows}


def subtract(ranges: Sequence[Range], holes: Sequence[Range]) -> list[Range]:
    """The parts of `ranges` outside every hole."""
    out = list(_merge(ranges))
    for h0, h1 in _merge(holes):
        nxt: list[Range] = []
        for a, b in out:
            if h1 <= a or h0 >= b:
                nxt.append((a, b))
                continue
            if a < h0:
                nxt.append((a, h0))
            if h1 < b:
                nxt.append((h1, b))
        out = nxt
    return out


# ----------------------------------------------------------------------------------- numeric stats


@dataclass
class NumericStats:
    """One numeric feature of one group; `n_reference`/`n_current` are the group's calls per side."""

    quantiles: np.ndarray  # reference quantiles at the bin levels
    ref_min: float
    ref_max: float
    ref_mean: float
    ref_std: float
    cur_min: float = 0.0
    cur_max: float = 0.0
    cur_mean: float = 0.0
    n_reference: int = 0
    n_current: int = 0


def numeric_stats(
    client: Client, scope: Scope, bins: int, features: Sequence[Feature] = NUMERIC
) -> dict[tuple[GroupKey, str], NumericStats]:
    """Reference quantiles (for bin edges), min/max/mean per side and the reference's std, per group."""
    levels = ", ".join(f"{i / bins:.6f}" for i in range(1, bins))
    aggs = []
    for f in features:
        x = f.sql
        aggs.append(
            f"quantilesExactIf({levels})({x}, _side = 0), minIf({x}, _side = 0), maxIf({x}, _side = 0), "
            f"avgIf({x}, _side = 0), stddevPopIf({x}, _side = 0), minIf({x}, _side = 1), "
            f"maxIf({x}, _side = 1), avgIf({x}, _side = 1)"
        )
    sql = (
        f"SELECT {scope.group_cols}, countIf(_side = 0), countIf(_side = 1), {', '.join(aggs)} FROM "
        f"(SELECT *, {scope.side_expr()} AS _side FROM events WHERE {scope.where()}) "
        f"GROUP BY {scope.group_cols}"
    )
    out: dict[tuple[GroupKey, str], NumericStats] = {}
    k = len(scope.group_by)
    for row in client.query(sql).result_rows:
        key = tuple(str(v) for v in row[:k])
        n_ref, n_cur = int(row[k]), int(row[k + 1])
        vals = row[k + 2 :]
        for i, f in enumerate(features):
            q, rmin, rmax, rmean, rstd, cmin, cmax, cmean = vals[8 * i : 8 * i + 8]
            out[(key, f.name)] = NumericStats(
                np.asarray(q, dtype=np.float64), _f(rmin), _f(rmax), _f(rmean), _f(rstd), _f(cmin), _f(cmax),
                _f(cmean), n_ref, n_cur,
            )
    return out


def _f(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0.0
    return x if np.isfinite(x) else 0.0


# ------------------------------------------------------------------------------------------ counts


def feature_counts(
    client: Client,
    scope: Scope,
    edges: Mapping[tuple[GroupKey, str], np.ndarray],
    numeric: Sequence[Feature] = NUMERIC,
    categorical: Sequence[Feature] = CATEGORICAL,
) -> dict[tuple[GroupKey, int, str], dict[str, int]]:
    """(group, side, feature) -> {bin index or category: count}; bins use each group's reference edges."""
    withs: list[str] = []
    pairs: list[tuple[str, str]] = []
    for f in numeric:
        entries = ", ".join(
            f"{lit(chr(0x1F).join(g))}, [{', '.join(repr(float(e)) for e in es)}]::Array(Float64)"
            for (g, name), es in edges.items() if name == f.name
        )
        if not entries:
            continue
        var = f"_edges_{f.name}"
        withs.append(f"map({entries}) AS {var}")
        pairs.append((f.name, f"toString(arrayCount(e -> e < {f.sql}, {var}[{scope.key_expr()}]))"))
    for f in categorical:
        pairs.append((f.name, f.sql))
    with_sql = ("WITH " + ", ".join(withs) + " ") if withs else ""
    # One map of counts per (group, side): sumMap avoids exploding every call into a row per feature.
    keys = "[" + ", ".join(f"concat({lit(name + chr(0x1F))}, {expr})" for name, expr in pairs) + "]"
    sql = (
        f"{with_sql}SELECT {scope.group_cols}, {scope.side_expr()} AS _side, "
        f"sumMap(_k, arrayResize(CAST([], 'Array(UInt64)'), length(_k), toUInt64(1))) "
        f"FROM (SELECT *, {keys} AS _k FROM events WHERE {scope.where()}) "
        f"GROUP BY {scope.group_cols}, _side"
    )
    out: dict[tuple[GroupKey, int, str], dict[str, int]] = {}
    k = len(scope.group_by)
    for row in client.query(sql).result_rows:
        key = tuple(str(v) for v in row[:k])
        side = int(row[k])
        names, sums = row[k + 1]
        for name, n in zip(names, sums, strict=True):
            fname, _, value = str(name).partition("\x1f")
            if value != "":
                out.setdefault((key, side, fname), {})[value] = int(n)
    return out


# ------------------------------------------------------------------------------------------ sample


@dataclass
class Sample:
    input_text: list[str] = field(default_factory=list)
    output_text: list[str] = field(default_factory=list)
    numeric: dict[str, list[float]] = field(default_factory=dict)


def text_sample(
    client: Client, scope: Scope, limit: int, numeric: Sequence[Feature] = NUMERIC
) -> dict[tuple[GroupKey, int], Sample]:
    """A bounded, seeded sample of each group's calls per side: texts, and numeric values for rank tests."""
    num_cols = ", ".join(f"{f.sql} AS _n_{f.name}" for f in numeric)
    sql = (
        f"SELECT {scope.group_cols}, {scope.side_expr()} AS _side, input_text, output_text, {num_cols} "
        f"FROM events WHERE {scope.where()} "
        f"ORDER BY cityHash64(event_id, {int(scope.seed)}) LIMIT {int(limit)} BY {scope.group_cols}, _side"
    )
    out: dict[tuple[GroupKey, int], Sample] = {}
    k = len(scope.group_by)
    for row in client.query(sql).result_rows:
        key = (tuple(str(v) for v in row[:k]), int(row[k]))
        s = out.get(key)
        if s is None:
            s = out[key] = Sample(numeric={f.name: [] for f in numeric})
        s.input_text.append(row[k + 1])
        s.output_text.append(row[k + 2])
        for i, f in enumerate(numeric):
            s.numeric[f.name].append(float(row[k + 3 + i]))
    return out
