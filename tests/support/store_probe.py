"""Run as a subprocess to read totals from an embedded store another process wrote (chDB: one path per process).

python -m tests.support.store_probe chdb:///path/to/store [database]
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson

TOTALS_SQL = (
    "SELECT count(), uniqExact(event_id), sum(cost_usd), countIf(cost_usd IS NULL), "
    "(SELECT count() FROM rejected_events) FROM events"
)


def probe(url: str, database: str | None = None) -> dict[str, Any]:
    """Totals as the analyzers would see them: no FINAL, so a duplicate row would show."""
    args = [sys.executable, "-m", "tests.support.store_probe", url] + ([database] if database else [])
    out = subprocess.run(args, capture_output=True, check=True, timeout=120)
    result: dict[str, Any] = orjson.loads(out.stdout)
    return result


def main() -> None:
    from llmpulse.clickhouse import connect

    client = connect(sys.argv[1], database=sys.argv[2] if len(sys.argv) > 2 else None)
    rows, distinct, cost, unpriced, rejected = client.query(TOTALS_SQL).result_rows[0]
    sys.stdout.write(
        orjson.dumps(
            {"rows": rows, "distinct": distinct, "cost": float(cost or 0), "unpriced": unpriced, "rejected": rejected}
        ).decode()
    )


if __name__ == "__main__":
    main()
