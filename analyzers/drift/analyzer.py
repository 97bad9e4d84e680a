"""The drift analyzer: each run compares every group's current windows with their references.

Per run (every 15 minutes by default): count each group's calls per minute of age, and choose its current
windows, all ending now: the shortest that holds enough calls, then wider ones doubling the calls, up to a
cap (analyzers/drift/windows.py), so a quiet slice is tested on hours of traffic and a busy one on
minutes. Pick each group's reference for them (a pinned period, else the same-clock windows on previous
days when they hold enough traffic, else the span before the widest window; never overlapping a current
window, earlier drifted windows cut out). Count every feature's values per group and age ring in one
ClickHouse pass (each window and reference is a union of rings; bins, quantiles and category counts follow
from the counts) and draw one bounded text sample per ring; test every feature in every window, combine a
feature's windows with a Bonferroni correction, control the false discovery rate across all features of
all groups; store every result in drift_results. A group without a call for `stale_after` is "no
traffic": not tested, and its drift findings resolve.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
from clickhouse_connect.driver.client import Client

from analyzers.drift import queries
from analyzers.drift import store as drift_store
from analyzers.drift.detect import (
    CategoricalInput,
    DriftConfig,
    FeatureTest,
    TextInput,
    Verdict,
    apply_fdr,
    evaluate_categorical,
    evaluate_numeric,
    evaluate_text,
    numeric_input,
    shows_format,
    verdicts,
)
from analyzers.drift.features import CATEGORICAL, NUMERIC, Direction
from analyzers.drift.text import HashedDocs, compact, featurize
from analyzers.drift.windows import WindowPolicy, choose_windows, combine_windows, is_silent, persists
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, Observation, Severity

log = logging.getLogger(__name__)

GroupKey = tuple[str, ...]
Range = tuple[datetime, datetime]
ALERT = {Direction.INPUT: AlertName.INPUT_DRIFT, Direction.OUTPUT: AlertName.OUTPUT_DRIFT}


@dataclass(frozen=True, slots=True)
class DriftSettings:
    interval: timedelta = timedelta(minutes=15)
    windows: WindowPolicy = field(default_factory=WindowPolicy)
    reference: str = "auto"  # auto | seasonal | trailing
    seasonal_days: int = 7
    # Seasonal days used: the most recent ones until the reference holds this many times the calls of the
    # widest current window (more only costs time; fewer makes the reference as noisy as the window).
    reference_ratio: float = 2.0
    # Seasonal when the previous days' same-clock windows hold at least this share of the widest current
    # window's calls (one previous day of similar traffic qualifies; a trailing reference mixes other
    # hours of the day, and during a long incident the incident itself).
    seasonal_min_share: float = 0.5
    trailing: timedelta = timedelta(hours=24)  # the longest trailing reference
    trailing_ratio: float = 4.0  # trailing reference = this many widest windows, at most `trailing`
    stale_after: timedelta = timedelta(hours=6)  # no call for this long: the slice is silent
    group_by: tuple[str, ...] = ("app", "environment", "feature")
    operations: tuple[str, ...] = ("chat", "text_completion", "embeddings")
    persist_runs: int = 2
    persist_hits: int = 2
    one_call_per_trace: bool = True
    output_formats: Mapping[str, str] = field(default_factory=dict)  # "app/feature" -> "json"
    detect: DriftConfig = field(default_factory=DriftConfig)
    store_results: bool = True
    text: bool = True  # the text tests (sample + classifier); off leaves numeric and categorical features
    text_sample: int = 300  # texts per window and side for the text test


STATUS_SILENT = "no_traffic"
CURRENT_BUCKET = 1  # current ring i (0-based, shortest first) is bucket 1 + i
SEASONAL_BUCKET = 101  # seasonal ring i of the chosen days is bucket 101 + i
OTHER_REFERENCE_BUCKET = 200  # the trailing or pinned reference, shared by every window


@dataclass
class GroupRun:
    """What one run found for one group: the windows, the reference used, the tests, the verdicts."""

    key: GroupKey
    labels: dict[str, str]
    reference_kind: str
    reference: tuple[Range, ...]
    n_reference: int
    n_current: int
    tests: list[FeatureTest] = field(default_factory=list)
    verdicts: dict[Direction, Verdict] = field(default_factory=dict)
    persisted: dict[Direction, bool] = field(default_factory=dict)
    recent: dict[Direction, list[bool]] = field(default_factory=dict)
    windows: list[int] = field(default_factory=list)  # current window lengths tested, minutes
    window_calls: list[int] = field(default_factory=list)  # calls in each (every call, before one-per-trace)
    current: Range | None = None  # the widest current window
    silent: bool = False  # no call for `stale_after`: nothing tested, its findings resolve
    seasonal_days: list[int] = field(default_factory=list)
    rings: list[queries.AgeRing] = field(default_factory=list)

    @property
    def reference_span(self) -> Range:
        if not self.reference:
            at = self.current[1] if self.current else datetime.fromtimestamp(0, UTC)
            return (at, at)
        return (min(r[0] for r in self.reference), max(r[1] for r in self.reference))


@dataclass
class DriftRun:
    at: datetime
    current: Range  # the widest current window of any group
    groups: list[GroupRun]
    skipped: list[tuple[dict[str, str], str]]  # groups without a verdict, and why


def _floor_minute(t: datetime) -> datetime:
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.replace(second=0, microsecond=0)


_MIN_MS = 60_000
_DAY_MS = 86_400_000


def _ms(d: timedelta) -> int:
    return int(d.total_seconds() * 1000)


def _minus(ring: tuple[int, int], holes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of an age range outside every hole (age ranges, ms)."""
    out = [ring]
    for h0, h1 in sorted(holes):
        nxt: list[tuple[int, int]] = []
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


