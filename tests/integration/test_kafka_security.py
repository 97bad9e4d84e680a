"""The collector against a real SASL_SSL (SCRAM-SHA-512) broker: consumer, dead-letter producer and admin client
all authenticate over TLS; a wrong password or a missing CA file ends `llmpulse collect` with one line.

The broker is `scripts/kafka.sh start --security sasl_ssl` (throwaway CA, random password per data dir),
started only for the tests in this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from kafka import KafkaConsumer, KafkaProducer

from collector.kafka.dead_letter import HEADER_REASON, HEADER_TOPIC
from collector.kafka.preflight import KafkaStartupError, check_cluster
from llmpulse.settings import Settings
from tests.support.events import make_event
from tests.support.kafka_broker import REPO_ROOT, KafkaBroker

pytestmark = pytest.mark.integration


def _settings(broker: KafkaBroker, **overrides: Any) -> Settings:
    env = broker.sasl_ssl_env()
    return Settings(
        kafka_bootstrap=env["LLMPULSE_KAFKA_BOOTSTRAP"],
        kafka_security_protocol=env["LLMPULSE_KAFKA_SECURITY_PROTOCOL"],
        kafka_sasl_mechanism=env["LLMPULSE_KAFKA_SASL_MECHANISM"],
        kafka_sasl_username=env["LLMPULSE_KAFKA_SASL_USERNAME"],
        kafka_sasl_password=env["LLMPULSE_KAFKA_SASL_PASSWORD"],
        kafka_ssl_cafile=Path(env["LLMPULSE_KAFKA_SSL_CAFILE"]),
        kafka_prepare_workers=0,
        kafka_batch_max_seconds=0.2,
        **overrides,
    )


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_collect_over_sasl_ssl_stores_events_dead_letters_bad_messages_and_creates_missing_topics(
    kafka_sasl_ssl_broker: KafkaBroker, store_client: Client, tmp_path: Path
) -> None:
    from llmpulse.runtime import build_kafka_collector

    broker = kafka_sasl_ssl_broker
    suffix = uuid.uuid4().hex[:8]
    topic, dlq = f"secure-{suffix}", f"secure-{suffix}-dlq"
    # Neither topic exists: the collector's admin client creates both over SASL_SSL at start-up.
    settings = _settings(broker, kafka_topics=[topic], kafka_dead_letter_topic=dlq, kafka_group_id=f"g-{suffix}",
                         kafka_create_topics=True)
    collector = build_kafka_collector(settings, store_client, role="collect")
    assert {topic, dlq} <= broker.list_topics()

    good = [orjson.dumps(make_event(i, event_id=f"sec-{suffix}-{i}")) for i in range(50)]
    bad = [b"{not json", orjson.dumps({"app": "x"})]
    producer = KafkaProducer(**broker.sasl_ssl_client_config(), acks="all")
    try:
        for value in [*good, *bad]:
            producer.send(topic, value=value)
        producer.flush(30)
    finally:
        producer.close(10)

    collector.start()
    try:
        _wait(lambda: store_client.query(
            f"SELECT count() FROM events WHERE event_id LIKE 'sec-{suffix}-%'").result_rows[0][0] == 50,
            60, "the events over SASL_SSL")
        letters: list[Any] = []
        consumer = KafkaConsumer(dlq, **broker.sasl_ssl_client_config(), auto_offset_reset="earliest",
                                 consumer_timeout_ms=1_000, group_id=None)
        try:
            deadline = time.monotonic() + 30
            while len(letters) < 2 and time.monotonic() < deadline:
                letters.extend(consumer)
        finally:
            consumer.close()
    finally:
        collector.stop()
    assert sorted(letter.value for letter in letters) == sorted(bad)
    for letter in letters:
        headers = dict(letter.headers)
        assert headers[HEADER_TOPIC] == topic.encode()
        assert headers[HEADER_REASON]


def _collect(env_overrides: dict[str, str], tmp_path: Path, timeout: float = 60) -> tuple[int, str, float]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")},
        "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "LLMPULSE_KAFKA_PREPARE_WORKERS": "0",
        **env_overrides,
    }
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "collect"], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def test_wrong_password_ends_collect_with_one_line_saying_authentication_failed(
    kafka_sasl_ssl_broker: KafkaBroker, tmp_path: Path
) -> None:
    env = kafka_sasl_ssl_broker.sasl_ssl_env()
    wrong = "wrong-" + uuid.uuid4().hex
    # subprocess.run's timeout (60 s) is the bound the issue sets; it raises if collect hangs.
    code, output, _elapsed = _collect({**env, "LLMPULSE_KAFKA_SASL_PASSWORD": wrong}, tmp_path)
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: Kafka authentication failed"), output
    assert "SCRAM-SHA-512" in lines[-1] and "LLMPULSE_KAFKA_SASL_PASSWORD" in lines[-1]
    assert "Traceback" not in output
    assert wrong not in output and env["LLMPULSE_KAFKA_SASL_PASSWORD"] not in output


def test_a_rejected_login_read_late_is_still_reported_as_an_authentication_failure(
    kafka_sasl_ssl_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker closes the connection ~100 ms after refusing a login (connection.failed.authentication.delay.ms).
    A client that reads later, as on a loaded machine, gets the refusal and the close in one read, which
    kafka-python reports as "socket disconnected" on every retry: the start-up check must still say what it was."""
    import kafka.net.transport as transport

    for cls in vars(transport).values():
        if isinstance(cls, type) and "_sock_recv" in vars(cls):
            def late(self: Any, _recv: Callable[[Any], Any] = vars(cls)["_sock_recv"]) -> Any:
                time.sleep(0.15)
                return _recv(self)

            monkeypatch.setattr(cls, "_sock_recv", late)
    client_kwargs = {**kafka_sasl_ssl_broker.sasl_ssl_client_config(), "sasl_plain_password": "wrong-password"}
    with pytest.raises(KafkaStartupError) as caught:
        check_cluster(client_kwargs, topics=["any"], dead_letter_topic=None, create_missing=False, timeout_s=10,
                      security="SASL_SSL SCRAM-SHA-512 as 'llmpulse'")
    assert caught.value.kind == "auth", caught.value.message
    assert caught.value.message.startswith("Kafka authentication failed")


def test_missing_ca_file_is_named_in_one_line(kafka_sasl_ssl_broker: KafkaBroker, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    env = {**kafka_sasl_ssl_broker.sasl_ssl_env(), "LLMPULSE_KAFKA_SSL_CAFILE": str(missing)}
    code, output, _elapsed = _collect(env, tmp_path)
    assert code == 2, output
    assert "Traceback" not in output
    assert f"LLMPULSE_KAFKA_SSL_CAFILE={missing} does not exist" in output.replace("\n", "")


def test_untrusted_broker_certificate_is_reported_as_a_tls_failure(
    kafka_sasl_ssl_broker: KafkaBroker, tmp_path: Path
) -> None:
    # Another CA than the broker's: the system bundle does not know the throwaway test CA.
    system_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if not system_ca.exists():
        pytest.skip("no system CA bundle at /etc/ssl/certs/ca-certificates.crt")
    env = {**kafka_sasl_ssl_broker.sasl_ssl_env(), "LLMPULSE_KAFKA_SSL_CAFILE": str(system_ca)}
    code, output, _elapsed = _collect(env, tmp_path)
    assert code == 2, output
    assert "TLS handshake" in output and "CERTIFICATE_VERIFY_FAILED" in output.replace("\n", ""), output
    assert "Traceback" not in output
