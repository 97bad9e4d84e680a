"""`llmpulse collect` misconfigured: one actionable line naming the setting, exit code 2, no traceback, quickly.

(SASL/TLS failures against a real secured broker: tests/integration/test_kafka_security.py.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.kafka_broker import REPO_ROOT

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _collect(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")},
        "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "LLMPULSE_KAFKA_PREPARE_WORKERS": "0",
        "LLMPULSE_KAFKA_STARTUP_TIMEOUT_S": "3",
        **env,
    }
    # The timeout is the bound: a collect that retries forever fails the test here.
    proc = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "collect"], cwd=REPO_ROOT, env=full_env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    # Rich wraps long lines at the terminal width; join them back into the one message.
    return proc.returncode, [line for line in output.splitlines() if line.strip()]


def _one_line(lines: list[str]) -> str:
    assert lines and lines[0].startswith("error: "), lines
    return " ".join(lines)


def test_unreachable_broker_names_the_bootstrap_servers_and_the_setting(tmp_path: Path) -> None:
    bootstrap = f"127.0.0.1:{_free_port()}"
    code, lines = _collect(tmp_path, LLMPULSE_KAFKA_BOOTSTRAP=bootstrap)
    assert code == 2
    message = _one_line(lines)
    assert f"no Kafka broker answered at {bootstrap}" in message
    assert "LLMPULSE_KAFKA_BOOTSTRAP" in message and "ECONNREFUSED" in message


def test_no_topics_configured(tmp_path: Path) -> None:
    code, lines = _collect(tmp_path, LLMPULSE_KAFKA_TOPICS="")
    assert code == 2
    assert "no Kafka topics to consume: set LLMPULSE_KAFKA_TOPICS" in _one_line(lines)


def test_unknown_topic_with_topic_creation_off(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"missing-{uuid.uuid4().hex[:8]}"
    code, lines = _collect(
        tmp_path, LLMPULSE_KAFKA_BOOTSTRAP=kafka_bootstrap, LLMPULSE_KAFKA_TOPICS=topic,
        LLMPULSE_KAFKA_DEAD_LETTER_TOPIC="", LLMPULSE_KAFKA_CREATE_TOPICS="false",
    )
    assert code == 2
    message = _one_line(lines)
    assert f"Kafka topic(s) {topic} do not exist at {kafka_bootstrap}" in message
    assert "LLMPULSE_KAFKA_CREATE_TOPICS=true" in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LLMPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
         "LLMPULSE_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs LLMPULSE_KAFKA_SASL_MECHANISM, "
         "LLMPULSE_KAFKA_SASL_USERNAME, LLMPULSE_KAFKA_SASL_PASSWORD (or _FILE)"),
        ({"LLMPULSE_KAFKA_SASL_USERNAME": "svc", "LLMPULSE_KAFKA_SASL_PASSWORD": "s3cret-value"},
         "LLMPULSE_KAFKA_SASL_USERNAME, LLMPULSE_KAFKA_SASL_PASSWORD set but "
         "LLMPULSE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL"),
        ({"LLMPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LLMPULSE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
          "LLMPULSE_KAFKA_SASL_USERNAME": "svc", "LLMPULSE_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/kafka-password"},
         "LLMPULSE_KAFKA_SASL_PASSWORD_FILE=/nonexistent/kafka-password does not exist"),
        ({"LLMPULSE_KAFKA_SECURITY_PROTOCOL": "SSL", "LLMPULSE_KAFKA_SSL_KEYFILE": "/etc/hostname"},
         "LLMPULSE_KAFKA_SSL_KEYFILE needs LLMPULSE_KAFKA_SSL_CERTFILE"),
        ({"LLMPULSE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "LLMPULSE_KAFKA_SECURITY_PROTOCOL"),
    ],
    ids=["sasl-without-credentials", "sasl-settings-on-plaintext", "password-file-missing", "key-without-cert",
         "unknown-protocol"],
)
def test_invalid_security_settings(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    code, lines = _collect(tmp_path, **env)
    assert code == 2
    message = _one_line(lines)
    assert expected in message
    assert "s3cret-value" not in message
