"""/v1/keys: create, list and revoke API keys (admin scope). The key itself is in the creation response only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from collector.api.auth import require_scope
from collector.auth import Scope
from collector.keys import ApiKey, KeyExists, KeyNotFound, KeyStore, KeyStoreError, create_key, revoke_key

router = APIRouter(tags=["keys"], dependencies=[Depends(require_scope(Scope.ADMIN))])


class KeyCreate(BaseModel):
    name: str = Field(description="1-64 letters, digits, '.', '_' or '-'; unique among active keys.")
    scope: Scope = Field(description="ingest (write events), read (findings, metrics, docs) or admin (all).")
    apps: list[str] = Field(default_factory=list, description="Apps the key may write; empty: every app.")


class KeyInfo(BaseModel):
    name: str
    scope: Scope
    apps: list[str]
    key_prefix: str = Field(description="The first characters of the key, to tell keys apart.")
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyInfo:
        return cls(
            name=key.name,
            scope=key.scope,
            apps=list(key.apps),
            key_prefix=key.key_prefix,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class KeyCreated(KeyInfo):
    key: str = Field(description="The API key. Shown only in this response; only its SHA-256 is stored.")


def get_key_store(request: Request) -> KeyStore:
    store: KeyStore = request.app.state.key_store
    return store


KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]


def _reload(request: Request) -> None:
    # This process sees its own change at once; other processes within their refresh interval.
    reload = getattr(request.app.state.authenticator, "reload", None)
    if reload is not None:
        reload()


@router.post("/v1/keys", status_code=201, response_model=KeyCreated)
async def post_key(body: KeyCreate, request: Request, store: KeyStoreDep) -> KeyCreated:
    try:
        record, key = await run_in_threadpool(create_key, store, body.name, body.scope, body.apps)
    except KeyExists as exc:
        raise HTTPException(409, str(exc)) from None
    except KeyStoreError as exc:
        raise HTTPException(422, str(exc)) from None
    await run_in_threadpool(_reload, request)
    return KeyCreated(**KeyInfo.of(record).model_dump(), key=key)


@router.get("/v1/keys", response_model=list[KeyInfo])
async def get_keys(store: KeyStoreDep) -> list[KeyInfo]:
    return [KeyInfo.of(key) for key in await run_in_threadpool(store.all_keys)]


@router.delete("/v1/keys/{name}", response_model=KeyInfo)
async def delete_key(name: str, request: Request, store: KeyStoreDep) -> KeyInfo:
    try:
        revoked = await run_in_threadpool(revoke_key, store, name)
    except KeyNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    await run_in_threadpool(_reload, request)
    return KeyInfo.of(revoked)
