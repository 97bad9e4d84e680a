"""Cost analyzers: cost-per-request and spend-rate spikes, budget burn, runaway traces and sessions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np

from analyzers.common import (
    Candidate,
    dashboard_link,
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
)
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, Observation, Severity
from analyzers.rules import CostRules, Rules
from analyzers.stats import normal_sf, robust_baseline, robust_z

GROUP_DIMS: tuple[str, ...] = ("app", "environment", "provider", "model", "feature")
APP_DIMS: tuple[str, ...] = ("app", "environment")
COST_TRAILING = timedelta(hours=2)
MIN_WINDOW_REQUESTS = 3  # a baseline window with fewer requests says nothing about cost per request


class CostAnalyzer:
    """Cost per request per group, and spend rate per app, against a seasonal (else trailing) baseline.

    Per request: the window's mean cost per priced request (tokens per request for unpriced models)
    against the median and MAD of the same window on previous days/weeks, or of the trailing two hours
    when there is not enough history. Spend rate: the app's spend in the window against the same window on
    previous days/weeks only (traffic follows the clock, so a trailing baseline would page at every
    morning ramp). Both need the ratio AND a robust z-score that survives the multiple-testing correction.
    """

    name: str = "cost"
    alertnames: tuple[AlertName, ...] = (AlertName.COST_SPIKE,)
    interval: timedelta = timedelta(minutes=5)

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        rules = rules_of(ctx)
        source = source_of(ctx)
        at = run_at(ctx)
        first = source.first_minute()
        candidates: list[Candidate] = []
        for cfg, in_part in partitions(rules, "cost"):
            if not cfg.enabled:
                continue
            window = cfg.window
            current = (at - window, at)
            seasonal = usable(seasonal_ranges(at, window, rules.baseline), first)
            trailing = usable(trailing_ranges(at, window, COST_TRAILING), first)
            ws = source.windows(GROUP_DIMS, [current, *seasonal, *trailing])
            ns = len(seasonal)
            for g in range(ws.size):
                labels = ws.labels(g)
                if not in_part(labels["app"]):
                    continue
                priced = ws.priced[:, g]
                requests = ws.requests[:, g]
                if priced[0] >= cfg.min_requests:
                    unit, count = "cost", priced
                    with np.errstate(divide="ignore", invalid="ignore"):
                        values = np.where(priced >= MIN_WINDOW_REQUESTS, ws.cost_usd[:, g] / priced, np.nan)
                elif requests[0] >= cfg.min_requests and priced[0] == 0:
                    unit, count = "tokens", requests
                    tokens = ws.input_tokens[:, g] + ws.output_tokens[:, g]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        values = np.where(requests >= MIN_WINDOW_REQUESTS, tokens / requests, np.nan)
                else:
                    continue
                seasonal_values = values[1 : 1 + ns]
                kind = "seasonal"
                base = robust_baseline(seasonal_values)
                if base is None or base.n < rules.baseline.min_seasonal_points:
                    kind = "trailing"
                    base = robust_baseline(values[1 + ns :])
                if base is None or base.n < 3 or base.median <= 0:
                    continue
                current_value = float(values[0])
                ratio = current_value / base.median
                z = robust_z(current_value, base)
                effect = ratio >= cfg.spike_ratio and z >= cfg.min_z
                severity = Severity.CRITICAL if ratio >= cfg.critical_ratio else Severity.WARNING
                what = "cost per request" if unit == "cost" else "tokens per request (model has no price)"
                show = fmt_usd if unit == "cost" else (lambda x: f"{x:,.0f} tokens")
                in_tok = ws.input_tokens[0, g] / max(requests[0], 1)
                out_tok = ws.output_tokens[0, g] / max(requests[0], 1)
                obs = Observation(
                    alertname=AlertName.COST_SPIKE,
                    severity=severity,
                    labels=labels,
                    at=at,
                    value=current_value,
                    baseline=base.median,
                    threshold=base.median * cfg.spike_ratio,
                    summary=f"{what} of {label_text(labels)} is {ratio:.1f}x its baseline",
                    evidence=(
                        f"{what} {show(current_value)} over {int(count[0])} requests in the last "
                        f"{fmt_window(window)} vs {show(base.median)} baseline ({ratio:.2f}x, robust z {z:.1f}); "
                        f"baseline: median of {base.n} {kind} windows; now {in_tok:,.0f} input / "
                        f"{out_tok:,.0f} output tokens per request"
                    ),
                    for_duration=cfg.for_,
                    details={
                        "metric": f"{unit}_per_request",
                        "ratio": ratio,
                        "z": z,
                        "baseline_kind": kind,
                        "requests": int(count[0]),
                        "dashboard_url": dashboard_link(ctx, "llmpulse-cost", labels, window),
                    },
                )
                candidates.append(Candidate(normal_sf(z), effect, obs))
            candidates.extend(self._spend(ctx, cfg, in_part, first, at, rules))
        return AnalyzerResult(select(candidates, rules))

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
        window = cfg.spend_window
        seasonal = usable(seasonal_ranges(at, window, rules.baseline), first)
        if len(seasonal) < min_points:
            return []
        source = source_of(ctx)
        ws = source.windows(APP_DIMS, [(at - window, at), *seasonal])
        out: list[Candidate] = []
        for g in range(ws.size):
            labels = ws.labels(g)
            if not in_part(labels["app"]) or ws.requests[0, g] < cfg.spend_min_requests:
                continue
            if ws.priced[0, g] == 0:
                continue
            spend = ws.cost_usd[:, g]
            base = robust_baseline(spend[1:])
            if base is None or base.n < min_points or base.median <= 0:
                continue
            ratio = float(spend[0]) / base.median
            z = robust_z(float(spend[0]), base)
            effect = ratio >= cfg.spend_spike_ratio and z >= cfg.min_z
            per_hour = float(spend[0]) * (timedelta(hours=1) / window)
            obs = Observation(
                alertname=AlertName.COST_SPIKE,
                severity=Severity.CRITICAL if ratio >= cfg.critical_ratio else Severity.WARNING,
                labels=labels,
                at=at,
                value=float(spend[0]),
                baseline=base.median,
                threshold=base.median * cfg.spend_spike_ratio,
                summary=f"spend of {label_text(labels)} is {ratio:.1f}x the same time on previous days",
                evidence=(
                    f"spent {fmt_usd(float(spend[0]))} in the last {fmt_window(window)} ({fmt_usd(per_hour)}/h) "
                    f"over {int(ws.requests[0, g])} requests vs {fmt_usd(base.median)} median of {base.n} "
                    f"same-time windows on previous days/weeks ({ratio:.2f}x, robust z {z:.1f})"
                ),
                for_duration=cfg.spend_for,
                details={
                    "metric": "spend",
                    "ratio": ratio,
                    "z": z,
                    "baseline_kind": "seasonal",
                    "dashboard_url": dashboard_link(ctx, "llmpulse-cost", labels, window),
                },
            )
            out.append(Candidate(normal_sf(z), effect, obs))
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
