"""Cost analyzers: cost-per-request and spend-rate spikes, budget burn, runaway traces and sessions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np

from analyzers.common import (
    Candidate,
    LadderRanges,
    dashboard_link,
    first_sufficient,
    fmt_usd,
    fmt_window,
    label_text,
    partitions,
    rules_of,
    run_at,
    seasonal_ranges,
    select,
    source_of,
    trailing_ranges,
    usable,
    window_ladder,
)
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, Observation, Severity
from analyzers.rules import CostRules, Rules
from analyzers.series import WindowSet
from analyzers.stats import RobustBaseline, normal_sf, robust_baseline

GROUP_DIMS: tuple[str, ...] = ("app", "environment", "provider", "model", "feature")
APP_DIMS: tuple[str, ...] = ("app", "environment")
COST_TRAILING = timedelta(hours=2)
MIN_WINDOW_REQUESTS = 3  # a baseline window with fewer requests says nothing about cost per request
# Per-call cost varies at least this much relative to its median (token counts are long-tailed); the floor
# keeps a baseline of nearly identical windows from making any wiggle significant.
MIN_PER_CALL_CV = 0.3
# Spend's noise per expected call, in units of the mean cost squared: (1 + CV^2) of a long-tailed per-call cost
# (CV ~ 2) times the dispersion of calls that arrive in traces (~3). The empirical CV replaces 2 when larger.
TRACE_DISPERSION = 3.0
SPEND_NOISE_FACTOR = (1.0 + 2.0**2) * TRACE_DISPERSION
# Windows of a rung's length before the day that ended a day ago estimate the per-call spread (at most this
# many of them, over at most a week): a day back, so an incident under way now never inflates the spread it is
# tested on; long rungs reach back days, since a handful of windows underestimates a long-tailed spread.
SPREAD_LAG = timedelta(hours=24)
SPREAD_WINDOWS = 96
SPREAD_MAX_SPAN = timedelta(days=7)


def spread_ranges(at: datetime, window: timedelta, first: datetime | None) -> list[tuple[datetime, datetime]]:
    """Windows of `window`'s length, newest first, ending a day before `at`, within the stored history."""
    return usable(trailing_ranges(at - SPREAD_LAG, window, min(SPREAD_MAX_SPAN, SPREAD_WINDOWS * window)), first)


def per_call_variance(means: np.ndarray, counts: np.ndarray, center: float) -> float | None:
    """Per-call variance from windows' means around `center` (each squared deviation scaled by its calls),
    the largest left out so one incident does not hide the next; None with fewer than three windows."""
    ok = np.isfinite(means) & (counts >= MIN_WINDOW_REQUESTS)
    if int(ok.sum()) < 3:
        return None
    scaled = np.sort(counts[ok] * (means[ok] - center) ** 2)[:-1]
    return float(scaled.mean())


def per_call_z(current_mean: float, current_n: float, means: np.ndarray, counts: np.ndarray,
               *, spread: tuple[np.ndarray, np.ndarray] | None = None,
               min_cv: float = MIN_PER_CALL_CV) -> tuple[float, float, int] | None:
    """(z, baseline per call, baseline windows) of a window's mean per call against baseline windows.

    The baseline is the pooled mean per call of the windows (the most expensive window left out, so one
    incident on a previous day does not raise the bar), which at low traffic is far steadier than a median
    of a few windows' means. The windows hold different numbers of calls, so the per-call variance comes
    from their squared deviations scaled by their calls, and a handful of same-clock windows estimates a
    long-tailed variance poorly (usually too low), so `spread` (the same length over the day before, any
    clock time) estimates it too and the larger estimate counts, floored at `min_cv` x the baseline. The
    test accounts for the noise of both sides at their own counts: a window of 10 calls against a baseline
    of 30 is judged on the same footing as 10,000 against 30,000, so a window can widen freely.
    """
    ok = np.isfinite(means) & (counts > 0)
    m, n = means[ok], counts[ok]
    if m.size < 3:
        return None
    if m.size >= 4:
        keep = np.argsort(m, kind="stable")[:-1]
        m_kept, n_kept = m[keep], n[keep]
    else:
        m_kept, n_kept = m, n
    calls = float(n_kept.sum())
    level = float((m_kept * n_kept).sum()) / calls if calls > 0 else 0.0
    if level <= 0:
        return None
    estimates = [per_call_variance(means, counts, level), (min_cv * level) ** 2]
    if spread is not None:
        s_means, s_counts = spread
        s_ok = np.isfinite(s_means) & (s_counts >= MIN_WINDOW_REQUESTS)
        if int(s_ok.sum()) >= 3:
            s_level = float((s_means[s_ok] * s_counts[s_ok]).sum() / s_counts[s_ok].sum())
            estimates.append(per_call_variance(s_means, s_counts, s_level))
    variance = max(v for v in estimates if v is not None)
    scale = np.sqrt(variance / max(current_n, 1.0) + variance / calls)
    return (current_mean - level) / scale, level, int(m.size)


