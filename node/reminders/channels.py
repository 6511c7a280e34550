"""The channels reminders travel by, behind one interface.

A :class:`Notifier` makes one attempt to deliver one :class:`Outgoing`
message and raises :class:`DeliveryError` when it did not; the scheduler keeps
the message, its attempts and its last error in the database and retries with
backoff. Every attempt carries the message's stable id (``message_id``) so a
gateway, mail server or webhook receiver can drop a repeat: a node that crashes
between a successful send and recording it sends that message once more.

- :class:`SmsGateway` — HTTP POST to any SMS provider's API: URL, headers,
  Basic credentials and a body template are settings.
- :class:`SmtpMailer` — email over SMTP (stdlib ``smtplib`` on a worker thread),
  optional STARTTLS and login.
- :class:`Webhook` — HTTP POST of the reminder as JSON, optionally HMAC-signed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import quote_plus

import aiohttp

from node.errors import Unavailable
from node.reminders.schedule import SettingsError

logger = logging.getLogger(__name__)

_ANSWER_CHARS = 200


class DeliveryError(Unavailable):
    """One attempt failed (reason ``delivery_failed``); the message stays pending and
    is retried. ``str()`` is the short reason kept with the message."""

    def __init__(self, message: str) -> None:
        super().__init__('delivery_failed', message)

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """One message to one recipient by one channel."""

    message_id: str
    channel: str
    recipient: str
    subject: str
    text: str
    body: str | None = None  # the webhook's JSON document


class Notifier(Protocol):
    channel: str

    async def send(self, message: Outgoing) -> None:
        """Deliver once or raise :class:`DeliveryError` (with a short reason)."""
        ...


# -- HTTP --------------------------------------------------------------------------------------


def fill_template(template: str, values: Mapping[str, str], content_type: str) -> str:
    """``template`` with ``{name}`` replaced by its value, escaped for ``content_type``.

    Only the names given are replaced; other braces (a JSON body's own) stay.
    JSON bodies get JSON string escaping (the template supplies the quotes),
    form bodies URL encoding, anything else the raw value.
    """
    kind = content_type.split(";", 1)[0].strip().lower()

    def escape(value: str) -> str:
        if kind == "application/json" or kind.endswith("+json"):
            return json.dumps(value, ensure_ascii=False)[1:-1]
        if kind == "application/x-www-form-urlencoded":
            return quote_plus(value)
        return value

    out = template
    for name, value in values.items():
        out = out.replace("{" + name + "}", escape(value))
    return out


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    data: bytes,
    headers: Mapping[str, str],
    timeout: float,
    auth: aiohttp.BasicAuth | None = None,
) -> str:
    """POST and return the answer's text; any non-2xx answer or error is a DeliveryError."""
    try:
        async with session.post(
            url,
            data=data,
            headers=dict(headers),
            auth=auth,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            answer = await resp.text(errors="replace")
            if not 200 <= resp.status < 300:
                raise DeliveryError(f"HTTP {resp.status}: {answer[:_ANSWER_CHARS]}")
            return answer
    except TimeoutError:
        raise DeliveryError(f"no answer within {timeout:g}s") from None
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}"[:_ANSWER_CHARS]) from None


def _headers(raw: str, setting: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{setting}: not JSON: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SettingsError(f'{setting}: a JSON object of strings, e.g. {{"X-Api-Key": "…"}}')
    return value


class SmsGateway:
    """An SMS provider's HTTP API: one POST per message; 2xx (and ``success_match``) = sent."""

    channel = "sms"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        url: str,
        body_template: str,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        username: str = "",
        password: str = "",
        success_match: str = "",
        timeout: float = 10.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise SettingsError("sms.url: an http:// or https:// URL")
        self.session = session
        self.url = url
        self.body_template = body_template
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.username = username
        self.password = password
        self.success_match = success_match
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: Any, session: aiohttp.ClientSession) -> SmsGateway:
        return cls(
            session,
            url=str(config["sms.url"]),
            body_template=str(config["sms.body_template"]),
            content_type=str(config["sms.content_type"]),
            headers=_headers(str(config["sms.headers"]), "sms.headers"),
            username=str(config["sms.username"]),
            password=str(config["sms.password"]),
            success_match=str(config["sms.success_match"]),
            timeout=float(config["sms.timeout_seconds"]),
        )

    async def send(self, message: Outgoing) -> None:
        values = {
            "phone": message.recipient,
            "text": message.text,
            "message_id": message.message_id,
            "username": self.username,
            "password": self.password,
        }
        body = fill_template(self.body_template, values, self.content_type)
        headers = {
            "Content-Type": self.content_type,
            "Idempotency-Key": message.message_id,
            **self.headers,
        }
        auth = aiohttp.BasicAuth(self.username, self.password) if self.username else None
        answer = await _post(
            self.session,
            self.url,
            data=body.encode("utf-8"),
            headers=headers,
            timeout=self.timeout,
            auth=auth,
        )
        if self.success_match and self.success_match not in answer:
            raise DeliveryError(f"gateway refused: {answer[:_ANSWER_CHARS]}")


class Webhook:
    """POST the reminder as JSON; with a secret, ``X-Duban-Signature: sha256=<hex HMAC>``."""

    channel = "webhook"

    def __init__(
        self, session: aiohttp.ClientSession, *, url: str, secret: str = "", timeout: float = 10.0
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise SettingsError("webhook.url: an http:// or https:// URL")
        self.session = session
        self.url = url
        self.secret = secret
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: Any, session: aiohttp.ClientSession) -> Webhook:
        return cls(
            session,
            url=str(config["webhook.url"]),
            secret=str(config["webhook.secret"]),
            timeout=float(config["webhook.timeout_seconds"]),
        )

    async def send(self, message: Outgoing) -> None:
        data = (message.body or json.dumps({"text": message.text}, ensure_ascii=False)).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": message.message_id,
        }
        if self.secret:
            digest = hmac.new(self.secret.encode(), data, hashlib.sha256).hexdigest()
            headers["X-Duban-Signature"] = f"sha256={digest}"
        await _post(self.session, self.url, data=data, headers=headers, timeout=self.timeout)


