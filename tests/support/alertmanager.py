"""A real Alertmanager for tests (Debian's prometheus-alertmanager; `scripts/alertmanager.sh ensure`).

The test configuration is DERIVED from the shipped alerts/alertmanager.yml: the same route tree, matchers
and inhibit rules, with every receiver replaced by a webhook to a local `WebhookReceiver` at
`<receiver url>/<receiver name>` and the timings shortened, so what is tested is the shipped routing.

Fixtures (load with ``pytest_plugins``):
- ``alertmanager_binary`` (session): path of the binary; FAILS the test (never skips) when missing.
- ``webhook_receiver``: a started receiver, stopped after the test.
- ``alertmanager_config``: path of the derived test config for that receiver.
- ``alertmanager_factory``: ``make(port=None, web_config=None) -> AlertmanagerServer`` started on loopback;
  all stopped after the test. ``alertmanager``: one of them. `WebConfig` puts TLS and basic auth in front.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.webhook_receiver import WebhookReceiver

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "alerts" / "alertmanager.yml"
SHIPPED_TEMPLATE = REPO / "alerts" / "llmpulse.tmpl"
BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")
AMTOOL_NAMES = ("amtool",)
INSTALL_HINT = "install it with `scripts/alertmanager.sh ensure` (Debian package prometheus-alertmanager)"

# Short enough for fast tests, long enough that Alertmanager groups what arrives together.
TEST_TIMINGS = {"group_wait": "100ms", "group_interval": "300ms", "repeat_interval": "1h"}


class AlertmanagerError(RuntimeError):
    pass


def find_executable(names: tuple[str, ...], env_var: str) -> str | None:
    override = os.environ.get(env_var)
    if override:
        return override if Path(override).is_file() else None
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_shipped_config() -> dict[str, Any]:
    return dict(yaml.safe_load(SHIPPED_CONFIG.read_text("utf-8")))


def derive_test_config(
    shipped: Mapping[str, Any], webhook_url: str, *, timings: Mapping[str, str] = TEST_TIMINGS
) -> dict[str, Any]:
    """The shipped config with receivers → local webhooks and short timings; routes and inhibition kept."""
    config = copy.deepcopy(dict(shipped))
    config["global"] = {"resolve_timeout": str(config.get("global", {}).get("resolve_timeout", "5m"))}
    config["receivers"] = [
        {
            "name": receiver["name"],
            "webhook_configs": [
                {"url": f"{webhook_url.rstrip('/')}/{receiver['name']}", "send_resolved": True, "max_alerts": 0}
            ],
        }
        for receiver in shipped["receivers"]
    ]
    root = config["route"]
    for key, value in timings.items():
        root[key] = value
    _override_children(root, timings)
    config["templates"] = [str(SHIPPED_TEMPLATE)]  # still parsed at start-up: a broken template fails here
    return config


def _override_children(route: dict[str, Any], timings: Mapping[str, str]) -> None:
    for child in route.get("routes", []) or []:
        for key, value in timings.items():
            if key in child:
                child[key] = value
        _override_children(child, timings)


@dataclass(frozen=True, slots=True)
class WebConfig:
    """Alertmanager's --web.config.file (Prometheus exporter-toolkit): TLS and/or basic auth on its API.

    `users` maps user -> plaintext password (written bcrypt-hashed, as Alertmanager requires)."""

    users: Mapping[str, str] = field(default_factory=dict)
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None  # what a client trusts to verify cert_file (not written to the config)

    def write(self, path: Path) -> Path:
        import bcrypt

        doc: dict[str, Any] = {}
        if self.cert_file is not None and self.key_file is not None:
            doc["tls_server_config"] = {"cert_file": str(self.cert_file), "key_file": str(self.key_file)}
        if self.users:
            # Cost 4: bcrypt's minimum; Alertmanager checks every request's password against it.
            doc["basic_auth_users"] = {
                user: bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
                for user, password in self.users.items()
            }
        path.write_text(yaml.safe_dump(doc), "utf-8")
        return path


class AlertmanagerServer:
    """One Alertmanager process on 127.0.0.1 with its own storage; restartable on the same port.

    With `web_config` its API needs TLS and/or basic auth (`url` is https:// then); `self.http` (used by the
    test helpers below) authenticates with the first user and trusts `web_config.ca_file`."""

    def __init__(
        self, binary: str, config_path: Path, workdir: Path, *, port: int | None = None,
        web_config: WebConfig | None = None,
    ) -> None:
        self.binary = binary
        self.config_path = config_path
        self.workdir = workdir
        self.port = port or free_port()
        self.storage = workdir / "data"
        self.log_path = workdir / "alertmanager.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.web_config = web_config
        self.web_config_path = web_config.write(workdir / "web.yml") if web_config is not None else None
        auth = next(iter(web_config.users.items())) if web_config is not None and web_config.users else None
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(web_config.ca_file))
            if web_config is not None and web_config.ca_file else True
        )
        self.http = httpx.Client(base_url=self.url, timeout=5.0, auth=auth, verify=verify)

    @property
    def tls(self) -> bool:
        return self.web_config is not None and self.web_config.cert_file is not None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> AlertmanagerServer:
        self.storage.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.storage}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ]
        if self.web_config_path is not None:
            command.append(f"--web.config.file={self.web_config_path}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AlertmanagerError(
                    f"Alertmanager exited with {self.process.returncode} at start-up:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/-/ready").status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise AlertmanagerError(f"Alertmanager not ready on {self.url} after {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): Alertmanager snapshots silences and its notification log."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def close(self) -> None:
        self.stop()
        self.http.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_for_notification_logged(self, receiver: str, *, count: int = 1, timeout: float = 10.0) -> None:
        """Until Alertmanager has recorded `count` successful notifications to `receiver` (debug log).

        It writes its notification log just after the receiver answered; a stop in between loses the
        record, and after a restart it would not know that people were told (Alertmanager's behaviour)."""
        needle = f"receiver={receiver} "
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_path.read_text("utf-8", "replace").splitlines()
            if sum(1 for line in lines if needle in line and 'msg="Notify success"' in line) >= count:
                time.sleep(0.2)  # the log entry follows the debug line within microseconds
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"Alertmanager logged no notification to {receiver}:\n{self.log_tail()}")
            time.sleep(0.02)

    # -- API v2 ------------------------------------------------------------------------------------

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds now, silenced and inhibited included (resolved ones are not listed),
        filtered by exact labels."""
        return self.query_alerts(labels)

    def query_alerts(
        self, labels: Mapping[str, str], *, inhibited: bool = True, silenced: bool = True
    ) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("active", "true"), ("silenced", str(silenced).lower()), ("inhibited", str(inhibited).lower()),
        ]
        params += [("filter", f'{k}="{v}"') for k, v in labels.items()]
        response = self.http.get("/api/v2/alerts", params=params)
        response.raise_for_status()
        return list(response.json())

    def wait_for_alerts(
        self, predicate: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 10.0, what: str = "",
        **labels: str,
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.query_alerts(labels)
            if predicate(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"Alertmanager at {self.url}: {what or 'condition'} not met in {timeout}s; "
                                     f"alerts {labels or ''}: {found}")
            time.sleep(0.05)

    def create_silence(self, matchers: Mapping[str, str], *, minutes: float = 60, comment: str = "test") -> str:
        now = datetime.now(UTC)
        body = {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
            "createdBy": "llmpulse-tests",
            "comment": comment,
        }
        response = self.http.post("/api/v2/silences", json=body)
        response.raise_for_status()
        return str(response.json()["silenceID"])


def write_test_config(webhook_url: str, path: Path) -> Path:
    path.write_text(yaml.safe_dump(derive_test_config(load_shipped_config(), webhook_url), sort_keys=False), "utf-8")
    return path


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    binary = find_executable(BINARY_NAMES, "LLMPULSE_ALERTMANAGER_BIN")
    if binary is None:
        pytest.fail(f"Alertmanager binary not found ({', '.join(BINARY_NAMES)}): {INSTALL_HINT}", pytrace=False)
    return binary


@pytest.fixture(scope="session")
def amtool_binary() -> str:
    binary = find_executable(AMTOOL_NAMES, "LLMPULSE_AMTOOL_BIN")
    if binary is None:
        pytest.fail(f"amtool not found: {INSTALL_HINT}", pytrace=False)
    return binary


@pytest.fixture()
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture()
def alertmanager_config(webhook_receiver: WebhookReceiver, tmp_path: Path) -> Path:
    return write_test_config(webhook_receiver.url, tmp_path / "alertmanager-test.yml")


AlertmanagerFactory = Callable[..., AlertmanagerServer]


@pytest.fixture()
def alertmanager_factory(
    alertmanager_binary: str, alertmanager_config: Path, tmp_path: Path
) -> Iterator[AlertmanagerFactory]:
    servers: list[AlertmanagerServer] = []

    def make(port: int | None = None, web_config: WebConfig | None = None) -> AlertmanagerServer:
        workdir = tmp_path / f"am{len(servers)}"
        workdir.mkdir()
        server = AlertmanagerServer(alertmanager_binary, alertmanager_config, workdir, port=port,
                                    web_config=web_config)
        servers.append(server)
        try:
            server.start()
        except AlertmanagerError as exc:
            pytest.fail(str(exc), pytrace=False)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture()
def alertmanager(alertmanager_factory: AlertmanagerFactory) -> AlertmanagerServer:
    return alertmanager_factory()
