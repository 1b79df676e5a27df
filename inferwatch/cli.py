"""The ``inferwatch`` command. Each subcommand builds ``Settings`` once and passes it on."""

from __future__ import annotations

import logging
import signal
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from alerting.cli import app as alerts_app
from evaluators.cli import evaluate, evaluators_app
from inferwatch.commands import command_database as _command_database
from inferwatch.commands import err
from inferwatch.commands import fail as _fail
from inferwatch.commands import setup as _setup
from inferwatch.settings import Settings
from inferwatch.store.database import libpq_url
from ui.cli import ui

app = typer.Typer(
    help="InferWatch: self-hosted observability for LLM inference.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="The InferWatch database: schema and location.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(alerts_app, name="alerts")
app.add_typer(evaluators_app, name="evaluators")
app.command()(evaluate)
app.command()(ui)


@app.command()
def collector(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="OTLP/HTTP port.")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="OTLP/gRPC port.")] = None,
    grpc: Annotated[bool, typer.Option(help="Serve OTLP/gRPC too.")] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes sharing the port (one core each).")
    ] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request.")] = False,
) -> None:
    """Run the OTLP collector (POST /v1/traces) until interrupted."""
    import os
    import shutil

    import uvicorn

    from collector.prices import PriceError, load_prices
    from inferwatch.store.migrate import SchemaError, require_current_schema

    # The database is held for the whole run: worker processes share this embedded server.
    with _command_database(sigterm_exit_code=0) as (settings, db):
        try:
            revision = require_current_schema(db.engine)
        except SchemaError as exc:
            raise _fail(str(exc), 2) from None
        logging.getLogger("inferwatch").info("schema at revision %s", revision)
        cfg = settings.collector
        try:
            load_prices(cfg.prices_file)  # refuse a bad prices file before starting anything
        except PriceError as exc:
            raise _fail(str(exc), 2) from None
        http_host, http_port = host or cfg.host, port or cfg.port
        grpc_at = (grpc_port if grpc_port is not None else cfg.grpc_port) if grpc else None
        _require_free(http_host, http_port, "OTLP/HTTP", "--port")
        if grpc_at is not None:
            _require_free(http_host, grpc_at, "OTLP/gRPC", "--grpc-port or --no-grpc")

        # Worker processes build their settings from the environment.
        os.environ["INFERWATCH_COLLECTOR__HOST"] = http_host
        os.environ["INFERWATCH_COLLECTOR__GRPC_PORT"] = "none" if grpc_at is None else str(grpc_at)
        metrics_dir = settings.home.resolve() / "run" / f"collector-metrics-{os.getpid()}"
        if workers > 1:  # metrics of all workers, summed at /metrics
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        try:
            uvicorn.run(
                "collector.main:create",
                factory=True,
                host=http_host,
                port=http_port,
                workers=workers,
                log_level=settings.log_level.lower(),
                access_log=access_log,
            )
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _require_free(host: str, port: int, what: str, hint: str) -> None:
    if not _can_listen(host, port):
        raise _fail(
            f"cannot listen for {what} on {host}:{port}: the address is in use "
            f"(choose another with {hint})",
            2,
        )


