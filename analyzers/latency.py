"""Latency analyzers: regressions against a baseline (with a rank test), and latency SLO burn rates."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from analyzers.common import (
    BURN_SPANS,
    Candidate,
    LadderRanges,
    burn_observation,
    dashboard_link,
    first_sufficient,
    fmt_ms,
    fmt_window,
    label_text,
    partitions,
    rules_of,
    run_at,
    seasonal_ranges,
    select,
    source_of,
    usable,
    window_ladder,
)
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, Observation, Severity
from analyzers.series import Range
from analyzers.stats import (
    burn_rate,
    hist_fraction_above,
    hist_quantiles,
    mann_whitney_binned_many,
    multiwindow_burn,
)

GROUP_DIMS: tuple[str, ...] = ("app", "environment", "provider", "model", "feature")
QUANTILES = (0.5, 0.95, 0.99)


class LatencyAnalyzer:
    """p50/p95/p99 and TTFT per group; a regression needs size AND significance.

    Size: p50 or p95 at least `ratio` x the baseline's and at least `min_delta_ms` slower. Significance: a
    one-sided Mann–Whitney U test of the window's successful-call latencies (binned samples from the
    rollup) against the baseline's, kept only if it survives Benjamini–Hochberg over every group tested
    in the run. Baseline: the same window on each of the previous days when at least
    `min_seasonal_points` of them have traffic, else the trailing `trailing` span. TTFT (streaming calls)
    is tested the same way, so a slower first token alone is caught too.
    """

    name: str = "latency"
    alertnames: tuple[AlertName, ...] = (AlertName.LATENCY_REGRESSION, AlertName.LATENCY_SLO_BURN)
    interval: timedelta = timedelta(minutes=1)

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        rules = rules_of(ctx)
        source = source_of(ctx)
        at = run_at(ctx)
        first = source.first_minute()
        candidates: list[Candidate] = []
        for cfg, in_part in partitions(rules, "latency"):
            if not cfg.enabled:
                continue
            # Latency's distribution does not scale with the window, so each rung's baseline is the same clock
            # span (at least `trailing` long) on previous days, else the span before the rung's window.
            span = cfg.trailing

            def baselines(w: timedelta, span: timedelta = span) -> tuple[list[Range], list[Range]]:
                return (
                    [(at - w - max(span, w), at - w)],
                    usable(seasonal_ranges(at, max(w, span), rules.baseline, weeks=False), first),
                )

            plan = LadderRanges.build(at, window_ladder(cfg.window, cfg.max_window), baselines)
            ws = source.windows(GROUP_DIMS, plan.ranges, hist=True)
            if ws.latency_hist is None or ws.ttft_hist is None or ws.size == 0:
                continue
            groups = [g for g in range(ws.size) if in_part(ws.keys[g][0])]
            tested: list[tuple[int, str, np.ndarray, np.ndarray, str, int, timedelta]] = []
            for g in groups:
                for metric, hist in (("latency", ws.latency_hist), ("ttft", ws.ttft_hist)):
                    k = first_sufficient(hist[plan.current, g].sum(axis=1), cfg.min_samples)
                    if k is None:
                        continue
                    cur = hist[k, g]
                    trailing, seasonal = plan.baselines[k]
                    days = hist[seasonal, g]
                    with_traffic = days.sum(axis=1) > 0
                    base = days[with_traffic].sum(axis=0)
                    kind, points = "seasonal", int(with_traffic.sum())
                    if points < rules.baseline.min_seasonal_points or base.sum() < cfg.min_baseline_samples:
                        base, kind, points = hist[trailing, g].sum(axis=0), "trailing", 1
                    if base.sum() < cfg.min_baseline_samples:
                        continue
                    tested.append((g, metric, cur, base, kind, points, plan.ladder[k]))
            if not tested:
                continue
            tests = mann_whitney_binned_many(
                np.stack([t[2] for t in tested]), np.stack([t[3] for t in tested])
            )
            for (g, metric, cur, base, kind, points, window), test in zip(tested, tests, strict=True):
                labels = ws.labels(g)
                qc = hist_quantiles(cur, QUANTILES)
                qb = hist_quantiles(base, QUANTILES)
                r50, r95 = qc[0] / qb[0], qc[1] / qb[1]
                size50 = r50 >= cfg.ratio and qc[0] - qb[0] >= cfg.min_delta_ms
                size95 = r95 >= cfg.ratio and qc[1] - qb[1] >= cfg.min_delta_ms
                use95 = size95 and (not size50 or r95 > r50)
                qi, ratio = (1, r95) if use95 else (0, r50)
                name = "TTFT" if metric == "ttft" else "latency"
                pname = "p95" if qi == 1 else "p50"
                severity = Severity.CRITICAL if ratio >= cfg.critical_ratio else Severity.WARNING
                ttft_note = ""
                if metric == "latency":
                    tc = ws.ttft_hist[0, g]
                    if tc.sum() > 0:
                        ttft_note = f"; TTFT p95 {fmt_ms(hist_quantiles(tc, (0.95,))[0])}"
                obs = Observation(
                    alertname=AlertName.LATENCY_REGRESSION,
                    severity=severity,
                    labels=labels,
                    at=at,
                    value=qc[qi],
                    baseline=qb[qi],
                    threshold=qb[qi] * cfg.ratio,
                    summary=f"{name} {pname} of {label_text(labels)} is {ratio:.1f}x its baseline",
                    evidence=(
                        f"{name} p50 {fmt_ms(qb[0])} -> {fmt_ms(qc[0])} ({r50:.2f}x), p95 {fmt_ms(qb[1])} -> "
                        f"{fmt_ms(qc[1])} ({r95:.2f}x), p99 {fmt_ms(qb[2])} -> {fmt_ms(qc[2])} over "
                        f"{test.n_current} successful calls in the last {fmt_window(window)}{ttft_note}; "
                        f"Mann-Whitney one-sided p={test.p_greater:.2g} (P(slower)={test.effect:.2f}) vs "
                        f"{test.n_baseline} calls of the {kind} baseline"
                        + (f" ({points} previous days)" if kind == "seasonal" else " (the span before the window)")
                    ),
                    for_duration=cfg.for_,
                    keep_firing_for=cfg.keep_firing_for,
                    details={
                        "metric": metric,
                        "quantile": pname,
                        "p50_ms": qc[0],
                        "p95_ms": qc[1],
                        "p99_ms": qc[2],
                        "baseline_p50_ms": qb[0],
                        "baseline_p95_ms": qb[1],
                        "baseline_p99_ms": qb[2],
                        "p_value": test.p_greater,
                        "baseline_kind": kind,
                        "window": fmt_window(window),
                        "dashboard_url": dashboard_link(ctx, "llmpulse-latency", labels, window),
                    },
                )
                candidates.append(Candidate(test.p_greater, size50 or size95, obs))
        observations = _one_per_group(select(candidates, rules))
        observations += self._slo(ctx)
        return AnalyzerResult(observations)

    def _slo(self, ctx: AnalysisContext) -> list[Observation]:
        rules = rules_of(ctx)
        slos = {r.slo for r in rules.all_app_rules()}
        if not any(s.latency_threshold_ms and s.latency_objective for s in slos):
            return []
        source = source_of(ctx)
        at = run_at(ctx)
        spans = BURN_SPANS
        ws = source.windows(("app", "environment"), [(at - s, at) for s in spans], hist=True)
        if ws.latency_hist is None:
            return []
        out: list[Observation] = []
        for g in range(ws.size):
            labels = ws.labels(g)
            slo = rules.for_app(labels["app"]).slo
            if not (slo.latency_threshold_ms and slo.latency_objective):
                continue
            burns: dict[timedelta, float] = {}
            for i, span in enumerate(spans):
                hist = ws.latency_hist[i, g]
                total = float(ws.requests[i, g])
                slow = hist_fraction_above(hist, slo.latency_threshold_ms) * float(hist.sum())
                failed = float(ws.errors[i, g])  # a failed call did not answer in time either
                burns[span] = burn_rate(slow + failed, total, slo.latency_objective)
            alert = multiwindow_burn(burns)
            if alert is None:
                continue
            t = alert.tier
            out.append(
                burn_observation(
                    ctx, AlertName.LATENCY_SLO_BURN, labels, at, alert,
                    summary=(
                        f"{label_text(labels)} burns its latency SLO ({slo.latency_objective:.2%} under "
                        f"{fmt_ms(slo.latency_threshold_ms)}) {alert.long_burn:.1f}x too fast"
                    ),
                    evidence=(
                        f"burn rate {alert.long_burn:.1f} over {fmt_window(t.long)} and {alert.short_burn:.1f} over "
                        f"{fmt_window(t.short)}, both >= {t.factor:g} (SRE workbook multiwindow tier); "
                        "slow share estimated from the rollup's latency histogram, failed calls count as slow"
                    ),
                    dashboard="llmpulse-latency",
                )
            )
        return out


def _one_per_group(observations: list[Observation]) -> list[Observation]:
    """Latency and TTFT of one group make one finding: keep the larger regression."""
    best: dict[tuple[str, tuple[tuple[str, str], ...]], Observation] = {}
    for obs in observations:
        key = obs.key
        ratio = (obs.value or 0.0) / (obs.baseline or 1.0)
        prev = best.get(key)
        if prev is None or ratio > (prev.value or 0.0) / (prev.baseline or 1.0):
            best[key] = obs
    return list(best.values())
