"""Error analyzers: error ratio per app, provider outages, availability SLO burn, and traffic absence."""

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
    window_ladder,
)
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, Observation, Severity
from analyzers.rules import AbsenceRules
from analyzers.series import Range, WindowSet
from analyzers.stats import (
    binomial_sf_overdispersed,
    burn_rate,
    multiwindow_burn,
    overdispersion,
    poisson_cdf,
)

APP_DIMS: tuple[str, ...] = ("app", "environment")
MODEL_DIMS: tuple[str, ...] = ("environment", "provider", "model")
ERROR_TRAILING = timedelta(hours=4)
BASELINE_FLOOR = 0.002


def _types_text(ws: WindowSet, g: int, exclude: tuple[str, ...] = (), r: int = 0) -> str:
    parts = sorted(
        ((t, int(a[r, g])) for t, a in ws.errors_by_type.items() if a[r, g] > 0 and t not in exclude),
        key=lambda x: -x[1],
    )
    return ", ".join(f"{t} {n}" for t, n in parts) or "none"


# A baseline ratio rests on at least this many errors: the same few minutes on three previous days of a quiet
# app hold a fraction of an error, and a ratio of 0/60 would make the app's ordinary errors look like a burst.
MIN_BASELINE_ERRORS = 5


def _baseline_ratio(
    ws: WindowSet, g: int, errors: np.ndarray, seasonal: slice, trailing: slice, min_points: int
) -> tuple[float | None, str]:
    season_req = ws.requests[seasonal, g]
    if int((season_req > 0).sum()) >= min_points:
        if float(errors[seasonal].sum()) >= MIN_BASELINE_ERRORS:
            return trimmed_ratio(errors[seasonal], season_req), "seasonal"
        both = np.r_[seasonal, trailing] if trailing.stop > trailing.start else np.r_[seasonal]
        return trimmed_ratio(errors[both], ws.requests[both, g]), "seasonal and trailing"
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
            span = max(cfg.trailing, ERROR_TRAILING)

            def baselines(w: timedelta, span: timedelta = span) -> tuple[list[Range], list[Range]]:
                seasonal = usable(seasonal_ranges(at, w, rules.baseline), first)
                return seasonal, trailing_ranges(at, w, max(span, 3 * w))

            plan = LadderRanges.build(at, window_ladder(cfg.window, cfg.max_window), baselines)
            ws = source.windows(APP_DIMS, plan.ranges)
            for g in range(ws.size):
                labels = ws.labels(g)
                if not in_part(labels["app"]):
                    continue
                k = first_sufficient(ws.requests[plan.current, g], cfg.min_requests)
                if k is None:
                    continue
                window = plan.ladder[k]
                s_sl, t_sl = plan.baselines[k]
                n, e = int(ws.requests[k, g]), int(ws.errors[k, g])
                p0, kind = _baseline_ratio(ws, g, ws.errors[:, g], s_sl, t_sl, min_points)
                p0 = max(p0 if p0 is not None else BASELINE_FLOOR, BASELINE_FLOOR)
                base_sl = s_sl if kind == "seasonal" else t_sl
                phi = overdispersion(ws.errors[base_sl, g], ws.requests[base_sl, g], p0)
                p_value = binomial_sf_overdispersed(e, n, p0, phi)
                ratio = e / n
                threshold = max(cfg.min_ratio, cfg.baseline_multiplier * p0)
                effect = e >= cfg.min_errors and ratio >= threshold
                if effect:
                    # A failing agent run fails (and retries) several calls: each trace is one piece of evidence.
                    units = source.independent_calls(labels, at - window, at)
                    if 0 < units.calls < n:
                        p_value = binomial_sf_overdispersed(units.failed, units.calls, p0, phi)
                        effect = units.failed >= cfg.min_errors and units.failed / units.calls >= threshold
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
                        f"{e} of {n} calls failed in the last {fmt_window(window)} ({_types_text(ws, g, r=k)}); "
                        f"{kind} baseline {p0:.2%}; binomial p={p_value:.2g} (dispersion {phi:.1f})"
                    ),
                    for_duration=cfg.for_,
                    keep_firing_for=cfg.keep_firing_for,
                    details={
                        "errors": e,
                        "requests": n,
                        "window": fmt_window(window),
                        "by_type": {t: int(a[k, g]) for t, a in ws.errors_by_type.items() if a[k, g] > 0},
                        "baseline_kind": kind,
                        "dashboard_url": dashboard_link(ctx, "llmpulse-reliability", labels, window),
                    },
                )
                candidates.append(Candidate(p_value, effect, obs))
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
        plan = LadderRanges.build(
            at,
            window_ladder(cfg.window, cfg.max_window),
            lambda w: (trailing_ranges(at, w, max(ERROR_TRAILING, 3 * w)),),
        )
        ws = source.windows(MODEL_DIMS, plan.ranges)
        client = np.zeros_like(ws.errors)
        for etype in cfg.client_error_types:
            if etype in ws.errors_by_type:
                client = client + ws.errors_by_type[etype]
        provider_errors = ws.errors - client
        candidates: list[Candidate] = []
        for g in range(ws.size):
            labels = ws.labels(g)
            # A model with little traffic is judged over a longer window rather than not at all.
            k = first_sufficient(ws.requests[plan.current, g], cfg.min_requests)
            if k is None:
                continue
            window = plan.ladder[k]
            (trailing,) = plan.baselines[k]
            n, e = int(ws.requests[k, g]), int(provider_errors[k, g])
            p0 = trimmed_ratio(provider_errors[trailing, g], ws.requests[trailing, g])
            p0 = max(p0 if p0 is not None else BASELINE_FLOOR, BASELINE_FLOOR)
            phi = overdispersion(provider_errors[trailing, g], ws.requests[trailing, g], p0)
            p_value = binomial_sf_overdispersed(e, n, p0, phi)
            ratio = e / n
            effect = e >= cfg.min_errors and ratio >= cfg.min_error_ratio
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
                    f"{e} of {n} calls to {labels['model']} ({labels['environment']}) failed in the last "
                    f"{fmt_window(window)} ({_types_text(ws, g, cfg.client_error_types, k)}); normally "
                    f"{p0:.2%}; binomial p={p_value:.2g} (dispersion {phi:.1f})"
                ),
                for_duration=cfg.for_,
                keep_firing_for=cfg.keep_firing_for,
                details={
                    "errors": e,
                    "requests": n,
                    "window": fmt_window(window),
                    "dashboard_url": dashboard_link(ctx, "llmpulse-reliability", labels, window),
                },
            )
            candidates.append(Candidate(p_value, effect, obs))
        return AnalyzerResult(select(candidates, rules))


