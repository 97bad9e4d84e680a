"""How every Kafka client of the collector authenticates and encrypts: one config, checked once, one set of kwargs.

The consumer, the dead-letter producer and the admin client are built from the same `client_kwargs()`, so a
cluster that needs SASL/TLS is reached the same way by all three (a producer that silently fell back to
PLAINTEXT would only fail at the first malformed message).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(ValueError):
    """The security settings do not fit together, or a file they name cannot be used; the message says which."""


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """What `LLMPULSE_KAFKA_SECURITY_PROTOCOL` and its companions say (see docs/kafka.md#security).

    `sasl_password` is the resolved password (from the setting or its file); it never appears in `repr`.
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    def __repr__(self) -> str:
        return (f"KafkaSecurity(protocol={self.protocol!r}, sasl_mechanism={self.sasl_mechanism!r}, "
                f"sasl_username={self.sasl_username!r}, sasl_password={'***' if self.sasl_password else None})")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """For start-up lines and error messages: the protocol, mechanism and user, never the password."""
        if self.uses_sasl:
            return f"{self.protocol} {self.sasl_mechanism} as {self.sasl_username!r}"
        return self.protocol

    def validate(self) -> None:
        """Raise KafkaSecurityError naming the setting (and the path) that is wrong."""
        if self.protocol not in SECURITY_PROTOCOLS:
            raise KafkaSecurityError(
                f"LLMPULSE_KAFKA_SECURITY_PROTOCOL={self.protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"
            )
        if self.uses_sasl:
            missing = [name for name, value in (
                ("LLMPULSE_KAFKA_SASL_MECHANISM", self.sasl_mechanism),
                ("LLMPULSE_KAFKA_SASL_USERNAME", self.sasl_username),
                ("LLMPULSE_KAFKA_SASL_PASSWORD (or _FILE)", self.sasl_password),
            ) if not value]
            if missing:
                raise KafkaSecurityError(
                    f"LLMPULSE_KAFKA_SECURITY_PROTOCOL={self.protocol} needs {', '.join(missing)}"
                )
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise KafkaSecurityError(
                    f"LLMPULSE_KAFKA_SASL_MECHANISM={self.sasl_mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}"
                )
        else:
            stray = [name for name, value in (
                ("LLMPULSE_KAFKA_SASL_MECHANISM", self.sasl_mechanism),
                ("LLMPULSE_KAFKA_SASL_USERNAME", self.sasl_username),
                ("LLMPULSE_KAFKA_SASL_PASSWORD", self.sasl_password),
            ) if value]
            if stray:
                raise KafkaSecurityError(
                    f"{', '.join(stray)} set but LLMPULSE_KAFKA_SECURITY_PROTOCOL={self.protocol} does not use SASL "
                    "(use SASL_SSL or SASL_PLAINTEXT)"
                )
        tls_files = [(name, path) for name, path in (
            ("LLMPULSE_KAFKA_SSL_CAFILE", self.ssl_cafile),
            ("LLMPULSE_KAFKA_SSL_CERTFILE", self.ssl_certfile),
            ("LLMPULSE_KAFKA_SSL_KEYFILE", self.ssl_keyfile),
        ) if path is not None]
        if tls_files and not self.uses_tls:
            raise KafkaSecurityError(
                f"{', '.join(name for name, _ in tls_files)} set but LLMPULSE_KAFKA_SECURITY_PROTOCOL={self.protocol} "
                "does not use TLS (use SSL or SASL_SSL)"
            )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise KafkaSecurityError(
                "LLMPULSE_KAFKA_SSL_KEYFILE needs LLMPULSE_KAFKA_SSL_CERTFILE (the client certificate)"
            )
        for name, path in tls_files:
            _check_readable(name, path)
        if self.ssl_cafile is not None:
            try:
                ssl.create_default_context(cafile=str(self.ssl_cafile))
            except (ssl.SSLError, ValueError) as exc:
                raise KafkaSecurityError(
                    f"LLMPULSE_KAFKA_SSL_CAFILE={self.ssl_cafile} holds no usable PEM certificate: {exc}"
                ) from None
        if self.ssl_certfile is not None:
            try:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None)
            except (ssl.SSLError, ValueError) as exc:
                raise KafkaSecurityError(
                    f"LLMPULSE_KAFKA_SSL_CERTFILE={self.ssl_certfile} (key {self.ssl_keyfile or 'in the same file'}) "
                    f"is not a usable PEM certificate and private key: {exc}"
                ) from None

    def warnings(self) -> list[str]:
        if self.protocol == "SASL_PLAINTEXT" and self.sasl_mechanism == "PLAIN":
            return ["LLMPULSE_KAFKA_SASL_MECHANISM=PLAIN over SASL_PLAINTEXT sends the password unencrypted; "
                    "use SASL_SSL"]
        return []

    def client_kwargs(self) -> dict[str, Any]:
        """kafka-python keyword arguments, the same for KafkaConsumer, KafkaProducer and KafkaAdminClient."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        if self.uses_tls:
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
            if self.ssl_cafile is not None:
                kwargs["ssl_cafile"] = str(self.ssl_cafile)
            if self.ssl_certfile is not None:
                kwargs["ssl_certfile"] = str(self.ssl_certfile)
            if self.ssl_keyfile is not None:
                kwargs["ssl_keyfile"] = str(self.ssl_keyfile)
        return kwargs


def read_password_file(path: Path) -> str:
    """The first line of `path` (a mounted secret usually ends with a newline, which is not part of it)."""
    _check_readable("LLMPULSE_KAFKA_SASL_PASSWORD_FILE", path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KafkaSecurityError(f"LLMPULSE_KAFKA_SASL_PASSWORD_FILE={path} cannot be read: {exc}") from None
    password = text.splitlines()[0] if text.strip() else ""
    if not password:
        raise KafkaSecurityError(f"LLMPULSE_KAFKA_SASL_PASSWORD_FILE={path} is empty")
    return password


def _check_readable(name: str, path: Path) -> None:
    if not path.exists():
        raise KafkaSecurityError(f"{name}={path} does not exist")
    if not path.is_file():
        raise KafkaSecurityError(f"{name}={path} is not a file")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise KafkaSecurityError(f"{name}={path} cannot be read: {exc.strerror or exc}") from None
