"""`llmpulse keys create|list|revoke`: API keys, directly on the store (no running server needed).

`create` prints the key alone on stdout (`KEY=$(llmpulse keys create ci --scope ingest)`); everything else goes
to stderr. Only the key's SHA-256 is stored: a lost key cannot be shown again, only revoked and replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.table import Table

from llmpulse.commands.output import FormatOption, OutputFormat, output_format, write_json
from llmpulse.console import console, err_console

if TYPE_CHECKING:
    from collector.keys import ClickHouseKeyStore


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(2)


def _store() -> ClickHouseKeyStore:
    # Imported here: `--help` must not import the store's dependencies or open it.
    from collector.keys import ClickHouseKeyStore
    from llmpulse.runtime import open_store
    from llmpulse.settings import get_settings

    return ClickHouseKeyStore(open_store(get_settings()))


def register(app: typer.Typer) -> None:
    keys = typer.Typer(
        no_args_is_help=True,
        help="API keys for the HTTP API (every endpoint but /healthz needs one; docs/security.md).",
    )
    app.add_typer(keys, name="keys")

    @keys.command("create")
    def create(
        name: Annotated[str, typer.Argument(help="Unique among active keys: letters, digits, '.', '_', '-'.")],
        scope: Annotated[
            str, typer.Option(help="ingest (write events), read (findings, /metrics, /docs) or admin (all).")
        ],
        app_names: Annotated[
            list[str] | None,
            typer.Option("--app", help="An app the key may write (repeat for several); none: every app."),
        ] = None,
    ) -> None:
        """Create a key and print it, alone, on stdout; it is never shown again."""
        from collector.auth import Scope
        from collector.keys import KeyStoreError, create_key

        try:
            parsed = Scope(scope.strip().lower())
        except ValueError:
            raise _fail(f"--scope must be one of {', '.join(s.value for s in Scope)}, not {scope!r}") from None
        try:
            record, key = create_key(_store(), name, parsed, app_names or ())
        except KeyStoreError as exc:
            raise _fail(str(exc)) from None
        apps = ", ".join(record.apps) or "every app"
        err_console.print(
            f"created key {record.name!r} (scope {record.scope.value}, {apps}); store it now, it is not shown "
            "again. Send it as 'Authorization: Bearer <key>'.",
            highlight=False,
        )
        typer.echo(key)

    @keys.command("list")
    def list_keys(
        as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
        revoked: Annotated[bool, typer.Option("--revoked/--no-revoked", help="Include revoked keys.")] = True,
        output: FormatOption = "table",
    ) -> None:
        """Every key's name, scope, apps, creation and revocation time (never the key)."""
        fmt = output_format(output)
        records = [k for k in _store().all_keys() if revoked or k.active]
        documents = [
            {
                "name": k.name,
                "scope": k.scope.value,
                "apps": list(k.apps),
                "key_prefix": k.key_prefix,
                "created_at": k.created_at.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in records
        ]
        if fmt is OutputFormat.JSON:
            write_json(documents)
            return
        if as_json:  # the older spelling: JSON lines
            for document in documents:
                typer.echo(orjson.dumps(document).decode())
            return
        table = Table(title=f"{len(records)} API key(s)")
        for column in ("name", "scope", "apps", "key", "created (UTC)", "revoked (UTC)"):
            table.add_column(column)
        for k in records:
            table.add_row(
                k.name,
                k.scope.value,
                ", ".join(k.apps) or "(all)",
                f"{k.key_prefix}…",
                f"{k.created_at:%Y-%m-%d %H:%M:%S}",
                f"{k.revoked_at:%Y-%m-%d %H:%M:%S}" if k.revoked_at else "-",
            )
        console.print(table)

    @keys.command("revoke")
    def revoke(name: Annotated[str, typer.Argument(help="The key's name (as in `llmpulse keys list`).")]) -> None:
        """Revoke a key: servers refuse it within a few seconds (LLMPULSE_AUTH_KEY_REFRESH_SECONDS)."""
        from collector.keys import KeyStoreError, revoke_key

        try:
            revoked_key = revoke_key(_store(), name)
        except KeyStoreError as exc:
            raise _fail(str(exc)) from None
        err_console.print(f"revoked key {revoked_key.name!r}", highlight=False)