def _can_listen(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


model_app = typer.Typer(help="The model `inferwatch serve` runs.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("prepare")
def model_prepare() -> None:
    """Make the default model (SmolLM2-135M-Instruct) available offline; skips if done."""
    from serving.model import ModelPreparationError, prepare_default_model

    settings = Settings()
    _setup(settings)
    try:
        path = prepare_default_model(settings.home, progress=err.print)
    except ModelPreparationError as exc:
        raise _fail(str(exc), 2) from None
    typer.echo(path)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Gateway interface.")] = None,
    port: Annotated[int | None, typer.Option(help="Gateway port.")] = None,
) -> None:
    """Start vLLM (subprocess, loopback) and the traced OpenAI-compatible gateway in front."""
    import os
    import threading
    from urllib.parse import urlsplit

    import uvicorn

    from inferwatch.heap import freeze_startup_heap
    from serving.gateway import create_gateway
    from serving.model import ModelPreparationError, prepare_default_model
    from serving.telemetry import register_engine, tracer_provider
    from serving.vllm import VllmConfig, VllmDied, VllmProcess, vllm_command, vllm_environment

    settings = Settings()
    _setup(settings, sigterm_exit_code=0)
    cfg = settings.serving
    try:
        model = settings.model or str(prepare_default_model(settings.home, progress=err.print))
    except ModelPreparationError as exc:
        raise _fail(str(exc), 2) from None
    upstream = urlsplit(cfg.upstream_url)
    vcfg = VllmConfig(
        model=model,
        served_model_name=cfg.served_model_name or model.rstrip("/").rsplit("/", 1)[-1],
        host=upstream.hostname or "127.0.0.1",
        port=upstream.port or 8001,
        otlp_traces_endpoint=f"{cfg.collector_url.rstrip('/')}/v1/traces",
        max_model_len=cfg.vllm_max_model_len,
        enforce_eager=cfg.vllm_enforce_eager,
        cpu_kv_cache_gib=cfg.vllm_cpu_kvcache_gib,
        extra_args=tuple(cfg.vllm_args),
    )
    vllm = VllmProcess(vllm_command(vcfg), vllm_environment(vcfg, os.environ), f"{vcfg.url}/health")
    vllm.start()
    provider = tracer_provider(cfg.collector_url)
    died: list[Exception] = []
    try:
        try:
            vllm.wait_ready(
                cfg.vllm_start_timeout_s,
                progress=lambda waited: err.print(
                    f"waiting for vLLM to load {vcfg.served_model_name}: {waited:.0f} s", end="\r"
                ),
            )
        except (VllmDied, TimeoutError) as exc:
            raise _fail(str(exc), 1) from None
        err.print(
            f"vLLM is serving {vcfg.served_model_name} at {vcfg.url}; gateway on "
            f"http://{host or cfg.host}:{port or cfg.port}"
        )
        problem = register_engine(
            cfg.collector_url, vcfg.url, name=vcfg.served_model_name, pid=vllm.pid
        )
        if problem is not None:
            err.print(f"could not register vLLM with the collector (no engine metrics): {problem}")

        def watch() -> None:  # a vLLM that dies while serving stops the gateway too
            while vllm.exit_code() is None:
                time.sleep(1)
            died.append(vllm.died())
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="vllm-watch", daemon=True).start()
        gateway = create_gateway(cfg, provider)
        freeze_startup_heap()
        uvicorn.run(
            gateway,
            host=host or cfg.host,
            port=port or cfg.port,
            log_level=settings.log_level.lower(),
            access_log=False,
        )
    finally:
        provider.shutdown()
        vllm.stop()
        if died:  # raised here, it replaces the clean exit the SIGTERM above would give
            raise _fail(str(died[0]), 1)


@app.command()
def up(
    serve_model: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start vLLM and the gateway.")
    ] = True,
    vllm_url: Annotated[
        str | None,
        typer.Option(help="Monitor this running vLLM (its /metrics) instead of starting one."),
    ] = None,
    evaluate: Annotated[bool, typer.Option(help="Run the evaluator worker.")] = True,
    alerts: Annotated[bool, typer.Option(help="Run the alert engine.")] = True,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Run the dashboard.")] = True,
    detach: Annotated[
        bool, typer.Option(help="Run in the background; `inferwatch down` stops it.")
    ] = False,
) -> None:
    """Start everything, supervised: database, migrations, collector, model, vLLM + gateway,
    evaluator worker, alert engine, dashboard.

    Ctrl-C (or `inferwatch down`) stops it all in reverse order."""
    from inferwatch import up as running

    if detach:
        settings = Settings()
        arguments = [] if serve_model else ["--no-serve"]
        arguments += [] if vllm_url is None else ["--vllm-url", vllm_url]
        arguments += [] if evaluate else ["--no-evaluate"]
        arguments += [] if alerts else ["--no-alerts"]
        arguments += [] if ui else ["--no-ui"]
        try:
            run_file = running.detach(settings, arguments)
        except running.UpError as exc:
            raise _fail(str(exc), exc.code) from None
        _print_status(run_file, {name: True for name in run_file.services})
        err.print(f"logs: {running.RunFile.path(settings.home.resolve()).with_name('up.log')}")
        return
    with _command_database(sigterm_exit_code=0) as (settings, db):
        try:
            running.run(
                settings,
                db,
                serve_model=serve_model,
                vllm_url=vllm_url,
                evaluate=evaluate,
                alerts=alerts,
                ui=ui,
            )
        except running.UpError as exc:
            raise _fail(str(exc), exc.code) from None


