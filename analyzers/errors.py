"""Error analyzers: error ratio per app, provider outages, availability SLO burn, and traffic absence."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from analyzers.common import (
    BURN_SPANS,
    Candidate,
    burn_observation,
    dashboard_link,
    fmt_window,
    label_text,
    partitions,
    rules_of,
    run_at,
    seasonal_ranges,
    select,
    source_of,
    trailing_ranges,
    trimmed_ratio,
    usable,
)
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, Observation, Severity
from analyzers.rules import AbsenceRules
from analyzers.series import WindowSet
from analyzers.stats import binomial_sf, burn_rate, multiwindow_burn, poisson_cdf

APP_DIMS: tuple[str, ...] = ("app", "environment")
MODEL_DIMS: tuple[str, ...] = ("environment", "provider", "model")
ERROR_TRAILING = timedelta(hours=4)
BASELINE_FLOOR = 0.002
DISPERSION_SKIP_MINUTES = 60  # an error ratio of 0 in the baseline would make any single error significant


def _types_text(ws: WindowSet, g: int, exclude: tuple[str, ...] = (), r: int = 0) -> str:
    parts = sorted(
        ((t, int(a[r, g])) for t, a in ws.errors_by_type.items() if a[r, g] > 0 and t not in exclude),
        key=lambda x: -x[1],
    )
    return ", ".join(f"{t} {n}" for t, n in parts) or "none"


def _baseline_ratio(
    ws: WindowSet, g: int, errors: np.ndarray, seasonal: slice, trailing: slice, min_points: int
) -> tuple[float | None, str]:
    season_req = ws.requests[seasonal, g]
    if int((season_req > 0).sum()) >= min_points:
        return trimmed_ratio(errors[seasonal], season_req), "seasonal"
    return trimmed_ratio(errors[trailing], ws.requests[trailing, g]), "trailing"


class ErrorRateAnalyzer:
    """Error ratio per app (LLM calls), and availability SLO burn where an objective is set.

    High means: at least `min_errors` errors among at least `min_requests` calls, a ratio of at least
    max(`min_ratio`, `baseline_multiplier` x baseline), and a one-sided binomial test against the
    baseline ratio that survives the multiple-testing correction. The baseline ratio is pooled over the
    same window on previous days (else the trailing four hours), leaving out the worst quarter of windows
    so an ongoing incident does not raise its own bar.
    """

    name: str = "errors"
    alertnames: tuple[AlertName, ...] = (AlertName.ERROR_RATE_HIGH, AlertName.AVAILABILITY_SLO_BURN)
    interval: timedelta = timedelta(minutes=1)

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        rules = rules_of(ctx)
        source = source_of(ctx)
        at = run_at(ctx)
        first = source.first_minute()
        candidates: list[Candidate] = []
        min_points = rules.baseline.min_seasonal_points
        for cfg, in_part in partitions(rules, "errors"):
            if not cfg.enabled:
                continue
            window = cfg.window
            seasonal = usable(seasonal_ranges(at, window, rules.baseline), first)
            trailing = trailing_ranges(at, window, max(cfg.trailing, ERROR_TRAILING))
            ws = source.windows(APP_DIMS, [(at - window, at), *seasonal, *trailing])
            s_sl = slice(1, 1 + len(seasonal))
            t_sl = slice(1 + len(seasonal), None)
            for g in range(ws.size):
                labels = ws.labels(g)
                if not in_part(labels["app"]):
                    continue
                n, k = int(ws.requests[0, g]), int(ws.errors[0, g])
                if n < cfg.min_requests:
                    continue
                p0, kind = _baseline_ratio(ws, g, ws.errors[:, g], s_sl, t_sl, min_points)
                p0 = max(p0 if p0 is not None else BASELINE_FLOOR, BASELINE_FLOOR)
                ratio = k / n
                threshold = max(cfg.min_ratio, cfg.baseline_multiplier * p0)
                effect = k >= cfg.min_errors and ratio >= threshold
                obs = Observation(
                    alertname=AlertName.ERROR_RATE_HIGH,
                    severity=Severity.CRITICAL if ratio >= cfg.critical_ratio else Severity.WARNING,
                    labels=labels,
                    at=at,
                    value=ratio,
                    baseline=p0,
                    threshold=threshold,
                    summary=f"{ratio:.1%} of LLM calls of {label_text(labels)} fail (baseline {p0:.2%})",
                    evidence=(
                        f"{k} of {n} calls failed in the last {fmt_window(window)} ({_types_text(ws, g)}); "
                        f"{kind} baseline {p0:.2%}; binomial p={binomial_sf(k, n, p0):.2g}"
                    ),
                    for_duration=cfg.for_,
                    details={
                        "errors": k,
                        "requests": n,
                        "by_type": {t: int(a[0, g]) for t, a in ws.errors_by_type.items() if a[0, g] > 0},
                        "baseline_kind": kind,
                        "dashboard_url": dashboard_link(ctx, "llmpulse-reliability", labels, window),
                    },
                )
                candidates.append(Candidate(binomial_sf(k, n, p0), effect, obs))
        return AnalyzerResult([*select(candidates, rules), *self._slo(ctx)])

    def _slo(self, ctx: AnalysisContext) -> list[Observation]:
        rules = rules_of(ctx)
        if not any(r.slo.availability for r in rules.all_app_rules()):
            return []
        source = source_of(ctx)
        at = run_at(ctx)
        spans = BURN_SPANS
        ws = source.windows(APP_DIMS, [(at - s, at) for s in spans])
        out: list[Observation] = []
        for g in range(ws.size):
            labels = ws.labels(g)
            objective = rules.for_app(labels["app"]).slo.availability
            if not objective:
                continue
            burns = {
                span: burn_rate(float(ws.errors[i, g]), float(ws.requests[i, g]), objective)
                for i, span in enumerate(spans)
            }
            alert = multiwindow_burn(burns)
            if alert is None:
                continue
            t = alert.tier
            out.append(
                burn_observation(
                    ctx, AlertName.AVAILABILITY_SLO_BURN, labels, at, alert,
                    summary=(
                        f"{label_text(labels)} burns its {objective:.2%} availability SLO "
                        f"{alert.long_burn:.1f}x too fast"
                    ),
                    evidence=(
                        f"error budget burn rate {alert.long_burn:.1f} over {fmt_window(t.long)} and "
                        f"{alert.short_burn:.1f} over {fmt_window(t.short)}, both >= {t.factor:g} "
                        "(SRE workbook multiwindow, multi-burn-rate tier)"
                    ),
                    dashboard="llmpulse-reliability",
                )
            )
        return out


class OutageAnalyzer:
    """Provider outage: most calls to a provider's model fail (client errors such as content filters and
    context overflows do not count), in `window`, significantly more than its baseline."""

    name: str = "outage"
    alertnames: tuple[AlertName, ...] = (AlertName.PROVIDER_OUTAGE,)
    interval: timedelta = timedelta(minutes=1)

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        rules = rules_of(ctx)
        cfg = rules.defaults.outage
        if not cfg.enabled:
            return AnalyzerResult([])
        source = source_of(ctx)
        at = run_at(ctx)
        trailing = trailing_ranges(at, cfg.window, ERROR_TRAILING)
        ws = source.windows(MODEL_DIMS, [(at - cfg.window, at), (at - cfg.sparse_window, at), *trailing])
        client = np.zeros_like(ws.errors)
        for etype in cfg.client_error_types:
            if etype in ws.errors_by_type:
                client = client + ws.errors_by_type[etype]
        provider_errors = ws.errors - client
        candidates: list[Candidate] = []
        for g in range(ws.size):
            labels = ws.labels(g)
            # A model with little traffic is judged over the longer window rather than not at all.
            w = 0 if ws.requests[0, g] >= cfg.min_requests else 1
            window = cfg.window if w == 0 else cfg.sparse_window
            n, k = int(ws.requests[w, g]), int(provider_errors[w, g])
            if n < cfg.min_requests:
                continue
            p0 = trimmed_ratio(provider_errors[2:, g], ws.requests[2:, g])
            p0 = max(p0 if p0 is not None else BASELINE_FLOOR, BASELINE_FLOOR)
            ratio = k / n
            effect = k >= cfg.min_errors and ratio >= cfg.min_error_ratio
            obs = Observation(
                alertname=AlertName.PROVIDER_OUTAGE,
                severity=Severity.CRITICAL,
                labels=labels,
                at=at,
                value=ratio,
                baseline=p0,
                threshold=cfg.min_error_ratio,
                summary=f"{labels['provider']}/{labels['model']} is failing: {ratio:.0%} of calls error",
                evidence=(
                    f"{k} of {n} calls to {labels['model']} ({labels['environment']}) failed in the last "
                    f"{fmt_window(window)} ({_types_text(ws, g, cfg.client_error_types, w)}); normally "
                    f"{p0:.2%}; binomial p={binomial_sf(k, n, p0):.2g}"
                ),
                for_duration=cfg.for_,
                details={
                    "errors": k,
                    "requests": n,
                    "window": fmt_window(window),
                    "dashboard_url": dashboard_link(ctx, "llmpulse-reliability", labels, window),
                },
            )
            candidates.append(Candidate(binomial_sf(k, n, p0), effect, obs))
        return AnalyzerResult(select(candidates, rules))


_LEVEL_DIMS: dict[str, tuple[str, ...]] = {
    "app": ("app", "environment"),
    "feature": ("app", "environment", "feature"),
    "model": ("environment", "provider", "model"),
}


class AbsenceAnalyzer:
    """An app, feature or model that normally has traffic goes (nearly) silent.

    Expected calls in the window: the median of the same window on previous days/weeks, else of the
    trailing windows. Calls come in bursts (an agent request makes many), so counts are tested as an
    overdispersed Poisson: the dispersion (variance/mean of the trailing windows, robustly) scales both
    counts before a Poisson lower-tail test. Absent: at most `max_ratio` of the expected, at least
    `min_expected` expected, the test surviving the correction, and traffic within `recent` (a slice
    retired for good stops alerting once it has been gone that long).
    """

    name: str = "absence"
    alertnames: tuple[AlertName, ...] = (AlertName.TRAFFIC_ABSENT,)
    interval: timedelta = timedelta(minutes=1)

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        rules = rules_of(ctx)
        source = source_of(ctx)
        at = run_at(ctx)
        first = source.first_minute()
        min_points = rules.baseline.min_seasonal_points
        candidates: list[Candidate] = []
        for cfg, in_part in partitions(rules, "absence"):
            if not cfg.enabled:
                continue
            window = cfg.window
            per_window = max(1, int(window / timedelta(minutes=1)))
            n_windows = max(1, int(cfg.trailing / window))
            seasonal = usable(seasonal_ranges(at, window, rules.baseline), first)
            # The trailing span minute by minute: window counts are sums of these, and the minute counts'
            # variance/mean measures how bursty the slice's traffic is.
            minute = timedelta(minutes=1)
            trailing = [
                (at - window - minute * (k + 1), at - window - minute * k) for k in range(n_windows * per_window)
            ]
            recent = (at - cfg.recent, at - window)
            ranges = [(at - window, at), recent, *seasonal, *trailing]
            ns = len(seasonal)
            for level in cfg.levels:
                dims = _LEVEL_DIMS[level]
                ws = source.windows(dims, ranges)
                if ws.size == 0:
                    continue
                counts = ws.requests
                minutes = counts[2 + ns :]
                trail = minutes.reshape(n_windows, per_window, -1).sum(axis=1)
                t_med = np.median(trail, axis=0)
                # Dispersion from the older part of the span, so a silence that began within the last hour
                # does not inflate its own noise estimate and talk itself out of significance.
                older = minutes[min(DISPERSION_SKIP_MINUTES, minutes.shape[0] // 2) :]
                m_mean = older.mean(axis=0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    dispersion_all = np.maximum(1.0, np.where(m_mean > 0, older.var(axis=0) / m_mean, 1.0))
                if ns >= min_points:
                    # Conservative: a quiet weekend day must not look like an outage of a weekday's traffic.
                    expected_all = np.minimum(np.median(counts[2 : 2 + ns], axis=0), t_med)
                    kind, points = "seasonal and trailing", ns + n_windows
                else:
                    expected_all = t_med
                    kind, points = "trailing", n_windows
                for g in range(ws.size):
                    key = ws.keys[g]
                    app = key[0] if "app" in dims else None
                    if app is not None and not in_part(app):
                        continue
                    if app is None and cfg != rules.defaults.absence:
                        continue  # model-level absence follows the defaults only
                    expected = float(expected_all[g])
                    if counts[1, g] <= 0 or expected < cfg.min_expected:
                        continue
                    observed = int(counts[0, g])
                    phi = float(dispersion_all[g])
                    p = poisson_cdf(int(observed / phi), expected / phi)
                    effect = observed <= cfg.max_ratio * expected

                    def build(
                        g: int = g, observed: int = observed, expected: float = expected, p: float = p,
                        phi: float = phi, level: str = level, ws: WindowSet = ws, kind: str = kind,
                        points: int = points, cfg: AbsenceRules = cfg, window: timedelta = window,
                    ) -> Observation:
                        labels = ws.labels(g)
                        return Observation(
                            alertname=AlertName.TRAFFIC_ABSENT,
                            severity=Severity.CRITICAL if observed == 0 else Severity.WARNING,
                            labels=labels,
                            at=at,
                            value=float(observed),
                            baseline=expected,
                            threshold=cfg.max_ratio * expected,
                            summary=(
                                f"{label_text(labels)} went silent: {observed} calls in {fmt_window(window)}, "
                                f"~{expected:.0f} expected"
                            ),
                            evidence=(
                                f"{observed} calls in the last {fmt_window(window)} vs {expected:.1f} expected "
                                f"(median of {points} {kind} windows); dispersion {phi:.1f}; "
                                f"overdispersed Poisson P(X<={observed})={p:.2g}"
                            ),
                            for_duration=cfg.for_,
                            details={
                                "level": level,
                                "baseline_kind": kind,
                                "dashboard_url": dashboard_link(ctx, "llmpulse-reliability", labels, window),
                            },
                        )

                    candidates.append(Candidate(p, effect, build))
        return AnalyzerResult(select(candidates, rules))
