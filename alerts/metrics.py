"""Prometheus metrics of alert delivery, for /metrics. Pass the app's registry to share its exposition.

What an operator alerts on (with Prometheus, about llmpulse itself):
- `llmpulse_alertmanager_undelivered_alerts > 0` for a while: an Alertmanager has not got the latest state.
- `rate(llmpulse_alertmanager_send_failures_total[5m]) > 0`: deliveries failing, by reason.
- `time() - llmpulse_alertmanager_last_success_timestamp_seconds`: how long since an instance accepted alerts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SEND_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.alerts_sent = Counter(
            "llmpulse_alertmanager_alerts_sent", "Alerts accepted by an Alertmanager (resends included).",
            ["alertmanager"], registry=self.registry,
        )
        self.send_failures = Counter(
            "llmpulse_alertmanager_send_failures",
            "POSTs to an Alertmanager that failed (the alerts stay queued and are retried with backoff).",
            ["alertmanager", "reason"], registry=self.registry,
        )
        self.send_seconds = Histogram(
            "llmpulse_alertmanager_send_duration_seconds", "Duration of one POST /api/v2/alerts.",
            ["alertmanager"], buckets=SEND_SECONDS_BUCKETS, registry=self.registry,
        )
        self.undelivered = Gauge(
            "llmpulse_alertmanager_undelivered_alerts",
            "Alerts whose latest state (firing or resolved) an Alertmanager has not accepted yet.",
            ["alertmanager"], registry=self.registry,
        )
        self.consecutive_failures = Gauge(
            "llmpulse_alertmanager_consecutive_failures", "Failed POSTs in a row to an Alertmanager.",
            ["alertmanager"], registry=self.registry,
        )
        self.last_success = Gauge(
            "llmpulse_alertmanager_last_success_timestamp_seconds",
            "Unix time of the last POST an Alertmanager accepted.", ["alertmanager"], registry=self.registry,
        )
        self.alerts_tracked = Gauge(
            "llmpulse_alerts", "Alerts llmpulse is sending, by status (resolved ones for their retention).",
            ["status"], registry=self.registry,
        )
        self.transitions = Counter(
            "llmpulse_alert_transitions", "Alerts that started firing or resolved.", ["alertname", "status"],
            registry=self.registry,
        )
        self.history_failures = Counter(
            "llmpulse_alert_history_failures",
            "Failed writes of alert transitions to the ClickHouse alerts table (retried on the next dispatch).",
            registry=self.registry,
        )
