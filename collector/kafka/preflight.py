"""Start-up check of a Kafka cluster: reachable, credentials accepted, topics present (or created), in bounded time.

kafka-python retries a bootstrap that fails for any reason (refused connection, TLS handshake, rejected SASL
credentials) until its timeout, logging each attempt, and a consumer retries forever. The collector asks
once, up front, with an admin client built from the same kwargs as its consumer and producer, and turns the
outcome into one `KafkaStartupError` saying what was wrong:

- `auth`: the broker rejected the SASL credentials (one login of our own first, collector/kafka/sasl_probe.py,
  because kafka-python may report a rejected login as a dropped connection; then as soon as an attempt fails);
- `tls`: the TLS handshake failed (untrusted certificate, TLS against a plaintext port, ...);
- `unreachable`: no broker answered within the timeout (the last connection error is included);
- `topic`: a topic is missing and may not (or must not) be created.

kafka-python reports why a bootstrap attempt failed only in its log records, so the check listens to the
`kafka` loggers while it runs (and keeps their records out of the operator's terminal meanwhile).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka.errors import KafkaError, KafkaTimeoutError, SaslAuthenticationFailedError, TopicAlreadyExistsError

from collector.kafka.sasl_probe import SaslProbeResult, probe_sasl_login

log = logging.getLogger(__name__)

# (client kwargs, timeout_s=...) -> verdict on the SASL login; collector/kafka/sasl_probe.py by default.
SaslProbe = Callable[..., SaslProbeResult]


class KafkaStartupError(Exception):
    """`kind`: auth | tls | unreachable | topic; `message`: one line, without secrets."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(slots=True)
class ClusterCheck:
    """What the check found: the topics it created (empty when all existed)."""

    created_topics: list[str] = field(default_factory=list)


