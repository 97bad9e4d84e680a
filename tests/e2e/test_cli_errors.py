"""Every misconfiguration an operator can make with the CLI ends in ONE actionable line and a non-zero exit.

The real `llmpulse` runs in a subprocess, as an operator runs it; each case asserts stderr is exactly one
non-empty line naming the key facts (the setting or option, the masked URL, the path, the pid), that no
traceback and no password appear, and the exit code.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.serve_process import running_serve

SECRET = "s3cr3t-pw"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the with-block ends


def _run(args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")}
    base.update({"LLMPULSE_CLICKHOUSE_URL": f"chdb://{cwd / 'store'}", "COLUMNS": "100"})
    return subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", *args],
        env={**base, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str], *facts: str, exit_code: int = 2) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("error: "), line
    for fact in facts:
        assert fact in line, f"{fact!r} missing from: {line}"
    assert "Traceback" not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout
    assert result.returncode == exit_code, (result.returncode, line)
    return line


CASES = [
    pytest.param(["summary"], {"LLMPULSE_CLICKHOUSE_URL": "mysql://db:3306/x"},
                 ("LLMPULSE_CLICKHOUSE_URL", "mysql", "chdb://"), id="unknown-store-scheme"),
    pytest.param(["summary"], {"LLMPULSE_HTTP_PORT": "eighty"}, ("LLMPULSE_HTTP_PORT", "eighty"), id="bad-int"),
    pytest.param(["findings"], {"LLMPULSE_BATCH_MAX_ROWS": "0"}, ("LLMPULSE_BATCH_MAX_ROWS", "greater than"),
                 id="out-of-range"),
    pytest.param(["summary"], {"LLMPULSE_DRIFT_REFERENCE": "weekly"}, ("LLMPULSE_DRIFT_REFERENCE",), id="bad-choice"),
    pytest.param(["summary"], {"LLMPULSE_JUDGE_REDACT_PATTERNS": "[oops"}, ("LLMPULSE_JUDGE_REDACT_PATTERNS", "JSON"),
                 id="bad-json-setting"),
    pytest.param(["events", "--since", "yesterday"], {}, ("--since", "yesterday", "2h"), id="bad-since"),
    pytest.param(["findings", "--since", "3 weeks"], {}, ("--since", "RFC 3339"), id="bad-since-findings"),
    pytest.param(["analyze", "--at", "soon"], {}, ("--at", "soon"), id="bad-at"),
    pytest.param(["simulate", "--duration", "forever"], {}, ("--duration", "forever", "90m"), id="bad-duration"),
    pytest.param(["backtest", "--from", "2h", "--to", "1h", "--step", "0m"], {}, ("--step", "positive"),
                 id="bad-step"),
    pytest.param(["report", "--week", "--end", "tuesday"], {}, ("--end", "tuesday"), id="bad-end"),
    pytest.param(["summary", "--format", "xml"], {}, ("--format", "table or json"), id="bad-format"),
    pytest.param(["events", "--status", "failed"], {}, ("--status", "ok or error"), id="bad-status"),
    pytest.param(["ingest", "missing.ndjson"], {}, ("no such file", "missing.ndjson"), id="missing-input-file"),
    pytest.param(["summary"],
                 {"LLMPULSE_CLICKHOUSE_URL": "https://default@127.0.0.1:1/db",
                  "LLMPULSE_CLICKHOUSE_PASSWORD_FILE": "/nonexistent/ch-password"},
                 ("LLMPULSE_CLICKHOUSE_PASSWORD_FILE", "/nonexistent/ch-password"), id="missing-password-file"),
    pytest.param(["summary"],
                 {"LLMPULSE_CLICKHOUSE_URL": "https://127.0.0.1:1/db",
                  "LLMPULSE_CLICKHOUSE_CA_FILE": "/nonexistent/ca"},
                 ("LLMPULSE_CLICKHOUSE_CA_FILE", "no such file"), id="missing-ca-file"),
    pytest.param(["analyze"], {"LLMPULSE_ALERTMANAGER_URL": "ftp://am:9093"}, ("LLMPULSE_ALERTMANAGER_URL", "ftp://"),
                 id="bad-alertmanager-url"),
    pytest.param(["analyze"],
                 {"LLMPULSE_ALERTMANAGER_URL": "http://127.0.0.1:1", "LLMPULSE_ALERTMANAGER_PASSWORD_FILE": "/nope/pw",
                  "LLMPULSE_ALERTMANAGER_USERNAME": "ops"},
                 ("LLMPULSE_ALERTMANAGER_PASSWORD_FILE", "/nope/pw"), id="missing-alertmanager-password-file"),
    pytest.param(["prices", "--model", "gpt-4o"], {"LLMPULSE_PRICES_FILE": "/nope/prices.yaml"},
                 ("LLMPULSE_PRICES_FILE", "/nope/prices.yaml"), id="missing-prices-file"),
]


@pytest.mark.parametrize(("args", "env", "facts"), CASES)
def test_misconfiguration_is_one_line(args: list[str], env: dict[str, str], facts: tuple[str, ...],
                                      tmp_path: Path) -> None:
    _one_line(_run(args, tmp_path, env), *facts)


def test_closed_clickhouse_port_names_the_masked_url_and_the_setting(tmp_path: Path) -> None:
    port = _closed_port()
    url = f"http://ops:{SECRET}@127.0.0.1:{port}/llm"
    line = _one_line(_run(["summary"], tmp_path, {"LLMPULSE_CLICKHOUSE_URL": url}),
                     f"http://ops:***@127.0.0.1:{port}/llm", "LLMPULSE_CLICKHOUSE_URL", "connection refused")
    assert "cannot reach ClickHouse" in line


def test_password_file_and_url_password_together_are_refused(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET + "\n")
    _one_line(
        _run(["summary"], tmp_path, {"LLMPULSE_CLICKHOUSE_URL": f"http://ops:{SECRET}@127.0.0.1:1/x",
                                     "LLMPULSE_CLICKHOUSE_PASSWORD_FILE": str(secret_file)}),
        "ops:***@", "password file", "only one",
    )


def test_unusable_data_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's parent directory should be")
    _one_line(_run(["summary"], tmp_path, {"LLMPULSE_CLICKHOUSE_URL": f"chdb://{blocker}/data"}),
              "LLMPULSE_CLICKHOUSE_URL", str(blocker), "Not a directory")


def test_query_while_serve_holds_the_embedded_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {"LLMPULSE_CLICKHOUSE_URL": f"chdb://{store}", "LLMPULSE_ANALYZERS_ENABLED": "false",
           "LLMPULSE_INGEST_WORKERS": "0", "LLMPULSE_AUTH_DISABLED": "true"}
    with running_serve(tmp_path, env):
        pid = next(line.split(":", 1)[1].strip() for line in (store / "status").read_text().splitlines()
                   if line.startswith("PID:"))
        for args in (["findings"], ["events", "--limit", "5"], ["summary"]):
            line = _one_line(_run(args, tmp_path, env), "another process", f"pid {pid}", str(store),
                             "llmpulse serve")
            assert "GET /v1/events" in line


def test_serve_on_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line(_run(["serve", "--port", str(port), "--host", "127.0.0.1"], tmp_path),
                  f"127.0.0.1:{port}", "--port", "in use")
