"""Pytest fixtures for a real Kafka broker (load with ``pytest_plugins``).

- ``kafka_broker`` (session): one broker per test session, started lazily by the first
  test that asks for it and stopped at session end, also when tests fail. If it cannot
  start, the requesting tests FAIL with the script's output: a missing install step
  (java, mvn, network to Maven Central) must not turn into silently skipped tests.
- ``kafka_bootstrap`` (session): ``"127.0.0.1:<port>"`` of that broker.
- ``kafka_topic`` (function): a factory ``kafka_topic(prefix="test", partitions=1,
  config=None) -> str`` that creates a uniquely named topic for the current test and
  deletes the test's topics afterwards.
- ``kafka_sasl_ssl_broker`` (session): a second broker with a SASL_SSL (SCRAM-SHA-512) listener and a
  throwaway CA (``scripts/kafka.sh start --security sasl_ssl``), started only by the tests that ask for it;
  ``broker.sasl_ssl_env()`` is the LLMPULSE_KAFKA_* configuration that reaches it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.support.kafka_broker import KafkaBroker, KafkaBrokerError, unique_topic

KafkaTopicFactory = Callable[..., str]


def _session_broker(security: str | None = None) -> Iterator[KafkaBroker]:
    # pytest caches a session fixture's failure: later tests fail at once, no retry.
    broker = KafkaBroker(security=security)
    error: str | None = None
    try:
        broker.start()
    except KafkaBrokerError as exc:
        error = str(exc)
    if error is not None:
        broker.stop()
        pytest.fail(f"Kafka broker could not be started:\n{error}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    yield from _session_broker()


@pytest.fixture(scope="session")
def kafka_sasl_ssl_broker() -> Iterator[KafkaBroker]:
    yield from _session_broker("sasl_ssl")


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture
def kafka_topic(kafka_broker: KafkaBroker, request: pytest.FixtureRequest) -> Iterator[KafkaTopicFactory]:
    created: list[str] = []
    default_prefix = request.node.name

    def make(prefix: str | None = None, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique_topic(prefix or default_prefix)
        kafka_broker.create_topic(name, partitions=partitions, config=config)
        created.append(name)
        return name

    yield make

    for name in created:
        # Best effort: the broker is per session and topic names are unique anyway.
        with contextlib.suppress(Exception):
            kafka_broker.delete_topic(name)
