"""Real local receivers for notifier tests: an HTTP server and an SMTP server that record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from fastapi import FastAPI, Request

from bench.ports import free_port


def webhook_recorder() -> tuple[FastAPI, list[dict[str, Any]]]:
    """An app recording the JSON bodies POSTed to ``/hook`` (serve it with ServerThread)."""
    app, got = FastAPI(), list[dict[str, Any]]()

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, str]:
        got.append(await request.json())
        return {"status": "ok"}

    return app, got


def webhook_route(url: str, **timings: str) -> str:
    """YAML: one webhook receiver ``hook`` at ``url``, and a route sending it everything
    (``group_wait: 0s`` unless ``timings`` say otherwise)."""
    lines = [
        "receivers:",
        "  - name: hook",
        f'    webhook: {{url: "{url}"}}',
        "route:",
        "  receiver: hook",
        *(f"  {key}: {value}" for key, value in {"group_wait": "0s", **timings}.items()),
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    # Statuses to answer with, in order; then 200.
    script: list[int] = field(default_factory=list)


@asynccontextmanager
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver("")

    async def record(request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        receiver.requests.append(Recorded(request.path, headers, await request.read()))
        status = receiver.script.pop(0) if receiver.script else 200
        return web.Response(status=status, text="ok" if status < 300 else "nope")

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@dataclass
class MailReceiver:
    host: str
    port: int
    mail: list[tuple[Envelope, Message]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    @property
    def smarthost(self) -> str:
        return f"{self.host}:{self.port}"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.mail.append((envelope, message_from_bytes(bytes(envelope.content or b""))))  # type: ignore[arg-type]
        return "250 OK"

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and data.password == b"s3cret":
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class MailServer:
    """aiosmtpd on loopback (no TLS; login allowed without it, for the test only)."""

    def __init__(self) -> None:
        self.receiver = MailReceiver("127.0.0.1", free_port())
        self.controller = Controller(
            self.receiver,
            hostname=self.receiver.host,
            port=self.receiver.port,
            authenticator=self.receiver.authenticate,
            auth_require_tls=False,
        )

    def __enter__(self) -> MailReceiver:
        self.controller.start()
        return self.receiver

    def __exit__(self, *_: object) -> None:
        self.controller.stop()