class CostAnalyzer:
    """Cost per request per group, and spend rate per app, against a seasonal (else trailing) baseline.

    Per request: each group is judged over the shortest window in [window, max_window] that holds
    `min_requests` priced requests (tokens per request for unpriced models): its mean against the same
    window on previous days/weeks, or against the trailing windows of that length when there is not enough
    history, tested on the baseline's per-call spread (`per_call_z`). Spend rate: the app's spend against the
    same window on previous days/weeks only (traffic follows the clock, so a trailing baseline would page at
    every morning ramp), over the shortest window whose baseline expects `spend_min_requests` calls. Both
    need the ratio AND a z that survives the multiple-testing correction.
    """

    name: str = "cost"
    alertnames: tuple[AlertName, ...] = (AlertName.COST_SPIKE,)
    interval: timedelta = timedelta(minutes=1)

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        rules = rules_of(ctx)
        source = source_of(ctx)
        at = run_at(ctx)
        first = source.first_minute()
        candidates: list[Candidate] = []
        for cfg, in_part in partitions(rules, "cost"):
            if not cfg.enabled:
                continue
            plan = LadderRanges.build(
                at,
                window_ladder(cfg.window, cfg.max_window),
                lambda w: (
                    usable(seasonal_ranges(at, w, rules.baseline), first),
                    usable(trailing_ranges(at, w, max(COST_TRAILING, 3 * w)), first),
                    spread_ranges(at, w, first),
                ),
            )
            ws = source.windows(GROUP_DIMS, plan.ranges)
            for g in range(ws.size):
                labels = ws.labels(g)
                if not in_part(labels["app"]):
                    continue
                candidate = self._per_request(ctx, cfg, rules, plan, ws, g, labels, at)
                if candidate is not None:
                    candidates.append(candidate)
            candidates.extend(self._spend(ctx, cfg, in_part, first, at, rules))
        return AnalyzerResult(select(candidates, rules))

    def _per_request(
        self, ctx: AnalysisContext, cfg: CostRules, rules: Rules, plan: LadderRanges, ws: WindowSet, g: int,
        labels: dict[str, str], at: datetime,
    ) -> Candidate | None:
        priced = ws.priced[:, g]
        requests = ws.requests[:, g]
        k = first_sufficient(priced[plan.current], cfg.min_requests)
        if k is not None:
            unit, count, total = "cost", priced, ws.cost_usd[:, g]
        else:
            k = first_sufficient(requests[plan.current], cfg.min_requests)
            if k is None or priced[k] > 0:
                return None
            unit, count, total = "tokens", requests, ws.input_tokens[:, g] + ws.output_tokens[:, g]
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(count > 0, total / count, np.nan)
        seasonal, trailing, day = plan.baselines[k]
        spread = (means[day], count[day])
        kind, base_slice = "seasonal", seasonal
        tested = per_call_z(float(means[k]), float(count[k]), means[seasonal], count[seasonal], spread=spread)
        if tested is None or tested[2] < rules.baseline.min_seasonal_points:
            kind, base_slice = "trailing", trailing
            tested = per_call_z(float(means[k]), float(count[k]), means[trailing], count[trailing], spread=spread)
        if tested is None:
            return None
        z, base, points = tested
        window = plan.ladder[k]
        current_value = float(means[k])
        ratio = current_value / base
        effect = ratio >= cfg.spike_ratio and z >= cfg.min_z
        if effect:
            # The calls of one agent run grow in cost together (each re-sends the context), so a window holding
            # one or two long traces is one or two pieces of evidence: it is judged at its trace count.
            units = source_of(ctx).independent_calls(labels, at - window, at, priced=unit == "cost").calls
            if 0 < units < count[k]:
                retested = per_call_z(current_value, float(units), means[base_slice], count[base_slice], spread=spread)
                if retested is not None:
                    z = retested[0]
                    effect = z >= cfg.min_z

        def build() -> Observation:
            what = "cost per request" if unit == "cost" else "tokens per request (model has no price)"
            show = fmt_usd if unit == "cost" else (lambda x: f"{x:,.0f} tokens")
            in_tok = ws.input_tokens[k, g] / max(requests[k], 1)
            out_tok = ws.output_tokens[k, g] / max(requests[k], 1)
            return Observation(
                alertname=AlertName.COST_SPIKE,
                severity=Severity.CRITICAL if ratio >= cfg.critical_ratio else Severity.WARNING,
                labels=labels,
                at=at,
                value=current_value,
                baseline=base,
                threshold=base * cfg.spike_ratio,
                summary=f"{what} of {label_text(labels)} is {ratio:.1f}x its baseline",
                evidence=(
                    f"{what} {show(current_value)} over {int(count[k])} requests in the last "
                    f"{fmt_window(window)} vs {show(base)} baseline ({ratio:.2f}x, z {z:.1f} on the per-call "
                    f"spread); baseline: mean per call over {points} {kind} windows; now {in_tok:,.0f} input / "
                    f"{out_tok:,.0f} output tokens per request"
                ),
                for_duration=cfg.for_,
                keep_firing_for=cfg.keep_firing_for,
                details={
                    "metric": f"{unit}_per_request",
                    "ratio": ratio,
                    "z": z,
                    "window": fmt_window(window),
                    "baseline_kind": kind,
                    "requests": int(count[k]),
                    "dashboard_url": dashboard_link(ctx, "llmpulse-cost", labels, window),
                },
            )

        return Candidate(normal_sf(z), effect, build)

    def _spend(
        self,
        ctx: AnalysisContext,
        cfg: CostRules,
        in_part: Callable[[str], bool],
        first: datetime | None,
        at: datetime,
        rules: Rules,
    ) -> list[Candidate]:
        min_points = rules.baseline.min_seasonal_points
        plan = LadderRanges.build(
            at,
            window_ladder(cfg.spend_window, cfg.spend_max_window),
            lambda w: (usable(seasonal_ranges(at, w, rules.baseline), first), spread_ranges(at, w, first)),
        )
        if len(plan.ranges) == len(plan.ladder):
            return []
        source = source_of(ctx)
        ws = source.windows(APP_DIMS, plan.ranges)
        out: list[Candidate] = []
        for g in range(ws.size):
            labels = ws.labels(g)
            if not in_part(labels["app"]) or ws.priced[plan.current, g].max() == 0:
                continue
            # The shortest window whose same-time windows on previous days expected enough calls.
            expected_calls = np.array(
                [float(np.median(ws.requests[s, g])) if s.stop > s.start else 0.0 for s, _ in plan.baselines]
            )
            k = first_sufficient(expected_calls, cfg.spend_min_requests)
            if k is None:
                continue
            season, day = plan.baselines[k]
            spend = ws.cost_usd[:, g]
            base = robust_baseline(spend[season])
            if base is None or base.n < min_points or base.median <= 0:
                continue
            current = float(spend[k])
            # Spend is a sum over calls: besides the day-to-day spread it has the sampling noise of a compound
            # count (variance ~ calls x mean cost^2 x (1 + CV^2) x dispersion). An app whose calls grow in cost
            # along a trace (agents re-sending their context) has a far larger CV than 2: measured on the
            # windows of this length before yesterday.
            mean_cost = base.median / max(expected_calls[k], 1.0)
            factor = SPEND_NOISE_FACTOR
            day_calls = ws.priced[day, g]
            if mean_cost > 0 and int((day_calls >= MIN_WINDOW_REQUESTS).sum()) >= 3:
                with np.errstate(divide="ignore", invalid="ignore"):
                    day_means = np.where(day_calls > 0, spend[day] / day_calls, np.nan)
                calls = float(day_calls.sum())
                center = float(spend[day].sum()) / calls
                variance = per_call_variance(day_means, day_calls, center)
                if variance is not None and center > 0:
                    factor = max(factor, (1.0 + variance / center**2) * TRACE_DISPERSION)
            noise = float(np.sqrt(factor * expected_calls[k]) * mean_cost)
            scale = max(base.scale, noise, base.median * 0.05)
            z = (current - base.median) / scale
            ratio = current / base.median
            effect = ratio >= cfg.spend_spike_ratio and z >= cfg.min_z
            window = plan.ladder[k]

            def build(
                labels: dict[str, str] = labels, current: float = current, base: RobustBaseline = base,
                ratio: float = ratio, z: float = z, window: timedelta = window, requests: int = int(ws.requests[k, g]),
            ) -> Observation:
                per_hour = current * (timedelta(hours=1) / window)
                return Observation(
                    alertname=AlertName.COST_SPIKE,
                    severity=Severity.CRITICAL if ratio >= cfg.critical_ratio else Severity.WARNING,
                    labels=labels,
                    at=at,
                    value=current,
                    baseline=base.median,
                    threshold=base.median * cfg.spend_spike_ratio,
                    summary=f"spend of {label_text(labels)} is {ratio:.1f}x the same time on previous days",
                    evidence=(
                        f"spent {fmt_usd(current)} in the last {fmt_window(window)} ({fmt_usd(per_hour)}/h) "
                        f"over {requests} requests vs {fmt_usd(base.median)} median of {base.n} "
                        f"same-time windows on previous days/weeks ({ratio:.2f}x, z {z:.1f})"
                    ),
                    for_duration=cfg.spend_for,
                    keep_firing_for=cfg.keep_firing_for,
                    details={
                        "metric": "spend",
                        "ratio": ratio,
                        "z": z,
                        "window": fmt_window(window),
                        "baseline_kind": "seasonal",
                        "dashboard_url": dashboard_link(ctx, "llmpulse-cost", labels, window),
                    },
                )

            out.append(Candidate(normal_sf(z), effect, build))
        return out


