"""GET /v1/findings (and /v1/findings/{finding_id}): what the analyzers found, newest first.

    app.include_router(findings_router(lambda: client))
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from clickhouse_connect.driver.client import Client
from fastapi import APIRouter, HTTPException, Query

from analyzers.engine import ClickHouseFindingStore, FindingQuery
from analyzers.findings import AlertName, FindingState


def findings_router(get_client: Callable[[], Client]) -> APIRouter:
    router = APIRouter(tags=["findings"])

    @router.get("/v1/findings")
    def list_findings(
        state: Annotated[FindingState | None, Query(description="pending, firing or resolved")] = None,
        alertname: Annotated[AlertName | None, Query(description="e.g. LLMCostSpike")] = None,
        app: Annotated[str | None, Query(description="Only findings with this app label")] = None,
        since: Annotated[
            datetime | None, Query(description="Seen at or after this RFC 3339 time")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    ) -> dict[str, Any]:
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        store = ClickHouseFindingStore(get_client())
        found = store.query(
            FindingQuery(
                state=state.value if state else None,
                alertname=alertname.value if alertname else None,
                app=app,
                since=since,
                limit=limit,
            )
        )
        return {"findings": [f.to_dict() for f in found], "count": len(found)}

    @router.get("/v1/findings/{finding_id}")
    def get_finding(finding_id: str) -> dict[str, Any]:
        store = ClickHouseFindingStore(get_client())
        found = store.get(finding_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no finding {finding_id}")
        return found.to_dict()

    return router
