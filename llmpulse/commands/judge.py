"""`llmpulse judge run|status`: score the sampled events now, or show what the judge did and costs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from llmpulse.commands.output import instant
from llmpulse.console import console
from llmpulse.errors import OperatorError


def _fail(message: str) -> OperatorError:
    return OperatorError(message)


def parse_when(value: str | None, default: datetime, option: str = "time") -> datetime:
    """RFC 3339, 'now', or a duration before now ('2h' = two hours ago): llmpulse.timeparse."""
    if value is None:
        return default
    return instant(value, option)


def register(app: typer.Typer) -> None:
    judge = typer.Typer(no_args_is_help=True, help="LLM-judge quality scoring of sampled events.")
    app.add_typer(judge, name="judge")

    @judge.command("run")
    def run(
        since: Annotated[
            str | None, typer.Option(help="Start: RFC 3339 or a duration ago (default: lookback).")
        ] = None,
        until: Annotated[str | None, typer.Option(help="End: RFC 3339, 'now' or a duration ago.")] = None,
        limit: Annotated[int | None, typer.Option(help="At most this many events per rule.")] = None,
    ) -> None:
        """Judge the sampled, not yet judged events of every rule, within the caps."""
        from analyzers.judge.config import JudgeConfigError, build_judge_parts
        from analyzers.judge.rubrics import RubricError
        from analyzers.judge.rules import RulesError
        from analyzers.judge.store import JudgeStore
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        settings = get_settings()
        end = parse_when(until, datetime.now(UTC), "--until")
        start = parse_when(since, end - timedelta(hours=settings.judge_lookback_hours), "--since")
        if start >= end:
            raise _fail(f"--since ({start:%Y-%m-%d %H:%M}) must be before --until ({end:%Y-%m-%d %H:%M})")
        try:
            parts = build_judge_parts(settings)
        except (JudgeConfigError, RubricError, RulesError, ValueError) as exc:
            raise _fail(str(exc)) from None
        report = parts.runner(JudgeStore(open_store(settings))).run(
            since=start, until=end, trigger="cli", limit_per_rule=limit
        )
        table = Table(title=f"judge run {report.run_id[:8]}: {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC "
                            f"({settings.judge_model})")
        for column in ("rule", "candidates", "no output", "scored", "parse failures", "errors", "skipped (budget)",
                       "skipped (breaker/deadline)", "spend $", "stopped because"):
            table.add_column(column)
        for name, rr in report.rules.items():
            table.add_row(name, str(rr.candidates), str(rr.no_output), str(rr.scored), str(rr.parse_failures),
                          str(rr.errors), str(rr.skipped_budget), str(rr.skipped_breaker + rr.skipped_deadline),
                          f"{rr.spend_usd:.4f}", rr.stop_reason or "-")
        console.print(table)
        skipped = report.total("skipped_budget") + report.total("skipped_breaker") + report.total("skipped_deadline")
        console.print(
            f"{int(report.total('scored'))} scored, {int(report.total('parse_failures'))} parse failures, "
            f"{int(report.total('errors'))} errors, {int(skipped)} skipped, "
            f"{int(report.total('no_output'))} without output; spent ${report.total('spend_usd'):.4f}; "
            f"circuit breaker {report.breaker_state.value}"
        )

    @judge.command("status")
    def status() -> None:
        """Recent runs, usage against the caps, scores of the last day, judge–human agreement over time."""
        from analyzers.judge.config import build_rubrics
        from analyzers.judge.quality import calibration_history
        from analyzers.judge.store import JudgeStore
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        settings = get_settings()
        client = open_store(settings)
        store = JudgeStore(client)
        now = datetime.now(UTC)
        console.print(f"judge: {settings.judge_model} at {settings.judge_base_url or '(not configured)'}")
        usage = store.usage(now).get("*")
        if usage is not None:
            per_hour = settings.judge_max_per_hour
            per_day = settings.judge_max_usd_per_day
            console.print(
                f"this hour: {usage.judgments_this_hour} judgments (cap {per_hour if per_hour is not None else '-'})"
                f"; today: ${usage.usd_today:.4f} (cap {f'${per_day:.2f}' if per_day is not None else '-'})"
            )
        runs = store.recent_runs(10)
        if runs:
            table = Table(title="recent runs")
            for column in ("started", "trigger", "candidates", "scored", "parse fail", "errors", "skipped",
                           "spend $", "breaker", "note"):
                table.add_column(column)
            for r in runs:
                skipped = r["skipped_budget"] + r["skipped_breaker"] + r["skipped_deadline"]
                table.add_row(f"{r['started_at']:%Y-%m-%d %H:%M:%S}", r["trigger"], str(r["candidates"]),
                              str(r["scored"]), str(r["parse_failures"]), str(r["errors"]), str(skipped),
                              f"{r['spend_usd']:.4f}", r["breaker_state"], r["message"] or "-")
            console.print(table)
        else:
            console.print("no judge runs yet")
        summary = store.score_summary(now - timedelta(days=1))
        if summary:
            table = Table(title="judgments of the last 24h")
            for column in ("rubric", "status", "count", "mean score", "spend $", "p50 latency ms"):
                table.add_column(column)
            for row in summary:
                mean = row["mean_score"]
                table.add_row(row["rubric"], row["status"], str(row["count"]),
                              "-" if mean is None or mean != mean else f"{mean:.2f}",
                              f"{row['spend_usd']:.4f}", f"{row['p50_latency_ms']:.0f}")
            console.print(table)
        history = calibration_history(client, build_rubrics(settings), until=now)
        if history:
            table = Table(title=f"judge-human agreement per week (floor {settings.judge_kappa_floor})")
            for column in ("week of", "rubric", "kappa", "95% CI", "n"):
                table.add_column(column)
            for start, results in history:
                for rubric, k in results.items():
                    table.add_row(f"{start:%Y-%m-%d}", rubric, f"{k.kappa:.2f}", f"{k.ci_low:.2f}-{k.ci_high:.2f}",
                                  str(k.n))
            console.print(table)
        else:
            console.print("no human labels yet: `llmpulse review export` then `llmpulse review import FILE`")
