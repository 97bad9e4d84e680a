"""`llmpulse analyze`, `llmpulse findings` and `llmpulse backtest`: the analyzers from the command line."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from alerts.sender import AlertmanagerURLError
from llmpulse.commands.output import SINCE_HELP, FormatOption, OutputFormat, duration, instant, output_format
from llmpulse.console import console, err_console
from llmpulse.errors import OperatorError


def _fail(message: str) -> OperatorError:
    return OperatorError(message)


def parse_time(text: str, option: str) -> datetime:
    """RFC 3339 (no offset = UTC), 'now', or a duration back from now (llmpulse.timeparse)."""
    return instant(text, option)


def _rules(path: Path | None):  # type: ignore[no-untyped-def]
    from analyzers.rules import RulesError, load_rules
    from analyzers.scheduler import rules_from_settings
    from llmpulse.settings import get_settings

    try:
        return load_rules(path) if path is not None else rules_from_settings(get_settings())
    except RulesError as exc:
        raise _fail(str(exc)) from None


def _only(names: str | None) -> list[str] | None:
    return [n.strip() for n in names.split(",") if n.strip()] if names else None


def _findings_table(rows: list[dict[str, object]], title: str) -> Table:
    table = Table(title=title)
    for column in ("state", "severity", "alert", "labels", "value", "baseline", "first seen", "fired", "resolved",
                   "summary"):
        table.add_column(column, overflow="fold")
    for f in rows:
        labels = f.get("labels") or {}
        assert isinstance(labels, dict)
        table.add_row(
            str(f["state"]), str(f["severity"]), str(f["alertname"]),
            ", ".join(f"{k}={v}" for k, v in labels.items()),
            _num(f.get("value")), _num(f.get("baseline")),
            _short(f.get("first_seen")), _short(f.get("fired_at")), _short(f.get("resolved_at")),
            str(f.get("summary", "")),
        )
    return table


def _num(x: object) -> str:
    if x is None:
        return "-"
    v = float(x)  # type: ignore[arg-type]
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _short(ts: object) -> str:
    return "-" if not ts else str(ts)[5:16].replace("T", " ")


def _cron_period(every: str | None) -> timedelta | None:
    if every is None:
        return None
    return duration(every, "--every")


def register(app: typer.Typer) -> None:
    @app.command()
    def analyze(
        at: Annotated[
            str | None, typer.Option(help="Run as of this time: RFC 3339 or a duration ago (default: now - lag).")
        ] = None,
        rules: Annotated[Path | None, typer.Option(help="Rules YAML (default: LLMPULSE_ANALYZERS_RULES_FILE "
                                                         "or ./llmpulse.yaml).")] = None,
        only: Annotated[str | None, typer.Option(help="Comma-separated analyzer names.")] = None,
        output: FormatOption = "table",
        every: Annotated[
            str | None,
            typer.Option(help="How often cron runs this (e.g. 5m): alerts stay valid in Alertmanager that long."),
        ] = None,
    ) -> None:
        """Run every analyzer once (as of --at, so history can be replayed), store the findings and deliver alerts.

        Alerts go to LLMPULSE_ALERTMANAGER_URL when set, and are always recorded for `llmpulse alerts`.
        """
        from alerts.factory import build_alert_dispatcher
        from alerts.from_findings import EngineFindingsSource, findings_listener
        from analyzers.engine import ClickHouseFindingStore
        from analyzers.registry import build_analyzers
        from analyzers.scheduler import AnalyzerScheduler
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        fmt = output_format(output)
        settings = get_settings()
        rule_set = _rules(rules)
        try:
            selected = build_analyzers(settings, only=_only(only), plugins=settings.analyzers_plugins)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        when = parse_time(at, "--at") if at else None
        resend = _cron_period(every)
        client = open_store(settings)
        try:
            dispatcher = build_alert_dispatcher(settings, client, resend_interval=resend)
        except AlertmanagerURLError as exc:
            raise _fail(str(exc)) from None
        sched = AnalyzerScheduler(
            client, settings, rules=rule_set, analyzers=selected, listeners=[findings_listener(dispatcher)]
        )
        reports = sched.run_once(when)
        dispatcher.sync(EngineFindingsSource(ClickHouseFindingStore(client)))
        delivered = dispatcher.flush(timeout=30)
        active = [f.to_dict() for f in sched.engine.open_findings()]
        if fmt is OutputFormat.JSON:
            doc = {
                "at": (when or sched.as_of_now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "runs": [{"analyzer": r.analyzer, "observations": r.observations, "error": r.error} for r in reports],
                "open_findings": active,
            }
            sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            for r in reports:
                status = f"[red]failed: {r.error}[/]" if r.error else f"{r.observations} observation(s)"
                console.print(f"{r.analyzer:10s} {status}")
            if active:
                console.print(_findings_table(active, "Open findings"))
            else:
                console.print("no open findings")
        if not delivered:
            err_console.print("[red]some alerts were not accepted by Alertmanager[/] (see `llmpulse alerts --check`)")
        if any(r.error for r in reports) or not delivered:
            raise typer.Exit(1)

    @app.command()
    def findings(
        state: Annotated[str | None, typer.Option(help="pending, firing or resolved.")] = None,
        alertname: Annotated[str | None, typer.Option(help="e.g. LLMCostSpike.")] = None,
        app_name: Annotated[str | None, typer.Option("--app", help="Only this app.")] = None,
        since: Annotated[str | None, typer.Option(help=f"Seen at or after: {SINCE_HELP}")] = None,
        limit: Annotated[int, typer.Option(min=1)] = 50,
        output: FormatOption = "table",
    ) -> None:
        """List stored findings, newest first."""
        from analyzers.engine import ClickHouseFindingStore, FindingQuery
        from analyzers.findings import AlertName, FindingState
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        fmt = output_format(output)
        if state and state not in {s.value for s in FindingState}:
            raise _fail(f"--state {state!r}: use pending, firing or resolved")
        if alertname and alertname not in {a.value for a in AlertName}:
            raise _fail(f"--alertname {alertname!r} is not one of {', '.join(a.value for a in AlertName)}")
        store = ClickHouseFindingStore(open_store(get_settings()))
        found = store.query(
            FindingQuery(state=state, alertname=alertname, app=app_name,
                         since=parse_time(since, "--since") if since else None, limit=limit)
        )
        rows = [f.to_dict() for f in found]
        if fmt is OutputFormat.JSON:
            sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        elif rows:
            console.print(_findings_table(rows, f"Findings ({len(rows)})"))
        else:
            console.print("no findings")

    @app.command()
    def backtest(
        from_: Annotated[str, typer.Option("--from", help=f"Replay start: {SINCE_HELP}")],
        to: Annotated[str, typer.Option("--to", help=f"Replay end (inclusive step): {SINCE_HELP}")],
        step: Annotated[str, typer.Option(help="Time between replayed runs.")] = "5m",
        rules: Annotated[Path | None, typer.Option(help="Rules YAML to try.")] = None,
        output: Annotated[str, typer.Option("--format", help="json (docs/backtest.md) or table.")] = "table",
        only: Annotated[str | None, typer.Option(help="Comma-separated analyzer names.")] = None,
        truth: Annotated[Path | None, typer.Option(help="Simulator ground truth to score against (table).")] = None,
    ) -> None:
        """Replay the analyzers over stored history as if they had run at every step; print the timeline."""
        from analyzers.backtest import run_backtest
        from analyzers.registry import build_analyzers
        from analyzers.scheduler import dashboard_base_url
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        fmt = output_format(output)
        settings = get_settings()
        step_td = duration(step, "--step")
        if truth is not None and not truth.is_file():
            raise _fail(f"--truth {truth}: no such file")
        if step_td < timedelta(minutes=1):
            raise _fail("--step must be at least 1m (analyses work on whole minutes)")
        start, end = parse_time(from_, "--from"), parse_time(to, "--to")
        if end <= start:
            raise _fail("--to must be after --from")
        rule_set = _rules(rules)
        try:
            selected = build_analyzers(settings, only=_only(only), plugins=settings.analyzers_plugins)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        client = open_store(settings)
        result = run_backtest(client, selected, rule_set, start, end, step_td,
                              dashboard_base_url=dashboard_base_url(settings))
        for r in result.errors[:5]:
            err_console.print(f"[yellow]warning:[/] {r.analyzer} failed at {r.at:%Y-%m-%d %H:%M}: {r.error}")
        if fmt is OutputFormat.JSON:
            sys.stdout.write(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
            return
        table = Table(title=f"Firing episodes {result.start:%Y-%m-%d %H:%M} → {result.end:%Y-%m-%d %H:%M} UTC, "
                            f"every {step} ({result.steps} steps)")
        for column in ("fired", "resolved", "severity", "alert", "labels", "value", "baseline", "summary"):
            table.add_column(column, overflow="fold")
        for e in result.episodes:
            table.add_row(f"{e.fired_at:%m-%d %H:%M}", f"{e.resolved_at:%m-%d %H:%M}" if e.resolved_at else "firing",
                          e.severity, e.alertname, ", ".join(f"{k}={v}" for k, v in e.labels.items()),
                          _num(e.value), _num(e.baseline), e.summary)
        console.print(table)
        console.print(f"{len(result.episodes)} episode(s); loaded in {result.load_seconds:.1f}s, replayed in "
                      f"{result.replay_seconds:.1f}s")
        if truth is not None:
            from analyzers.scoring import print_score, score, traffic_slices
            from llmpulse.simulate import DEFAULT_MODELS, default_apps, load_ground_truth

            sc = score(result.episodes, load_ground_truth(truth), traffic_slices(default_apps(), DEFAULT_MODELS))
            print_score(console, sc)