@app.command()
def status() -> None:
    """Whether `inferwatch up` runs on this home, and each service's readiness (exit 3: not up)."""
    from inferwatch import up as running

    run_file, ready = running.status(Settings())
    if run_file is None:
        err.print("InferWatch is not up")
        raise typer.Exit(3)
    _print_status(run_file, ready)
    if not all(ready.values()):
        raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop the `inferwatch up` running on this home, as Ctrl-C would."""
    from inferwatch import up as running

    try:
        pid = running.down(Settings())
    except running.UpError as exc:
        raise _fail(str(exc), exc.code) from None
    err.print("InferWatch was not up" if pid is None else f"stopped InferWatch (pid {pid})")


def _print_status(run_file: Any, ready: dict[str, bool]) -> None:
    table = Table("service", "url", "state")
    for name, url in run_file.services.items():
        state = Text("ready", style="green") if ready.get(name) else Text("not ready", style="red")
        table.add_row(name, url, state)
    table.add_row("up", f"pid {run_file.pid}", "")
    table.add_row("database", run_file.database, "")
    Console(highlight=False, soft_wrap=True).print(table)


@app.command()
def demo(
    duration: Annotated[float, typer.Option(min=1, help="Seconds to send for.")] = 60.0,
    rate: Annotated[float, typer.Option(min=0.01, help="Requests per second, on average.")] = 1.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at most.")] = 4,
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest answer asked for.")] = 64,
    seed: Annotated[int, typer.Option(help="Makes the workload repeatable.")] = 0,
    gateway: Annotated[str | None, typer.Option(help="Gateway URL (default: settings).")] = None,
    collector: Annotated[
        str | None, typer.Option(help="Collector URL, for feedback (default: settings).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model (default: the gateway's first).")] = None,
) -> None:
    """Send a realistic workload through the gateway, with feedback, and summarise it."""
    import asyncio

    import openai
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from inferwatch.demo import Summary, run_demo

    settings = Settings()
    gateway_url = gateway or f"http://{settings.serving.host}:{settings.serving.port}"
    collector_url = collector or f"http://{settings.collector.host}:{settings.collector.port}"
    out = Console(highlight=False, soft_wrap=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=out) as progress:
        bar = progress.add_task("demo", total=duration)

        def show(elapsed: float, summary: Summary) -> None:
            done = f"{summary.requests} done, {summary.errors} errors"
            progress.update(bar, completed=elapsed, description=f"demo: {done}")

        try:
            summary = asyncio.run(
                run_demo(
                    gateway_url,
                    collector_url,
                    duration_s=duration,
                    rate=rate,
                    concurrency=concurrency,
                    max_tokens=max_tokens,
                    seed=seed,
                    model=model,
                    on_progress=show,
                )
            )
        except openai.APIError as exc:
            message = f"the gateway at {gateway_url} answered: {exc} (is `inferwatch up` running?)"
            raise _fail(message) from None
        progress.update(bar, completed=duration, description=f"demo: {summary.requests} done")
    p95 = summary.p95_ttft_ms
    table = Table("requests", "errors", "cancelled", "feedback", "p95 TTFT", "tokens/s")
    table.add_row(
        str(summary.requests),
        str(summary.errors),
        str(summary.cancelled),
        str(summary.feedback),
        "-" if p95 is None else f"{p95:.0f} ms",
        f"{summary.tokens_per_s:.1f}",
    )
    out.print(table)
    if summary.first_error:
        err.print(f"first error: {summary.first_error}")
    out.print(
        'Look at them: inferwatch sql "SELECT model, status, ttft_ms, e2e_ms, output_tokens '
        'FROM llm_requests ORDER BY started_at DESC LIMIT 20"\n'
        'and the feedback: inferwatch sql "SELECT * FROM llm_request_feedback '
        'ORDER BY last_feedback_at DESC LIMIT 20"'
    )
    if summary.requests == 0 or summary.errors == summary.requests:
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from inferwatch.store import migrate

    with _command_database() as (_, db):
        migrate.upgrade(db.engine, revision)
        with db.engine.connect() as conn:
            err.print(f"database at revision {migrate.current_revision(conn)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision (e.g. base); default: one step back.")
    ] = "-1",
) -> None:
    """Revert migrations: one step, or down to REVISION."""
    from inferwatch.store import migrate

    with _command_database() as (_, db):
        migrate.downgrade(db.engine, revision)
        with db.engine.connect() as conn:
            err.print(f"database at revision {migrate.current_revision(conn)}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision and whether it matches this code."""
    from inferwatch.store import migrate

    with _command_database() as (_, db), db.engine.connect() as conn:
        current = migrate.current_revision(conn)
    typer.echo(current or "(empty)")
    problem = migrate.schema_problem(current)
    err.print("schema is current" if problem is None else problem)
    if problem is not None:
        raise typer.Exit(1)