class BudgetAnalyzer:
    """Daily and monthly budgets per app (opt-in in the rules): spent so far and the projected overrun.

    The projection extends the spend rate of the last `projection_window` to the end of the UTC day/month;
    over budget already is critical, projected to overrun is a warning that says when.
    """

    name: str = "budget"
    alertnames: tuple[AlertName, ...] = (AlertName.BUDGET_BURN,)
    interval: timedelta = timedelta(minutes=5)

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        rules = rules_of(ctx)
        budgets = [r.budget for r in rules.all_app_rules()]
        if not any(b.daily_usd or b.monthly_usd for b in budgets):
            return AnalyzerResult([])
        source = source_of(ctx)
        at = run_at(ctx)
        day_start = at.replace(hour=0, minute=0)
        month_start = day_start.replace(day=1)
        observations: list[Observation] = []
        windows = {b.projection_window for b in budgets}
        for projection in windows:
            ws = source.windows(("app",), [(day_start, at), (month_start, at), (at - projection, at)])
            for g in range(ws.size):
                app = ws.keys[g][0]
                budget = rules.for_app(app).budget
                if not (budget.daily_usd or budget.monthly_usd) or budget.projection_window != projection:
                    continue
                rate = float(ws.cost_usd[2, g]) / (projection / timedelta(hours=1))  # $/h
                worst: Observation | None = None
                next_month = (month_start + timedelta(days=32)).replace(day=1)
                for period, limit, spent, end in (
                    ("daily", budget.daily_usd, float(ws.cost_usd[0, g]), day_start + timedelta(days=1)),
                    ("monthly", budget.monthly_usd, float(ws.cost_usd[1, g]), next_month),
                ):
                    if not limit:
                        continue
                    hours_left = (end - at) / timedelta(hours=1)
                    projected = spent + rate * hours_left
                    if spent >= limit:
                        severity = Severity.CRITICAL
                        when = "already over"
                    elif projected >= limit:
                        severity = Severity.WARNING
                        overrun = at + timedelta(hours=(limit - spent) / rate) if rate > 0 else end
                        when = f"projected to run out at {overrun:%Y-%m-%d %H:%M} UTC"
                    else:
                        continue
                    obs = Observation(
                        alertname=AlertName.BUDGET_BURN,
                        severity=severity,
                        labels={"app": app},
                        at=at,
                        value=projected,
                        baseline=spent,
                        threshold=limit,
                        summary=f"{period} budget of {app} ({fmt_usd(limit)}): {when}",
                        evidence=(
                            f"spent {fmt_usd(spent)} of {fmt_usd(limit)} this "
                            f"{'day' if period == 'daily' else 'month'}; "
                            f"spending {fmt_usd(rate)}/h over the last {fmt_window(projection)}, "
                            f"projected {fmt_usd(projected)} by {end:%Y-%m-%d %H:%M} UTC"
                        ),
                        details={
                            "period": period,
                            "spent_usd": spent,
                            "rate_usd_per_hour": rate,
                            "dashboard_url": dashboard_link(ctx, "llmpulse-cost", {"app": app}, projection),
                        },
                    )
                    if worst is None or (severity == Severity.CRITICAL and worst.severity != Severity.CRITICAL):
                        worst = obs
                if worst is not None:
                    observations.append(worst)
        return AnalyzerResult(observations)


