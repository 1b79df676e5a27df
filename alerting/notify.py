"""Notification channels: Alertmanager-compatible webhook, Slack, e-mail (SMTP), PagerDuty.

Each channel turns one notification (the Alertmanager v4 webhook payload the
dispatcher built) into its own request. ``send`` raises ``DeliveryFailed``
saying whether a retry may help: timeouts, refused connections, HTTP 429 and
5xx, and SMTP 4xx replies are retried; other refusals are final.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
from email.message import EmailMessage
from typing import Any, Protocol

import aiohttp
import orjson

from alerting.rules import (
    EmailConfig,
    PagerDutyConfig,
    Receiver,
    SlackConfig,
    WebhookConfig,
)
from inferwatch import signing

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
SLACK_MAX_ALERTS = 10  # blocks per message are limited; the rest are counted
PAGERDUTY_SEVERITY = {"critical": "critical", "error": "error", "warning": "warning"}
USER_AGENT = "InferWatch-Alerting/0.1"


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Notifier(Protocol):
    async def send(self, payload: dict[str, Any]) -> None: ...


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> None:
    try:
        async with session.post(
            url,
            data=body,
            headers={
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                **(headers or {}),
            },
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            if response.status < 300:
                return
            detail = (await response.text())[:300]
            raise DeliveryFailed(
                f"HTTP {response.status}: {detail}", retryable=response.status in RETRYABLE_STATUS
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}", retryable=True) from exc


def title(payload: dict[str, Any]) -> str:
    """``[FIRING:2] TTFTHigh (model=smollm2)``, as Alertmanager's default titles read."""
    firing = sum(a["status"] == "firing" for a in payload["alerts"])
    count = f"[{payload['status'].upper()}:{firing or len(payload['alerts'])}]"
    name = payload["commonLabels"].get("alertname", "alerts")
    extra = ", ".join(f"{k}={v}" for k, v in payload["groupLabels"].items() if k != "alertname")
    return f"{count} {name}" + (f" ({extra})" if extra else "")


def _alert_line(alert: dict[str, Any]) -> str:
    annotations = alert["annotations"]
    summary = annotations.get("summary") or alert["labels"].get("alertname", "")
    value = annotations.get("value") or "no data"
    return f"{summary} — value {value}, threshold {annotations.get('threshold', '')}"


class WebhookNotifier:
    """POSTs the payload unchanged, so any Alertmanager webhook receiver works."""

    def __init__(self, config: WebhookConfig, session: aiohttp.ClientSession) -> None:
        self.config, self.session = config, session

    async def send(self, payload: dict[str, Any]) -> None:
        body = orjson.dumps(payload)
        headers = {}
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            headers[signing.HEADER] = signing.signature(secret, body, time.time())
        await _post(self.session, self.config.url, body, self.config.timeout_s, headers)


class SlackNotifier:
    """A Slack incoming-webhook message: header, one section per alert, a dashboard link."""

    def __init__(
        self, config: SlackConfig, session: aiohttp.ClientSession, dashboard_url: str
    ) -> None:
        self.config, self.session, self.dashboard_url = config, session, dashboard_url

    def message(self, payload: dict[str, Any]) -> dict[str, Any]:
        alerts = payload["alerts"]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title(payload)[:150]}}
        ]
        for alert in alerts[:SLACK_MAX_ALERTS]:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
            icon = ":red_circle:" if alert["status"] == "firing" else ":white_check_mark:"
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"{icon} {_alert_line(alert)}\n`{labels}`"},
                }
            )
        if len(alerts) > SLACK_MAX_ALERTS:
            more = f"and {len(alerts) - SLACK_MAX_ALERTS} more"
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the dashboard"},
                        "url": self.dashboard_url,
                    }
                ],
            }
        )
        message: dict[str, Any] = {"text": title(payload), "blocks": blocks}
        if self.config.channel:
            message["channel"] = self.config.channel
        return message

    async def send(self, payload: dict[str, Any]) -> None:
        body = orjson.dumps(self.message(payload))
        await _post(self.session, self.config.url, body, self.config.timeout_s)


class EmailNotifier:
    """A plain-text mail over SMTP (STARTTLS and login when configured)."""

    def __init__(self, config: EmailConfig, dashboard_url: str) -> None:
        self.config, self.dashboard_url = config, dashboard_url

    def message(self, payload: dict[str, Any]) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = title(payload)
        mail["From"] = self.config.from_
        mail["To"] = ", ".join(self.config.to)
        lines = []
        for alert in payload["alerts"]:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
            lines += [f"[{alert['status']}] {_alert_line(alert)}", f"  {labels}", ""]
        lines.append(f"Dashboard: {self.dashboard_url}")
        mail.set_content("\n".join(lines))
        return mail

    def _send_blocking(self, mail: EmailMessage) -> None:
        host, port = self.config.smarthost.rsplit(":", 1)
        with smtplib.SMTP(host, int(port), timeout=self.config.timeout_s) as smtp:
            if self.config.starttls:
                smtp.starttls()
            if self.config.username and self.config.password is not None:
                smtp.login(self.config.username, self.config.password.get_secret_value())
            smtp.send_message(mail)

    async def send(self, payload: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self._send_blocking, self.message(payload))
        except smtplib.SMTPResponseException as exc:
            raise DeliveryFailed(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=400 <= exc.smtp_code < 500
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryFailed(f"SMTP: {exc}", retryable=False) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}", retryable=True) from exc


class PagerDutyNotifier:
    """PagerDuty Events API v2: a trigger per firing group, a resolve when it clears."""

    def __init__(
        self, config: PagerDutyConfig, session: aiohttp.ClientSession, dashboard_url: str
    ) -> None:
        self.config, self.session, self.dashboard_url = config, session, dashboard_url

    def event(self, payload: dict[str, Any]) -> dict[str, Any]:
        firing = payload["status"] == "firing"
        event: dict[str, Any] = {
            "routing_key": self.config.routing_key.get_secret_value(),
            "event_action": "trigger" if firing else "resolve",
            # One incident per receiver and group, as Alertmanager's integration does.
            "dedup_key": payload["groupKey"],
        }
        if firing:
            severity = payload["commonLabels"].get("severity", "")
            event["payload"] = {
                "summary": title(payload)[:1024],
                "source": payload["externalURL"] or "inferwatch",
                "severity": PAGERDUTY_SEVERITY.get(severity, "info"),
                "custom_details": {
                    "alerts": [_alert_line(a) for a in payload["alerts"]],
                    "group_labels": payload["groupLabels"],
                },
            }
            event["links"] = [{"href": self.dashboard_url, "text": "InferWatch dashboard"}]
        return event

    async def send(self, payload: dict[str, Any]) -> None:
        body = orjson.dumps(self.event(payload))
        await _post(self.session, self.config.url, body, self.config.timeout_s)


def notifier_for(
    receiver: Receiver, session: aiohttp.ClientSession, dashboard_url: str
) -> Notifier:
    if receiver.webhook is not None:
        return WebhookNotifier(receiver.webhook, session)
    if receiver.slack is not None:
        return SlackNotifier(receiver.slack, session, dashboard_url)
    if receiver.email is not None:
        return EmailNotifier(receiver.email, dashboard_url)
    assert receiver.pagerduty is not None
    return PagerDutyNotifier(receiver.pagerduty, session, dashboard_url)
