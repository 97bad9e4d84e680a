"""The suite runs on its own configuration, whatever the developer's shell says (tests/conftest.py)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_developers_llmpulse_settings_do_not_reach_the_tests(tmp_path: Path) -> None:
    # The developer's shell points at production; a test asks for the settings and runs a CLI subprocess.
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import os, subprocess, sys\n"
        "from llmpulse.settings import Settings\n"
        "def test_probe():\n"
        "    settings = Settings()\n"
        "    assert settings.clickhouse_url == Settings.model_fields['clickhouse_url'].default\n"
        "    assert settings.alertmanager_url == []\n"
        "    child = subprocess.run([sys.executable, '-c', 'import os; print(sorted(os.environ))'],\n"
        "                           capture_output=True, text=True, check=True)\n"
        "    assert 'LLMPULSE_CACHE_DIR' in child.stdout\n"
        "    assert 'LLMPULSE_CLICKHOUSE_URL' not in child.stdout and 'LLMPULSE_ALERTMANAGER_URL' not in child.stdout\n"
    )
    (tmp_path / ".env").write_text("LLMPULSE_CLICKHOUSE_URL=http://clickhouse.prod.example:8123\n")
    env = {**os.environ, "LLMPULSE_CLICKHOUSE_URL": "http://clickhouse.prod.example:8123",
           "LLMPULSE_ALERTMANAGER_URL": "http://alertmanager.prod.example:9093", "LLMPULSE_CACHE_DIR": "/tmp/cache",
           "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        # The probe lives outside tests/, so the suite's conftest is loaded the way pytest loads it for tests/.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest", str(probe)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
