"""What is in the store: traffic, cost per request by model, latency percentiles. Aggregation runs in ClickHouse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clickhouse_connect.driver.client import Client


@dataclass(frozen=True, slots=True)
class TrafficTotals:
    events: int
    apps: int
    first: datetime | None
    last: datetime | None
    errors: int
    cost_usd: float
    unpriced: int
    rejected: int

    @property
    def error_ratio(self) -> float:
        return self.errors / self.events if self.events else 0.0


@dataclass(frozen=True, slots=True)
class ModelCost:
    provider: str
    model: str
    requests: int
    priced_requests: int
    cost_usd: float | None
    cost_per_request_usd: float | None


@dataclass(frozen=True, slots=True)
class ModelLatency:
    provider: str
    model: str
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    ttft_p95_ms: float | None
    error_ratio: float


@dataclass(frozen=True, slots=True)
class UnpricedModel:
    provider: str
    model: str
    events: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class StoreSummary:
    totals: TrafficTotals
    cost_by_model: list[ModelCost]
    latency_by_model: list[ModelLatency]


# FINAL: these read raw events, and the count must not include a duplicate a merge has yet to collapse.
_TOTALS_SQL = """
SELECT count(), uniqExact(app), min(start_time), max(start_time), countIf(status = 'error'),
       sum(ifNull(cost_usd, 0)), countIf(cost_usd IS NULL),
       (SELECT count() FROM rejected_events)
FROM events FINAL
"""

_COST_SQL = """
SELECT provider, model, count() AS requests, count(cost_usd) AS priced,
       if(priced > 0, sum(cost_usd), NULL) AS cost, if(priced > 0, cost / priced, NULL) AS per_request
FROM events FINAL
GROUP BY provider, model
ORDER BY ifNull(cost, -1) DESC, requests DESC
"""

_LATENCY_SQL = """
SELECT provider, model, count() AS requests,
       quantilesTDigest(0.5, 0.95, 0.99)(latency_ms) AS q,
       quantileTDigestIf(0.95)(ttft_ms, ttft_ms IS NOT NULL) AS ttft_p95,
       countIf(ttft_ms IS NOT NULL) AS with_ttft,
       countIf(status = 'error') / count() AS error_ratio
FROM events FINAL
GROUP BY provider, model
ORDER BY requests DESC
"""

_UNPRICED_SQL = """
SELECT provider, model, count(), min(start_time), max(start_time)
FROM events FINAL
WHERE cost_usd IS NULL
GROUP BY provider, model
ORDER BY count() DESC
"""


def summarize(client: Client) -> StoreSummary:
    row = client.query(_TOTALS_SQL).result_rows[0]
    totals = TrafficTotals(
        events=int(row[0]),
        apps=int(row[1]),
        first=row[2] if row[0] else None,
        last=row[3] if row[0] else None,
        errors=int(row[4]),
        cost_usd=float(row[5]),
        unpriced=int(row[6]),
        rejected=int(row[7]),
    )
    costs = [
        ModelCost(p, m, int(n), int(priced), None if cost is None else float(cost), None if per is None else float(per))
        for p, m, n, priced, cost, per in client.query(_COST_SQL).result_rows
    ]
    latencies = [
        ModelLatency(
            p, m, int(n), float(q[0]), float(q[1]), float(q[2]), float(ttft) if with_ttft else None, float(err)
        )
        for p, m, n, q, ttft, with_ttft, err in client.query(_LATENCY_SQL).result_rows
    ]
    return StoreSummary(totals, costs, latencies)


def unpriced_models(client: Client) -> list[UnpricedModel]:
    return [
        UnpricedModel(p, m, int(n), first, last) for p, m, n, first, last in client.query(_UNPRICED_SQL).result_rows
    ]
