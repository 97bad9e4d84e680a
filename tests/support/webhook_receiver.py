"""A local HTTP server that receives Alertmanager webhook notifications (what a pager or chat bridge gets).

The test Alertmanager config points every receiver at `<url>/<receiver name>`; each POST is kept as a
`Notification` so tests can wait for "the resolved notification of LLMCostSpike for app X reached
llm-tickets" without sleeping blindly.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Notification:
    path: str
    receiver: str
    status: str  # of the group: firing while any alert in it fires
    alerts: list[dict[str, Any]]
    group_labels: dict[str, str]
    received_at: datetime


@dataclass(frozen=True)
class ReceivedAlert:
    """One alert inside one notification."""

    notification: Notification
    alert: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.alert["status"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.alert["labels"])

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.alert["annotations"])

    @property
    def receiver(self) -> str:
        return self.notification.receiver


AlertPredicate = Callable[[ReceivedAlert], bool]


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._notifications: list[Notification] = []
        self._errors: list[str] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                    note = Notification(
                        path=self.path,
                        receiver=str(payload["receiver"]),
                        status=str(payload["status"]),
                        alerts=list(payload["alerts"]),
                        group_labels=dict(payload.get("groupLabels") or {}),
                        received_at=datetime.now(UTC),
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    with receiver._changed:
                        receiver._errors.append(f"{self.path}: {exc}: {body[:200]!r}")
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver._changed:
                    receiver._notifications.append(note)
                    receiver._changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="webhook-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_address[1]}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def notifications(self) -> list[Notification]:
        with self._changed:
            return list(self._notifications)

    def received(self, predicate: AlertPredicate | None = None) -> list[ReceivedAlert]:
        found = [ReceivedAlert(n, a) for n in self.notifications() for a in n.alerts]
        return [r for r in found if predicate is None or predicate(r)]

    def wait_for(self, predicate: AlertPredicate, *, timeout: float = 10.0, what: str = "") -> ReceivedAlert:
        """The first received alert matching `predicate`; fails with everything received so far."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for note in self._notifications:
                    for alert in note.alerts:
                        item = ReceivedAlert(note, alert)
                        if predicate(item):
                            return item
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        raise AssertionError(
            f"no webhook notification {what or 'matching'} within {timeout}s; received: {self.describe()}"
            + (f"; malformed posts: {self._errors}" if self._errors else "")
        )

    def describe(self) -> str:
        rows = [
            f"{n.receiver}: {a['status']} {a['labels'].get('alertname')} "
            f"{ {k: v for k, v in a['labels'].items() if k not in ('alertname', 'service')} }"
            for n in self.notifications()
            for a in n.alerts
        ]
        return "[" + "; ".join(rows) + "]" if rows else "nothing"


def alert_matches(
    alertname: str, *, status: str | None = None, receiver: str | None = None, **labels: str
) -> AlertPredicate:
    def predicate(item: ReceivedAlert) -> bool:
        if item.labels.get("alertname") != alertname:
            return False
        if status is not None and item.status != status:
            return False
        if receiver is not None and item.receiver != receiver:
            return False
        return all(item.labels.get(k) == v for k, v in labels.items())

    return predicate