@db_app.command("grant-readonly")
def db_grant_readonly(
    user: Annotated[str, typer.Argument(help="The role to create or update.")],
    password_env: Annotated[
        str | None,
        typer.Option(help="Name of an environment variable holding the role's password."),
    ] = None,
) -> None:
    """Create (or update) a read-only role for people and dashboards: SELECT on every table
    and view, now and after future migrations, in read-only sessions."""
    import os

    import psycopg

    from inferwatch.store.roles import grant_readonly

    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise _fail(f"the environment variable {password_env} is not set", 2)
    with _command_database() as (_, db):
        try:
            created = grant_readonly(db.engine, user, password)
        except psycopg.Error as exc:
            raise _fail(str(exc).strip()) from None
    err.print(f"{'created' if created else 'updated'} read-only role {user}")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL (for psql and other clients)."""
    with _command_database() as (_, db):
        was_running = db.embedded.is_running() if db.embedded is not None else True
        typer.echo(libpq_url(db.url))
        if not was_running:
            err.print(
                "note: the embedded server runs while an InferWatch process uses it; "
                "none does now, so it stops when this command exits"
            )


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One SQL statement.")],
    output: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    timeout: Annotated[float, typer.Option(help="Statement timeout in seconds.")] = 60.0,
) -> None:
    """Run a query in a read-only transaction and print the result."""
    import psycopg

    from inferwatch.sqlquery import run_readonly, to_csv, to_json

    if output not in ("table", "csv", "json"):
        raise _fail(f"unknown format {output!r}: use table, csv or json", 2)
    with _command_database() as (_, db):
        try:
            result = run_readonly(db.url, query, timeout_s=timeout)
        except psycopg.Error as exc:
            raise _fail(str(exc).strip()) from None
    if output == "csv":
        typer.echo(to_csv(result), nl=False)
    elif output == "json":
        typer.echo(to_json(result))
    else:
        _print_table(result.columns, result.rows)


def _print_table(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    from inferwatch.sqlquery import cell

    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    Console().print(table)
    err.print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


if __name__ == "__main__":
    app()