class _BootstrapWatch(logging.Handler):
    """Collects the exceptions kafka-python logs while bootstrapping; flags a rejected authentication."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.auth_failed = threading.Event()
        # A certificate that does not verify will not verify on the next attempt either.
        self.tls_failed = threading.Event()
        self.auth_error: BaseException | None = None
        self.last_error: BaseException | None = None
        # Set with either flag (and by the caller when the client is built): what the waiter waits on.
        self.changed = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            # The final "Bootstrap failed: timed out" says nothing about why.
            if isinstance(arg, BaseException) and not isinstance(arg, KafkaTimeoutError):
                self.last_error = arg
                if isinstance(arg, SaslAuthenticationFailedError):
                    self.auth_error = arg
                    self.auth_failed.set()
                    self.changed.set()
                elif "CERTIFICATE_VERIFY_FAILED" in str(arg):
                    self.tls_failed.set()
                    self.changed.set()


@contextlib.contextmanager
def _watching_kafka_logs() -> Iterator[_BootstrapWatch]:
    watch = _BootstrapWatch()
    logger = logging.getLogger("kafka")
    saved = (logger.level, logger.propagate)
    logger.addHandler(watch)
    # WARNING is where kafka-python reports a failed bootstrap attempt; its retries are not for the operator.
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _describe_error(error: BaseException | None) -> str:
    if error is None:
        return "no answer"
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def _is_tls_error(error: BaseException | None) -> bool:
    text = str(error or "")
    return any(marker in text for marker in ("SSL", "CERTIFICATE", "certificate", "TLS", "Handshake failed"))


def _auth_failed(bootstrap: str, security: str, detail: str = "") -> KafkaStartupError:
    """`detail`: what the broker answered (never holds the password)."""
    return KafkaStartupError(
        "auth",
        f"Kafka authentication failed at {bootstrap} ({security}): the broker rejected the credentials"
        f"{f' ({detail})' if detail else ''}; "
        "check LLMPULSE_KAFKA_SASL_USERNAME, LLMPULSE_KAFKA_SASL_PASSWORD (or _FILE) and "
        "LLMPULSE_KAFKA_SASL_MECHANISM",
    )


def _connect(
    admin_factory: Callable[..., Any], client_kwargs: Mapping[str, Any], *, bootstrap: str, security: str,
    timeout_s: float, sasl_probe: SaslProbe | None = None,
) -> Any:
    """An admin client that has bootstrapped, or KafkaStartupError (auth failures are reported at once)."""
    deadline = time.monotonic() + timeout_s
    if sasl_probe is not None and str(client_kwargs.get("security_protocol", "")).startswith("SASL_"):
        # kafka-python can mistake a rejected login for a dropped connection (collector/kafka/sasl_probe.py):
        # one login of our own says which it is before the admin client retries for the whole timeout.
        probe = sasl_probe(client_kwargs, timeout_s=min(timeout_s, 10.0))
        if probe.verdict == "rejected":
            raise _auth_failed(bootstrap, security, probe.reason)
        log.debug("SASL login probe: %s %s", probe.verdict, probe.reason)
    result: dict[str, Any] = {}

    with _watching_kafka_logs() as watch:
        done = watch.changed

        def build() -> None:
            try:
                remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1000)
                result["admin"] = admin_factory(bootstrap_timeout_ms=remaining_ms, **client_kwargs)
            except BaseException as exc:  # reported to the caller below
                result["error"] = exc
            finally:
                result["done"] = True
                done.set()

        # On a daemon thread: a rejected login is known after the first attempt, while the constructor would
        # go on retrying until its timeout.
        threading.Thread(target=build, name="llmpulse-kafka-preflight", daemon=True).start()
        # The constructor gives up at the deadline; the grace covers a machine too loaded to notice in time.
        hard_deadline = deadline + 5.0
        while (not result.get("done") and not watch.auth_failed.is_set() and not watch.tls_failed.is_set()
               and time.monotonic() < hard_deadline):
            done.wait(max(hard_deadline - time.monotonic(), 0.0))
            done.clear()
        if watch.auth_failed.is_set():
            if "admin" in result:
                with contextlib.suppress(Exception):
                    result["admin"].close()
            raise _auth_failed(bootstrap, security)
        if "admin" in result:
            return result["admin"]
        cause = watch.last_error or result.get("error")
    if _is_tls_error(cause):
        raise KafkaStartupError(
            "tls",
            f"TLS handshake with the Kafka brokers at {bootstrap} ({security}) failed: {_describe_error(cause)}; "
            "check LLMPULSE_KAFKA_SECURITY_PROTOCOL, LLMPULSE_KAFKA_SSL_CAFILE and that the port is a TLS listener",
        )
    raise KafkaStartupError(
        "unreachable",
        f"no Kafka broker answered at {bootstrap} ({security}) within {timeout_s:.0f}s "
        f"(last error: {_describe_error(cause)}); check LLMPULSE_KAFKA_BOOTSTRAP "
        "(and LLMPULSE_KAFKA_SECURITY_PROTOCOL for this listener), or start a broker (scripts/kafka.sh start)",
    )


def check_cluster(
    client_kwargs: Mapping[str, Any],
    *,
    topics: Sequence[str],
    dead_letter_topic: str | None,
    create_missing: bool,
    timeout_s: float,
    security: str = "PLAINTEXT",
    admin_factory: Callable[..., Any] | None = None,
    sasl_probe: SaslProbe | None = probe_sasl_login,
) -> ClusterCheck:
    """Bootstrap, then make sure `topics` and `dead_letter_topic` exist (creating them if `create_missing`).

    `client_kwargs`: kafka-python kwargs including bootstrap_servers and the security settings; `security`
    describes them for messages (never the password); `sasl_probe`: how a SASL login is checked first (None: only
    through the admin client's bootstrap).
    """
    if admin_factory is None:
        from kafka import KafkaAdminClient

        admin_factory = KafkaAdminClient
    bootstrap = str(client_kwargs.get("bootstrap_servers", "?"))
    kwargs = dict(client_kwargs)
    kwargs.setdefault("request_timeout_ms", int(max(timeout_s, 1.0) * 1000))
    admin = _connect(admin_factory, kwargs, bootstrap=bootstrap, security=security, timeout_s=timeout_s,
                     sasl_probe=sasl_probe)
    try:
        return _ensure_topics(
            admin, [*topics, *([dead_letter_topic] if dead_letter_topic else [])],
            bootstrap=bootstrap, create_missing=create_missing, timeout_s=timeout_s,
        )
    finally:
        with contextlib.suppress(Exception):
            admin.close()


def _ensure_topics(
    admin: Any, wanted: Sequence[str], *, bootstrap: str, create_missing: bool, timeout_s: float
) -> ClusterCheck:
    try:
        existing = set(admin.list_topics())
    except KafkaError as exc:
        raise KafkaStartupError(
            "unreachable", f"listing the topics at {bootstrap} failed: {_describe_error(exc)}"
        ) from None
    missing = [topic for topic in dict.fromkeys(wanted) if topic not in existing]
    if not missing:
        return ClusterCheck()
    if not create_missing:
        raise KafkaStartupError(
            "topic",
            f"Kafka topic(s) {', '.join(missing)} do not exist at {bootstrap} (or this user may not see them); "
            "create them, fix LLMPULSE_KAFKA_TOPICS / LLMPULSE_KAFKA_DEAD_LETTER_TOPIC, or set "
            "LLMPULSE_KAFKA_CREATE_TOPICS=true",
        )
    try:
        response = admin.create_topics({topic: {} for topic in missing}, timeout_ms=int(timeout_s * 1000),
                                        raise_errors=False)
    except KafkaError as exc:
        raise KafkaStartupError(
            "topic", f"creating the missing Kafka topic(s) {', '.join(missing)} at {bootstrap} failed: "
            f"{_describe_error(exc)}; create them yourself or fix LLMPULSE_KAFKA_TOPICS",
        ) from None
    failed = []
    for item in response.get("topics", []):
        code = item.get("error_code", 0)
        if code and code != TopicAlreadyExistsError.errno:
            failed.append(f"{item.get('name')}: {item.get('error_message') or KafkaError.__name__ + f' code {code}'}")
    if failed:
        raise KafkaStartupError(
            "topic", f"Kafka topic(s) missing at {bootstrap} and could not be created ({'; '.join(failed)}); "
            "create them yourself, grant this user CREATE, or fix LLMPULSE_KAFKA_TOPICS",
        )
    with contextlib.suppress(KafkaError):
        admin.wait_for_topics(missing, timeout_ms=int(timeout_s * 1000))
    log.info("created Kafka topic(s) %s", ", ".join(missing))
    return ClusterCheck(created_topics=missing)
