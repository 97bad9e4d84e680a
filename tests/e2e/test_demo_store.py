"""`llmpulse demo` leaves what it found in the store: `llmpulse findings` and `llmpulse report --week` show it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson


def _llmpulse(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")}
    env.update({"LLMPULSE_CLICKHOUSE_URL": f"chdb://{cwd / 'store'}", "COLUMNS": "200"})
    return subprocess.run([sys.executable, "-m", "llmpulse.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False)


def test_demo_findings_are_listed_and_reported_afterwards(tmp_path: Path) -> None:
    demo = _llmpulse(["demo", "--duration", "4h", "--seed", "7"], tmp_path)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "kept in the store" in demo.stdout

    listed = _llmpulse(["findings", "--format", "json", "--limit", "500"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    findings = orjson.loads(listed.stdout)
    fired = [f for f in findings if f["fired_at"]]
    assert fired and len(fired) == len(findings), "the demo keeps the findings that fired"
    assert all(f["finding_id"].startswith("demo-") for f in findings)
    names = {f["alertname"] for f in findings}
    assert names & {"LLMCostSpike", "LLMProviderOutage", "LLMLatencyRegression", "LLMErrorRateHigh"}, names

    table = _llmpulse(["findings"], tmp_path)
    assert table.returncode == 0 and "no findings" not in table.stdout
    assert next(iter(names)) in table.stdout

    out = tmp_path / "weekly.html"
    report = _llmpulse(["report", "--week", "--out", str(out), "--format", "json"], tmp_path)
    assert report.returncode == 0, report.stderr
    summary = orjson.loads(report.stdout)
    assert "This week's findings" in summary["panels"] and "This week's findings" not in summary["empty_panels"]
    html = out.read_text()
    for name in names:
        assert name in html, f"{name} missing from the weekly report"
