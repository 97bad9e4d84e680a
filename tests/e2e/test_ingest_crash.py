"""A bulk load killed mid-stream and simply run again stores every event exactly once."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from collector.pricing import PriceCatalog
from collector.validation import EventValidator, iter_ndjson
from llmpulse.simulate import SimulationConfig, generate
from tests.support.store_probe import probe


def _data_parts(store: Path) -> list[str]:
    # os.walk skips directories that vanish mid-walk (ClickHouse renames tmp_insert_* parts as it commits them).
    return [d for _, dirs, _ in os.walk(store) for d in dirs if re.fullmatch(r"\d{8}_\d+_\d+_\d+", d)]


def test_sigkill_mid_ingest_then_rerun_neither_loses_nor_doubles(tmp_path: Path) -> None:
    config = SimulationConfig(start=datetime(2026, 11, 2, tzinfo=UTC), duration=timedelta(hours=28), seed=3, text=False)
    data = b"".join(orjson.dumps(event) + b"\n" for event in generate(config))
    events_file = tmp_path / "events.ndjson"
    events_file.write_bytes(data)
    expected = EventValidator(prices=PriceCatalog()).validate(iter_ndjson(data), source="t", source_ref="t")
    expected_cost = sum(row[33] for row in expected.batch.rows if row[33] is not None)
    # Large enough that the first inserted batch is far from the last: with the fast path (collector.fast_path)
    # 20,000 events were once all stored before the kill landed.
    assert expected.accepted > 40_000 and not expected.rejections

    store = f"chdb://{tmp_path / 'store'}"
    env = {**os.environ, "LLMPULSE_CLICKHOUSE_URL": store, "LLMPULSE_BATCH_MAX_ROWS": "5000"}
    command = [sys.executable, "-m", "llmpulse.cli", "ingest", "-q", str(events_file)]

    killed = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill once the first batches are on disk (a new data part of `events`), i.e. truly mid-stream.
    deadline = time.monotonic() + 120
    while not _data_parts(tmp_path / "store") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    assert killed.poll() is None, "ingest finished before it could be killed; make the file larger"
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    partial = probe(store)
    assert 0 < partial["rows"] < expected.accepted, partial

    rerun = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{partial['rows']:,} already stored" in rerun.stdout

    final = probe(store)
    assert final["rows"] == final["distinct"] == expected.accepted
    assert math.isclose(final["cost"], expected_cost, rel_tol=1e-9)
