"""Detection at the evidence limit: every injected incident against its evidence deadline, at three traffic levels.

    .venv/bin/python bench/detection_levels.py [--levels 0.3,1,3] [--seed 31] [--days 7] [--no-drift]

For each traffic level (a multiple of the simulator's default `rate_per_minute`) three simulated weeks go
through the real validator and store into embedded chDB and are replayed minute by minute with
`run_backtest` (days 2-7, default rules, the built-in analyzers and the drift plugin):

- the simulator's default incidents (two rounds of every kind);
- held-out incidents the detectors were not developed on: a 6x cost spike for 90 min, a 2.2x latency
  regression for 2 h, a 30% new-topic input drift for 18 h, a 95% provider outage for 45 min, a 25% error burst
  and a 2 h traffic absence, on other targets and days;
- a clean week (same seasonality, no incidents).

Each incident's detection delay is printed beside its evidence deadline: max(10 min, the time by which 8
calls of the affected slice arrived + 5 min), for drift max(60 min, 60 calls + 5 min). Calls "arrived" are
counted on the incident-free twin of the week, so a traffic absence is timed by the calls that should have
come. Findings that no incident explains are counted per app-week (target: at most 1).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzers.backtest import run_backtest  # noqa: E402
from analyzers.findings import Analyzer  # noqa: E402
from analyzers.registry import builtin_analyzers  # noqa: E402
from analyzers.rules import DEFAULT_EXCLUDED_OPERATIONS, Rules  # noqa: E402
from analyzers.scoring import Score, score, traffic_slices  # noqa: E402
from bench.detection import START, load  # noqa: E402
from llmpulse.clickhouse import connect  # noqa: E402
from llmpulse.migrate import Retention, migrate  # noqa: E402
from llmpulse.settings import Settings  # noqa: E402
from llmpulse.simulate import DEFAULT_RATE_PER_MINUTE, Incident, SimulationConfig, generate, ground_truth  # noqa: E402

STEP = timedelta(minutes=1)
DRIFT_KINDS = frozenset({"input_drift"})
NOT_SCORED = frozenset({"quality_drop"})  # needs an LLM judge endpoint; covered by the judge's own tests
SLICE_KEYS = ("app", "feature", "provider", "model", "trace_id")


def held_out_incidents(start: datetime) -> list[Incident]:
    """Magnitudes, durations, targets and times the detectors were not developed on."""
    day = timedelta(days=1)

    def at(d: int, h: int, m: int = 0) -> datetime:
        return start + d * day + timedelta(hours=h, minutes=m)

    return [
        Incident(kind="cost_spike", start=at(1, 14, 10), end=at(1, 15, 40), magnitude=6.0,
                 labels={"app": "code-assistant", "feature": "explain"}),
        Incident(kind="latency_regression", start=at(2, 10, 20), end=at(2, 12, 20), magnitude=2.2,
                 labels={"provider": "openai", "model": "gpt-4o-mini"}),
        Incident(kind="input_drift", start=at(3, 6, 0), end=at(4, 0, 0), magnitude=0.30,
                 labels={"app": "search-rag", "feature": "synthesize"}),
        Incident(kind="provider_outage", start=at(4, 16, 5), end=at(4, 16, 50), magnitude=0.95,
                 labels={"provider": "mistral"}),
        Incident(kind="error_burst", start=at(5, 11, 35), end=at(5, 12, 20), magnitude=0.25,
                 labels={"app": "search-rag"}),
        Incident(kind="traffic_absent", start=at(5, 15, 0), end=at(5, 17, 0), magnitude=1.0,
                 labels={"app": "support-bot", "feature": "answer"}),
        Incident(kind="runaway_trace", start=at(6, 9, 40), end=at(6, 10, 20), magnitude=300.0,
                 labels={"app": "support-bot", "feature": "answer"}),
    ]


@dataclass(frozen=True, slots=True)
class Week:
    label: str
    config: SimulationConfig


def arrivals(twin: SimulationConfig, truth: Sequence[dict[str, Any]]) -> dict[str, list[datetime]]:
    """Per incident id: start times of the LLM calls of its slice from its onset on, in the incident-free twin."""
    wanted = {
        i["id"]: (_parse(i["start"]), {k: v for k, v in i["labels"].items() if k in SLICE_KEYS}) for i in truth
    }
    out: dict[str, list[datetime]] = {k: [] for k in wanted}
    for event in generate(twin):
        if event.get("operation") in DEFAULT_EXCLUDED_OPERATIONS:
            continue
        ts = _parse(event["start_time"])
        for key, (onset, labels) in wanted.items():
            if ts >= onset and all(event.get(k) == v for k, v in labels.items()):
                out[key].append(ts)
    return out


def _parse(ts: Any) -> datetime:
    return ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts).replace("Z", "+00:00"))


def deadline(kind: str, onset: datetime, calls: list[datetime]) -> timedelta:
    floor, need = (timedelta(minutes=60), 60) if kind in DRIFT_KINDS else (timedelta(minutes=10), 8)
    calls = sorted(calls)
    if len(calls) < need:
        return timedelta(days=30)  # the slice never delivers that much evidence in the replay
    return max(floor, calls[need - 1] - onset + timedelta(minutes=5))


def analyzers_for(drift: bool) -> list[Analyzer]:
    chosen = builtin_analyzers()
    if drift:
        from analyzers.drift.plugin import build_analyzers

        chosen += build_analyzers(Settings())
    return chosen


def replay(url: str, index: int, week: Week, drift: bool) -> tuple[Score, list[dict[str, Any]], float, int]:
    client = connect(url, database=f"w{index}")
    migrate(client, Retention(3650, 3650, 30))
    n = load(client, generate(week.config))
    truth = [t for t in ground_truth(week.config) if t["kind"] not in NOT_SCORED]
    t0 = time.perf_counter()
    start = START + timedelta(days=1)
    res = run_backtest(client, analyzers_for(drift), Rules(), start, START + timedelta(days=7), STEP)
    elapsed = time.perf_counter() - t0
    sc = score(res.episodes, truth, traffic_slices(week.config.apps, week.config.models))
    return sc, truth, elapsed, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="0.3,1,3")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--weeks", default="default,held-out,clean")
    parser.add_argument("--no-drift", action="store_true", help="leave the drift plugin out (faster)")
    args = parser.parse_args()
    levels = [float(x) for x in args.levels.split(",")]
    kinds = args.weeks.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="llmpulse-levels-"))
    try:
        run(f"chdb://{workdir}", levels, kinds, args.seed, drift=not args.no_drift)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(url: str, levels: list[float], kinds: list[str], seed: int, *, drift: bool) -> None:
    rows: list[tuple[float, str, str, str, str, float | None, float, str]] = []
    unexplained: list[tuple[float, str, dict[str, int], int]] = []
    index = 0
    all_ok = True
    for level in levels:
        rate = DEFAULT_RATE_PER_MINUTE * level
        for kind in kinds:
            base = SimulationConfig(start=START, duration=timedelta(days=7), seed=seed, rate_per_minute=rate,
                                    text=drift)
            if kind == "clean":
                config = base.model_copy(update={"clean": True})
            elif kind == "held-out":
                config = base.model_copy(update={"seed": seed + 1, "incidents": held_out_incidents(START)})
            else:
                config = base
            week = Week(f"{level:g}x {kind}", config)
            sc, truth, elapsed, n = replay(url, index, week, drift)
            index += 1
            print(f"[{week.label}] {n:,} events, replay {elapsed:.0f}s, {len(sc.false_alarms)} unexplained",
                  flush=True)
            apps = {a.name for a in config.apps}
            fa = sc.false_alarms_by_app()
            unexplained.append((level, kind, fa, len(apps)))
            for e in sc.false_alarms:
                print(f"    unexplained: {e.fired_at:%a %H:%M} {e.alertname} {e.labels} {e.summary}", flush=True)
            if not truth:
                continue
            twin = config.model_copy(update={"incidents": None, "clean": True})
            calls = arrivals(twin, truth)
            for o in sc.outcomes:
                if o.kind in NOT_SCORED:
                    continue
                allowed = deadline(o.kind, o.start, calls[o.incident["id"]])
                delay = o.delay.total_seconds() / 60 if o.delay is not None else None
                ok = delay is not None and delay <= allowed.total_seconds() / 60
                all_ok &= ok
                labels = ",".join(f"{k}={v[:14]}" for k, v in o.incident["labels"].items())
                rows.append((level, kind, o.kind, labels, f"{o.start:%a %H:%M}", delay,
                             allowed.total_seconds() / 60, "ok" if ok else ("LATE" if delay is not None else "MISSED")))

    print()
    print(f"{'level':>5s} {'week':9s} {'incident':19s} {'slice':44s} {'onset':9s} {'delay':>7s} {'deadline':>8s} "
          f"{'ratio':>6s}  verdict")
    for level, week_kind, kind, labels, onset, delay, limit, verdict in rows:
        shown = f"{delay:.0f}m" if delay is not None else "-"
        ratio = f"{delay / limit:.2f}" if delay is not None else "-"
        print(f"{level:5g} {week_kind:9s} {kind:19s} {labels[:44]:44s} {onset:9s} {shown:>7s} {limit:7.0f}m "
              f"{ratio:>6s}  {verdict}")
    print()
    by_level: dict[float, list[float]] = {}
    for level, _, _, _, _, delay, limit, _ in rows:
        if delay is not None:
            by_level.setdefault(level, []).append(delay / limit)
    for level, ratios in by_level.items():
        print(f"{level:g}x: delay/deadline median {statistics.median(ratios):.2f}, max {max(ratios):.2f} "
              f"over {len(ratios)} detected incidents")
    print()
    worst = 0.0
    for level, week_kind, fa, n_apps in unexplained:
        total = sum(fa.values())
        per_app = max(fa.values(), default=0)
        worst = max(worst, per_app)
        print(f"unexplained findings {level:g}x {week_kind:9s}: {total} in all, at most {per_app} for one app "
              f"({n_apps} apps) {dict(sorted(fa.items())) if fa else ''}")
    print()
    print(f"every incident within its deadline: {'yes' if all_ok else 'NO'}; "
          f"most unexplained findings for one app in one week: {worst:g} (target <= 1)")


if __name__ == "__main__":
    main()
