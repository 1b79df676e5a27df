"""``inferwatch alerts``: run the engine, check rule files, show alerts, manage silences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from inferwatch.commands import command_database, err, fail

app = typer.Typer(
    help="Alert rules over latency, errors, cost, GPU and quality, with notifications. "
    "With no command: run the alert engine until interrupted.",
    invoke_without_command=True,
)
silence_app = typer.Typer(help="Hold back notifications for matching alerts.", no_args_is_help=True)
app.add_typer(silence_app, name="silence")
out = Console(markup=False, highlight=False, soft_wrap=True)


@app.callback()
def alerts(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface for /metrics and /readyz.")] = None,
    port: Annotated[int | None, typer.Option(help="Port for /metrics and /readyz.")] = None,
) -> None:
    """Run the alert engine until interrupted (or a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from alerting.app import create_app
    from alerting.rules import ConfigError, load_config
    from inferwatch.store.migrate import SchemaError, require_current_schema

    with command_database(sigterm_exit_code=0) as (settings, db):
        cfg = settings.alerting
        try:
            config = load_config(cfg.files, defaults=cfg.default_rules)
            require_current_schema(db.engine)
        except (ConfigError, SchemaError) as exc:
            raise fail(str(exc), 2) from None
        if not config.receivers:
            err.print("no receivers configured: alerts are evaluated and stored, not sent")
        app_ = create_app(cfg, config, db)
        uvicorn.run(
            app_,
            host=host or cfg.host,
            port=port or cfg.port,
            log_level=settings.log_level.lower(),
            access_log=False,
        )


@app.command()
def check(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Rule files (default: settings).")
    ] = None,
) -> None:
    """Validate rule and receiver files and list the rules they define."""
    from alerting.rules import ConfigError, load_config
    from inferwatch.settings import Settings

    settings = Settings().alerting
    try:
        config = load_config(files or settings.files, defaults=settings.default_rules)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(problem)
        raise typer.Exit(2) from None
    table = Table("rule", "condition", "for", "by", "severity")
    for rule in config.rules:
        condition = (
            f"{rule.aggregation.value}({rule.metric}[{_short(rule.window)}]) "
            f"{rule.comparison} {rule.threshold:g}"
        )
        for cond in rule.while_:
            condition += (
                f" while {cond.aggregation.value}({cond.metric}[{_short(cond.window)}]) "
                f"{cond.comparison} {cond.threshold:g}"
            )
        table.add_row(
            rule.name, condition, _short(rule.for_), ",".join(rule.group_by), rule.severity
        )
    out.print(table)
    out.print(f"{len(config.rules)} rules, {len(config.receivers)} receivers: OK")


def _short(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@app.command()
def status() -> None:
    """Pending and firing alerts, recent transitions and failed notifications."""
    from sqlalchemy import select

    from inferwatch.store.models import AlertDelivery, AlertEvent, AlertState

    with command_database() as (_, db), db.session() as s:
        states = s.scalars(
            select(AlertState).where(AlertState.state != "inactive").order_by(AlertState.rule)
        ).all()
        events = s.scalars(select(AlertEvent).order_by(AlertEvent.id.desc()).limit(20)).all()
        failed = s.scalars(
            select(AlertDelivery)
            .where(AlertDelivery.state == "failed")
            .order_by(AlertDelivery.id.desc())
            .limit(10)
        ).all()
        table = Table("alert", "state", "since", "value", "labels", title="alerts")
        for st in states:
            labels = ", ".join(
                f"{k}={v}"
                for k, v in sorted(st.labels.items())
                if k not in ("alertname", "severity")
            )
            since = st.fired_at or st.active_since
            table.add_row(
                st.rule,
                st.state,
                _when(since),
                f"{st.value:.4g}" if st.value is not None else "",
                labels,
            )
        out.print(table)
        history = Table("at", "alert", "transition", "value", title="recent transitions")
        for ev in events:
            history.add_row(
                _when(ev.at),
                ev.rule,
                f"{ev.from_state} → {ev.to_state}",
                "" if ev.value is None else f"{ev.value:.4g}",
            )
        out.print(history)
        for d in failed:
            tries = f"after {d.attempts} attempts"
            err.print(f"notification {d.id} to {d.receiver} failed {tries}: {d.last_error}")


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@silence_app.command("add")
def silence_add(
    matchers: Annotated[
        list[str], typer.Argument(help='Label matchers, e.g. alertname=TTFTHigh model=~"llama.*".')
    ],
    duration: Annotated[str, typer.Option(help="How long, e.g. 2h or 30m.")] = "1h",
    comment: Annotated[str | None, typer.Option(help="Why.")] = None,
    author: Annotated[str | None, typer.Option(help="Who.")] = None,
) -> None:
    """Silence alerts matching every MATCHER for a while."""
    from alerting.rules import Matcher, parse_duration
    from inferwatch.store.models import AlertSilence

    try:
        parsed = [Matcher.parse(m) for m in matchers]
        length = parse_duration(duration)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    now = datetime.now(UTC)
    with command_database() as (_, db), db.session() as s:
        silence = AlertSilence(
            matchers=[{"name": m.name, "op": m.op, "value": m.value} for m in parsed],
            starts_at=now,
            ends_at=now + length,
            created_by=author,
            comment=comment,
        )
        s.add(silence)
        s.flush()
        typer.echo(silence.id)
    err.print(f"silenced {' '.join(str(m) for m in parsed)} until {_when(now + length)} UTC")


@silence_app.command("list")
def silence_list() -> None:
    """Active and upcoming silences."""
    from sqlalchemy import select

    from inferwatch.store.models import AlertSilence

    with command_database() as (_, db), db.session() as s:
        rows = s.scalars(
            select(AlertSilence)
            .where(AlertSilence.ends_at > datetime.now(UTC))
            .order_by(AlertSilence.id)
        ).all()
        table = Table("id", "matchers", "from", "until", "by", "comment")
        for r in rows:
            matchers = " ".join(f'{m["name"]}{m["op"]}"{m["value"]}"' for m in r.matchers)
            table.add_row(
                str(r.id),
                matchers,
                _when(r.starts_at),
                _when(r.ends_at),
                r.created_by or "",
                r.comment or "",
            )
        out.print(table)


@silence_app.command("expire")
def silence_expire(silence_id: Annotated[int, typer.Argument(help="The silence's id.")]) -> None:
    """End a silence now."""
    from inferwatch.store.models import AlertSilence

    with command_database() as (_, db), db.session() as s:
        silence = s.get(AlertSilence, silence_id)
        if silence is None:
            raise fail(f"no silence {silence_id}", 2)
        now = datetime.now(UTC)
        if silence.ends_at > now:
            silence.starts_at = min(silence.starts_at, now - timedelta(microseconds=1))
            silence.ends_at = now
    err.print(f"silence {silence_id} expired")
