"""`llmpulse` command line: the composition root for every process the project runs."""

from __future__ import annotations

import logging
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from llmpulse.commands.output import FormatOption, OutputFormat, output_format, write_json
from llmpulse.console import console, err_console
from llmpulse.errors import OperatorError
from llmpulse.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Iterable

    from analyzers.engine import Finding

def _print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def operator_exit(exc: BaseException) -> typer.Exit | None:
    """The one-line message and exit code for an error an operator can act on; None for anything else (a bug)."""
    if isinstance(exc, OperatorError):
        _print_error(exc.message)
        return typer.Exit(exc.exit_code)
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        for line in settings_errors(exc):
            _print_error(line)
        return typer.Exit(2)
    if isinstance(exc, SettingsError):
        # Raised before validation, when an env var of a list/mapping setting is not valid JSON.
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"LLMPULSE_{found.group(1).upper()}" if found else "a setting"
        _print_error(f"{name}: cannot be parsed (this setting takes JSON, e.g. [\"a\", \"b\"])")
        return typer.Exit(2)
    return None


class _OperatorErrorGroup(TyperGroup):
    """Every command, however it is invoked (console script, `python -m`, CliRunner), ends an operator error the
    same way: one line on stderr and its exit code."""

    # Any: typer vendors its own click, whose Context type is not public.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (OperatorError, ValidationError, SettingsError) as exc:
            converted = operator_exit(exc)
            if converted is None:
                raise
            raise converted from None


app = typer.Typer(
    cls=_OperatorErrorGroup,
    add_completion=False,
    no_args_is_help=True,
    help="Observability and drift monitoring for LLM apps.",
)


def _settings() -> Settings:
    return get_settings()


def _fail(message: str) -> OperatorError:
    return OperatorError(message)


