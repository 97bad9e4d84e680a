"""Composition root for security settings: the redaction policy and the API authenticator, from Settings.

Configuration mistakes become one `OperatorError` line naming the setting, the file and the pattern.
"""

from __future__ import annotations

import logging

import yaml
from clickhouse_connect.driver.client import Client

from collector.auth import AllowAll, Authenticator
from collector.keys import ClickHouseKeyStore, KeyAuthenticator
from collector.redaction import RedactionConfigError, RedactionPolicy, compile_custom, parse_kinds
from llmpulse.errors import OperatorError
from llmpulse.settings import Settings

log = logging.getLogger(__name__)


def redaction_policy(settings: Settings) -> RedactionPolicy:
    """LLMPULSE_REDACT and LLMPULSE_REDACT_PATTERNS_FILE as a policy; raises OperatorError when invalid."""
    try:
        kinds = parse_kinds(settings.redact)
    except RedactionConfigError as exc:
        raise OperatorError(str(exc)) from None
    path = settings.redact_patterns_file
    if path is None:
        return RedactionPolicy(kinds=kinds)
    where = f"LLMPULSE_REDACT_PATTERNS_FILE {path}"
    try:
        raw = yaml.safe_load(path.read_text("utf-8")) or {}
    except OSError as exc:
        raise OperatorError(f"cannot read {where}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise OperatorError(f"{where} is not valid YAML: {exc}") from None
    if isinstance(raw, dict) and isinstance(raw.get("patterns"), dict):
        raw = raw["patterns"]
    if not isinstance(raw, dict):
        raise OperatorError(f"{where} must be a YAML mapping of name: regex")
    try:
        custom = compile_custom(raw, where=where)
    except RedactionConfigError as exc:
        raise OperatorError(str(exc)) from None
    return RedactionPolicy(kinds=kinds, custom=custom)


def build_authenticator(settings: Settings, client: Client) -> tuple[Authenticator, ClickHouseKeyStore]:
    """The API's authenticator and key store; logs the start-up warning when auth is disabled, and how to
    create the first key when there is none yet."""
    store = ClickHouseKeyStore(client)
    if settings.auth_disabled:
        log.warning(
            "LLMPULSE_AUTH_DISABLED=true: the HTTP API accepts requests WITHOUT API keys; anyone who can reach "
            "this port can write events for any app and read findings"
        )
        return AllowAll(), store
    authenticator = KeyAuthenticator(store, refresh_s=settings.auth_key_refresh_seconds)
    authenticator.reload()
    if authenticator.key_count == 0:
        log.warning(
            "no API keys exist yet: every request but /healthz is answered 401. Create one with "
            "`llmpulse keys create NAME --scope admin` (or --scope ingest --app APP) on this store, then send "
            "'Authorization: Bearer <key>'"
        )
    return authenticator, store