# -- SMTP --------------------------------------------------------------------------------------


class SmtpMailer:
    """One SMTP conversation per message, on a worker thread (``smtplib`` blocks)."""

    channel = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        timeout: float = 10.0,
        domain: str = "duban.local",
    ) -> None:
        if not host or not 0 < port < 65536:
            raise SettingsError("smtp.host and smtp.port: a server to send through")
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self.domain = domain

    @classmethod
    def from_config(cls, config: Any) -> SmtpMailer:
        return cls(
            host=str(config["smtp.host"]),
            port=int(config["smtp.port"]),
            sender=str(config["smtp.from"]),
            username=str(config["smtp.username"]),
            password=str(config["smtp.password"]),
            starttls=bool(config["smtp.starttls"]),
            timeout=float(config["smtp.timeout_seconds"]),
        )

    def _message(self, message: Outgoing) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject or message.text[:60]
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<{message.message_id}@{self.domain}>"
        mail["X-Duban-Message-Id"] = message.message_id
        mail.set_content(message.text)
        return mail

    def _send_blocking(self, mail: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(mail)

    async def send(self, message: Outgoing) -> None:
        mail = self._message(message)
        try:
            await asyncio.to_thread(self._send_blocking, mail)
        except smtplib.SMTPResponseException as exc:
            raw = exc.smtp_error
            error = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            raise DeliveryError(f"SMTP {exc.smtp_code}: {error}"[:_ANSWER_CHARS]) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipient refused: {exc.recipients}"[:_ANSWER_CHARS]) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}"[:_ANSWER_CHARS]) from None


def build_notifiers(config: Any, session: aiohttp.ClientSession) -> dict[str, Notifier]:
    """The enabled channels, by name. Raises :class:`SettingsError` on a bad setting."""
    out: dict[str, Notifier] = {}
    if config["sms.enabled"]:
        out["sms"] = SmsGateway.from_config(config, session)
    if config["smtp.enabled"]:
        out["email"] = SmtpMailer.from_config(config)
    if config["webhook.enabled"]:
        out["webhook"] = Webhook.from_config(config, session)
    return out