@app.command()
def migrate(output: FormatOption = "table") -> None:
    """Create or upgrade the ClickHouse schema (also done by every command that opens the store)."""
    from llmpulse.migrate import Retention
    from llmpulse.migrate import migrate as run_migrations
    from llmpulse.runtime import connect_store

    settings = _settings()
    fmt = output_format(output)
    client = connect_store(settings)
    applied = run_migrations(
        client,
        Retention(settings.events_retention_days, settings.text_retention_days, settings.rejected_retention_days),
    )
    if fmt is OutputFormat.JSON:
        write_json({"applied": [{"version": m.version, "name": m.name} for m in applied]})
    elif applied:
        for migration in applied:
            console.print(f"applied {migration.version:04d}_{migration.name}")
    else:
        console.print("schema is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (LLMPULSE_HTTP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (LLMPULSE_HTTP_PORT).")] = None,
    kafka: Annotated[
        bool, typer.Option("--kafka/--no-kafka", help="Also consume the Kafka topics (like `collect`).")
    ] = False,
    analyzers: Annotated[
        bool | None,
        typer.Option("--analyzers/--no-analyzers", help="Run the analyzer scheduler (LLMPULSE_ANALYZERS_ENABLED)."),
    ] = None,
) -> None:
    """Run the API (events, OTLP, findings, /healthz, /metrics, /docs), the analyzers and alert delivery."""
    import uvicorn

    from alerts.sender import AlertmanagerURLError
    from llmpulse.runtime import open_store
    from llmpulse.server import build_server_app

    settings = _settings()
    bind_host, bind_port = host or settings.http_host, port or settings.http_port
    _check_bindable(bind_host, bind_port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    client = open_store(settings)
    run_analyzers = settings.analyzers_enabled if analyzers is None else analyzers
    try:
        api = build_server_app(settings, client, kafka=kafka, analyzers=run_analyzers)
    except AlertmanagerURLError as exc:
        raise _fail(str(exc)) from None
    uvicorn.run(api, host=bind_host, port=bind_port, log_level="info")


def _check_bindable(host: str, port: int) -> None:
    """Fail in one line before anything starts when the API's address cannot be bound (uvicorn would log it
    after the store, analyzers and workers started)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise _fail(f"cannot listen on {host}:{port} (LLMPULSE_HTTP_HOST / --host): {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise _fail(
                f"cannot listen on {host}:{port} (LLMPULSE_HTTP_PORT / --port): {exc.strerror or exc}"
            ) from None


@app.command()
def ingest(
    files: Annotated[list[str], typer.Argument(help="NDJSON or JSON-array files, gzip allowed; '-' for stdin.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    output: FormatOption = "table",
) -> None:
    """Bulk-load event files with the same validation, pricing and dead-lettering as the API."""
    from collector.file_ingest import ingest_files
    from llmpulse.runtime import build_ingest_service, open_store

    fmt = output_format(output)
    for path in files:
        if path != "-" and not Path(path).is_file():
            raise _fail(f"no such file: {path}")
    settings = _settings()
    service = build_ingest_service(settings, open_store(settings))
    service.inserter.start()
    started = time.perf_counter()
    try:
        with Progress(
            TextColumn("[bold]ingest"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=err_console, disable=quiet, transient=True,
        ) as progress:
            task = progress.add_task("ingest", total=None)

            def on_progress(position: int, size: int) -> None:
                progress.update(task, completed=position, total=size or None)

            report = ingest_files(files, service, stdin=sys.stdin.buffer, on_progress=on_progress)
    finally:
        service.inserter.stop()
    elapsed = time.perf_counter() - started
    if fmt is OutputFormat.JSON:
        write_json({
            "files": report.files, "accepted": report.accepted, "stored": report.stored,
            "duplicates": report.duplicates, "rejected": report.rejected, "unpriced": report.unpriced,
            "sample_reasons": list(report.sample_reasons), "seconds": round(elapsed, 3),
        })
        return
    console.print(
        f"{report.files} file(s): {report.accepted:,} accepted ({report.stored:,} stored, "
        f"{report.duplicates:,} already stored), {report.rejected:,} rejected, "
        f"{report.unpriced:,} without a known price, in {elapsed:.1f}s"
    )
    for reason in report.sample_reasons[:10]:
        console.print(f"  rejected: {reason}")
    if report.rejected:
        console.print("  all rejected items are kept in the rejected_events table")


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Where to write events (NDJSON; .gz compresses).")] = Path(
        ".llmpulse/sim/events.ndjson"
    ),
    truth: Annotated[Path | None, typer.Option(help="Ground-truth JSON (default: beside --out).")] = None,
    duration: Annotated[str, typer.Option(help="How much traffic: 90m, 36h, 1d, 7d.")] = "1d",
    start: Annotated[str | None, typer.Option(help="RFC 3339 start (default: the duration before now).")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same traffic.")] = 7,
    rate: Annotated[float | None, typer.Option(help="Mean events per minute.")] = None,
    clean: Annotated[bool, typer.Option("--clean", help="No incidents.")] = False,
    no_text: Annotated[bool, typer.Option("--no-text", help="Leave out prompt/response texts.")] = False,
) -> None:
    """Generate realistic traffic with scheduled incidents and their ground truth."""
    from llmpulse.commands.output import duration as parse_span
    from llmpulse.simulate import SimulationConfig, write_simulation

    span = parse_span(duration, "--duration")
    begin = _parse_start(start, span)
    kwargs: dict[str, object] = {"start": begin, "duration": span, "seed": seed, "text": not no_text, "clean": clean}
    if rate is not None:
        kwargs["rate_per_minute"] = rate
    config = SimulationConfig(**kwargs)  # type: ignore[arg-type]
    truth_path = truth or out.with_name(out.name.split(".")[0] + ".truth.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = write_simulation(config, out, truth_path)
    console.print(f"wrote {summary.events:,} events to {out} and ground truth to {truth_path}")


def _parse_start(start: str | None, span: timedelta) -> datetime:
    if start is None:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        return now - span
    from llmpulse.commands.output import instant

    return instant(start, "--start")


@app.command()
def prices(
    unknown: Annotated[bool, typer.Option("--unknown", help="List models stored without a known price.")] = False,
    model: Annotated[str | None, typer.Option(help="Show the price the catalog would use for a model.")] = None,
    provider: Annotated[str | None, typer.Option(help="Provider for --model.")] = None,
    output: FormatOption = "table",
) -> None:
    """Inspect pricing: unpriced models in the store, or what a model would cost."""
    from collector.pricing import TokenUsage
    from llmpulse.runtime import ConfigError, build_price_catalog, open_store

    fmt = output_format(output)
    settings = _settings()
    if model:
        try:
            catalog = build_price_catalog(settings)
        except ConfigError as exc:
            raise _fail(f"LLMPULSE_PRICES_FILE: {exc}") from None
        cost = catalog.cost(model=model, provider=provider, usage=TokenUsage(input_tokens=1_000_000),
                            at=datetime.now(UTC))
        out = catalog.cost(model=model, provider=provider, usage=TokenUsage(output_tokens=1_000_000),
                           at=datetime.now(UTC))
        if fmt is OutputFormat.JSON:
            write_json({
                "model": model, "provider": provider, "known": cost.total_usd is not None,
                "source": cost.source.value, "matched_model": cost.matched_model,
                "usd_per_million_input_tokens": cost.total_usd, "usd_per_million_output_tokens": out.total_usd,
            })
            return
        if cost.total_usd is None:
            console.print(f"{model}: no known price (events will be stored with NULL cost)")
        else:
            console.print(
                f"{model} ({cost.source.value}, matched {cost.matched_model}): "
                f"${cost.total_usd:.4f} per 1M input tokens, ${out.total_usd or 0:.4f} per 1M output tokens"
            )
        return
    if not unknown:
        raise _fail("say what to show: --unknown, or --model NAME")
    from analyzers.summary import unpriced_models

    rows = unpriced_models(open_store(settings))
    if fmt is OutputFormat.JSON:
        write_json({"unpriced_models": rows})
        return
    if not rows:
        console.print("every stored event has a price")
        return
    table = Table(title="Models without a known price (cost stored as NULL)")
    for column in ("provider", "model", "events", "first seen", "last seen"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.provider or "-", row.model, f"{row.events:,}", f"{row.first_seen:%Y-%m-%d %H:%M}",
                      f"{row.last_seen:%Y-%m-%d %H:%M}")
    console.print(table)
    console.print("Add a price override (LLMPULSE_PRICES_FILE) for self-hosted or negotiated models.")


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option(help="Write to a file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of the event contract (docs/event-schema.json is generated by this)."""
    from collector.events import event_json_schema

    text = orjson.dumps(event_json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    if out:
        out.write_text(text, "utf-8")
    else:
        sys.stdout.write(text)


@app.command()
def summary(output: FormatOption = "table") -> None:
    """Traffic, cost per request by model and latency percentiles of what is stored."""
    from analyzers.summary import summarize
    from llmpulse.report import print_summary
    from llmpulse.runtime import open_store

    fmt = output_format(output)
    result = summarize(open_store(_settings()))
    if fmt is OutputFormat.JSON:
        write_json(result)
    else:
        print_summary(console, result)


@app.command()
def demo(
    duration: Annotated[str, typer.Option(help="Simulated traffic to generate and load.")] = "1d",
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Simulate traffic with incidents, ingest it into the configured store, and show what is there."""
    from analyzers.summary import summarize
    from collector.file_ingest import ingest_files
    from llmpulse.commands.output import duration as parse_span
    from llmpulse.report import print_summary
    from llmpulse.runtime import build_ingest_service, open_store
    from llmpulse.simulate import SimulationConfig, write_simulation

    settings = _settings()
    span = parse_span(duration, "--duration")
    # Anchored to today's UTC midnight: a second demo run on the same day re-sends the same events,
    # and the store shows them as already stored instead of counting them twice.
    begin = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - span
    sim_dir = Path(".llmpulse/sim")
    sim_dir.mkdir(parents=True, exist_ok=True)
    events_path, truth_path = sim_dir / f"demo-{seed}.ndjson.gz", sim_dir / f"demo-{seed}.truth.json"
    console.rule("[bold]1. simulate")
    config = SimulationConfig(start=begin, duration=span, seed=seed)
    started = time.perf_counter()
    sim = write_simulation(config, events_path, truth_path)
    console.print(f"{sim.events:,} events over {duration} from {begin:%Y-%m-%d %H:%M} UTC "
                  f"in {time.perf_counter() - started:.1f}s -> {events_path}")
    console.rule("[bold]2. ingest")
    client = open_store(settings)
    service = build_ingest_service(settings, client)
    service.inserter.start()
    started = time.perf_counter()
    try:
        report = ingest_files([str(events_path)], service)
    finally:
        service.inserter.stop()
    elapsed = time.perf_counter() - started
    console.print(f"{report.accepted:,} accepted, {report.stored:,} newly stored, {report.duplicates:,} already "
                  f"stored, {report.rejected:,} rejected in {elapsed:.1f}s ({report.accepted / elapsed:,.0f} events/s) "
                  f"into {settings.clickhouse_url}")
    console.rule("[bold]3. what the store holds")
    print_summary(console, summarize(client))
    truth_items = orjson.loads(truth_path.read_bytes())
    console.rule("[bold]4. what the analyzers detect (a backtest over the simulated span, every 5 minutes)")
    from analyzers.backtest import run_backtest
    from analyzers.engine import ClickHouseFindingStore, MemoryFindingStore
    from analyzers.registry import build_analyzers
    from analyzers.scheduler import dashboard_base_url, rules_from_settings
    from analyzers.scoring import print_score, score, traffic_slices

    started = time.perf_counter()
    replayed = MemoryFindingStore()
    result = run_backtest(client, build_analyzers(settings, plugins=settings.analyzers_plugins),
                          rules_from_settings(settings), begin, begin + span, timedelta(minutes=5),
                          dashboard_base_url=dashboard_base_url(settings), store=replayed)
    kept = demo_findings(replayed.episodes.values())
    ClickHouseFindingStore(client).save(kept)
    console.print(f"{len(result.episodes)} firing episode(s) in {result.steps} replayed runs, "
                  f"{time.perf_counter() - started:.1f}s (same analyzers as `llmpulse serve`); "
                  f"{len(kept)} finding(s) kept in the store: `llmpulse findings`, `llmpulse report --week`")
    print_score(console, score(result.episodes, truth_items, traffic_slices(config.apps, config.models)),
                title="Detected vs injected (ground truth from the simulator)")


def demo_findings(replayed: Iterable[Finding]) -> list[Finding]:
    """The replay's findings that fired, with ids derived from what they are (condition + first seen), so a
    second demo over the same span replaces them in the findings table instead of adding copies."""
    import hashlib
    from dataclasses import replace

    kept = []
    for finding in replayed:
        if finding.fired_at is None:
            continue
        key = f"demo|{finding.fingerprint}|{finding.first_seen.astimezone(UTC).isoformat()}"
        kept.append(replace(finding, finding_id="demo-" + hashlib.sha256(key.encode()).hexdigest()[:15]))
    return sorted(kept, key=lambda f: f.first_seen)


@app.command()
def collect(
    topic: Annotated[list[str] | None, typer.Option("--topic", "-t", help="Topic(s) (LLMPULSE_KAFKA_TOPICS).")] = None,
    bootstrap: Annotated[str | None, typer.Option(help="Brokers host:port,... (LLMPULSE_KAFKA_BOOTSTRAP).")] = None,
    group_id: Annotated[str | None, typer.Option(help="Consumer group (LLMPULSE_KAFKA_GROUP_ID).")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port (LLMPULSE_KAFKA_METRICS_PORT).")
    ] = None,
) -> None:
    """Consume trace events from Kafka into the store until SIGTERM/SIGINT (then flush, commit, leave)."""
    import signal

    from prometheus_client import CollectorRegistry, start_http_server

    from llmpulse.runtime import build_kafka_collector, open_store
    from llmpulse.urls import display_url

    settings = _settings()
    overrides: dict[str, object] = {}
    if topic:
        overrides["kafka_topics"] = [t for value in topic for t in value.split(",") if t]
    if bootstrap:
        overrides["kafka_bootstrap"] = bootstrap
    if group_id:
        overrides["kafka_group_id"] = group_id
    if overrides:
        settings = settings.model_copy(update=overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every connection, join and fetch at INFO; the collector logs what an operator needs.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    registry = CollectorRegistry()
    collector = build_kafka_collector(settings, open_store(settings), registry=registry, role="collect")
    port = metrics_port if metrics_port is not None else settings.kafka_metrics_port
    if port is not None:
        start_http_server(port, registry=registry)
        err_console.print(f"metrics on http://0.0.0.0:{port}/metrics")

    def stop(signum: int, _frame: object) -> None:
        logging.getLogger("llmpulse.collect").info("signal %d: stopping", signum)
        collector.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    err_console.print(
        f"consuming {', '.join(settings.kafka_topics)} from {settings.kafka_bootstrap} "
        f"as group {settings.kafka_group_id} into {display_url(settings.clickhouse_url)}"
    )
    from kafka.errors import FencedInstanceIdError

    from llmpulse.kafka_config import fenced_message

    try:
        collector.run()
    except FencedInstanceIdError:
        raise OperatorError(fenced_message(settings, collector.group_instance_id)) from None


def main() -> None:
    from llmpulse.commands import register_all

    register_all(app)
    app()


_SECRET_WORDS = ("password", "token", "secret", "api_key", "key_file")


def settings_errors(exc: ValidationError) -> list[str]:
    """One line per invalid setting, named as the operator sets it (LLMPULSE_...), with the value unless secret."""
    lines = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        env = f"LLMPULSE_{field.upper()}"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        value = error.get("input")
        shown = "" if any(w in field for w in _SECRET_WORDS) or isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{env}: {message}{shown}")
    return lines


if __name__ == "__main__":
    main()
