"""`llmpulse report --week` end to end: simulate and ingest through the CLI, render the weekly review, open it in
headless Chromium and keep a screenshot of what a reader sees.

Chromium is a real dependency of this test (`make chromium-deps`, scripts/chromium.sh): missing, it fails.
Set LLMPULSE_SCREENSHOT_DIR to keep the screenshot somewhere you can look at it.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def _chromium() -> str:
    found = subprocess.run(["bash", str(ROOT / "scripts" / "chromium.sh"), "path"], capture_output=True, text=True)
    path = found.stdout.strip()
    if found.returncode != 0 or not path:
        pytest.fail("headless Chromium is missing: run `make chromium-deps` (scripts/chromium.sh ensure)")
    return path


def _llmpulse(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "llmpulse.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, f"llmpulse {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_weekly_report_renders_in_a_browser(tmp_path: Path) -> None:
    chromium = _chromium()
    env = {**os.environ, "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}", "PYTHONPATH": str(ROOT)}
    env.pop("LLMPULSE_ALERTMANAGER_URL", None)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=1)
    events = tmp_path / "events.ndjson.gz"
    _llmpulse(["simulate", "--out", str(events), "--duration", "1d", "--start", start.isoformat(), "--seed", "5",
               "--rate", "8"], env, tmp_path)
    _llmpulse(["ingest", "--quiet", str(events)], env, tmp_path)
    page = tmp_path / "weekly.html"
    out = _llmpulse(["report", "--week", "--end", end.isoformat(), "--out", str(page),
                     "--grafana-url", "http://grafana.example:3000"], env, tmp_path)
    assert "wrote" in out
    text = page.read_text("utf-8")
    assert "LLM weekly review" in text and "<svg" in text and "Week over week by app" in text
    assert "support-bot" in text or "docs-search" in text or "<td>" in text

    shot = tmp_path / "weekly.png"
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1400,2600",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 20_000, f"no screenshot:\n{done.stdout}\n{done.stderr}"
    assert _png_size(shot) == (1400, 2600)
    keep = os.environ.get("LLMPULSE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "weekly-report.png")
        shutil.copy(page, Path(keep) / "weekly-report.html")
