"""`llmpulse drift run|pin|show|unpin` as a user runs them, on simulated traffic with an input-drift incident.

Real processes on a store of their own (a chDB path can be open in one process only, so the test never opens
it): `llmpulse simulate` writes 8 hours of traffic whose input_drift incident hits support-bot/answer, and
`llmpulse ingest` loads it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

START = "2026-11-16T14:00:00Z"
GROUP = "support-bot/prod/answer"  # how `drift run` names the incident's group
PIN = ["--app", "support-bot", "--feature", "answer"]

Run = Callable[..., subprocess.CompletedProcess[str]]


def _cli(tmp_path: Path) -> Run:
    env = {**os.environ, "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'data'}", "COLUMNS": "250"}

    def llmpulse(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "llmpulse.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    return llmpulse


def _rows(table: str) -> list[list[str]]:
    """The body rows of the rich tables in a command's output, as lists of cell texts."""
    return [[c.strip() for c in line.strip().strip("│").split("│")] for line in table.splitlines()
            if line.lstrip().startswith("│")]


def _run_rows(out: str) -> dict[tuple[str, str], list[str]]:
    """`drift run` table: (group, direction) -> [verdict, reference, calls ref/now, top features]."""
    return {(r[0], r[1]): r[2:] for r in _rows(out)}


def test_pin_show_and_unpin_steer_the_reference_of_the_next_drift_runs(tmp_path: Path) -> None:
    llmpulse = _cli(tmp_path)
    llmpulse("simulate", "--start", START, "--duration", "8h", "--seed", "7", "--out", "events.ndjson")
    truth = orjson.loads((tmp_path / "events.truth.json").read_bytes())
    (incident,) = [t for t in truth if t["kind"] == "input_drift"]
    assert incident["labels"] == {"app": "support-bot", "feature": "answer"}
    begin, end = (datetime.fromisoformat(incident[k].replace("Z", "+00:00")) for k in ("start", "end"))
    # Windows widen only until they hold enough calls: at this slice's traffic (about 20 calls a minute) a
    # run judges its last 15 and 30 minutes, so the runs at 20:15 and 20:30 hold most of the incident.
    assert (begin.hour, end.hour) in ((19, 20), (20, 20)), (begin, end)
    loaded = llmpulse("ingest", "--quiet", "events.ndjson")
    assert " 0 rejected" in loaded.stdout, loaded.stdout

    # 1. Default reference: the trailing hours before the window. The incident's inputs drifted.
    first = _run_rows(llmpulse("drift", "run", "--at", "2026-11-16T20:15:00Z").stdout)
    verdict, reference, *_ = first[(GROUP, "input")]
    assert (verdict, reference) == ("DRIFT", "trailing"), first[(GROUP, "input")]

    # 2. Pin the clean afternoon before it; the command says what it pinned.
    pinned = llmpulse("drift", "pin", *PIN, "--start", "2026-11-16T15:00:00Z", "--end", "2026-11-16T18:00:00Z",
                      "--note", "before the NovaPay launch").stdout
    match = re.search(r"pinned 2026-11-16 15:00–2026-11-16 18:00 UTC \(([\d,]+) calls\) as the reference of "
                      r"app=support-bot, feature=answer", pinned)
    assert match, pinned
    pin_calls = match.group(1)

    # 3. The next run compares that group with the pinned period (its calls), every other group as before.
    second = _run_rows(llmpulse("drift", "run", "--at", "2026-11-16T20:30:00Z").stdout)
    verdict, reference, calls, features = second[(GROUP, "input")]
    assert (verdict.split()[0], reference) == ("DRIFT", "pinned"), second[(GROUP, "input")]
    assert calls.split("/")[0] == pin_calls and "input_text" in features
    assert second[(GROUP, "output")][1] == "pinned"
    others = {ref for (group, _), (_, ref, *_) in second.items() if group != GROUP}
    assert others and all(ref.startswith("trailing") for ref in others), others

    # 4. `drift show` lists the pin and the stored verdicts, the latest run's with its pinned reference.
    shown = llmpulse("drift", "show", "--last", "1").stdout
    assert "Pinned references" in shown
    pins = [r for r in _rows(shown) if r[0] == "app=support-bot, feature=answer"]
    assert pins == [["app=support-bot, feature=answer", "2026-11-16 15:00 – 2026-11-16 18:00", pin_calls,
                     "before the NovaPay launch"]], _rows(shown)
    latest = [r for r in _rows(shown) if r[1] == "support-bot/answer (prod)" and r[2] == "input"]
    assert latest and latest[0][0] == "11-16 20:30" and latest[0][3].startswith("DRIFT") and latest[0][4] == "pinned"

    # 5. Unpin: back to the trailing reference (leaving out the windows that drifted), and show lists no pin.
    assert "unpinned app=support-bot, feature=answer" in llmpulse("drift", "unpin", *PIN).stdout
    assert "Pinned references" not in llmpulse("drift", "show").stdout
    third = _run_rows(llmpulse("drift", "run", "--at", "2026-11-16T21:30:00Z").stdout)
    assert third[(GROUP, "input")][1] == "trailing-excluding-drift", third[(GROUP, "input")]

    # Mistakes get a clear error, not a traceback.
    again = llmpulse("drift", "unpin", *PIN, ok=False)
    assert again.returncode == 2 and "no pinned reference for app=support-bot, feature=answer" in again.stderr
    short = llmpulse("drift", "pin", *PIN, "--start", "2026-11-16T15:00:00Z", "--end", "2026-11-16T15:00:10Z",
                     ok=False)
    assert short.returncode == 2 and "a reference needs at least 20 (LLMPULSE_DRIFT_MIN_EVENTS)" in short.stderr
