"""Drift run time on big windows, against a plain baseline measured in the same run.

    .venv/bin/python bench/drift_perf.py [--events 100000] [--texts 5000]

Stores two windows of simulated traffic (one hour each, `--events` calls in each) in an embedded store of
its own, waits until ClickHouse's background merges of that load stop (nothing forced), then times:
  1. one drift run over both windows, numeric and categorical features only (ClickHouse aggregates);
  2. the text tests on `--texts`-text samples per window (featurize + classifier + rank test), per group;
and, as the baseline, pulling the same windows' raw columns out of ClickHouse into Python (what a tool
that computes drift in pandas must do before it starts): the ratio says what pushing aggregation into
ClickHouse saves.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzers.drift.analyzer import DriftAnalyzer, DriftSettings  # noqa: E402
from analyzers.drift.detect import DriftConfig, TextInput, evaluate_text  # noqa: E402
from analyzers.drift.features import Direction  # noqa: E402
from collector.pricing import PriceCatalog  # noqa: E402
from collector.store import ClickHouseEventStore  # noqa: E402
from collector.validation import EventValidator, RawItem  # noqa: E402
from llmpulse.clickhouse import connect  # noqa: E402
from llmpulse.migrate import migrate  # noqa: E402
from llmpulse.simulate import SimulationConfig, generate  # noqa: E402


def load(client, start: datetime, events_per_hour: int) -> int:
    # Two hours at a flat-ish rate; the simulator's diurnal curve is evened out by starting at its mean.
    cfg = SimulationConfig(start=start, duration=timedelta(hours=2), seed=21, clean=True,
                           rate_per_minute=events_per_hour / 60 * 1.08)
    validator = EventValidator(prices=PriceCatalog([]))
    store = ClickHouseEventStore(client)
    batch: list = []
    total = 0
    for i, ev in enumerate(generate(cfg)):
        batch.append(RawItem(i, ev, None, max_size=10_000))
        if len(batch) == 20_000:
            total += store.write_events(validator.validate(batch, source="bench", source_ref="perf").batch).inserted
            batch = []
    if batch:
        total += store.write_events(validator.validate(batch, source="bench", source_ref="perf").batch).inserted
    return total


def settle(client, quiet_s: float = 3.0, timeout_s: float = 120.0) -> int:
    """Wait until ClickHouse's own background merges of the load have stopped (no merge for `quiet_s`), so
    the timings don't share the 2 cores with them; returns the active parts left (nothing is forced)."""
    sql = "SELECT count() FROM system.merges WHERE database = currentDatabase() AND table = 'events'"
    started = quiet_since = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        now = time.perf_counter()
        if client.query(sql).result_rows[0][0]:
            quiet_since = now
        elif now - quiet_since >= quiet_s:
            break
        time.sleep(0.25)
    return int(client.query("SELECT count() FROM system.parts WHERE database = currentDatabase() "
                            "AND table = 'events' AND active").result_rows[0][0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000, help="calls per one-hour window")
    ap.add_argument("--texts", type=int, default=5000, help="texts per window for the text test")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    one, five, fifteen = os.getloadavg()
    print(f"load average (1/5/15 min) at start {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)")
    tmp = tempfile.mkdtemp(prefix="drift-perf-")
    client = connect(f"chdb://{tmp}", database="perf")
    migrate(client)
    start = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
    t0 = time.perf_counter()
    stored = load(client, start, args.events)
    print(f"stored {stored:,} events in {time.perf_counter() - t0:.1f}s")
    t0 = time.perf_counter()
    parts = settle(client)
    print(f"background merges settled after {time.perf_counter() - t0:.1f}s: {parts} active parts")
    at = start + timedelta(hours=2)
    rows = client.query(
        "SELECT countIf(start_time >= {c:DateTime64(3)}), countIf(start_time < {c:DateTime64(3)}) FROM events",
        parameters={"c": at - timedelta(hours=1)},
    ).result_rows[0]
    print(f"current window: {rows[0]:,} events, reference window: {rows[1]:,} events")

    settings = DriftSettings(reference="trailing", trailing=timedelta(hours=1), store_results=False, text=False)
    analyzer = DriftAnalyzer(settings)
    runs = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        run = analyzer.analyze(client, at)
        runs.append(time.perf_counter() - t)
    tests = sum(len(g.tests) for g in run.groups)
    print(f"drift run, numeric+categorical: {min(runs):.2f}s best of {args.repeat} "
          f"(all runs: {', '.join(f'{r:.2f}' for r in runs)}; {len(run.groups)} groups, {tests} tests)")

    t = time.perf_counter()
    raw = client.query(
        "SELECT app, feature, input_tokens, output_tokens, input_text, output_text, finish_reason, model, "
        "provider, error_type, metadata FROM events WHERE start_time >= {s:DateTime64(3)}",
        parameters={"s": start},
    ).result_rows
    pull = time.perf_counter() - t
    print(f"baseline, pulling the raw columns of both windows into Python: {pull:.2f}s ({len(raw):,} rows)")
    print(f"ratio baseline/llmpulse: {pull / min(runs):.1f}x")

    # Text: the biggest group's input and output texts, --texts per window.
    cfg = DriftConfig(text_sample=args.texts)
    texts = client.query(
        "SELECT start_time >= {c:DateTime64(3)} AS cur, input_text, output_text FROM events "
        "WHERE app = 'support-bot' AND feature = 'answer' AND operation = 'chat' "
        "ORDER BY cityHash64(event_id) LIMIT {n:UInt32} BY cur",
        parameters={"c": at - timedelta(hours=1), "n": args.texts},
    ).result_rows
    ref_in = [r[1] for r in texts if not r[0]]
    cur_in = [r[1] for r in texts if r[0]]
    ref_out = [r[2] for r in texts if not r[0] and r[2]]
    cur_out = [r[2] for r in texts if r[0] and r[2]]
    t = time.perf_counter()
    rng = np.random.default_rng(0)
    a = evaluate_text(TextInput("input_text", Direction.INPUT, ref_in, cur_in), cfg, rng)
    b = evaluate_text(TextInput("output_text", Direction.OUTPUT, ref_out, cur_out), cfg, rng)
    text_s = time.perf_counter() - t
    print(f"text drift, input+output texts, {len(ref_in):,}+{len(cur_in):,} texts: {text_s:.2f}s "
          f"(auc {a.effect:.3f} p {a.p_value:.2g}; auc {b.effect:.3f} p {b.p_value:.2g})")
    print("load average (1/5/15 min) at end {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
