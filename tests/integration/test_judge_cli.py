"""`llmpulse judge` and `llmpulse review` as a user runs them: real processes, a real judge server, a store."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.events import make_event
from tests.support.fake_judge import FakeJudge

pytestmark = pytest.mark.integration

WINDOW = ["--since", "2026-11-20T10:00:00Z", "--until", "2026-11-20T11:00:00Z"]


@pytest.fixture(scope="module")
def judge() -> Iterator[FakeJudge]:
    with FakeJudge() as server:
        yield server


def test_judge_run_status_and_the_review_round_trip(tmp_path: Path, judge: FakeJudge) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: answers\n    rubric: helpfulness\n    rate: 1.0\n    filters: {status: ok}\n")
    env = {
        **os.environ,
        "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'data'}",
        "LLMPULSE_JUDGE_BASE_URL": judge.base_url,
        "LLMPULSE_JUDGE_RULES_FILE": str(rules),
        "LLMPULSE_JUDGE_TIMEOUT_S": "5",
        "COLUMNS": "200",
    }

    def llmpulse(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "llmpulse.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(orjson.dumps(make_event(i, output=f"Answer number {i}.")) for i in range(10)))
    llmpulse("ingest", "--quiet", str(events))

    run = llmpulse("judge", "run", *WINDOW)
    assert "10 scored, 0 parse failures, 0 errors, 0 skipped" in run.stdout and "breaker closed" in run.stdout
    status = llmpulse("judge", "status")
    assert "recent runs" in status.stdout and "helpfulness" in status.stdout

    export = llmpulse("review", "export", *WINDOW, "--n", "6", "--out", str(tmp_path / "review"))
    assert "wrote 6 events" in export.stdout
    (csv_path,) = (tmp_path / "review").glob("*.csv")
    with csv_path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(r["judge_score"] for r in rows)
    for i, row in enumerate(rows):
        row["human_score"] = "2" if i < 2 else "5"
        row["notes"] = "misses the question" if i < 2 else ""
    filled = tmp_path / "filled.csv"
    with filled.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    imported = llmpulse("review", "import", str(filled), "--reviewer", "bob")
    assert "stored 6 labels (2 failures)" in imported.stdout

    rows[3]["human_score"] = "seven"
    with filled.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    rejected = llmpulse("review", "import", str(filled), ok=False)
    assert rejected.returncode == 2
    assert "filled.csv:5: human_score must be an integer from 1 to 5, got 'seven'" in " ".join(rejected.stderr.split())

    golden = tmp_path / "golden.jsonl"
    llmpulse("review", "promote", "--out", str(golden))
    examples = [orjson.loads(line) for line in golden.read_bytes().splitlines()]
    assert len(examples) == 2
    assert {e["notes"] for e in examples} == {"misses the question"} and all(e["bad_output"] for e in examples)
