"""``inferwatch evaluate`` (the worker) and ``inferwatch evaluators list|score``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from inferwatch.commands import command_database, err, fail

evaluators_app = typer.Typer(help="The evaluators: what runs here, and offline scoring.")
out = Console(markup=False, highlight=False, soft_wrap=True)
SCORE_BATCH = 256


def evaluate(
    host: Annotated[str | None, typer.Option(help="Interface for /metrics and /readyz.")] = None,
    port: Annotated[int | None, typer.Option(help="Port for /metrics and /readyz.")] = None,
) -> None:
    """Run the evaluator worker: sample new requests, score them, until interrupted."""
    import uvicorn

    from evaluators.app import create_app
    from evaluators.registry import configured
    from inferwatch.store.migrate import SchemaError, require_current_schema

    with command_database(sigterm_exit_code=0) as (settings, db):
        cfg = settings.evaluators
        try:
            chosen = configured(cfg, settings.serving.upstream_url)
            require_current_schema(db.engine)
        except (ValueError, SchemaError) as exc:
            raise fail(str(exc), 2) from None
        if not chosen:
            raise fail("no evaluator can run on this host (see `inferwatch evaluators list`)", 2)
        err.print(f"evaluators: {', '.join(e.name for e in chosen)}")
        uvicorn.run(
            create_app(cfg, chosen, db),
            host=host or cfg.host,
            port=port or cfg.port,
            log_level=settings.log_level.lower(),
            access_log=False,
        )


@evaluators_app.command("list")
def list_evaluators() -> None:
    """Every evaluator: its version, what it needs, and whether it can run on this host."""
    from evaluators.registry import shipped, survey
    from inferwatch.settings import Settings

    settings = Settings()
    table = Table("evaluator", "version", "needs", "tier", "here")
    for a in survey(shipped(settings.evaluators, settings.serving.upstream_url)):
        e = a.evaluator
        needs = ", ".join(sorted(n.value for n in e.needs))
        here = "available" if a.problem is None else f"unavailable: {a.problem}"
        table.add_row(e.name, e.version, needs, "cheap" if e.cheap else "sampled", here)
    out.print(table)


@evaluators_app.command("score")
def score(
    evaluator: Annotated[str, typer.Option(help="The evaluator's name.")],
    input_file: Annotated[
        Path,
        typer.Option(
            "--input",
            help="JSON lines with completion; optional prompt, context, and logprobs "
            "(the answer's token log-probabilities, or the gateway's summary of them).",
        ),
    ],
    output: Annotated[
        Path | None, typer.Option(help="Where to write the scored lines (default: stdout).")
    ] = None,
) -> None:
    """Score a JSON-lines file offline: each record comes back with score, label and evidence."""
    from evaluators.base import Record
    from evaluators.confidence import summary
    from evaluators.registry import select, shipped
    from inferwatch.settings import Settings

    settings = Settings()
    try:
        (chosen,) = select([evaluator], shipped(settings.evaluators, settings.serving.upstream_url))
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    originals: list[dict[str, Any]] = []
    records: list[Record] = []
    try:
        lines = input_file.read_bytes().splitlines()
    except OSError as exc:
        raise fail(f"cannot read {input_file}: {exc.strerror or exc}", 2) from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
            if not isinstance(item, dict):
                raise ValueError("expected a JSON object")
            record = Record(
                prompt=_text(item, "prompt"),
                completion=_text(item, "completion"),
                context=_text(item, "context"),
                logprobs=summary(item.get("logprobs") or {}),
            )
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
            raise fail(f"{input_file}:{number}: {exc}", 2) from None
        missing = [n.value for n in chosen.needs if not record.has(n)]
        if missing:
            raise fail(f"{input_file}:{number}: {chosen.name} needs {', '.join(missing)}", 2)
        originals.append(item)
        records.append(record)
    sink = output.open("wb") if output is not None else sys.stdout.buffer
    try:
        for start in range(0, len(records), SCORE_BATCH):
            batch = records[start : start + SCORE_BATCH]
            for item, result in zip(originals[start:], chosen.score(batch), strict=False):
                scored = {
                    **item,
                    "score": result.score,
                    "flagged": result.flagged,
                    "label": result.label,
                    "evidence": result.evidence,
                }
                sink.write(orjson.dumps(scored) + b"\n")
    finally:
        if output is not None:
            sink.close()
    err.print(f"scored {len(records)} records with {chosen.name} {chosen.version}")


def _text(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value