KEY_QUANTILE = 0.999


class RunawayAnalyzer:
    """One trace or session doing far more than normal: an agent stuck in a loop.

    A key (trace_id / session_id) is runaway while it is still active (a call in the last `idle`) and its
    calls, tokens or cost in the window exceed both an absolute floor and `multiplier` x the app's normal
    heavy key (the median over the baseline hours of each hour's 99.9th percentile of per-key activity).
    """

    name: str = "runaway"
    alertnames: tuple[AlertName, ...] = (AlertName.RUNAWAY_TRACE,)
    interval: timedelta = timedelta(minutes=5)

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        rules = rules_of(ctx)
        source = source_of(ctx)
        at = run_at(ctx)
        configs = [r.runaway for r in rules.all_app_rules() if r.runaway.enabled]
        if not configs:
            return AnalyzerResult([])
        floor_calls = min(c.min_calls for c in configs)
        floor_tokens = min(c.min_tokens for c in configs)
        floor_cost = min(c.min_cost_usd for c in configs)
        window = max(c.window for c in configs)
        baseline_span = max(c.baseline for c in configs)
        kinds = sorted({k for c in configs for k in c.keys})
        hour = at.replace(minute=0)
        observations: list[Observation] = []
        for kind in kinds:
            normal: dict[tuple[str, str], tuple[float, float, float]] = {}
            per_app: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
            for q in source.key_hour_quantiles(kind, hour - baseline_span, hour, KEY_QUANTILE):
                per_app.setdefault((q.app, q.environment), []).append((q.calls, q.tokens, q.cost_usd))
            for key, values in per_app.items():
                arr = np.asarray(values, dtype=np.float64)
                normal[key] = (float(np.median(arr[:, 0])), float(np.median(arr[:, 1])), float(np.median(arr[:, 2])))
            heavy = source.heavy_keys(
                kind, at - window, at, min_calls=floor_calls, min_tokens=floor_tokens, min_cost=floor_cost
            )
            for act in heavy:
                cfg = rules.for_app(act.app).runaway
                if not cfg.enabled or kind not in cfg.keys:
                    continue
                if act.last_call < at - cfg.idle:
                    continue  # it stopped
                n_calls, n_tokens, n_cost = normal.get((act.app, act.environment), (0.0, 0.0, 0.0))
                thr_calls = max(cfg.min_calls, cfg.multiplier * n_calls)
                thr_tokens = max(cfg.min_tokens, cfg.multiplier * n_tokens)
                thr_cost = max(cfg.min_cost_usd, cfg.multiplier * n_cost)
                hits: list[tuple[str, float, float, float]] = []
                if act.calls >= thr_calls:
                    hits.append(("calls", act.calls, thr_calls, n_calls))
                if act.tokens >= thr_tokens:
                    hits.append(("tokens", act.tokens, thr_tokens, n_tokens))
                if act.cost_usd >= thr_cost:
                    hits.append(("cost_usd", act.cost_usd, thr_cost, n_cost))
                if not hits:
                    continue
                metric, value, threshold, base = hits[0]
                labels = {"app": act.app, "environment": act.environment, kind: act.key}
                minutes = max((act.last_call - act.first_call) / timedelta(minutes=1), 1.0)
                obs = Observation(
                    alertname=AlertName.RUNAWAY_TRACE,
                    severity=Severity.CRITICAL if act.cost_usd >= thr_cost else Severity.WARNING,
                    labels=labels,
                    at=at,
                    value=float(value),
                    baseline=base,
                    threshold=float(threshold),
                    summary=(
                        f"{kind.removesuffix('_id')} {act.key[:16]} of {act.app} made {act.calls} LLM calls in "
                        f"{minutes:.0f} min (normal heavy {kind.removesuffix('_id')}: {n_calls:.0f}/h)"
                    ),
                    evidence=(
                        f"{act.calls} calls, {act.tokens:,} tokens, {fmt_usd(act.cost_usd)} in the last "
                        f"{fmt_window(window)} ({act.calls / minutes:.1f} calls/min, still active at "
                        f"{act.last_call:%H:%M:%S}); feature {act.feature}, model {act.model}; threshold on "
                        f"{metric}: {threshold:,.0f} (max of the floor and {cfg.multiplier:g}x the p99.9 key of "
                        f"the last {fmt_window(cfg.baseline)})"
                    ),
                    for_duration=cfg.for_,
                    details={
                        "kind": kind,
                        "calls": act.calls,
                        "tokens": act.tokens,
                        "cost_usd": act.cost_usd,
                        "feature": act.feature,
                        "model": act.model,
                        "metric": metric,
                        "dashboard_url": dashboard_link(ctx, "llmpulse-cost", labels, window),
                    },
                )
                observations.append(obs)
        return AnalyzerResult(observations)
