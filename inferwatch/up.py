"""``inferwatch up``, ``status`` and ``down``: every InferWatch process, supervised, as one.

``up`` holds the database (the embedded server lives as long as it does), applies
the migrations, prepares the model and starts the services in order (see
``inferwatch.supervisor``). While it runs, ``$INFERWATCH_HOME/run/up.json`` says
where: its pid and each service's URL, for ``status`` and ``down`` (which sends
it SIGTERM: the same orderly stop as Ctrl-C). ``up --detach`` starts it in the
background, logging to ``$INFERWATCH_HOME/run/up.log``, and returns once it is up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from inferwatch.process import ChildDied, healthy
from inferwatch.settings import Settings
from inferwatch.store.database import Database
from inferwatch.supervisor import Service, Supervisor

DETACHED_READY_TIMEOUT_S = 1200.0
DOWN_TIMEOUT_S = 180.0


class UpError(RuntimeError):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class RunFile:
    """Where a running ``up`` is: its pid and its services' URLs (health at ``{url}/readyz``)."""

    pid: int
    services: dict[str, str]
    database: str
    # Each service's readiness URL (the dashboard's is Streamlit's own, not /readyz).
    health: dict[str, str] = field(default_factory=dict)

    def health_url(self, name: str) -> str:
        # A run file written before health URLs were recorded: they were all /readyz.
        return self.health.get(name, f"{self.services[name]}/readyz")

    @staticmethod
    def path(home: Path) -> Path:
        return home / "run" / "up.json"

    def write(self, home: Path) -> None:
        path = self.path(home)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self)))
        partial.replace(path)

    @classmethod
    def read(cls, home: Path) -> RunFile | None:
        """The running ``up``, or None (no file, or the process that wrote it is gone)."""
        try:
            found = cls(**json.loads(cls.path(home).read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return found if _alive(found.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run(
    settings: Settings,
    db: Database,
    *,
    serve_model: bool,
    vllm_url: str | None,
    evaluate: bool = True,
    alerts: bool = True,
    ui: bool = True,
) -> None:
    """Runs everything until SIGINT/SIGTERM; ``UpError`` if a service cannot start."""
    from sqlalchemy.engine import make_url

    from alerting.rules import ConfigError, load_config
    from collector.gpu import describe_gpus
    from collector.prices import PriceError, load_prices
    from inferwatch.store import migrate
    from serving.model import ModelPreparationError, prepare_default_model

    out = Console(markup=False, highlight=False, soft_wrap=True)

    def step(message: str) -> None:
        out.print(Text("▸ ", style="bold green") + Text(message))

    home = settings.home.resolve()
    if (running := RunFile.read(home)) is not None:
        raise UpError(f"InferWatch is already up on {home} (pid {running.pid})", 2)
    cfg_c, cfg_s = settings.collector, settings.serving
    database = make_url(db.url).render_as_string(hide_password=True)
    step(f"database {database}")
    migrate.upgrade(db.engine)
    with db.engine.connect() as conn:
        step(f"schema at revision {migrate.current_revision(conn)}")
    try:
        load_prices(cfg_c.prices_file)
    except PriceError as exc:
        raise UpError(str(exc), 2) from None
    cfg_a = settings.alerting
    if alerts:
        try:  # refuse bad rule files before starting anything
            load_config(cfg_a.files, defaults=cfg_a.default_rules)
        except ConfigError as exc:
            raise UpError(str(exc), 2) from None
    if evaluate:
        from evaluators.registry import configured

        try:
            configured(settings.evaluators, settings.serving.upstream_url)
        except ValueError as exc:
            raise UpError(str(exc), 2) from None
    collector_url = f"http://{cfg_c.host}:{cfg_c.port}"
    env = {
        **os.environ,
        "INFERWATCH_HOME": str(home),
        "INFERWATCH_SERVING__COLLECTOR_URL": collector_url,
    }
    if vllm_url is not None:
        env["INFERWATCH_COLLECTOR__ENGINES"] = json.dumps([*cfg_c.engines, vllm_url])
    me = [sys.executable, "-m", "inferwatch.cli"]
    services: list[Service] = []
    urls: dict[str, str] = {}  # what the status table and the run file call each service
    health: dict[str, str] = {}

    def add(key: str, url: str, service: Service) -> None:
        services.append(service)
        urls[key], health[key] = url, service.health_url

    add(
        "collector",
        collector_url,
        Service("collector", [*me, "collector"], f"{collector_url}/readyz"),
    )
    gateway_url = f"http://{cfg_s.host}:{cfg_s.port}"
    bundled = serve_model and vllm_url is None
    model = settings.model
    if bundled:
        if model is None:
            try:
                model = str(prepare_default_model(settings.home, progress=step))
            except ModelPreparationError as exc:
                raise UpError(str(exc), 2) from None
        env["INFERWATCH_MODEL"] = model
        ready_s = cfg_s.vllm_start_timeout_s + 60
        serve = Service("serve", [*me, "serve"], f"{gateway_url}/readyz", ready_s, 60.0)
        add("gateway", gateway_url, serve)
    if evaluate:
        cfg_e = settings.evaluators
        evaluators_url = f"http://{cfg_e.host}:{cfg_e.port}"
        add(
            "evaluators",
            evaluators_url,
            Service("evaluate", [*me, "evaluate"], f"{evaluators_url}/readyz"),
        )
    alerts_url = f"http://{cfg_a.host}:{cfg_a.port}"
    if alerts:
        add("alerts", alerts_url, Service("alerts", [*me, "alerts"], f"{alerts_url}/readyz"))
    if ui:
        cfg_u = settings.ui
        ui_url = f"http://{cfg_u.host}:{cfg_u.port}"
        add("dashboard", ui_url, Service("dashboard", [*me, "ui"], f"{ui_url}/_stcore/health"))
    supervisor = Supervisor(services, env, out)
    last_said = [0.0]

    def waiting(service: Service, waited: float) -> None:
        if waited - last_said[0] >= 15 or waited < last_said[0]:
            last_said[0] = waited
            step(f"waiting for {service.name}: {waited:.0f} s")

    run_file = RunFile(os.getpid(), urls, database, health)
    try:
        for service in services:
            step(f"starting {service.name}")
        supervisor.start(progress=waiting)
        table = Table(title="InferWatch is up", title_style="bold green", show_header=False)
        table.add_row("collector", f"{collector_url}  (OTLP/HTTP, feedback, engines)")
        if bundled:
            table.add_row("gateway", f"{gateway_url}/v1  (OpenAI API)")
            table.add_row("model", model or "")
        if vllm_url is not None:
            table.add_row("vLLM", f"{vllm_url}  (scraped)")
        if evaluate:
            table.add_row("evaluators", f"{evaluators_url}/readyz  (scores sampled requests)")
        if alerts:
            table.add_row("alerts", f"{alerts_url}/v1/alerts  (and /metrics)")
        if ui:
            table.add_row("dashboard", f"{ui_url}  (Streamlit)")
        table.add_row("device", describe_gpus())
        table.add_row("database", database)
        table.add_row("stop", "Ctrl-C, or `inferwatch down`")
        out.print(table)
        run_file.write(home)
        supervisor.supervise(threading.Event())
    except (ChildDied, TimeoutError) as exc:
        raise UpError(str(exc)) from None
    except KeyboardInterrupt:
        step("stopping (Ctrl-C)")
    finally:
        RunFile.path(home).unlink(missing_ok=True)
        supervisor.stop()
        step("stopped")


def detach(settings: Settings, arguments: list[str]) -> RunFile:
    """Starts ``up`` in the background and returns once it is up (``UpError`` if it ends)."""
    home = settings.home.resolve()
    log_path = home / "run" / "up.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferwatch.cli", "up", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the terminal's group: Ctrl-C there leaves it be
        )
    deadline = time.monotonic() + DETACHED_READY_TIMEOUT_S
    while (running := RunFile.read(home)) is None or running.pid != proc.pid:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise UpError(f"inferwatch up exited with status {proc.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGTERM)
            raise UpError(f"inferwatch up was not up after {DETACHED_READY_TIMEOUT_S:.0f} s")
        time.sleep(0.5)
    return running


def status(settings: Settings) -> tuple[RunFile | None, dict[str, bool]]:
    """The running ``up`` (or None) and whether each of its services is ready."""
    running = RunFile.read(settings.home.resolve())
    if running is None:
        return None, {}
    return running, {name: healthy(running.health_url(name)) for name in running.services}


def down(settings: Settings, timeout_s: float = DOWN_TIMEOUT_S) -> int | None:
    """Stops the running ``up`` as Ctrl-C would; its pid, or None if none was running."""
    running = RunFile.read(settings.home.resolve())
    if running is None:
        return None
    os.kill(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(running.pid):
        if time.monotonic() > deadline:
            raise UpError(f"inferwatch up (pid {running.pid}) did not stop in {timeout_s:.0f} s")
        time.sleep(0.2)
    return running.pid
