"""The drift analyzer: each run compares every group's current window with its reference.

Per run: pick each group's reference (a pinned period, else the same clock window on previous days when
they hold enough traffic, else the hours just before the current window), count every feature's values per
group and side in one ClickHouse pass (bins, quantiles and category counts follow from those) and draw a
bounded text sample; test every feature; control the false discovery rate across all tests of all groups;
store every result in drift_results; and report a group's direction as drifted only when this run and
enough recent runs (2 of 3 by default) agree.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
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
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, Observation, Severity

log = logging.getLogger(__name__)

GroupKey = tuple[str, ...]
Range = tuple[datetime, datetime]
ALERT = {Direction.INPUT: AlertName.INPUT_DRIFT, Direction.OUTPUT: AlertName.OUTPUT_DRIFT}


@dataclass(frozen=True, slots=True)
class DriftSettings:
    window: timedelta = timedelta(hours=1)
    interval: timedelta = timedelta(hours=1)
    reference: str = "auto"  # auto | seasonal | trailing
    seasonal_days: int = 7
    trailing: timedelta = timedelta(hours=24)
    group_by: tuple[str, ...] = ("app", "environment", "feature")
    operations: tuple[str, ...] = ("chat", "text_completion", "embeddings")
    persist_runs: int = 3
    persist_hits: int = 2
    one_call_per_trace: bool = True
    output_formats: Mapping[str, str] = field(default_factory=dict)  # "app/feature" -> "json"
    detect: DriftConfig = field(default_factory=DriftConfig)
    store_results: bool = True
    text: bool = True  # the text tests (sample + classifier); off leaves numeric and categorical features


@dataclass
class GroupRun:
    """What one run found for one group: the reference used, the tests, the verdicts."""

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

    @property
    def reference_span(self) -> Range:
        return (min(r[0] for r in self.reference), max(r[1] for r in self.reference))


@dataclass
class DriftRun:
    at: datetime
    current: Range
    groups: list[GroupRun]
    skipped: list[tuple[dict[str, str], str]]  # groups without a verdict, and why


def _floor_minute(t: datetime) -> datetime:
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.replace(second=0, microsecond=0)


class DriftAnalyzer:
    """LLMInputDrift / LLMOutputDrift (see module doc)."""

    name = "drift"
    alertnames: tuple[AlertName, ...] = (AlertName.INPUT_DRIFT, AlertName.OUTPUT_DRIFT)

    def __init__(self, settings: DriftSettings | None = None) -> None:
        self.settings = settings or DriftSettings()
        self.interval = self.settings.interval

    # ------------------------------------------------------------------------------------ the run

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        result = self.analyze(ctx.client, ctx.at)
        observations: list[Observation] = []
        evaluated: list[dict[str, str]] = []
        for g in result.groups:
            evaluated.append(dict(g.labels))
            for direction, v in g.verdicts.items():
                if v.drifted and g.persisted.get(direction, False):
                    observations.append(self._observation(result, g, direction, v, ctx.dashboard_base_url))
        return AnalyzerResult(observations, evaluated)

    def analyze(self, client: Client, at: datetime) -> DriftRun:
        """Tests and verdicts of every group as of `at` (stored in drift_results unless disabled)."""
        s = self.settings
        at = _floor_minute(at)
        current = (at - s.window, at)
        groups = self._choose_references(client, current)
        skipped: list[tuple[dict[str, str], str]] = []
        ready: list[GroupRun] = []
        cfg = s.detect
        aggregates: dict[tuple[GroupKey, int], queries.SideAggregates] = {}
        if groups:
            aggregates = queries.window_aggregates(client, self._scope(current, groups))
        for g in groups:
            g.n_reference = aggregates[(g.key, 0)].n if (g.key, 0) in aggregates else 0
            g.n_current = aggregates[(g.key, 1)].n if (g.key, 1) in aggregates else 0
            if g.n_current < cfg.min_events or g.n_reference < cfg.min_events:
                skipped.append((g.labels, f"{g.n_current} calls now / {g.n_reference} in the reference; "
                                          f"needs {cfg.min_events} each for a verdict"))
                g.verdicts = verdicts([], g.n_reference, g.n_current, cfg)
            else:
                ready.append(g)
        if ready:
            self._test(client, current, ready, aggregates)
        run = DriftRun(at, current, groups, skipped)
        self._persist(client, run)
        if s.store_results:
            rows: list[list[Any]] = []
            for g in groups:
                rc = drift_store.RunContext(at, g.labels, g.reference_kind, g.reference_span, current)
                rows.extend(drift_store.result_rows(rc, g.tests, g.verdicts, g.persisted))
            drift_store.write_results(client, rows)
        for labels, why in skipped:
            log.info("drift: no verdict for %s: %s", labels, why)
        return run

    # ----------------------------------------------------------------------------- references

    def _labels(self, key: GroupKey) -> dict[str, str]:
        return dict(zip(self.settings.group_by, key, strict=True))

    def _choose_references(self, client: Client, current: Range) -> list[GroupRun]:
        s = self.settings
        at = current[1]
        seasonal = [(current[0] - timedelta(days=d), at - timedelta(days=d)) for d in range(1, s.seasonal_days + 1)]
        trailing = [(current[0] - s.trailing, current[0])]
        pins = drift_store.pinned_references(client)
        windows: dict[str, Sequence[Range]] = {"current": [current], "seasonal": seasonal, "trailing": trailing}
        pin_of: dict[GroupKey, drift_store.PinnedReference] = {}
        counts = queries.window_counts(client, s.group_by, s.operations, windows)
        for key in counts:
            pin = drift_store.reference_for(self._labels(key), pins)
            if pin is not None:
                pin_of[key] = pin
        horizon = min(r[0] for r in seasonal + trailing)
        quarantined = drift_store.drifted_windows(client, horizon, at)
        out = []
        for key, c in sorted(counts.items()):
            if c.get("current", 0) == 0:
                continue  # no traffic now: nothing to compare (absence is another analyzer's job)
            labels = self._labels(key)
            pin = pin_of.get(key)
            if pin is not None:
                out.append(GroupRun(key, labels, "pinned", ((pin.start, pin.end),), 0, 0))
                continue
            use_seasonal = s.reference == "seasonal" or (
                s.reference == "auto" and c.get("seasonal", 0) >= max(s.detect.min_events, c["current"])
            )
            kind, ranges = ("seasonal", seasonal) if use_seasonal else ("trailing", trailing)
            holes = quarantined.get(tuple(labels.get(col, "") for col in drift_store.GROUP_COLUMNS), [])
            kept = queries.subtract(ranges, holes)
            if holes and kept != queries.subtract(ranges, []):
                kind += "-excluding-drift"
            out.append(GroupRun(key, labels, kind, tuple(kept or ranges), 0, 0))
        return out

    # ---------------------------------------------------------------------------------- testing

    def _scope(self, current: Range, groups: Sequence[GroupRun]) -> queries.Scope:
        s = self.settings
        return queries.Scope(s.group_by, s.operations, current, {g.key: g.reference for g in groups},
                             s.one_call_per_trace, s.detect.seed)

    def _test(
        self, client: Client, current: Range, groups: Sequence[GroupRun],
        aggregates: Mapping[tuple[GroupKey, int], queries.SideAggregates],
    ) -> None:
        s = self.settings
        cfg = s.detect
        scope = self._scope(current, groups)
        all_pins = drift_store.pinned_references(client) if any(g.reference_kind == "pinned" for g in groups) else []
        pins = {g.key: drift_store.reference_for(g.labels, all_pins) for g in groups if g.reference_kind == "pinned"}
        samples = queries.text_sample(client, scope, cfg.text_sample) if s.text else {}
        rng = np.random.default_rng(cfg.seed)
        all_tests: list[tuple[GroupRun, FeatureTest]] = []
        none = queries.SideAggregates()
        for g in groups:
            ref_a, cur_a = aggregates.get((g.key, 0), none), aggregates.get((g.key, 1), none)
            ref_s, cur_s = samples.get((g.key, 0)), samples.get((g.key, 1))
            pin = pins.get(g.key)
            for f in NUMERIC:
                if f.name not in ref_a.numeric or f.name not in cur_a.numeric:
                    continue
                stored = pin.edges.get(f.name) if pin is not None else None
                inp = numeric_input(
                    f.name, f.direction, ref_a.numeric[f.name], cur_a.numeric[f.name], cfg.bins,
                    None if stored is None else np.asarray(stored, dtype=np.float64),
                    np.asarray(ref_s.numeric[f.name]) if ref_s else None,
                    np.asarray(cur_s.numeric[f.name]) if cur_s else None,
                )
                all_tests.append((g, evaluate_numeric(inp, cfg, rng)))
            declared = s.output_formats.get(f"{g.labels.get('app', '')}/{g.labels.get('feature', '')}")
            for f in CATEGORICAL:
                ref_counts = ref_a.categorical.get(f.name, {})
                if f.needs_format and declared != "json" and not shows_format(ref_counts):
                    continue
                inp_c = CategoricalInput(f.name, f.direction, ref_counts, cur_a.categorical.get(f.name, {}))
                all_tests.extend((g, t) for t in evaluate_categorical(inp_c, cfg, rng))
            for name, direction in (("input_text", Direction.INPUT), ("output_text", Direction.OUTPUT)):
                ref_t = [t for t in getattr(ref_s, name, [])] if ref_s else []
                cur_t = [t for t in getattr(cur_s, name, [])] if cur_s else []
                ref_t, cur_t = [t for t in ref_t if t], [t for t in cur_t if t]
                if not s.text or (not ref_t and not cur_t):
                    continue  # e.g. embeddings have no output text
                inp_t = TextInput(name, direction, ref_t, cur_t, None, None, g.n_reference, g.n_current)
                all_tests.append((g, evaluate_text(inp_t, cfg, rng)))
        decided = apply_fdr([t for _, t in all_tests], cfg.fdr)
        for (g, _), t in zip(all_tests, decided, strict=True):
            g.tests.append(t)
        for g in groups:
            g.verdicts = verdicts(g.tests, g.n_reference, g.n_current, cfg)

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
                recent = [v.drifted, *earlier]
                g.recent[direction] = recent
                g.persisted[direction] = v.drifted and sum(recent) >= min(s.persist_hits, s.persist_runs)

    # ------------------------------------------------------------------------------ observation

    def _observation(self, run: DriftRun, g: GroupRun, direction: Direction, v: Verdict, base_url: str) -> Observation:
        top = v.top[0]
        where = "/".join(x for x in (g.labels.get("app", ""), g.labels.get("feature", "")) if x)
        ref_a, ref_b = g.reference_span
        names = ", ".join(t.feature for t in v.top[:4])
        summary = (
            f"{where or 'group'}: {direction.value}s drifted ({names}) vs the {g.reference_kind} reference "
            f"{ref_a:%Y-%m-%d %H:%M}–{ref_b:%Y-%m-%d %H:%M} UTC; {sum(g.recent[direction])} of the last "
            f"{len(g.recent[direction])} runs"
        )
        lines = [
            f"window {run.current[0]:%Y-%m-%d %H:%M}–{run.current[1]:%H:%M} UTC: {v.n_current} calls; "
            f"reference ({g.reference_kind}): {v.n_reference} calls"
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
            "current": [run.current[0].isoformat(), run.current[1].isoformat()],
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
    return DriftSettings(
        window=timedelta(minutes=settings.drift_window_minutes),
        interval=timedelta(minutes=settings.drift_interval_minutes),
        reference=settings.drift_reference,
        seasonal_days=settings.drift_seasonal_days,
        trailing=timedelta(hours=settings.drift_trailing_hours),
        group_by=tuple(settings.drift_group_by),
        operations=tuple(settings.drift_operations),
        persist_runs=settings.drift_persist_runs,
        persist_hits=settings.drift_persist_hits,
        one_call_per_trace=settings.drift_one_call_per_trace,
        output_formats=dict(settings.drift_output_formats),
        detect=cfg,
    )


def with_detect(settings: DriftSettings, **changes: Any) -> DriftSettings:
    return replace(settings, detect=replace(settings.detect, **changes))
