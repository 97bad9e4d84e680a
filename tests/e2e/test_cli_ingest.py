"""`llmpulse ingest` and `llmpulse prices --unknown` as a user runs them, on their own embedded store."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.support.events import make_event


def _llmpulse(args: list[str], store: Path, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLMPULSE_CLICKHOUSE_URL": f"chdb://{store}", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
        text=stdin is None,
    )  # type: ignore[call-overload]


def test_ingest_files_and_stdin_then_report_unpriced_models(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lines = [orjson.dumps(make_event(i)) for i in range(300)]
    lines.insert(10, b"{not json")
    lines.append(orjson.dumps(make_event(900, model="acme-llama-70b-ft", provider="vllm")))
    plain = tmp_path / "events.ndjson"
    plain.write_bytes(b"\n".join(lines) + b"\n")
    packed = tmp_path / "more.ndjson.gz"
    packed.write_bytes(gzip.compress(b"\n".join(orjson.dumps(make_event(i)) for i in range(250, 400))))

    first = _llmpulse(["ingest", "-q", str(plain), str(packed)], store, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "451 accepted (401 stored, 50 already stored)" in first.stdout
    assert "1 rejected" in first.stdout and "line 11" in first.stdout

    again = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "ingest", "-q", "-"],
        input=packed.read_bytes(),
        env={**os.environ, "LLMPULSE_CLICKHOUSE_URL": f"chdb://{store}"},
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert b"150 accepted (0 stored, 150 already stored)" in again.stdout

    unknown = _llmpulse(["prices", "--unknown"], store, tmp_path)
    assert unknown.returncode == 0, unknown.stderr
    assert "acme-llama-70b-ft" in unknown.stdout and "vllm" in unknown.stdout


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = _llmpulse(["ingest", str(tmp_path / "nope.ndjson")], tmp_path / "store", tmp_path)
    assert result.returncode == 2
    assert "no such file" in result.stderr
