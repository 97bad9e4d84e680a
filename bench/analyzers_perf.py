"""Analyzer performance: one full cycle over 10M events, and a 7-day backtest at 5-minute steps over 1M.

    .venv/bin/python bench/analyzers_perf.py [--events 10000000] [--backtest-events 1000000]

Stores are built inside ClickHouse with INSERT ... SELECT FROM numbers() (no texts): 7 days of traffic over
3 apps x 3 features, 6 models, 1% errors, 10% tool calls, 4 calls per trace. The rollup view aggregates the
insert as it lands, as it does for real ingest. Each timing is printed next to plain scans of the same
`events` table in the same run: `SELECT count()` (answered from part metadata) and a full scan of one
column (`SELECT count() WHERE latency_ms > 0`), the cheapest query that reads every row.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzers.backtest import run_backtest  # noqa: E402
from analyzers.engine import Engine, MemoryFindingStore  # noqa: E402
from analyzers.registry import builtin_analyzers  # noqa: E402
from analyzers.rules import Rules  # noqa: E402
from analyzers.scheduler import AnalyzerScheduler  # noqa: E402
from llmpulse.clickhouse import connect  # noqa: E402
from llmpulse.migrate import Retention, migrate  # noqa: E402
from llmpulse.settings import Settings  # noqa: E402

START = datetime(2026, 11, 16, tzinfo=UTC)
DAYS = 7

# 3 apps x 3 features; each feature's model, provider; h = cityHash64(number) drives every choice.
_FILL = """
INSERT INTO events (event_id, app, environment, feature, operation, provider, model, prompt_version, trace_id,
                    session_id, user_id, start_time, end_time, latency_ms, ttft_ms, status, error_type,
                    finish_reason, input_tokens, output_tokens, cost_usd, source, ingested_at)
SELECT
    concat('e', toString(number)) AS event_id,
    ['support-bot', 'code-assistant', 'search-rag'][1 + a] AS app,
    'prod' AS environment,
    ['answer', 'summarize', 'classify', 'complete', 'explain', 'agent', 'retrieve', 'synthesize',
     'rerank'][1 + a * 3 + f] AS feature,
    if(number % 10 = 9, 'execute_tool', 'chat') AS operation,
    ['openai', 'openai', 'vllm', 'google', 'anthropic', 'anthropic', 'openai', 'google', 'mistral'][1 + a * 3 + f]
        AS provider,
    ['gpt-4o-mini', 'gpt-4o', 'acme-llama', 'gemini-2.5-flash', 'claude-sonnet-4', 'claude-sonnet-4',
     'text-embedding-3-small', 'gemini-2.5-flash', 'mistral-large'][1 + a * 3 + f] AS model,
    concat('v', toString(1 + f)) AS prompt_version,
    concat('t', toString(intDiv(number, 4))) AS trace_id,
    concat('s', toString(intDiv(number, 40))) AS session_id,
    concat('u', toString(h % 5000)) AS user_id,
    toDateTime64({start:String}, 3, 'UTC') + toIntervalMillisecond(intDiv(number * {span_ms:UInt64}, {n:UInt64}))
        AS start_time,
    start_time AS end_time,
    300 + (h % 4000) * (1 + (h % 97 = 0) * 5) AS latency_ms,
    if(f = 0, latency_ms * 0.3, NULL) AS ttft_ms,
    if(h % 100 = 7, 'error', 'ok') AS status,
    if(status = 'error', ['rate_limit', 'timeout', 'server_error'][1 + bitShiftRight(h, 8) % 3], '') AS error_type,
    if(status = 'ok', 'stop', '') AS finish_reason,
    toUInt32(100 + bitShiftRight(h, 16) % 3000) AS input_tokens,
    toUInt32(if(status = 'ok', 10 + bitShiftRight(h, 32) % 600, 0)) AS output_tokens,
    input_tokens * 2.5e-6 + output_tokens * 1e-5 AS cost_usd,
    'bench' AS source,
    now64(3) AS ingested_at
FROM (SELECT number, cityHash64(number) AS h, h % 3 AS a, bitShiftRight(h, 4) % 3 AS f FROM numbers({n:UInt64}))
"""


def build(client: object, n: int) -> float:
    migrate(client, Retention(3650, 3650, 30))  # type: ignore[arg-type]
    t0 = time.perf_counter()
    client.command(  # type: ignore[attr-defined]
        _FILL,
        parameters={"start": START.strftime("%Y-%m-%d %H:%M:%S"), "span_ms": DAYS * 86_400_000, "n": n},
        settings={"max_insert_threads": 2, "max_block_size": 200_000},
    )
    return time.perf_counter() - t0


def scans(client: object) -> tuple[float, float]:
    t0 = time.perf_counter()
    client.query("SELECT count() FROM events")  # type: ignore[attr-defined]
    t1 = time.perf_counter()
    client.query("SELECT count() FROM events WHERE latency_ms > 0")  # type: ignore[attr-defined]
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--backtest-events", type=int, default=1_000_000)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="llmpulse-perf-")
    try:
        run(args, f"chdb://{workdir}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, url: str) -> None:
    end = START + timedelta(days=DAYS)

    big = connect(url, database="big")
    built = build(big, args.events)
    (rows,), = big.query("SELECT count() FROM events").result_rows
    (rollup,), = big.query("SELECT count() FROM events_1m").result_rows
    print(f"store: {rows:,} events (+{rollup:,} rollup rows) built in {built:.0f}s")
    count_s, scan_s = scans(big)
    sched = AnalyzerScheduler(big, Settings(), rules=Rules(), analyzers=builtin_analyzers(),
                              engine=Engine(MemoryFindingStore()))
    times = []
    for i in range(args.cycles):
        t0 = time.perf_counter()
        reports = sched.run_once(end - timedelta(minutes=5 * i))
        times.append(time.perf_counter() - t0)
        assert not any(r.error for r in reports), [r.error for r in reports if r.error]
    cycle = statistics.median(times)
    print(f"one full analyzer cycle over {rows:,} events: median {cycle:.2f}s of {args.cycles} "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)}); SELECT count(): {count_s * 1000:.0f}ms; full-column "
          f"scan: {scan_s:.2f}s; cycle / scan = {cycle / scan_s:.1f}x")

    small = connect(url, database="small")
    build(small, args.backtest_events)
    (rows,), = small.query("SELECT count() FROM events").result_rows
    count_s, scan_s = scans(small)
    t0 = time.perf_counter()
    res = run_backtest(small, builtin_analyzers(), Rules(), START, end, timedelta(minutes=5))
    total = time.perf_counter() - t0
    print(f"7-day backtest at 5m ({res.steps} steps) over {rows:,} events: {total:.1f}s (preload "
          f"{res.load_seconds:.1f}s, replay {res.replay_seconds:.1f}s, {len(res.episodes)} episodes); "
          f"SELECT count(): {count_s * 1000:.0f}ms; full-column scan: {scan_s:.2f}s; "
          f"backtest / scan = {total / scan_s:.0f}x; per step {total / res.steps * 1000:.1f}ms")


if __name__ == "__main__":
    main()
