"""Terminal rendering of what the analyzers computed."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from analyzers.summary import StoreSummary


def _usd(value: float | None, digits: int = 4) -> str:
    return "unpriced" if value is None else f"${value:,.{digits}f}"


def print_summary(console: Console, summary: StoreSummary) -> None:
    t = summary.totals
    if not t.events:
        console.print("the store holds no events yet")
        return
    span = f"{t.first:%Y-%m-%d %H:%M} → {t.last:%Y-%m-%d %H:%M} UTC" if t.first and t.last else ""
    console.print(
        f"[bold]{t.events:,}[/] events from {t.apps} app(s), {span}; error ratio {t.error_ratio:.2%}; "
        f"spend {_usd(t.cost_usd, 2)}; {t.unpriced:,} events on models without a known price; "
        f"{t.rejected:,} rejected items kept"
    )
    cost = Table(title="Cost per request by model")
    for column in ("provider", "model", "requests", "total", "per request"):
        cost.add_column(column, justify="right" if column in ("requests", "total", "per request") else "left")
    for cost_row in summary.cost_by_model:
        cost.add_row(
            cost_row.provider or "-",
            cost_row.model,
            f"{cost_row.requests:,}",
            _usd(cost_row.cost_usd, 2),
            _usd(cost_row.cost_per_request_usd, 5),
        )
    console.print(cost)
    latency = Table(title="Latency by model (ms)")
    for column in ("provider", "model", "requests", "p50", "p95", "p99", "TTFT p95", "errors"):
        latency.add_column(column, justify="left" if column in ("provider", "model") else "right")
    for row in summary.latency_by_model:
        latency.add_row(
            row.provider or "-",
            row.model,
            f"{row.requests:,}",
            f"{row.p50_ms:,.0f}",
            f"{row.p95_ms:,.0f}",
            f"{row.p99_ms:,.0f}",
            "-" if row.ttft_p95_ms is None else f"{row.ttft_p95_ms:,.0f}",
            f"{row.error_ratio:.2%}",
        )
    console.print(latency)