def _walk_back(start: int, length: int, limit: int, holes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Age ranges from `start` back, outside every hole, totalling `length` ms (less if `limit` comes first)."""
    out: list[tuple[int, int]] = []
    need = length
    for a, b in _minus((start, max(limit, start + length)), holes):
        if need <= 0:
            break
        take = min(b - a, need)
        out.append((a, a + take))
        need -= take
    return out


class DriftAnalyzer:
    """LLMInputDrift / LLMOutputDrift (see module doc)."""

    name = "drift"
    alertnames: tuple[AlertName, ...] = (AlertName.INPUT_DRIFT, AlertName.OUTPUT_DRIFT)

    def __init__(self, settings: DriftSettings | None = None) -> None:
        self.settings = settings or DriftSettings()
        self.interval = self.settings.interval
        self._doc_cache = DocCache()

    # ------------------------------------------------------------------------------------ the run

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        result = self.analyze(ctx.client, ctx.at)
        observations: list[Observation] = []
        for g in result.groups:
            for direction, v in g.verdicts.items():
                if v.drifted and g.persisted.get(direction, False):
                    observations.append(self._observation(result, g, direction, v, ctx.dashboard_base_url))
        # Every group is evaluated each run: one with calls is tested (or has too few to test), one silent
        # for `stale_after` is evaluated as "no traffic", and one without a call in the whole look-back has
        # been silent for longer than that. So a drift finding not observed now resolves, whatever its slice.
        return AnalyzerResult(observations, None)

    def lookback(self) -> timedelta:
        s = self.settings
        return max(timedelta(days=s.seasonal_days) + s.windows.max_window, s.stale_after, s.windows.max_window)

    def _quarantine_span(self) -> timedelta:
        """How far back earlier drifted windows are read (and a trailing reference may reach)."""
        s = self.settings
        return timedelta(days=s.seasonal_days) + s.windows.max_window + s.trailing

    def analyze(self, client: Client, at: datetime) -> DriftRun:
        """Tests and verdicts of every group as of `at` (stored in drift_results unless disabled)."""
        s = self.settings
        pol = s.windows
        at = _floor_minute(at)
        activity = queries.activity(client, s.group_by, s.operations, at, pol.max_minutes, self.lookback())
        pins = drift_store.pinned_references(client)
        quarantine_since = at - self._quarantine_span()
        quarantined = drift_store.drifted_windows(client, quarantine_since, at) if activity else {}
        groups: list[GroupRun] = []
        skipped: list[tuple[dict[str, str], str]] = []
        planned: list[GroupRun] = []
        cfg = s.detect
        for key, act in sorted(activity.items()):
            labels = self._labels(key)
            if is_silent(act.minutes_since_last_call, s.stale_after):
                g = GroupRun(key, labels, "none", (), 0, 0, silent=True, current=(at - s.stale_after, at))
                g.verdicts = {d: Verdict(d, STATUS_SILENT, False, [], 0, 0) for d in Direction}
                skipped.append((labels, f"no call for {act.minutes_since_last_call or math.inf:.0f} min: no traffic"))
                groups.append(g)
                continue
            wins = choose_windows(act.calls_by_age_minute, pol)
            if not wins:
                held = int(act.calls_by_age_minute.sum())
                g = GroupRun(key, labels, "none", (), 0, held, current=(at - pol.max_window, at))
                g.verdicts = verdicts([], 0, held, cfg)
                skipped.append((labels, f"{held} calls in the last {pol.max_window}; needs {pol.min_events}"))
                groups.append(g)
                continue
            cum = np.cumsum(act.calls_by_age_minute)
            g = GroupRun(key, labels, "", (), 0, 0, windows=wins, window_calls=[int(cum[w - 1]) for w in wins],
                         current=(at - timedelta(minutes=wins[-1]), at))
            groups.append(g)
            planned.append(g)
        self._plan_references(client, at, planned, pins, quarantined)
        if planned:
            self._test(client, at, planned, pins)
        widest = max((g.current[0] for g in groups if g.current), default=at - pol.max_window)
        run = DriftRun(at, (min(widest, at - pol.min_window), at), groups, skipped)
        self._persist(client, run)
        if s.store_results:
            rows: list[list[Any]] = []
            for g in groups:
                rc = drift_store.RunContext(at, g.labels, g.reference_kind, g.reference_span, g.current or run.current)
                rows.extend(drift_store.result_rows(rc, g.tests, g.verdicts, g.persisted))
            drift_store.write_results(client, rows)
        for labels, why in skipped:
            log.info("drift: no verdict for %s: %s", labels, why)
        return run

    # ----------------------------------------------------------------------------- references

    def _labels(self, key: GroupKey) -> dict[str, str]:
        return dict(zip(self.settings.group_by, key, strict=True))

    def _plan_references(
        self, client: Client, at: datetime, groups: Sequence[GroupRun],
        pins: Sequence[drift_store.PinnedReference],
        quarantined: Mapping[tuple[str, ...], Sequence[Range]],
    ) -> None:
        """Each group's reference for its widest window (the same kind for all its windows) and its rings.

        Seasonal: the same-clock windows of the same lengths on previous days, when they hold at least
        `seasonal_min_share` of the widest current window's calls (and `min_events`); else trailing: the span
        before the widest current window. Neither ever overlaps a current window; earlier drifted windows are cut out.
        """
        s = self.settings
        holes: dict[GroupKey, list[tuple[int, int]]] = {}
        candidates: dict[GroupKey, list[queries.AgeRing]] = {}
        for g in groups:
            w_max = g.windows[-1] * _MIN_MS
            key5 = tuple(g.labels.get(c, "") for c in drift_store.GROUP_COLUMNS)
            holes[g.key] = [(max(0, _ms(at - b)), max(0, _ms(at - a))) for a, b in quarantined.get(key5, [])]
            if drift_store.reference_for(g.labels, pins) is None and s.reference != "trailing":
                # Holes are ages from now: cut them out of each day's window where they fall (not out of
                # the current window shifted by d days, which would empty every day during an incident).
                candidates[g.key] = [(a, b, d)
                                     for d in range(1, s.seasonal_days + 1)
                                     for a, b in _minus((d * _DAY_MS, d * _DAY_MS + w_max), holes[g.key])
                                     if b > a]
        seasonal_calls = queries.ring_counts(client, queries.Rings(s.group_by, s.operations, at, candidates))
        for g in groups:
            w_max = g.windows[-1] * _MIN_MS
            n_max = g.window_calls[-1]
            cur_edges = [0, *(w * _MIN_MS for w in g.windows)]
            rings: list[queries.AgeRing] = [(a, b, CURRENT_BUCKET + i) for i, (a, b) in enumerate(pairwise(cur_edges))]
            pin = drift_store.reference_for(g.labels, pins)
            if pin is not None:
                g.reference_kind = "pinned"
                age = (max(_ms(at - pin.end), w_max), _ms(at - pin.start))
                rings += [(a, b, OTHER_REFERENCE_BUCKET) for a, b in _minus(age, []) if b > a]
                g.reference = ((pin.start, pin.end),)
                g.rings = rings
                continue
            by_day = {d: seasonal_calls.get((g.key, d), 0) for d in range(1, s.seasonal_days + 1)}
            total = sum(by_day.values())
            use_seasonal = s.reference == "seasonal" or (
                s.reference == "auto" and total >= max(s.windows.min_events, s.seasonal_min_share * n_max)
            )
            cut = any(h1 > h0 for h0, h1 in holes[g.key])
            if use_seasonal:
                days: list[int] = []
                held = 0
                for d in sorted(by_day):
                    if by_day[d] == 0:
                        continue
                    days.append(d)
                    held += by_day[d]
                    if held >= s.reference_ratio * n_max:
                        break
                days = days or [1]
                g.seasonal_days = days
                g.reference_kind = "seasonal"
                spans: list[Range] = []
                for d in days:
                    for i, (a, b) in enumerate(pairwise(cur_edges)):
                        for x, y in _minus((d * _DAY_MS + a, d * _DAY_MS + b), holes[g.key]):
                            rings.append((x, y, SEASONAL_BUCKET + i))
                    spans.append((at - timedelta(days=d, milliseconds=w_max), at - timedelta(days=d)))
                g.reference = tuple(spans)
                cut = cut and any(d * _DAY_MS < h1 and h0 < d * _DAY_MS + w_max for d in days
                                  for h0, h1 in holes[g.key])
            else:
                g.reference_kind = "trailing"
                length = min(_ms(s.trailing), max(int(s.trailing_ratio * w_max), _ms(timedelta(hours=2))))
                # `length` of traffic that did not drift, the newest before the widest window: the span
                # reaches back past earlier drifted windows instead of shrinking to what they leave, so
                # after an incident the reference is the traffic before it (a reference cut down to the
                # incident's last undetected minutes would flag the clean traffic after it, and every
                # such run would be cut out too).
                kept = _walk_back(w_max, length, _ms(self._quarantine_span()), holes[g.key])
                rings += [(a, b, OTHER_REFERENCE_BUCKET) for a, b in kept]
                oldest = max((b for _, b in kept), default=w_max + length)
                g.reference = tuple((at - timedelta(milliseconds=b), at - timedelta(milliseconds=a))
                                    for a, b in sorted(kept, reverse=True)) or (
                    (at - timedelta(milliseconds=w_max + length), at - timedelta(milliseconds=w_max)),)
                cut = cut and any(h0 < oldest and w_max < h1 for h0, h1 in holes[g.key])
            if cut:
                g.reference_kind += "-excluding-drift"
            g.rings = rings

    # ---------------------------------------------------------------------------------- testing

    def _test(self, client: Client, at: datetime, groups: Sequence[GroupRun],
              pins: Sequence[drift_store.PinnedReference]) -> None:
        s = self.settings
        cfg = replace(s.detect, null_below_p=min(s.detect.null_below_p, s.detect.fdr))
        rings = queries.Rings(s.group_by, s.operations, at, {g.key: g.rings for g in groups},
                              s.one_call_per_trace, s.detect.seed)
        aggregates = queries.window_aggregates(client, rings)
        samples = queries.text_sample(client, rings, s.text_sample) if s.text else {}
        rng = np.random.default_rng(cfg.seed)
        all_tests: list[tuple[GroupRun, FeatureTest]] = []
        none = queries.SideAggregates()
        for g in groups:
            k_windows = len(g.windows)
            ref_buckets: list[list[int]] = (
                [[SEASONAL_BUCKET + j for j in range(i + 1)] for i in range(k_windows)]
                if g.reference_kind.startswith("seasonal") else [[OTHER_REFERENCE_BUCKET]] * k_windows
            )
            cur_buckets = [[CURRENT_BUCKET + j for j in range(i + 1)] for i in range(k_windows)]
            pin = drift_store.reference_for(g.labels, pins) if g.reference_kind == "pinned" else None
            per_feature: dict[tuple[str, str], list[FeatureTest | None]] = {}
            pool = _TextPool.of(samples, g.key, sorted({b for bs in cur_buckets + ref_buckets for b in bs}),
                                self._doc_cache)
            for i in range(k_windows):
                ref_a = queries.merge_aggregates([aggregates.get((g.key, b), none) for b in ref_buckets[i]])
                cur_a = queries.merge_aggregates([aggregates.get((g.key, b), none) for b in cur_buckets[i]])
                if i == k_windows - 1:
                    g.n_reference, g.n_current = ref_a.n, cur_a.n
                for t in self._window_tests(g, ref_a, cur_a, pool, ref_buckets[i], cur_buckets[i], pin, cfg, rng):
                    per_feature.setdefault((t.feature, t.kind), [None] * k_windows)[i] = t
            for tests in per_feature.values():
                present = [(t, w) for t, w in zip(tests, g.windows, strict=True) if t is not None]
                all_tests.append((g, combine_windows([t for t, _ in present], [w for _, w in present])))
        decided = apply_fdr([t for _, t in all_tests], cfg.fdr)
        for (g, _), t in zip(all_tests, decided, strict=True):
            g.tests.append(t)
        for g in groups:
            g.verdicts = verdicts(g.tests, g.n_reference, g.n_current, cfg)

    def _window_tests(
        self, g: GroupRun, ref_a: queries.SideAggregates, cur_a: queries.SideAggregates, pool: _TextPool,
        ref_buckets: Sequence[int], cur_buckets: Sequence[int], pin: drift_store.PinnedReference | None,
        cfg: DriftConfig, rng: np.random.Generator,
    ) -> list[FeatureTest]:
        s = self.settings
        out: list[FeatureTest] = []
        ref_s = pool.sample(ref_buckets, s.text_sample)
        cur_s = pool.sample(cur_buckets, s.text_sample)
        for f in NUMERIC:
            if f.name not in ref_a.numeric or f.name not in cur_a.numeric:
                continue
            stored = pin.edges.get(f.name) if pin is not None else None
            inp = numeric_input(
                f.name, f.direction, ref_a.numeric[f.name], cur_a.numeric[f.name], cfg.bins,
                None if stored is None else np.asarray(stored, dtype=np.float64),
                pool.numeric(f.name, ref_s) if s.text else None, pool.numeric(f.name, cur_s) if s.text else None,
            )
            out.append(evaluate_numeric(inp, cfg, rng))
        declared = s.output_formats.get(f"{g.labels.get('app', '')}/{g.labels.get('feature', '')}")
        for f in CATEGORICAL:
            ref_counts = ref_a.categorical.get(f.name, {})
            if f.needs_format and declared != "json" and not shows_format(ref_counts):
                continue
            inp_c = CategoricalInput(f.name, f.direction, ref_counts, cur_a.categorical.get(f.name, {}))
            out.extend(evaluate_categorical(inp_c, cfg, rng))
        if not s.text:
            return out
        for name, direction in (("input_text", Direction.INPUT), ("output_text", Direction.OUTPUT)):
            ref_i, cur_i = pool.non_empty(name, ref_s), pool.non_empty(name, cur_s)
            if len(ref_i) == 0 and len(cur_i) == 0:
                continue  # e.g. embeddings have no output text
            texts, (docs, vocabulary) = pool.texts(name), pool.docs(name)
            inp_t = TextInput(name, direction, [texts[j] for j in ref_i], [texts[j] for j in cur_i],
                              docs.take(ref_i), docs.take(cur_i), ref_a.n, cur_a.n, vocabulary)
            out.append(evaluate_text(inp_t, cfg, rng))
        return out

    # ------------------------------------------------------------------------------ persistence

    def _persist(self, client: Client, run: DriftRun) -> None:
        s = self.settings
        need_previous = s.persist_runs > 1 and s.persist_hits > 1
        previous = (
            drift_store.previous_verdicts(client, run.at, run.at - s.interval * (s.persist_runs - 1) - s.interval / 2)
            if need_previous else {}
        )
        for g in run.groups:
            key5 = tuple(g.labels.get(c, "") for c in drift_store.GROUP_COLUMNS)
            for direction, v in g.verdicts.items():
                earlier = [d for _, d in previous.get((key5, direction.value), [])][: s.persist_runs - 1]
                g.recent[direction] = [v.drifted, *earlier]
                g.persisted[direction] = persists(v.drifted, earlier, s.persist_runs, s.persist_hits)


    # ------------------------------------------------------------------------------ observation

    def _observation(self, run: DriftRun, g: GroupRun, direction: Direction, v: Verdict, base_url: str) -> Observation:
        top = v.top[0]
        where = "/".join(x for x in (g.labels.get("app", ""), g.labels.get("feature", "")) if x)
        ref_a, ref_b = g.reference_span
        names = ", ".join(t.feature for t in v.top[:4])
        minutes = int(top.details.get("window_minutes", g.windows[-1] if g.windows else 0))
        cur_a = run.at - timedelta(minutes=minutes)
        summary = (
            f"{where or 'group'}: {direction.value}s drifted ({names}) over the last {_span(minutes)} vs the "
            f"{g.reference_kind} reference {ref_a:%Y-%m-%d %H:%M}–{ref_b:%Y-%m-%d %H:%M} UTC"
            + (f"; {sum(g.recent[direction])} of the last {len(g.recent[direction])} runs"
               if len(g.recent[direction]) > 1 else "")
        )
        lines = [
            f"window {cur_a:%Y-%m-%d %H:%M}–{run.at:%H:%M} UTC ({_span(minutes)}, {top.n_current} calls; windows "
            f"tried: {', '.join(_span(w) for w in top.details.get('windows_tested', g.windows))}, Bonferroni "
            f"over them); reference ({g.reference_kind}): {top.n_reference} calls"
        ]
        for t in v.top[:5]:
            lines.append(
                f"- {t.feature} [{t.kind}, {t.method}]: {t.effect_name} {t.effect:.4g} ≥ threshold "
                f"{t.threshold:.4g} (floor {t.floor:.4g}, null q{self.settings.detect.null_quantile:g} "
                f"{t.null_threshold:.4g}); p {t.p_value:.2g}, BH q {t.p_adjusted:.2g}"
            )
            lines.extend(_describe(t))
        details = {
            "direction": direction.value,
            "drift_feature": top.feature,
            "reference_kind": g.reference_kind,
            "reference": [ref_a.isoformat(), ref_b.isoformat()],
            "current": [cur_a.isoformat(), run.at.isoformat()],
            "windows_minutes": list(g.windows),
            "n_reference": v.n_reference,
            "n_current": v.n_current,
            "recent_verdicts": g.recent[direction],
            "features": [
                {"feature": t.feature, "kind": t.kind, "method": t.method, "statistic": _clean(t.statistic),
                 "p_value": t.p_value, "p_adjusted": t.p_adjusted, "effect_name": t.effect_name,
                 "effect": t.effect, "threshold": t.threshold, "details": _jsonable(t.details)}
                for t in v.top
            ],
        }
        return Observation(
            alertname=ALERT[direction],
            severity=Severity.WARNING,
            labels=dict(g.labels),
            at=run.at,
            value=float(top.effect),
            baseline=None,
            threshold=float(top.threshold),
            summary=summary,
            evidence="\n".join(lines),
            details=details,
        )


def _span(minutes: int) -> str:
    return f"{minutes} min" if minutes < 120 or minutes % 60 else f"{minutes // 60} h"


def _describe(t: FeatureTest) -> list[str]:
    d = t.details
    out = []
    if t.kind == "numeric":
        out.append(f"    mean {d.get('reference_mean', math.nan):.4g} → {d.get('current_mean', math.nan):.4g}"
                   + (f", wasserstein/std {d['wasserstein_std']:.3g}" if "wasserstein_std" in d else ""))
    elif t.kind == "categorical":
        moved = d.get("categories", {})
        out.append("    " + "; ".join(f"{k}: {v['reference']:.1%} → {v['current']:.1%}" for k, v in moved.items()))
    elif t.kind == "new_category":
        out.append("    new: " + ", ".join(f"{k} ({v:.1%})" for k, v in d.get("new_categories", {}).items()))
    elif t.kind == "text":
        rising = ", ".join(
            f"'{x['term']}' {x['reference']:.0%}→{x['current']:.0%}" for x in d.get("rising_terms", [])[:6]
        )
        if rising:
            out.append(f"    more frequent now: {rising}")
        falling = ", ".join(
            f"'{x['term']}' {x['reference']:.0%}→{x['current']:.0%}" for x in d.get("falling_terms", [])[:4]
        )
        if falling:
            out.append(f"    less frequent now: {falling}")
        for ex in d.get("examples", [])[:3]:
            out.append(f"    example: {ex}")
    return out


def _clean(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        return _clean(float(x))
    if isinstance(x, np.integer):
        return int(x)
    return x


def settings_from(settings: Any) -> DriftSettings:
    """DriftSettings from llmpulse Settings (the `drift_*` fields)."""
    cfg = DriftConfig(
        fdr=settings.drift_fdr, null_quantile=settings.drift_null_quantile, bins=settings.drift_bins,
        top_k=settings.drift_top_k, psi_floor=settings.drift_psi_floor, js_floor_bits=settings.drift_js_floor_bits,
        auc_floor=settings.drift_auc_floor, new_category_share=settings.drift_new_category_share,
        min_events=settings.drift_min_events, min_texts=settings.drift_min_texts,
        text_sample=settings.drift_text_sample, seed=settings.drift_seed,
    )
    policy = WindowPolicy(
        min_window=timedelta(minutes=settings.drift_min_window_minutes),
        max_window=timedelta(minutes=settings.drift_max_window_minutes),
        first_events=settings.drift_first_window_events,
        enough_events=settings.drift_enough_events,
        min_events=settings.drift_min_events,
    )
    return DriftSettings(
        interval=timedelta(minutes=settings.drift_interval_minutes),
        windows=policy,
        reference=settings.drift_reference,
        seasonal_days=settings.drift_seasonal_days,
        trailing=timedelta(hours=settings.drift_trailing_hours),
        stale_after=timedelta(minutes=settings.drift_stale_after_minutes),
        group_by=tuple(settings.drift_group_by),
        operations=tuple(settings.drift_operations),
        persist_runs=settings.drift_persist_runs,
        persist_hits=settings.drift_persist_hits,
        one_call_per_trace=settings.drift_one_call_per_trace,
        output_formats=dict(settings.drift_output_formats),
        detect=cfg,
        text_sample=settings.drift_text_sample,
    )


def with_detect(settings: DriftSettings, **changes: Any) -> DriftSettings:
    return replace(settings, detect=replace(settings.detect, **changes))


class DocCache:
    """Featurized texts of sampled calls, by the call's sample hash, kept across runs.

    Consecutive runs sample mostly the same calls (windows move by one interval), so each text is
    featurized about once instead of once per run. Bounded: the oldest half goes when it is full.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._docs: dict[tuple[int, str], npt.NDArray[np.int32]] = {}

    def docs(self, ranks: Sequence[int], texts: Sequence[str], name: str) -> HashedDocs:
        missing = [i for i, r in enumerate(ranks) if (r, name) not in self._docs]
        if missing:
            fresh = featurize([texts[i] for i in missing])
            for j, i in enumerate(missing):
                self._docs[(ranks[i], name)] = fresh.indices[fresh.indptr[j]:fresh.indptr[j + 1]].astype(np.int32)
        rows = [self._docs[(r, name)] for r in ranks]
        lengths = np.fromiter((len(x) for x in rows), dtype=np.int64, count=len(rows))
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        indices = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, dtype=np.int64)
        if len(self._docs) > self.limit:
            for k in list(self._docs)[: len(self._docs) // 2]:
                del self._docs[k]
        return HashedDocs(indptr, indices)


@dataclass
class _TextPool:
    """One group's sampled calls over all its buckets, featurized once; a window's sample is a subset."""

    bucket: npt.NDArray[np.int64]
    rank: npt.NDArray[np.uint64]
    input_text: list[str]
    output_text: list[str]
    numbers: dict[str, npt.NDArray[np.float64]]
    cache: DocCache
    _docs: dict[str, tuple[HashedDocs, npt.NDArray[np.int64]]] = field(default_factory=dict)

    @classmethod
    def of(cls, samples: Mapping[tuple[GroupKey, int], queries.Sample], key: GroupKey,
           buckets: Sequence[int], cache: DocCache) -> _TextPool:
        parts = [(b, samples[(key, b)]) for b in buckets if (key, b) in samples]
        bucket = np.asarray([b for b, p in parts for _ in p.input_text], dtype=np.int64)
        rank = np.asarray([r for _, p in parts for r in p.rank], dtype=np.uint64)
        names = {n for _, p in parts for n in p.numeric}
        numbers = {n: np.asarray([v for _, p in parts for v in p.numeric.get(n, [])], dtype=np.float64)
                   for n in names}
        return cls(bucket, rank, [t for _, p in parts for t in p.input_text],
                   [t for _, p in parts for t in p.output_text], numbers, cache)

    def sample(self, buckets: Sequence[int], limit: int) -> npt.NDArray[np.int64]:
        """Indices of the union's `limit` lowest-hash calls (a uniform sample of the union), in hash order."""
        idx = np.flatnonzero(np.isin(self.bucket, np.asarray(buckets, dtype=np.int64)))
        return idx[np.argsort(self.rank[idx], kind="stable")[:limit]].astype(np.int64)

    def texts(self, name: str) -> list[str]:
        return self.input_text if name == "input_text" else self.output_text

    def non_empty(self, name: str, idx: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        texts = self.texts(name)
        return np.asarray([j for j in idx.tolist() if texts[j]], dtype=np.int64)

    def docs(self, name: str) -> tuple[HashedDocs, npt.NDArray[np.int64]]:
        """Every pooled text of `name` featurized, renumbered over the pool's vocabulary (text.compact)."""
        if name not in self._docs:
            self._docs[name] = compact(self.cache.docs(self.rank.tolist(), self.texts(name), name))
        return self._docs[name]

    def numeric(self, name: str, idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float64] | None:
        values = self.numbers.get(name)
        return None if values is None or len(idx) == 0 else values[idx]