_LEVEL_DIMS: dict[str, tuple[str, ...]] = {
    "app": ("app", "environment"),
    "feature": ("app", "environment", "feature"),
    "model": ("environment", "provider", "model"),
}


def trailing_expectation(
    minutes: np.ndarray, window_minutes: int, span_minutes: int, skip: int
) -> tuple[float, float] | None:
    """(median calls per window, dispersion) from per-minute counts (newest first), ignoring the newest `skip`.

    The span ends where the slice's current silence began (`skip` is at least the silence's length), so a
    silence never becomes its own baseline: the expectation stays what the slice did before it went quiet.
    The dispersion is the variance/mean (>= 1) of the minute counts and of every window-long stretch of the
    span: calls come in traces and sessions spanning minutes, so quiet stretches are likelier than a Poisson
    count says, and the test must know.
    """
    older = minutes[skip : skip + span_minutes]
    n_windows = older.size // window_minutes
    if n_windows < 1:
        return None
    per_window = older[: n_windows * window_minutes].reshape(n_windows, window_minutes).sum(axis=1)
    # Every window-long stretch of the span (overlapping), so the dispersion at the window's own length is
    # measured even when the span holds only a few whole windows: traces and sessions make calls cluster over
    # many minutes, which minute counts alone understate.
    cumulative = np.concatenate([[0.0], np.cumsum(older, dtype=np.float64)])
    sliding = cumulative[window_minutes:] - cumulative[:-window_minutes]
    dispersion = 1.0
    for counts in (older, sliding) if n_windows >= 2 else (older,):
        mean = float(counts.mean())
        if mean > 0:
            dispersion = max(dispersion, float(counts.var()) / mean)
    return float(np.median(per_window)), dispersion


def silent_minutes(minutes: np.ndarray) -> int:
    """How many of the newest minutes (newest first) had no calls."""
    active = np.flatnonzero(minutes > 0)
    return int(active[0]) if active.size else int(minutes.size)


