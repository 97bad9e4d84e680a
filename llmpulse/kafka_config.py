"""Kafka client configuration from Settings (composition root): security, static membership, start-up check.

Every Kafka client the product builds (the collector's consumer, its dead-letter producer, the admin client
of the start-up check) takes its connection and security kwargs from `kafka_client_config`, so they reach a
SASL/TLS cluster the same way. Problems become one-line `OperatorError`s naming the setting to fix.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from typing import Any

from collector.kafka.preflight import ClusterCheck, KafkaStartupError, check_cluster
from collector.kafka.security import KafkaSecurity, KafkaSecurityError, read_password_file
from llmpulse.errors import OperatorError
from llmpulse.settings import Settings

log = logging.getLogger(__name__)

_INSTANCE_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")


def kafka_security(settings: Settings) -> KafkaSecurity:
    """The validated security settings; OperatorError names the setting (and file) that is wrong."""
    try:
        password: str | None = None
        if settings.kafka_sasl_password is not None and settings.kafka_sasl_password_file is not None:
            raise KafkaSecurityError(
                "set LLMPULSE_KAFKA_SASL_PASSWORD or LLMPULSE_KAFKA_SASL_PASSWORD_FILE, not both"
            )
        if settings.kafka_sasl_password is not None:
            password = settings.kafka_sasl_password.get_secret_value() or None
        elif settings.kafka_sasl_password_file is not None:
            password = read_password_file(settings.kafka_sasl_password_file)
        security = KafkaSecurity(
            protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username or None,
            sasl_password=password,
            ssl_cafile=settings.kafka_ssl_cafile,
            ssl_certfile=settings.kafka_ssl_certfile,
            ssl_keyfile=settings.kafka_ssl_keyfile,
            ssl_check_hostname=settings.kafka_ssl_check_hostname,
        )
        security.validate()
    except KafkaSecurityError as exc:
        raise OperatorError(f"Kafka security settings: {exc}") from None
    for warning in security.warnings():
        log.warning("%s", warning)
    return security


def kafka_client_config(settings: Settings, security: KafkaSecurity | None = None) -> dict[str, Any]:
    """The kwargs every kafka-python client gets: brokers, client id and security (the ONE place for them)."""
    security = security or kafka_security(settings)
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": settings.kafka_client_id,
        **security.client_kwargs(),
    }


def group_instance_id(settings: Settings, *, role: str) -> str | None:
    """Static membership id: the setting; unset: `llmpulse-<role>-<hostname>`; empty: None (dynamic member).

    Derived from the host, it survives a restart in place (systemd, a container restarted by its runtime, a
    StatefulSet pod), which is what lets the restarted member take its partitions back without waiting for
    the dead one's session to expire. Two processes of one role on one host in one group must be given
    distinct ids explicitly (the second would fence the first).
    """
    configured = settings.kafka_group_instance_id
    if configured is not None:
        return configured.strip() or None
    host = _INSTANCE_ID_UNSAFE.sub("-", socket.gethostname()).strip("-") or "localhost"
    return f"llmpulse-{role}-{host}"[:249]


def check_kafka_cluster(settings: Settings, client_config: dict[str, Any], security: KafkaSecurity) -> ClusterCheck:
    """Brokers reachable, credentials accepted, topics present (created when allowed); else OperatorError."""
    if not settings.kafka_topics:
        raise OperatorError("no Kafka topics to consume: set LLMPULSE_KAFKA_TOPICS (or pass --topic)")
    try:
        return check_cluster(
            client_config,
            topics=settings.kafka_topics,
            dead_letter_topic=settings.kafka_dead_letter_topic or None,
            create_missing=settings.kafka_create_topics,
            timeout_s=settings.kafka_startup_timeout_s,
            security=security.describe(),
        )
    except KafkaStartupError as exc:
        raise OperatorError(exc.message) from None


def fenced_message(settings: Settings, instance_id: str | None) -> str:
    return (
        f"another member of Kafka group {settings.kafka_group_id} joined with group.instance.id {instance_id!r} "
        "and fenced this one: give each collector process its own LLMPULSE_KAFKA_GROUP_INSTANCE_ID "
        "(or set it empty for dynamic membership)"
    )


def static_member_leaver(
    settings: Settings, client_config: dict[str, Any], instance_id: str | None
) -> Callable[[], None] | None:
    """What a static member calls after a requested stop: LeaveGroup by group.instance.id (KIP-345's
    RemoveMembersFromConsumerGroup), so its partitions move to the other members now. None if not static
    or disabled (LLMPULSE_KAFKA_LEAVE_GROUP_ON_STOP=false)."""
    if instance_id is None or not settings.kafka_leave_group_on_stop:
        return None
    group_id = settings.kafka_group_id

    def leave() -> None:
        from kafka import KafkaAdminClient
        from kafka.admin import MemberToRemove

        timeout_ms = int(min(settings.kafka_startup_timeout_s, 10.0) * 1000)
        admin = KafkaAdminClient(**client_config, bootstrap_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms)
        try:
            result = admin.remove_group_members(group_id, [MemberToRemove(group_instance_id=instance_id)])
        finally:
            admin.close()
        errors = [error for error in result.values() if error.__name__ != "NoError"]
        # UNKNOWN_MEMBER_ID: already gone (its session expired, or another process removed it).
        if errors and errors[0].__name__ != "UnknownMemberIdError":
            raise RuntimeError(errors[0].__name__)
        log.info("left group %s as static member %s", group_id, instance_id)

    return leave
