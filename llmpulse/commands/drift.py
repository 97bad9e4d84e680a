"""`llmpulse drift pin|unpin|show|run`: reference periods and on-demand drift runs (docs/drift.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer
from rich.table import Table

from llmpulse.commands.output import FormatOption, OutputFormat, fail, instant, output_format, write_json
from llmpulse.console import console

App = Annotated[str, typer.Option("--app", help="App of the group.")]
Env = Annotated[str, typer.Option("--environment", help="Environment ('' = any).")]
Feat = Annotated[str, typer.Option("--feature", help="Feature ('' = any).")]
Model = Annotated[str, typer.Option("--model", help="Model ('' = any).")]
Version = Annotated[str, typer.Option("--prompt-version", help="Prompt version ('' = any).")]


def _when(text: str, what: str) -> datetime:
    """RFC 3339, 'now' or a duration back from now: llmpulse.timeparse, as in every command."""
    return instant(text, what)


def _group(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items() if v)


def register(app: typer.Typer) -> None:
    drift = typer.Typer(no_args_is_help=True, help="Input/output drift: pinned references, results, runs.")
    app.add_typer(drift, name="drift")

    @drift.command("pin")
    def pin(
        app_name: App, start: Annotated[str, typer.Option(help="Reference period start, RFC 3339.")],
        end: Annotated[str, typer.Option(help="Reference period end, RFC 3339.")],
        environment: Env = "", feature: Feat = "", model: Model = "", prompt_version: Version = "",
        note: Annotated[str, typer.Option(help="Why this period, e.g. 'week before prompt v12'.")] = "",
    ) -> None:
        """Pin a reference period for a group; its bin edges are computed now and stored with it."""
        from analyzers.drift.detect import quantile_edges
        from analyzers.drift.queries import lit, numeric_value_counts, ts
        from analyzers.drift.store import save_pin
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        a, b = _when(start, "--start"), _when(end, "--end")
        if b <= a:
            raise fail("--end must be after --start")
        settings = get_settings()
        client = open_store(settings)
        labels = {"app": app_name, "environment": environment, "feature": feature, "model": model,
                  "prompt_version": prompt_version}
        where = " AND ".join(f"{k} = {lit(v)}" for k, v in labels.items() if v)
        ops = ", ".join(lit(o) for o in settings.drift_operations)
        # The same edges an unpinned reference would get: quantiles of the period's value counts.
        events, values = numeric_value_counts(
            client, f"{where} AND operation IN ({ops}) AND start_time >= {ts(a)} AND start_time < {ts(b)}"
        )
        if events < settings.drift_min_events:
            raise fail(f"{events} calls of {_group(labels)} in that period; a reference "
                       f"needs at least {settings.drift_min_events} (LLMPULSE_DRIFT_MIN_EVENTS)")
        edges = {name: quantile_edges(x, settings.drift_bins, n).tolist() for name, (x, n) in values.items()}
        save_pin(client, labels, a, b, note, events, edges)
        console.print(f"pinned {a:%Y-%m-%d %H:%M}–{b:%Y-%m-%d %H:%M} UTC ({events:,} calls) as the reference of "
                      + _group(labels))

    @drift.command("unpin")
    def unpin(app_name: App, environment: Env = "", feature: Feat = "", model: Model = "",
              prompt_version: Version = "") -> None:
        """Go back to the default (seasonal/trailing) reference for a group."""
        from analyzers.drift.store import pinned_references, save_pin
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        client = open_store(get_settings())
        labels = {"app": app_name, "environment": environment, "feature": feature, "model": model,
                  "prompt_version": prompt_version}
        if not any(dict(p.labels) == labels for p in pinned_references(client)):
            raise fail(f"no pinned reference for {_group(labels)} (`llmpulse drift show` lists them)")
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        save_pin(client, labels, epoch, epoch, "", 0, {}, pinned=False)
        console.print("unpinned " + _group(labels))

    @drift.command("show")
    def show(last: Annotated[int, typer.Option(help="Runs to show.")] = 3, output: FormatOption = "table") -> None:
        """Pinned references and the latest verdicts per group (from drift_results)."""
        from analyzers.drift.store import pinned_references
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        fmt = output_format(output)
        client = open_store(get_settings())
        pins = pinned_references(client)
        rows = client.query(
            "SELECT at, app, environment, feature, direction, status, drifted, reference_kind, n_reference, "
            "n_current, details FROM drift_results FINAL WHERE drift_feature = '__verdict__' "
            "AND at IN (SELECT DISTINCT at FROM drift_results ORDER BY at DESC LIMIT {n:UInt32}) "
            "ORDER BY at DESC, app, feature, direction", parameters={"n": last},
        ).result_rows
        if fmt is OutputFormat.JSON:
            write_json({
                "pinned": [{"labels": dict(p.labels), "start": p.start, "end": p.end, "events": p.events,
                            "note": p.note} for p in pins],
                "verdicts": [
                    {"at": at, "app": app_, "environment": env, "feature": feat, "direction": direction,
                     "status": status, "drifted": bool(drifted), "reference_kind": kind, "n_reference": n_ref,
                     "n_current": n_cur, "details": orjson.loads(details or "{}")}
                    for at, app_, env, feat, direction, status, drifted, kind, n_ref, n_cur, details in rows
                ],
            })
            return
        if pins:
            t = Table(title="Pinned references")
            for c in ("group", "period (UTC)", "calls", "note"):
                t.add_column(c)
            for p in pins:
                t.add_row(", ".join(f"{k}={v}" for k, v in p.labels.items() if v),
                          f"{p.start:%Y-%m-%d %H:%M} – {p.end:%Y-%m-%d %H:%M}", f"{p.events:,}", p.note)
            console.print(t)
        if not rows:
            console.print("no drift runs stored yet (llmpulse drift run, or the scheduler, writes them)")
            return
        t = Table(title="Drift verdicts")
        for c in ("run (UTC)", "group", "dir", "verdict", "reference", "calls ref/now", "features"):
            t.add_column(c)
        for at, app_, env, feat, direction, status, drifted, kind, n_ref, n_cur, details in rows:
            info = orjson.loads(details or "{}")
            verdict = ("no verdict (too few calls)" if status != "ok" else
                       ("[red]DRIFT[/]" + (" (persisted)" if info.get("persisted") else "") if drifted else "ok"))
            t.add_row(f"{at:%m-%d %H:%M}", f"{app_}/{feat} ({env})", direction, verdict, kind,
                      f"{n_ref:,}/{n_cur:,}", ", ".join(info.get("features", [])))
        console.print(t)

    @drift.command("run")
    def run(at: Annotated[str | None, typer.Option(help="Run as of this instant (default: now).")] = None) -> None:
        """Run the drift analyzer once, store its results and print the verdicts."""
        from analyzers.drift.analyzer import DriftAnalyzer, settings_from
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        settings = get_settings()
        client = open_store(settings)
        when = _when(at, "--at") if at else datetime.now(UTC)
        result = DriftAnalyzer(settings_from(settings)).analyze(client, when)
        t = Table(title=f"Drift {result.current[0]:%Y-%m-%d %H:%M}–{result.current[1]:%H:%M} UTC")
        for c in ("group", "dir", "verdict", "reference", "calls ref/now", "top features"):
            t.add_column(c)
        for g in result.groups:
            for direction, v in g.verdicts.items():
                verdict = ("no verdict (too few calls)" if v.status != "ok" else
                           ("[red]DRIFT[/]" + (" (persisted)" if g.persisted.get(direction) else "")
                            if v.drifted else "ok"))
                top = ", ".join(f"{x.feature} {x.effect_name}={x.effect:.3g}" for x in v.top[:3])
                t.add_row("/".join(g.key), direction.value, verdict, g.reference_kind,
                          f"{v.n_reference:,}/{v.n_current:,}", top)
        console.print(t)
