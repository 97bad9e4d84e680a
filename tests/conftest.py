"""Shared by every suite: the real-service fixtures, and a configuration isolated from the developer's own."""

import os

from llmpulse.settings import Settings

# pytest only honours pytest_plugins in the top-level conftest.
pytest_plugins = ["tests.support.kafka_fixtures", "tests.support.store", "tests.support.alertmanager"]

# A shell (or a .env file) that points LLMPULSE_CLICKHOUSE_URL at a shared ClickHouse or LLMPULSE_ALERTMANAGER_URL
# at the team's Alertmanager must not receive the suite's simulated traffic and test pages, nor change what the
# tests measure: every test sets the configuration it needs itself. Removed here, before any test or subprocess
# reads it, are all LLMPULSE_* variables except those that only say where the test set-up finds its tools.
TOOL_LOCATIONS = {"LLMPULSE_CACHE_DIR", "LLMPULSE_PYTHON", "LLMPULSE_ALERTMANAGER_BIN", "LLMPULSE_AMTOOL_BIN",
                  "LLMPULSE_SCREENSHOT_DIR"}
for name in [name for name in os.environ if name.startswith("LLMPULSE_") and name not in TOOL_LOCATIONS]:
    del os.environ[name]
Settings.model_config["env_file"] = None