class AbsenceAnalyzer:
    """An app, feature or model that normally has traffic goes (nearly) silent, and stays so.

    Each slice is judged over the shortest window in [window, max_window] in which it expects at least
    `min_expected` calls. Expected: the median of the same window on previous days/weeks and of the windows
    before the slice's current silence began (the smaller of the two, so a quiet weekend day is no outage),
    or the latter alone without history. Calls come in bursts (an agent request makes many), so counts are
    tested as an overdispersed Poisson: the dispersion (variance/mean of the minute counts before the
    silence) scales both counts before a Poisson lower-tail test. Absent: at most `max_ratio` of the
    expected, the test surviving the correction, and traffic within `recent` (a slice retired for good
    stops alerting once it has been gone that long). Because the baseline ends where the silence began, the
    finding stays firing as long as the slice stays silent.
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
        minute = timedelta(minutes=1)
        for cfg, in_part in partitions(rules, "absence"):
            if not cfg.enabled:
                continue
            ladder = window_ladder(cfg.window, cfg.max_window)
            span = int(cfg.trailing / minute)
            longest = int(ladder[-1] / minute)
            # Minute by minute, newest first: enough to look past a silence as long as the longest window.
            n_minutes = longest + span
            per_minute = [(at - minute * (i + 1), at - minute * i) for i in range(n_minutes)]
            plan = LadderRanges.build(
                at, ladder, lambda w: (usable(seasonal_ranges(at, w, rules.baseline), first),)
            )
            recent_index = len(plan.ranges)
            ranges = [*plan.ranges, (at - cfg.recent, at), *per_minute]
            for level in cfg.levels:
                dims = _LEVEL_DIMS[level]
                ws = source.windows(dims, ranges)
                if ws.size == 0:
                    continue
                counts = ws.requests
                minutes = counts[recent_index + 1 :]
                for g in range(ws.size):
                    key = ws.keys[g]
                    app = key[0] if "app" in dims else None
                    if app is not None and not in_part(app):
                        continue
                    if app is None and cfg != rules.defaults.absence:
                        continue  # model-level absence follows the defaults only
                    if counts[recent_index, g] <= 0:
                        continue
                    series = minutes[:, g]
                    quiet = silent_minutes(series)
                    # Evidence of a silence grows with its length: every rung that expects enough calls is
                    # tested and the strongest counts, Bonferroni-corrected for the rungs tried.
                    chosen = None
                    tried = 0
                    for k, w in enumerate(ladder):
                        wm = int(w / minute)
                        trail = trailing_expectation(series, wm, span, max(wm, quiet))
                        (season,) = plan.baselines[k]
                        seasonal_expected = (
                            float(np.median(counts[season, g])) if season.stop - season.start >= min_points else None
                        )
                        if trail is None and seasonal_expected is None:
                            continue
                        if trail is None:
                            expected, phi, kind = float(seasonal_expected or 0.0), 1.0, "seasonal"
                        elif seasonal_expected is None:
                            expected, phi, kind = trail[0], trail[1], "trailing"
                        else:
                            expected, phi, kind = min(seasonal_expected, trail[0]), trail[1], "seasonal and trailing"
                        if expected < cfg.min_expected:
                            continue
                        tried += 1
                        observed = int(counts[k, g])
                        p_rung = poisson_cdf(int(observed / phi), expected / phi)
                        # A rung that is silent enough beats one with a smaller p that is not (a long
                        # window mixing the silence with the traffic before it).
                        rank = (observed > cfg.max_ratio * expected, p_rung)
                        if chosen is None or rank < chosen[6]:
                            chosen = (k, w, expected, phi, kind, p_rung, rank)
                        if observed > 0 and wm > quiet:
                            break  # longer windows only add the traffic that ended the silence
                    if chosen is None:
                        continue
                    k, window, expected, phi, kind, p_best, _ = chosen
                    observed = int(counts[k, g])
                    p = min(1.0, p_best * tried)
                    effect = observed <= cfg.max_ratio * expected

                    def build(
                        g: int = g, observed: int = observed, expected: float = expected, p: float = p,
                        phi: float = phi, level: str = level, ws: WindowSet = ws, kind: str = kind,
                        cfg: AbsenceRules = cfg, window: timedelta = window, quiet: int = quiet,
                    ) -> Observation:
                        labels = ws.labels(g)
                        silent_for = f"; silent for {fmt_window(quiet * minute)}" if quiet >= 2 else ""
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
                                f"(median of {kind} windows){silent_for}; dispersion {phi:.1f}; "
                                f"overdispersed Poisson P(X<={observed})={p:.2g}"
                            ),
                            for_duration=cfg.for_,
                            keep_firing_for=cfg.keep_firing_for,
                            details={
                                "level": level,
                                "window": fmt_window(window),
                                "baseline_kind": kind,
                                "silent_minutes": quiet,
                                "dashboard_url": dashboard_link(ctx, "llmpulse-reliability", labels, window),
                            },
                        )

                    candidates.append(Candidate(p, effect, build))
        return AnalyzerResult(select(candidates, rules))
