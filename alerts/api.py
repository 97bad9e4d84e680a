"""HTTP routes of the alerting step: the runbooks that alerts link to (runbook_url = <base>/runbooks/NAME.md).

Mount with `app.include_router(runbooks_router(RUNBOOKS_DIR))`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import PlainTextResponse

from analyzers.findings import AlertName

# In a source checkout (the layout llmpulse ships in); a packaged install passes its own directory.
RUNBOOKS_DIR = Path(__file__).resolve().parent.parent / "docs" / "runbooks"


def runbooks_router(directory: Path = RUNBOOKS_DIR) -> APIRouter:
    router = APIRouter(tags=["alerts"])

    @router.get("/runbooks/{name}", response_class=PlainTextResponse)
    def runbook(name: str) -> PlainTextResponse:
        alertname = name.removesuffix(".md")
        if alertname not in {a.value for a in AlertName}:
            raise HTTPException(404, f"no alert named {alertname!r}; known: {sorted(a.value for a in AlertName)}")
        path = directory / f"{alertname}.md"
        if not path.is_file():
            raise HTTPException(404, f"runbook {path.name} is missing from {directory}")
        return PlainTextResponse(path.read_text("utf-8"), media_type="text/markdown; charset=utf-8")

    return router
