"""`llmpulse events` and `--format json` across the commands, as a user runs them on their own store.

JSON output must be the only thing on stdout and parse as one document with the keys a script relies on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.events import make_event


class Cli:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")}
        self.env.update({"LLMPULSE_CLICKHOUSE_URL": f"chdb://{cwd / 'store'}", "COLUMNS": "200"})

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "llmpulse.cli", *args], env=self.env, cwd=self.cwd,
                                capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, f"llmpulse {' '.join(args)} failed:\n{result.stderr[-3000:]}"
        return result

    def json(self, *args: str) -> Any:
        return orjson.loads(self.run(*args, "--format", "json").stdout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    workdir = tmp_path_factory.mktemp("events-cli")
    events = [make_event(i, trace_id=f"trace-{i // 10}") for i in range(40)]
    events += [make_event(100 + i, app="sales-bot", model="claude-sonnet-4", provider="anthropic", status="error",
                          error_type="timeout", prompt_version="v7") for i in range(10)]
    events.append(make_event(900, model="acme-llama-70b-ft", provider="vllm"))
    (workdir / "events.ndjson").write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    cli = Cli(workdir)
    report = cli.json("ingest", "-q", str(workdir / "events.ndjson"))
    assert report["accepted"] == 51 and report["rejected"] == 0 and report["unpriced"] == 1
    return cli


def test_events_filters_and_paging(cli: Cli) -> None:
    page = cli.json("events", "--app", "sales-bot", "--status", "error", "--limit", "4")
    assert page["count"] == 4 and page["next_cursor"]
    assert {e["app"] for e in page["events"]} == {"sales-bot"} and {e["error_type"] for e in page["events"]} == {
        "timeout"}
    assert "input_text" not in page["events"][0]
    rest = cli.json("events", "--app", "sales-bot", "--limit", "100", "--cursor", page["next_cursor"])
    assert rest["count"] == 6 and rest["next_cursor"] is None
    ids = [e["event_id"] for e in page["events"] + rest["events"]]
    assert len(set(ids)) == 10

    [one] = cli.json("events", "--event-id", "evt-000003", "--with-text")["events"]
    assert one["input_text"] == "How do I reset my password?" and one["trace_id"] == "trace-0"
    assert cli.json("events", "--trace-id", "trace-2")["count"] == 10
    assert cli.json("events", "--model", "claude-sonnet-4", "--prompt-version", "v7")["count"] == 10
    window = cli.json("events", "--since", "2026-11-20T10:00:05Z", "--until", "2026-11-20T10:00:10Z")
    assert [e["event_id"] for e in window["events"]] == [f"evt-{i:06d}" for i in range(9, 4, -1)]
    assert cli.json("events", "--since", "1h")["count"] == 0  # the events are from 2026-11-20

    table = cli.run("events", "--trace-id", "trace-1").stdout
    assert "evt-000015" in table and "trace-1" in table


def test_every_result_command_prints_json(cli: Cli) -> None:
    summary = cli.json("summary")
    assert summary["totals"]["events"] == 51 and summary["cost_by_model"] and summary["latency_by_model"]
    unpriced = cli.json("prices", "--unknown")
    assert [m["model"] for m in unpriced["unpriced_models"]] == ["acme-llama-70b-ft"]
    price = cli.json("prices", "--model", "gpt-4o")
    assert price["known"] is True and price["usd_per_million_input_tokens"] > 0
    assert cli.json("migrate") == {"applied": []}
    assert cli.json("findings") == []
    alerts = cli.json("alerts", "--since", "7d")
    assert alerts == {"alerts": [], "count": 0}
    drift = cli.json("drift", "show")
    assert drift == {"pinned": [], "verdicts": []}
    analyzed = cli.json("analyze", "--at", "2026-11-20T11:00:00Z")
    assert analyzed["at"] == "2026-11-20T11:00:00Z" and analyzed["runs"] and "open_findings" in analyzed
    episodes = cli.json("backtest", "--from", "2026-11-20T10:00:00Z", "--to", "2026-11-20T10:30:00Z")
    assert isinstance(episodes, list)
