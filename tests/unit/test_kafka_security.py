"""Kafka security settings: which combinations are refused (and how the message reads), and the client kwargs."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.kafka.security import KafkaSecurity, KafkaSecurityError, read_password_file
from llmpulse.errors import OperatorError
from llmpulse.kafka_config import group_instance_id, kafka_client_config, kafka_security
from llmpulse.settings import Settings


def test_sasl_ssl_kwargs_are_the_same_for_every_client(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")  # existence is checked by validate(), not by client_kwargs()
    security = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="svc",
                             sasl_password="pw", ssl_cafile=ca)
    assert security.client_kwargs() == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "svc",
        "sasl_plain_password": "pw", "ssl_check_hostname": True, "ssl_cafile": str(ca),
    }
    assert "pw" not in repr(security) and "pw" not in security.describe()


def test_plaintext_has_no_security_kwargs() -> None:
    assert KafkaSecurity().client_kwargs() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("security", "message"),
    [
        (KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="PLAIN"),
         "needs LLMPULSE_KAFKA_SASL_USERNAME, LLMPULSE_KAFKA_SASL_PASSWORD (or _FILE)"),
        (KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="GSSAPI", sasl_username="u", sasl_password="p"),
         "LLMPULSE_KAFKA_SASL_MECHANISM='GSSAPI' is not one of"),
        (KafkaSecurity(protocol="SSL", sasl_username="u"), "does not use SASL"),
        (KafkaSecurity(protocol="PLAINTEXT", ssl_cafile=Path("/x.pem")), "does not use TLS"),
        (KafkaSecurity(protocol="SSL", ssl_cafile=Path("/nonexistent/ca.pem")),
         "LLMPULSE_KAFKA_SSL_CAFILE=/nonexistent/ca.pem does not exist"),
    ],
)
def test_invalid_combinations_name_the_setting(security: KafkaSecurity, message: str) -> None:
    with pytest.raises(KafkaSecurityError) as caught:
        security.validate()
    assert message in str(caught.value)


def test_a_ca_file_without_a_certificate_is_refused_naming_the_path(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    with pytest.raises(KafkaSecurityError) as caught:
        KafkaSecurity(protocol="SSL", ssl_cafile=ca).validate()
    assert f"LLMPULSE_KAFKA_SSL_CAFILE={ca} holds no usable PEM certificate" in str(caught.value)


def test_password_file_first_line_and_both_sources_refused(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert read_password_file(secret) == "s3cret"
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                        kafka_sasl_username="svc", kafka_sasl_password_file=secret)
    assert kafka_client_config(settings)["sasl_plain_password"] == "s3cret"
    both = Settings(**{**settings.model_dump(), "kafka_sasl_password": "x"})
    with pytest.raises(OperatorError, match="not both"):
        kafka_security(both)


def test_group_instance_id_defaults_to_the_host_and_empty_disables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "box 1.example")
    assert group_instance_id(Settings(), role="collect") == "llmpulse-collect-box-1.example"
    assert group_instance_id(Settings(kafka_group_instance_id=""), role="collect") is None
    assert group_instance_id(Settings(kafka_group_instance_id="pod-3"), role="serve") == "pod-3"


def test_a_login_the_probe_saw_rejected_is_reported_without_waiting_for_the_admin_client() -> None:
    from collector.kafka.preflight import KafkaStartupError, check_cluster
    from collector.kafka.sasl_probe import SaslProbeResult

    built: list[object] = []
    kwargs = {"bootstrap_servers": "broker:9094", "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
              "sasl_plain_username": "svc", "sasl_plain_password": "hunter2"}
    with pytest.raises(KafkaStartupError) as caught:
        check_cluster(kwargs, topics=["t"], dead_letter_topic=None, create_missing=False, timeout_s=20,
                      security="SASL_SSL SCRAM-SHA-512 as 'svc'", admin_factory=lambda **kw: built.append(kw),
                      sasl_probe=lambda _kwargs, timeout_s: SaslProbeResult("rejected", "bad credentials"))
    assert caught.value.kind == "auth" and not built
    assert caught.value.message.startswith("Kafka authentication failed at broker:9094 (SASL_SSL SCRAM-SHA-512")
    assert "hunter2" not in caught.value.message


def test_the_probe_only_answers_for_sasl_and_says_inconclusive_when_nobody_listens() -> None:
    import socket

    from collector.kafka.sasl_probe import probe_sasl_login

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert probe_sasl_login({"security_protocol": "PLAINTEXT"}, timeout_s=1).verdict == "inconclusive"
    closed = probe_sasl_login({"bootstrap_servers": f"127.0.0.1:{port}", "security_protocol": "SASL_PLAINTEXT",
                               "sasl_mechanism": "PLAIN", "sasl_plain_username": "u", "sasl_plain_password": "p"},
                              timeout_s=2)
    assert closed.verdict == "inconclusive"
