"""Detection quality of the analyzers on simulated traffic with ground truth, beside static thresholds.

    .venv/bin/python bench/detection.py [--weeks 2] [--clean-weeks 1] [--seed 21]

For each incident week (one seed each) the simulator's default incidents are injected (two rounds of all
eight kinds; the first day stays clean as warm-up), the events go through the real ingest path into an
embedded store, and `run_backtest` replays days 2-7 every 5 minutes, exactly like `llmpulse backtest`.
The same replay runs again with static-threshold rules of the kind people configure in Langfuse,
Helicone or LangSmith monitors (p95 > 1.5x the weekly mean, error rate > 5%, ...), through the same
engine (same 5-minute `for`). A clean week (daily and weekly seasonality, no incidents) measures false
alarms per app. Printed: per-kind confusion table, detection and resolution delays, false alarms per app.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzers.backtest import run_backtest  # noqa: E402
from analyzers.common import rules_of, run_at, source_of  # noqa: E402
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, Observation, Severity  # noqa: E402
from analyzers.registry import builtin_analyzers  # noqa: E402
from analyzers.rules import Rules  # noqa: E402
from analyzers.scoring import IN_SCOPE_KINDS, MEASURED_KINDS, Score, minutes, score, traffic_slices  # noqa: E402
from analyzers.series import SeriesSource  # noqa: E402
from analyzers.stats import hist_quantiles  # noqa: E402
from collector.pricing import PriceCatalog  # noqa: E402
from collector.store import ClickHouseEventStore  # noqa: E402
from collector.validation import EventValidator, RawItem  # noqa: E402
from llmpulse.clickhouse import connect  # noqa: E402
from llmpulse.migrate import Retention, migrate  # noqa: E402
from llmpulse.simulate import SimulationConfig, generate, ground_truth  # noqa: E402

START = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=5)
FOR = timedelta(minutes=5)


def load(client: Any, events: Iterable[dict[str, Any]]) -> int:
    validator = EventValidator(prices=PriceCatalog([]))
    store = ClickHouseEventStore(client)
    it = iter(events)
    n = 0
    while batch := list(itertools.islice(it, 20_000)):
        result = validator.validate((RawItem(i, e, None) for i, e in enumerate(batch)), source="bench",
                                    source_ref="detection")
        store.write_events(result.batch)
        n += len(batch)
    return n


# ------------------------------------------------------------------------------ static thresholds


class StaticThresholds:
    """What a user would configure without baselines: fixed levels against the week's mean.

    The 'weekly mean' of each metric is computed over the whole replayed week (a user reads it off last
    week's chart), per group, at the same window length the rule evaluates.
    """

    name = "static"
    alertnames: tuple[AlertName, ...] = (
        AlertName.LATENCY_REGRESSION, AlertName.ERROR_RATE_HIGH, AlertName.PROVIDER_OUTAGE, AlertName.COST_SPIKE,
        AlertName.TRAFFIC_ABSENT, AlertName.RUNAWAY_TRACE,
    )
    interval = timedelta(minutes=5)

    def __init__(self, week_start: datetime, week_end: datetime) -> None:
        self.week = (week_start, week_end)
        self.means: dict[str, dict[tuple[str, ...], float]] | None = None

    def _weekly_means(self, source: SeriesSource) -> dict[str, dict[tuple[str, ...], float]]:
        lo, hi = self.week
        ranges = []
        t = lo
        while t < hi:
            ranges.append((t, t + STEP))
            t += STEP
        out: dict[str, dict[tuple[str, ...], float]] = {"p95": {}, "cpr": {}, "spend": {}, "count": {}}
        g5 = ("app", "environment", "provider", "model", "feature")
        ws = source.windows(g5, ranges, hist=True)
        assert ws.latency_hist is not None
        for g, key in enumerate(ws.keys):
            p95 = [hist_quantiles(ws.latency_hist[r, g], (0.95,))[0] for r in range(len(ranges))
                   if ws.latency_hist[r, g].sum() >= 5]
            out["p95"][key] = float(np.mean(p95)) if p95 else float("nan")
            priced = ws.priced[:, g]
            out["cpr"][key] = float(ws.cost_usd[:, g].sum() / priced.sum()) if priced.sum() else float("nan")
        wa = source.windows(("app", "environment"), ranges)
        for g, key in enumerate(wa.keys):
            out["spend"][key] = float(wa.cost_usd[:, g].mean())
            out["count"][key] = float(wa.requests[:, g].mean())
        return out

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        source = source_of(ctx)
        at = run_at(ctx)
        if self.means is None:
            self.means = self._weekly_means(source)
        m = self.means
        obs: list[Observation] = []

        def add(alert: AlertName, labels: dict[str, str], value: float, base: float, what: str) -> None:
            obs.append(Observation(alert, Severity.WARNING, labels, at, value, base, base, what, for_duration=FOR))

        cur = [(at - STEP, at)]
        g5 = ("app", "environment", "provider", "model", "feature")
        ws = source.windows(g5, cur, hist=True)
        assert ws.latency_hist is not None
        for g, key in enumerate(ws.keys):
            labels = ws.labels(g)
            if ws.latency_hist[0, g].sum() >= 5:
                p95 = hist_quantiles(ws.latency_hist[0, g], (0.95,))[0]
                base = m["p95"].get(key, float("nan"))
                if p95 > 1.5 * base:
                    add(AlertName.LATENCY_REGRESSION, labels, p95, base, "p95 > 1.5x weekly mean")
            if ws.priced[0, g] >= 5:
                cpr = ws.cost_usd[0, g] / ws.priced[0, g]
                base = m["cpr"].get(key, float("nan"))
                if cpr > 1.5 * base:
                    add(AlertName.COST_SPIKE, labels, cpr, base, "cost per request > 1.5x weekly mean")
        wa = source.windows(("app", "environment"), cur)
        for g, key in enumerate(wa.keys):
            labels = wa.labels(g)
            n, k = wa.requests[0, g], wa.errors[0, g]
            if n >= 20 and k / n > 0.05:
                add(AlertName.ERROR_RATE_HIGH, labels, k / n, 0.05, "error rate > 5%")
            if wa.cost_usd[0, g] > 1.5 * m["spend"].get(key, float("inf")):
                add(AlertName.COST_SPIKE, labels, wa.cost_usd[0, g], m["spend"][key], "spend > 1.5x weekly mean")
        # Absence: fewer than 20% of the weekly mean calls in 5 minutes (zeros included).
        for key, mean in m["count"].items():
            labels = dict(zip(("app", "environment"), key, strict=True))
            idx = wa.keys.index(key) if key in wa.keys else None
            n = wa.requests[0, idx] if idx is not None else 0.0
            if n < 0.2 * mean:
                add(AlertName.TRAFFIC_ABSENT, labels, n, mean, "calls < 20% of weekly mean")
        wm = source.windows(("environment", "provider", "model"), cur)
        for g in range(wm.size):
            n, k = wm.requests[0, g], wm.errors[0, g]
            if n >= 5 and k / n > 0.5:
                add(AlertName.PROVIDER_OUTAGE, wm.labels(g), k / n, 0.5, "error rate > 50%")
        for kind in rules_of(ctx).defaults.runaway.keys:
            for act in source.heavy_keys(kind, at - timedelta(minutes=30), at, min_calls=50,
                                         min_tokens=10**12, min_cost=10**9):
                if act.last_call >= at - STEP:
                    add(AlertName.RUNAWAY_TRACE, {"app": act.app, "environment": act.environment, kind: act.key},
                        act.calls, 50, "more than 50 calls in 30 min")
        return AnalyzerResult(obs)


# ---------------------------------------------------------------------------------------- report


def confusion(sc: Score, kinds: Iterable[str]) -> list[str]:
    lines = [f"{'kind':20s} {'injected':>8s} {'in time':>8s} {'late':>5s} {'missed':>7s} {'resolved<=30m':>13s} "
             f"{'delay med/max':>14s}"]
    for kind in kinds:
        outs = [o for o in sc.outcomes if o.kind == kind]
        if not outs:
            continue
        in_time = sum(sc.detected_in_time(o) for o in outs)
        late = sum(o.delay is not None and not sc.detected_in_time(o) for o in outs)
        missed = sum(o.delay is None for o in outs)
        resolved = sum(o.resolve_delay is not None and o.resolve_delay <= sc.resolve_within for o in outs)
        delays = [o.delay.total_seconds() / 60 for o in outs if o.delay is not None]
        d = f"{statistics.median(delays):.0f}/{max(delays):.0f}m" if delays else "-"
        lines.append(f"{kind:20s} {len(outs):8d} {in_time:8d} {late:5d} {missed:7d} {resolved:13d} {d:>14s}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weeks", type=int, default=2, help="incident weeks (one seed each)")
    parser.add_argument("--clean-weeks", type=int, default=1)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="llmpulse-detection-"))
    try:
        run(args, f"chdb://{workdir}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, url: str) -> None:
    rules = Rules()
    runs: list[tuple[str, SimulationConfig]] = []
    for w in range(args.weeks):
        runs.append((f"incidents seed {args.seed + w}",
                     SimulationConfig(start=START, duration=timedelta(days=7), seed=args.seed + w, text=False)))
    for w in range(args.clean_weeks):
        runs.append((f"clean seed {args.seed + 100 + w}",
                     SimulationConfig(start=START, duration=timedelta(days=7), seed=args.seed + 100 + w,
                                      text=False, clean=True)))
    results: dict[str, list[tuple[str, Score, float]]] = {"llmpulse": [], "static": []}
    for i, (label, config) in enumerate(runs):
        client = connect(url, database=f"run{i}")
        migrate(client, Retention(3650, 3650, 30))
        t0 = time.perf_counter()
        n = load(client, generate(config))
        print(f"[{label}] loaded {n:,} events in {time.perf_counter() - t0:.0f}s", flush=True)
        truth = ground_truth(config)
        slices = traffic_slices(config.apps, config.models)
        replay_from, replay_to = START + timedelta(days=1), START + timedelta(days=7)
        for name, analyzers in (("llmpulse", builtin_analyzers()),
                                ("static", [StaticThresholds(replay_from, replay_to)])):
            t0 = time.perf_counter()
            res = run_backtest(client, analyzers, rules, replay_from, replay_to, STEP)
            elapsed = time.perf_counter() - t0
            sc = score(res.episodes, truth, slices)
            results[name].append((label, sc, elapsed))
            print(f"[{label}] {name}: {len(res.episodes)} episodes, replay {elapsed:.1f}s", flush=True)

    print()
    for name in ("llmpulse", "static"):
        print(f"=== {name} {'(baselines + tests, default rules)' if name == 'llmpulse' else '(static thresholds)'}")
        inc = [sc for label, sc, _ in results[name] if label.startswith("incidents")]
        merged = Score([o for sc in inc for o in sc.outcomes], [e for sc in inc for e in sc.false_alarms],
                       timedelta(minutes=15), timedelta(minutes=30))
        for line in confusion(merged, MEASURED_KINDS):
            print("  " + line)
        print(f"  in-scope (cost, latency, error, outage) detected <=15m and resolved <=30m: "
              f"{sum(merged.ok(o) for o in merged.outcomes if o.kind in IN_SCOPE_KINDS)}/"
              f"{sum(o.kind in IN_SCOPE_KINDS for o in merged.outcomes)} = {merged.rate(IN_SCOPE_KINDS):.0%}")
        for label, sc, _ in results[name]:
            fa = sc.false_alarms_by_app()
            print(f"  false alarms, {label} (days 2-7): {len(sc.false_alarms)} "
                  f"{dict(sorted(fa.items())) if fa else ''}")
        for label, sc, _ in results[name]:
            if label.startswith("incidents"):
                for o in sc.outcomes:
                    if o.kind in MEASURED_KINDS:
                        print(f"    {label}: {o.kind:18s} {o.start:%a %H:%M} fired +{minutes(o.delay)} "
                              f"resolved {minutes(o.resolve_delay)} after end")
        print()
    clean = [(label, sc) for label, sc, _ in results["llmpulse"] if label.startswith("clean")]
    static_clean = [(label, sc) for label, sc, _ in results["static"] if label.startswith("clean")]
    for (label, sc), (_, st) in zip(clean, static_clean, strict=True):
        apps = sorted(set(sc.false_alarms_by_app()) | set(st.false_alarms_by_app()) |
                      {a.name for a in runs[0][1].apps})
        print(f"false alarms per app in the clean week ({label}, 6 days replayed):")
        print(f"  {'app':34s} {'llmpulse':>9s} {'static':>8s}")
        for app in apps:
            print(f"  {app:34s} {sc.false_alarms_by_app().get(app, 0):9d} {st.false_alarms_by_app().get(app, 0):8d}")


if __name__ == "__main__":
    main()
