"""ClickHouse side of drift: which events a run compares, and the aggregates it needs.

Everything that can be aggregated is aggregated in ClickHouse, in one pass per run: each call's features
(descriptors included) are computed once and counted per distinct value, per group and side (numeric
features are counts of tokens or characters, so their distinct values are few); quantiles, bins and moments
follow exactly from those counts. Raw rows leave the store only as a bounded, seeded text sample
(`ORDER BY cityHash64(event_id, seed) LIMIT n BY group, side`).

Each event is on a side: 1 = current window, 0 = its group's reference, -1 = neither. When
`one_call_per_trace` is set, each (group, side, trace) contributes one call, chosen by a seeded hash: the
calls of one agent run share their task, and counting them as independent samples makes every test
over-confident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from clickhouse_connect.driver.client import Client

from analyzers.drift.features import CATEGORICAL, NUMERIC, Feature

GroupKey = tuple[str, ...]
Range = tuple[datetime, datetime]
F64 = npt.NDArray[np.float64]


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

    def candidates(self) -> str:
        """Every call on a side (before one call per trace is chosen)."""
        return f"{self.ops()} AND {in_ranges(self.all_ranges())} AND {self.side_expr()} >= 0"

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


# ------------------------------------------------------------------------------ value counts, one pass


@dataclass
class SideAggregates:
    """One side (reference or current) of one group: how many calls take each value of each feature."""

    n: int = 0  # calls
    numeric: dict[str, tuple[F64, F64]] = field(default_factory=dict)  # feature -> (values ascending, counts)
    categorical: dict[str, dict[str, int]] = field(default_factory=dict)  # feature -> {category: calls}


def window_aggregates(
    client: Client,
    scope: Scope | Rings,
    numeric: Sequence[Feature] = NUMERIC,
    categorical: Sequence[Feature] = CATEGORICAL,
) -> dict[tuple[GroupKey, int], SideAggregates]:
    """Value counts of every feature, per group and side, in ONE pass over the events.

    Each call's features (descriptors included) are computed once and counted per distinct value; the
    reference quantiles, bins, min/max, mean and spread all follow exactly from these counts in Python, so
    no second pass is needed to bin with edges the first pass found. The numeric features are counts
    (tokens, characters): their distinct values are few (a few thousand per window), whatever the traffic.
    """
    if not numeric:
        raise ValueError("window_aggregates needs at least one numeric feature (it counts the calls)")
    features = [*numeric, *categorical]
    cols = ", ".join(f"{f.sql} AS _f{i}" for i, f in enumerate(features))
    cells = ", ".join(
        [f"tuple(toUInt8({i}), toFloat64(_f{i}), '')" for i in range(len(numeric))]
        + [f"tuple(toUInt8({i}), toFloat64(0), toString(_f{i}))" for i in range(len(numeric), len(features))]
    )
    sql = (
        f"SELECT {scope.group_cols}, _side, _cell.1 AS _feature, _cell.2 AS _x, _cell.3 AS _category, count() "
        f"FROM (SELECT {scope.group_cols}, {scope.side_expr()} AS _side, {cols} FROM events WHERE {scope.where()}) "
        f"ARRAY JOIN [{cells}] AS _cell "
        f"GROUP BY {scope.group_cols}, _side, _feature, _x, _category"
    )
    k = len(scope.group_by)
    values: dict[tuple[GroupKey, int, int], tuple[list[float], list[int]]] = {}
    out: dict[tuple[GroupKey, int], SideAggregates] = {}
    for row in client.query(sql).result_rows:
        key, side, fi = tuple(str(v) for v in row[:k]), int(row[k]), int(row[k + 1])
        count = int(row[k + 4])
        agg = out.get((key, side))
        if agg is None:
            agg = out[(key, side)] = SideAggregates()
        if fi < len(numeric):
            vs = values.setdefault((key, side, fi), ([], []))
            vs[0].append(float(row[k + 2]))
            vs[1].append(count)
            if fi == 0:
                agg.n += count  # every call has exactly one value of each numeric feature
        elif (category := str(row[k + 3])) != "":  # '' = not applicable to this call
            agg.categorical.setdefault(features[fi].name, {})[category] = count
    for (key, side, fi), (xs, ns) in values.items():
        x, c = np.asarray(xs, dtype=np.float64), np.asarray(ns, dtype=np.float64)
        order = np.argsort(x, kind="stable")
        out[(key, side)].numeric[numeric[fi].name] = (x[order], c[order])
    return out


def numeric_value_counts(
    client: Client, where: str, numeric: Sequence[Feature] = NUMERIC
) -> tuple[int, dict[str, tuple[F64, F64]]]:
    """Calls matching `where` and, per numeric feature, its distinct values (ascending) with their counts."""
    cols = ", ".join(f"{f.sql} AS _f{i}" for i, f in enumerate(numeric))
    cells = ", ".join(f"tuple(toUInt8({i}), toFloat64(_f{i}))" for i in range(len(numeric)))
    rows = client.query(
        f"SELECT _cell.1 AS _feature, _cell.2 AS _x, count() FROM (SELECT {cols} FROM events WHERE {where}) "
        f"ARRAY JOIN [{cells}] AS _cell GROUP BY _feature, _x ORDER BY _feature, _x"
    ).result_rows
    out: dict[str, tuple[list[float], list[int]]] = {f.name: ([], []) for f in numeric}
    for fi, x, n in rows:
        xs, ns = out[numeric[int(fi)].name]
        xs.append(float(x))
        ns.append(int(n))
    calls = sum(out[numeric[0].name][1]) if numeric else 0
    return calls, {k: (np.asarray(xs, dtype=np.float64), np.asarray(ns, dtype=np.float64)) for k, (xs, ns) in
                   out.items()}


# ------------------------------------------------------------------------------------------ sample


@dataclass
class Sample:
    input_text: list[str] = field(default_factory=list)
    output_text: list[str] = field(default_factory=list)
    numeric: dict[str, list[float]] = field(default_factory=dict)
    rank: list[int] = field(default_factory=list)  # the seeded hash the sample is drawn by (lowest first)


def text_sample(
    client: Client, scope: Scope | Rings, limit: int, numeric: Sequence[Feature] = NUMERIC
) -> dict[tuple[GroupKey, int], Sample]:
    """A bounded, seeded sample of each group's calls per side: texts, and numeric values for rank tests."""
    num_cols = ", ".join(f"{f.sql} AS _n_{f.name}" for f in numeric)
    if scope.one_call_per_trace:
        # One pass: each trace's call of lowest hash (the one `where()` keeps) is chosen while grouping.
        picked = ", ".join(f"_t.{i + 1}" for i in range(2 + len(numeric)))
        sql = (
            f"SELECT {scope.group_cols}, _side, {picked}, _rank FROM ("
            f"SELECT {scope.group_cols}, {scope.side_expr()} AS _side, "
            f"if(trace_id = '', event_id, trace_id) AS _trace, min(cityHash64(event_id, {int(scope.seed)})) AS _rank, "
            f"argMin(tuple(input_text, output_text, {', '.join(f.sql for f in numeric)}), "
            f"cityHash64(event_id, {int(scope.seed)})) AS _t "
            f"FROM events WHERE {scope.candidates()} GROUP BY {scope.group_cols}, _side, _trace) "
            f"ORDER BY _rank LIMIT {int(limit)} BY {scope.group_cols}, _side"
        )
    else:
        sql = (
            f"SELECT {scope.group_cols}, {scope.side_expr()} AS _side, input_text, output_text, {num_cols}, "
            f"cityHash64(event_id, {int(scope.seed)}) AS _rank "
            f"FROM events WHERE {scope.where()} "
            f"ORDER BY _rank LIMIT {int(limit)} BY {scope.group_cols}, _side"
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
        s.rank.append(int(row[k + 3 + len(numeric)]))
    return out


# ------------------------------------------------------------------- windows that widen: rings by age


def _age_ms(at: datetime) -> str:
    return f"(toUnixTimestamp64Milli({ts(at)}) - toUnixTimestamp64Milli(start_time))"


@dataclass
class Activity:
    """One group's calls by age (minutes before the run's instant) up to the window cap, and its newest call."""

    calls_by_age_minute: npt.NDArray[np.int64]
    minutes_since_last_call: float | None


def activity(
    client: Client, group_by: Sequence[str], operations: Sequence[str], at: datetime, cap_minutes: int,
    lookback: timedelta,
) -> dict[GroupKey, Activity]:
    """Per group with a call in [at - lookback, at): calls per age minute below the cap, newest call's age.

    One scan; a group whose last call is older than the cap appears with zero counts (so its findings can
    be resolved as silent).
    """
    scope = Scope(tuple(group_by), tuple(operations), (at - lookback, at))
    cap_ms = cap_minutes * 60_000
    sql = (
        f"SELECT {scope.group_cols}, if(_age < {cap_ms}, intDiv(_age, 60000), -1) AS _m, count(), min(_age) "
        f"FROM (SELECT {scope.group_cols}, {_age_ms(at)} AS _age FROM events WHERE {scope.ops()} "
        f"AND start_time >= {ts(at - lookback)} AND start_time < {ts(at)}) "
        f"GROUP BY {scope.group_cols}, _m"
    )
    k = len(group_by)
    minutes: dict[GroupKey, list[tuple[int, int]]] = {}
    newest: dict[GroupKey, int] = {}
    for row in client.query(sql).result_rows:
        key = tuple(str(v) for v in row[:k])
        m, n, youngest = int(row[k]), int(row[k + 1]), int(row[k + 2])
        minutes.setdefault(key, [])
        if m >= 0:
            minutes[key].append((m, n))
        newest[key] = min(newest.get(key, youngest), youngest)
    out: dict[GroupKey, Activity] = {}
    for key, cells in minutes.items():
        counts = np.zeros(cap_minutes, dtype=np.int64)
        for m, n in cells:
            counts[m] = n
        out[key] = Activity(counts, newest[key] / 60_000 if key in newest else None)
    return out


AgeRing = tuple[int, int, int]  # (from age ms, to age ms, bucket >= 1); an event's age = at - start_time


@dataclass(frozen=True, slots=True)
class Rings:
    """What one run reads, by age: each group's disjoint age ranges, each labelled with a bucket.

    The side of an event (`side_expr`) is its ring's bucket (0: in no ring). A window or a reference is a
    union of buckets, so the nested current windows of one run and their references are counted and
    sampled in one pass; `window_aggregates` and `text_sample` accept a `Rings` in place of a `Scope`.
    """

    group_by: tuple[str, ...]
    operations: tuple[str, ...]
    at: datetime
    rings: Mapping[GroupKey, Sequence[AgeRing]]
    one_call_per_trace: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for key, rs in self.rings.items():
            ordered = sorted(rs)
            for (a, b, bucket), nxt in zip(ordered, [*ordered[1:], None], strict=True):
                if not 0 <= a < b or bucket < 1:
                    raise ValueError(f"drift rings of {key}: bad ring ({a}, {b}, {bucket})")
                if nxt is not None and nxt[0] < b:
                    raise ValueError(f"drift rings of {key} overlap: ({a}, {b}) and ({nxt[0]}, {nxt[1]})")

    @property
    def group_cols(self) -> str:
        return ", ".join(self.group_by)

    def ops(self) -> str:
        return "operation IN (" + ", ".join(lit(o) for o in self.operations) + ")"

    def _match(self, key: GroupKey) -> str:
        return "(" + " AND ".join(f"{c} = {lit(v)}" for c, v in zip(self.group_by, key, strict=True)) + ")"

    def _spans(self, key: GroupKey) -> list[Range]:
        return _merge([(self.at - timedelta(milliseconds=b), self.at - timedelta(milliseconds=a))
                       for a, b, _ in self.rings[key]])

    def side_expr(self) -> str:
        branches = []
        age = _age_ms(self.at)
        for key, rs in self.rings.items():
            if not rs:
                continue
            ordered = sorted(rs)
            bounds: list[int] = []
            buckets: list[int] = []
            for a, b, bucket in ordered:
                if bounds and bounds[-1] == a:
                    bounds.append(b)
                else:
                    if bounds:
                        buckets.append(0)  # the gap before this ring
                    bounds.extend([a, b])
                buckets.append(bucket)
            buckets.append(0)  # older than every ring
            arr_b = "[" + ", ".join(f"toInt64({x})" for x in bounds) + "]"
            arr_k = "[" + ", ".join(str(x) for x in buckets) + "]"
            branches.append(f"{self._match(key)}, arrayElement({arr_k}, arrayCount(x -> x <= {age}, {arr_b}))")
        if not branches:
            return "toInt64(0)"
        return f"toInt64(multiIf({', '.join(branches)}, 0))"

    def base(self) -> str:
        parts = [f"({self._match(k)} AND {in_ranges(self._spans(k))})" for k, rs in self.rings.items() if rs]
        return f"{self.ops()} AND ({' OR '.join(parts) if parts else '0'})"

    def candidates(self) -> str:
        """Every call in a ring (before one call per trace is chosen)."""
        return f"{self.base()} AND {self.side_expr()} > 0"

    def where(self) -> str:
        base = self.base()
        if not self.one_call_per_trace:
            return f"{base} AND {self.side_expr()} > 0"
        keep = (
            f"SELECT argMin(event_id, cityHash64(event_id, {int(self.seed)})) FROM events WHERE {base} "
            f"GROUP BY {self.group_cols}, {self.side_expr()} AS _side, if(trace_id = '', event_id, trace_id) "
            f"HAVING _side > 0"
        )
        return f"{base} AND event_id IN ({keep})"


def ring_counts(client: Client, rings: Rings) -> dict[tuple[GroupKey, int], int]:
    """Calls per group and bucket (every call, no one-per-trace): how much traffic each candidate holds."""
    if not any(rings.rings.values()):
        return {}
    sql = (
        f"SELECT {rings.group_cols}, {rings.side_expr()} AS _side, count() FROM events WHERE {rings.base()} "
        f"GROUP BY {rings.group_cols}, _side HAVING _side > 0"
    )
    k = len(rings.group_by)
    return {(tuple(str(v) for v in row[:k]), int(row[k])): int(row[k + 1])
            for row in client.query(sql).result_rows}


def merge_aggregates(parts: Sequence[SideAggregates]) -> SideAggregates:
    """The aggregates of a union of disjoint buckets."""
    out = SideAggregates()
    numeric: dict[str, tuple[list[F64], list[F64]]] = {}
    for p in parts:
        out.n += p.n
        for name, (x, c) in p.numeric.items():
            xs, cs = numeric.setdefault(name, ([], []))
            xs.append(x)
            cs.append(c)
        for name, cats in p.categorical.items():
            into = out.categorical.setdefault(name, {})
            for cat, n in cats.items():
                into[cat] = into.get(cat, 0) + n
    for name, (xs, cs) in numeric.items():
        x, c = np.concatenate(xs), np.concatenate(cs)
        values, inverse = np.unique(x, return_inverse=True)
        out.numeric[name] = (values, np.bincount(inverse, weights=c, minlength=len(values)).astype(np.float64))
    return out


def merge_samples(parts: Sequence[Sample], limit: int) -> Sample:
    """A uniform sample of a union of buckets: the `limit` calls of lowest hash over the buckets' samples.

    Each bucket's sample holds its `limit` lowest-hash calls, so the union's lowest `limit` are among them.
    """
    if len(parts) == 1 and len(parts[0].rank) <= limit:
        return parts[0]
    ranks = [r for p in parts for r in p.rank]
    order = sorted(range(len(ranks)), key=ranks.__getitem__)[:limit]
    inputs = [t for p in parts for t in p.input_text]
    outputs = [t for p in parts for t in p.output_text]
    names = list(parts[0].numeric) if parts else []
    nums = {n: [v for p in parts for v in p.numeric.get(n, [])] for n in names}
    return Sample([inputs[i] for i in order], [outputs[i] for i in order],
                  {n: [vs[i] for i in order] for n, vs in nums.items()}, [ranks[i] for i in order])
