"""`llmpulse` command line: the composition root for every process the project runs."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from llmpulse.console import console, err_console
from llmpulse.errors import OperatorError
from llmpulse.settings import Settings, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Observability and drift monitoring for LLM apps.")


def _settings() -> Settings:
    return get_settings()


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


@app.command()
def migrate() -> None:
    """Create or upgrade the ClickHouse schema (also done by every command that opens the store)."""
    from llmpulse.clickhouse import connect
    from llmpulse.migrate import Retention
    from llmpulse.migrate import migrate as run_migrations

    settings = _settings()
    client = connect(settings.clickhouse_url)
    applied = run_migrations(
        client,
        Retention(settings.events_retention_days, settings.text_retention_days, settings.rejected_retention_days),
    )
    if applied:
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

    from llmpulse.runtime import open_store
    from llmpulse.server import build_server_app

    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    client = open_store(settings)
    run_analyzers = settings.analyzers_enabled if analyzers is None else analyzers
    api = build_server_app(settings, client, kafka=kafka, analyzers=run_analyzers)
    uvicorn.run(api, host=host or settings.http_host, port=port or settings.http_port, log_level="info")


@app.command()
def ingest(
    files: Annotated[list[str], typer.Argument(help="NDJSON or JSON-array files, gzip allowed; '-' for stdin.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Bulk-load event files with the same validation, pricing and dead-lettering as the API."""
    from collector.file_ingest import ingest_files
    from llmpulse.runtime import build_ingest_service, open_store

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
    from llmpulse.simulate import SimulationConfig, parse_duration, write_simulation

    try:
        span = parse_duration(duration)
    except ValueError as exc:
        raise _fail(str(exc)) from None
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
    try:
        parsed = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(f"--start {start!r} is not RFC 3339") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def prices(
    unknown: Annotated[bool, typer.Option("--unknown", help="List models stored without a known price.")] = False,
    model: Annotated[str | None, typer.Option(help="Show the price the catalog would use for a model.")] = None,
    provider: Annotated[str | None, typer.Option(help="Provider for --model.")] = None,
) -> None:
    """Inspect pricing: unpriced models in the store, or what a model would cost."""
    from collector.pricing import TokenUsage
    from llmpulse.runtime import build_price_catalog, open_store

    settings = _settings()
    if model:
        catalog = build_price_catalog(settings)
        cost = catalog.cost(model=model, provider=provider, usage=TokenUsage(input_tokens=1_000_000),
                            at=datetime.now(UTC))
        out = catalog.cost(model=model, provider=provider, usage=TokenUsage(output_tokens=1_000_000),
                           at=datetime.now(UTC))
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
def summary() -> None:
    """Traffic, cost per request by model and latency percentiles of what is stored."""
    from analyzers.summary import summarize
    from llmpulse.report import print_summary
    from llmpulse.runtime import open_store

    print_summary(console, summarize(open_store(_settings())))


@app.command()
def demo(
    duration: Annotated[str, typer.Option(help="Simulated traffic to generate and load.")] = "1d",
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Simulate traffic with incidents, ingest it into the configured store, and show what is there."""
    from analyzers.summary import summarize
    from collector.file_ingest import ingest_files
    from llmpulse.report import print_summary
    from llmpulse.runtime import build_ingest_service, open_store
    from llmpulse.simulate import SimulationConfig, parse_duration, write_simulation

    settings = _settings()
    span = parse_duration(duration)
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
    from analyzers.registry import build_analyzers
    from analyzers.scheduler import dashboard_base_url, rules_from_settings
    from analyzers.scoring import print_score, score, traffic_slices

    started = time.perf_counter()
    result = run_backtest(client, build_analyzers(settings, plugins=settings.analyzers_plugins),
                          rules_from_settings(settings), begin, begin + span, timedelta(minutes=5),
                          dashboard_base_url=dashboard_base_url(settings))
    console.print(f"{len(result.episodes)} firing episode(s) in {result.steps} replayed runs, "
                  f"{time.perf_counter() - started:.1f}s (same analyzers as `llmpulse serve`; "
                  f"`llmpulse backtest --format json` prints them)")
    print_score(console, score(result.episodes, truth_items, traffic_slices(config.apps, config.models)),
                title="Detected vs injected (ground truth from the simulator)")


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
    registry = CollectorRegistry()
    collector = build_kafka_collector(settings, open_store(settings), registry=registry)
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
        f"as group {settings.kafka_group_id} into {settings.clickhouse_url}"
    )
    collector.run()


def main() -> None:
    from llmpulse.commands import register_all

    register_all(app)
    try:
        app()
    except OperatorError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
