"""A real single-node Kafka broker for tests, started through ``scripts/kafka.sh``.

The script is the single source of truth for how the broker is resolved (Maven Central,
cached under ``$LLMPULSE_CACHE_DIR``), configured and started; this class only picks a
random free port pair and a fresh temporary data dir and passes them in as environment
overrides, so every test session gets an isolated broker while sharing the jar cache.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO_ROOT / "scripts" / "kafka.sh"

_TOPIC_SAFE = re.compile(r"[^a-zA-Z0-9._-]+")


class KafkaBrokerError(RuntimeError):
    """The broker could not be started (the message carries the script's output)."""


def unique_topic(prefix: str = "test") -> str:
    """A topic name that no other test (or earlier run on a reused broker) uses."""
    clean = _TOPIC_SAFE.sub("-", prefix).strip("-._") or "test"
    # Kafka's limit is 249 characters; keep the prefix readable but bounded.
    return f"{clean[:180]}-{uuid.uuid4().hex[:12]}"


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class KafkaBroker:
    """A KRaft broker+controller on 127.0.0.1 with a random port and a temporary data dir.

    Usage::

        broker = KafkaBroker()
        broker.start()            # raises KafkaBrokerError with the script's output
        broker.create_topic("events", partitions=3)
        ... KafkaProducer(bootstrap_servers=broker.bootstrap) ...
        broker.stop()             # also removes the data dir

    It is also a context manager.

    ``security="sasl_ssl"`` adds a SASL_SSL (SCRAM-SHA-512) listener with a throwaway CA: after ``start()``,
    ``sasl_ssl_bootstrap``, ``ca_file``, ``sasl_mechanism``, ``sasl_username`` and ``sasl_password`` hold
    what the script printed, and ``sasl_ssl_env()`` is the LLMPULSE_KAFKA_* configuration for it. Admin
    helpers keep using the PLAINTEXT listener.
    """

    def __init__(
        self,
        *,
        heap: str | None = None,
        start_timeout: float = 90.0,
        script: Path | str = KAFKA_SCRIPT,
        keep_data: bool = False,
        security: str | None = None,
    ) -> None:
        if security not in (None, "sasl_ssl"):
            raise ValueError(f"unsupported security {security!r} (supported: 'sasl_ssl')")
        self.security = security
        self.sasl_ssl_port: int | None = None
        self.sasl_ssl_bootstrap: str | None = None
        self.ca_file: str | None = None
        self.sasl_mechanism: str | None = None
        self.sasl_username: str | None = None
        self.sasl_password: str | None = None
        self.script = Path(script)
        self.heap = heap
        self.start_timeout = start_timeout
        self.keep_data = keep_data
        self.port: int | None = None
        self.controller_port: int | None = None
        self.data_dir: Path | None = None
        self._admin: Any = None
        self._atexit_registered = False

    # -- lifecycle -------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>`` of the running broker."""
        if self.port is None:
            raise KafkaBrokerError("the broker is not started")
        return f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        assert self.data_dir is not None and self.port is not None
        env = dict(os.environ)
        env["KAFKA_PORT"] = str(self.port)
        env["KAFKA_CONTROLLER_PORT"] = str(self.controller_port)
        env["KAFKA_DATA_DIR"] = str(self.data_dir)
        if self.sasl_ssl_port is not None:
            env["KAFKA_SASL_SSL_PORT"] = str(self.sasl_ssl_port)
        if self.heap is not None:
            env["KAFKA_HEAP"] = self.heap
        return env

    def _run(
        self, command: str, timeout: float, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = self._env()
        if extra_env:
            env.update(extra_env)
        args = [command]
        if command == "start" and self.security is not None:
            args += ["--security", self.security]
        return subprocess.run(
            ["bash", str(self.script), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> str:
        """Start the broker and wait until it answers metadata requests; returns ``bootstrap``."""
        if self.is_running():
            return self.bootstrap
        last_output = ""
        for _attempt in range(3):
            ports = _free_ports(3 if self.security else 2)
            self.port, self.controller_port = ports[0], ports[1]
            self.sasl_ssl_port = ports[2] if self.security else None
            self.data_dir = Path(tempfile.mkdtemp(prefix="llmpulse-kafka-"))
            try:
                proc = self._start_script()
            except subprocess.TimeoutExpired as exc:
                self.stop()
                raise KafkaBrokerError(f"scripts/kafka.sh start timed out: {exc}") from exc
            last_output = (proc.stdout + proc.stderr).strip()
            if proc.returncode == 0:
                self._parse_endpoints(proc.stdout)
                if not self._atexit_registered:
                    atexit.register(self.stop)
                    self._atexit_registered = True
                return self.bootstrap
            self._remove_data_dir()
            # Another process may have grabbed a port between probing and binding it.
            if "already in use" not in last_output:
                break
        self.port = self.controller_port = None
        raise KafkaBrokerError(
            f"scripts/kafka.sh start failed (the broker is needed by the integration tests):\n{last_output}"
        )

    def _start_script(self) -> subprocess.CompletedProcess[str]:
        return self._run(
            "start",
            # A cold cache resolves the jars with mvn first: allow for that on top.
            timeout=self.start_timeout + 900,
            extra_env={
                "KAFKA_START_TIMEOUT": str(int(self.start_timeout)),
                "KAFKA_WATCH_PID": str(os.getpid()),
            },
        )

    def _parse_endpoints(self, stdout: str) -> None:
        values = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
        if self.security == "sasl_ssl":
            try:
                self.sasl_ssl_bootstrap = values["KAFKA_BOOTSTRAP_SASL_SSL"]
                self.ca_file = values["KAFKA_CA_FILE"]
                self.sasl_mechanism = values["KAFKA_SASL_MECHANISM"]
                self.sasl_username = values["KAFKA_SASL_USERNAME"]
                self.sasl_password = values["KAFKA_SASL_PASSWORD"]
            except KeyError as exc:
                raise KafkaBrokerError(f"scripts/kafka.sh start did not print {exc}:\n{stdout}") from None

    def sasl_ssl_env(self) -> dict[str, str]:
        """LLMPULSE_KAFKA_* settings that reach this broker over SASL_SSL (needs ``security="sasl_ssl"``)."""
        if self.sasl_ssl_bootstrap is None:
            raise KafkaBrokerError("the broker was not started with security='sasl_ssl'")
        assert self.ca_file and self.sasl_mechanism and self.sasl_username and self.sasl_password
        return {
            "LLMPULSE_KAFKA_BOOTSTRAP": self.sasl_ssl_bootstrap,
            "LLMPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "LLMPULSE_KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "LLMPULSE_KAFKA_SASL_USERNAME": self.sasl_username,
            "LLMPULSE_KAFKA_SASL_PASSWORD": self.sasl_password,
            "LLMPULSE_KAFKA_SSL_CAFILE": self.ca_file,
        }

    def sasl_ssl_client_config(self) -> dict[str, str]:
        """kafka-python kwargs for a client of the SASL_SSL listener."""
        env = self.sasl_ssl_env()
        return {
            "bootstrap_servers": env["LLMPULSE_KAFKA_BOOTSTRAP"],
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": env["LLMPULSE_KAFKA_SASL_MECHANISM"],
            "sasl_plain_username": env["LLMPULSE_KAFKA_SASL_USERNAME"],
            "sasl_plain_password": env["LLMPULSE_KAFKA_SASL_PASSWORD"],
            "ssl_cafile": env["LLMPULSE_KAFKA_SSL_CAFILE"],
        }

    def reset_admin(self) -> None:
        """Drop the shared admin client (e.g. after a restart); the next ``admin()`` call builds a new one."""
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def restart(self) -> None:
        """Stop the broker and start it again on the same ports and data dir (topics, offsets kept)."""
        if self.data_dir is None or self.port is None:
            raise KafkaBrokerError("the broker is not started")
        self.reset_admin()
        self._run("stop", timeout=60)
        proc = self._start_script()
        if proc.returncode != 0:
            raise KafkaBrokerError(f"restarting the broker failed:\n{(proc.stdout + proc.stderr).strip()}")

    def is_running(self) -> bool:
        if self.data_dir is None or self.port is None:
            return False
        return self._run("status", timeout=30).returncode == 0

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and remove its data dir. Idempotent."""
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None
        if self.data_dir is not None and self.port is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._run("stop", timeout=60)
        self._remove_data_dir()
        self.port = self.controller_port = self.sasl_ssl_port = None

    def _remove_data_dir(self) -> None:
        if self.data_dir is not None and not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def log_tail(self, lines: int = 50) -> str:
        """The end of the broker's log files, for failure messages."""
        if self.data_dir is None:
            return ""
        out = []
        for name in ("kafka.out", "server.log"):
            path = self.data_dir / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(out)

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- admin -----------------------------------------------------------------------

    def admin(self) -> Any:
        """A shared ``kafka.KafkaAdminClient`` for this broker (closed by ``stop``)."""
        if self._admin is None:
            from kafka import KafkaAdminClient

            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="llmpulse-tests-admin")
        return self._admin

    def create_topic(self, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        """Create ``name`` and wait until every partition has a leader; returns ``name``."""
        spec: dict[str, Any] = {"num_partitions": partitions, "replication_factor": 1}
        if config:
            spec["configs"] = dict(config)
        self.admin().create_topics({name: spec}, timeout_ms=30_000, wait_for_metadata=True)
        return name

    def delete_topic(self, name: str) -> None:
        """Delete ``name``; a topic that does not exist is not an error."""
        from kafka.errors import UnknownTopicOrPartitionError

        with contextlib.suppress(UnknownTopicOrPartitionError):
            self.admin().delete_topics([name], timeout_ms=30_000)

    def list_topics(self) -> set[str]:
        return set(self.admin().list_topics())
