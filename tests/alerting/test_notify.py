"""Each channel against a real local receiver: HTTP (webhook, Slack, PagerDuty) and SMTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from alerting.dispatch import Group, webhook_payload
from alerting.notify import (
    DeliveryFailed,
    EmailNotifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from alerting.rules import EmailConfig, PagerDutyConfig, SlackConfig, WebhookConfig
from alerting.state import Instance, Phase
from inferwatch import signing
from tests.alerting.receivers import HttpReceiver, MailServer, http_receiver
from tests.alerting.test_dispatch import T0, alert

DASHBOARD = "http://dashboard.example:8501"


def payload(status: str = "firing") -> dict[str, Any]:
    phase = Phase.FIRING if status == "firing" else Phase.INACTIVE
    alerts: list[Instance] = [alert("TTFTHigh", phase, model="m1")]
    alerts[0].annotations.update({"value": "612.5", "threshold": "500"})
    group = Group("ops", "k1", {"alertname": "TTFTHigh"}, T0)
    return webhook_payload("ops", group, status, alerts, DASHBOARD)


def with_receiver(
    scenario: Callable[[HttpReceiver, aiohttp.ClientSession], Awaitable[None]],
) -> None:
    async def main() -> None:
        async with http_receiver() as receiver, aiohttp.ClientSession() as session:
            await scenario(receiver, session)

    asyncio.run(main())


def test_webhook_posts_the_alertmanager_payload_signed() -> None:
    async def scenario(receiver: HttpReceiver, session: aiohttp.ClientSession) -> None:
        config = WebhookConfig.model_validate({"url": f"{receiver.url}/hook", "secret": "shh"})
        await WebhookNotifier(config, session).send(payload())
        (got,) = receiver.requests
        assert got.path == "/hook"
        assert orjson.loads(got.body) == orjson.loads(orjson.dumps(payload()))
        header = got.headers["x-inferwatch-signature"]
        signed_at = int(header.split(",")[0].removeprefix("t="))
        assert header.split("v1=")[1] == signing.digest("shh", signed_at, got.body)

    with_receiver(scenario)


def test_slack_shows_value_threshold_and_a_dashboard_link() -> None:
    async def scenario(receiver: HttpReceiver, session: aiohttp.ClientSession) -> None:
        config = SlackConfig.model_validate({"url": receiver.url, "channel": "#oncall"})
        await SlackNotifier(config, session, DASHBOARD).send(payload())
        message = orjson.loads(receiver.requests[0].body)
        assert message["channel"] == "#oncall"
        assert message["text"] == "[FIRING:1] TTFTHigh"
        section = message["blocks"][1]["text"]["text"]
        assert "value 612.5, threshold 500" in section and "model=m1" in section
        assert message["blocks"][-1]["elements"][0]["url"] == DASHBOARD

    with_receiver(scenario)


def test_pagerduty_triggers_then_resolves_the_same_incident() -> None:
    async def scenario(receiver: HttpReceiver, session: aiohttp.ClientSession) -> None:
        config = PagerDutyConfig.model_validate(
            {"routing_key": "R0UT1NG", "url": f"{receiver.url}/v2/enqueue"}
        )
        notifier = PagerDutyNotifier(config, session, DASHBOARD)
        await notifier.send(payload("firing"))
        await notifier.send(payload("resolved"))
        trigger, resolve = (orjson.loads(r.body) for r in receiver.requests)
        assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
        assert trigger["dedup_key"] == resolve["dedup_key"]
        assert trigger["routing_key"] == "R0UT1NG"
        assert trigger["payload"]["severity"] == "warning"
        assert trigger["payload"]["summary"] == "[FIRING:1] TTFTHigh"
        assert "payload" not in resolve

    with_receiver(scenario)


def test_http_failures_say_whether_a_retry_may_help() -> None:
    async def scenario(receiver: HttpReceiver, session: aiohttp.ClientSession) -> None:
        notifier = WebhookNotifier(WebhookConfig(url=receiver.url), session)
        receiver.script = [503, 429, 400]
        for retryable in (True, True, False):
            with pytest.raises(DeliveryFailed) as failed:
                await notifier.send(payload())
            assert failed.value.retryable is retryable
        await notifier.send(payload())  # then 200
        refused = WebhookNotifier(WebhookConfig(url="http://127.0.0.1:9/"), session)
        with pytest.raises(DeliveryFailed) as failed:
            await refused.send(payload())
        assert failed.value.retryable

    with_receiver(scenario)


def test_email_arrives_over_smtp_with_login() -> None:
    with MailServer() as server:
        config = EmailConfig.model_validate(
            {
                "to": ["oncall@example.com", "lead@example.com"],
                "from": "inferwatch@example.com",
                "smarthost": server.smarthost,
                "username": "iw",
                "password": "s3cret",
                "starttls": False,
            }
        )
        asyncio.run(EmailNotifier(config, DASHBOARD).send(payload()))
        ((envelope, mail),) = server.mail
        assert envelope.rcpt_tos == ["oncall@example.com", "lead@example.com"]
        assert mail["Subject"] == "[FIRING:1] TTFTHigh"
        body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert "[firing]" in body and "value 612.5, threshold 500" in body and DASHBOARD in body
        assert server.logins == ["iw"]

        wrong = config.model_copy(update={"password": SecretStr("nope")})
        with pytest.raises(DeliveryFailed) as failed:
            asyncio.run(EmailNotifier(wrong, DASHBOARD).send(payload()))
        assert not failed.value.retryable  # 535 authentication failed
        tls = config.model_copy(update={"starttls": True})
        with pytest.raises(DeliveryFailed) as failed:
            asyncio.run(EmailNotifier(tls, DASHBOARD).send(payload()))
        assert not failed.value.retryable and "STARTTLS" in str(failed.value)
