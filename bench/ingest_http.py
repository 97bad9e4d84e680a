"""HTTP ingest throughput vs a raw clickhouse-connect insert of the same rows, in one run.

    .venv/bin/python bench/ingest_http.py [--events 100000] [--batch 5000] [--clients 2] [--no-compare-auth]

`llmpulse serve` runs as its own process on its own embedded store (chDB allows one data path per
process); this process posts simulated traffic as NDJSON bodies and waits for each response, which the
API only sends once the rows are durable. The baseline inserts the same rows, already validated and
priced, into a second embedded store with plain `client.insert` (row-oriented, as most code does it) and
with `column_oriented=True` (the fastest plain form); the ratio is taken against the faster of the two.
Every request carries an API key (auth is on by default); the same bodies are then posted to a server with
auth disabled, for the cost of authentication as a ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.pricing import PriceCatalog  # noqa: E402
from collector.rows import EVENT_COLUMNS, EventBatch  # noqa: E402
from collector.validation import EventValidator, iter_ndjson  # noqa: E402
from llmpulse.clickhouse import connect  # noqa: E402
from llmpulse.migrate import Retention, migrate  # noqa: E402
from llmpulse.simulate import SimulationConfig, generate  # noqa: E402
from tests.support.serve_process import post_concurrently, running_serve  # noqa: E402


def simulated_bodies(n_events: int, batch: int) -> tuple[list[bytes], int]:
    config = SimulationConfig(
        start=datetime(2026, 11, 1, tzinfo=UTC),
        duration=timedelta(days=3),
        seed=11,
        clean=True,
        rate_per_minute=max(10.0, n_events / (3 * 1440) * 1.05),
    )
    lines: list[bytes] = []
    for event in generate(config):
        lines.append(orjson.dumps(event))
        if len(lines) == n_events:
            break
    bodies = [b"\n".join(lines[i : i + batch]) + b"\n" for i in range(0, len(lines), batch)]
    return bodies, len(lines)


def run_http(bodies: list[bytes], workdir: Path, clients: int, *, auth: bool, run: int = 0) -> float:
    store = f"http-store-{run}" if auth else f"http-store-no-auth-{run}"
    env = {"LLMPULSE_CLICKHOUSE_URL": f"chdb://{workdir / store}", "LLMPULSE_ALERTMANAGER_URL": ""}
    if not auth:
        env["LLMPULSE_AUTH_DISABLED"] = "true"
    expected = sum(body.count(b"\n") for body in bodies)
    accepted = 0

    def check(response: httpx.Response) -> None:
        nonlocal accepted
        response.raise_for_status()
        accepted += response.json()["accepted"]

    with running_serve(workdir, env) as served:
        base = served.base
        headers = {"content-type": "application/x-ndjson", **served.headers}
        # Warm-up on a separate app so the timed run starts with loaded code paths and an open store.
        warm = b'{"event_id":"warm-1","app":"warmup","model":"gpt-4o","start_time":0,"latency_ms":1}\n'
        httpx.post(f"{base}/v1/events", content=warm, headers=headers)
        accepted = 0
        elapsed = post_concurrently(f"{base}/v1/events", bodies, headers, clients, check)
    if accepted != expected:
        raise RuntimeError(f"accepted {accepted} of {expected}")
    return elapsed


def run_raw(bodies: list[bytes], workdir: Path) -> tuple[float, float]:
    client = connect(f"chdb://{workdir / 'raw-store'}")
    migrate(client, Retention(90, 30, 30))
    validator = EventValidator(prices=PriceCatalog())
    batches: list[EventBatch] = [
        validator.validate(iter_ndjson(body), source="bench", source_ref="bench").batch for body in bodies
    ]
    row_batches = [list(zip(*b.columns, strict=True)) for b in batches]
    columns = list(EVENT_COLUMNS)
    client.insert("events", row_batches[0][:10], column_names=columns)  # warm-up
    client.command("TRUNCATE TABLE events")

    started = time.perf_counter()
    for rows in row_batches:
        client.insert("events", rows, column_names=columns)
    rows_s = time.perf_counter() - started
    client.command("TRUNCATE TABLE events")

    started = time.perf_counter()
    for b in batches:
        client.insert("events", b.columns, column_names=columns, column_oriented=True)
    cols_s = time.perf_counter() - started
    return rows_s, cols_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000, help="events per HTTP request and per raw insert")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument(
        "--compare-auth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run with LLMPULSE_AUTH_DISABLED=true and print the ratio (every request is authenticated)",
    )
    args = parser.parse_args()

    bodies, n = simulated_bodies(args.events, args.batch)
    mib = sum(len(b) for b in bodies) / 2**20
    print(
        f"workload: {n:,} simulated events with texts ({mib:,.0f} MiB NDJSON), {len(bodies)} bodies of "
        f"{args.batch:,}, {args.clients} concurrent clients, machine: {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="llmpulse-bench-") as tmp:
        workdir = Path(tmp)
        if args.compare_auth:
            # A B B A: neither side always runs first (a cold page cache, a neighbour's job), medians compared.
            timings: dict[bool, list[float]] = {True: [], False: []}
            for run, auth in enumerate((True, False, False, True)):
                timings[auth].append(run_http(bodies, workdir, args.clients, auth=auth, run=run))
            http_s, no_auth_s = min(timings[True]), min(timings[False])
            print(f"auth on: {', '.join(f'{t:.2f}' for t in timings[True])} s; "
                  f"auth off: {', '.join(f'{t:.2f}' for t in timings[False])} s (best of each compared)")
        else:
            http_s, no_auth_s = run_http(bodies, workdir, args.clients, auth=True), None
        rows_s, cols_s = run_raw(bodies, workdir)
    http_rate, rows_rate, cols_rate = n / http_s, n / rows_s, n / cols_s
    best = max(rows_rate, cols_rate)
    print(f"{'path':<58}{'events/s':>12}{'seconds':>10}")
    print(f"{'HTTP POST /v1/events (validate, price, dedup, insert, ack)':<58}{http_rate:>12,.0f}{http_s:>10.2f}")
    if no_auth_s is not None:
        print(f"{'  the same with LLMPULSE_AUTH_DISABLED=true':<58}{n / no_auth_s:>12,.0f}{no_auth_s:>10.2f}")
    print(f"{'raw clickhouse-connect insert, row-oriented':<58}{rows_rate:>12,.0f}{rows_s:>10.2f}")
    print(f"{'raw clickhouse-connect insert, column-oriented':<58}{cols_rate:>12,.0f}{cols_s:>10.2f}")
    print(f"ratio HTTP / best raw insert: {http_rate / best:.2f}  (target >= 0.50)")
    print(f"HTTP events/s: {http_rate:,.0f}  (target >= 20,000)")
    if no_auth_s is not None:
        print(f"ratio HTTP with API key / without auth: {http_rate / (n / no_auth_s):.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
