"""Telling a service center about a report: an HTTP POST to its webhook, signed with HMAC-SHA256,
and an e-mail over SMTP (plain text with the HTML report as the alternative).

The webhook's signature covers the timestamp and the body, so a captured request cannot be
replayed later under a fresh timestamp:

    X-Prognos-Timestamp: 1767225600                        (Unix seconds when it was sent)
    X-Prognos-Signature: sha256=HEX(HMAC-SHA256(secret, "1767225600." + body))
    X-Prognos-Delivery: 42                                 (the same on every retry of one notification)

A receiver checks the signature with `verify_signature` (or the same three lines in its own
language), refuses a timestamp more than five minutes off its clock, and ignores a delivery id
it has seen (a retry after a lost answer). Senders raise TransientError for anything that may
work later (no answer, 5xx, 429, a refused SMTP session) and RejectedError for an answer that
will not change by itself (another 4xx); the worker records both and retries (docs/reports.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import requests

from prognos.errors import ConfigError, RejectedError, TransientError

SIGNATURE_HEADER = "X-Prognos-Signature"
TIMESTAMP_HEADER = "X-Prognos-Timestamp"
DELIVERY_HEADER = "X-Prognos-Delivery"
EVENT = "diagnosis_report"
REPLAY_TOLERANCE_S = 300
MIN_SECRET_BYTES = 16
RETRYABLE_STATUS = frozenset({408, 425, 429})


def sign(secret: bytes, timestamp_s: int, body: bytes) -> str:
    """The X-Prognos-Signature value of `body` sent at `timestamp_s`."""
    digest = hmac.new(secret, f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: bytes,
    body: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    now_s: float,
    tolerance_s: float = REPLAY_TOLERANCE_S,
) -> bool:
    """Whether a received request is ours and fresh: the signature of its timestamp and body
    (constant-time comparison), and a timestamp within tolerance_s of `now_s`."""
    if timestamp is None or signature is None or not timestamp.isdigit():
        return False
    if abs(now_s - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def read_secret(text: str, source: str) -> bytes:
    """A webhook secret from a file's text (surrounding white space dropped); at least 16 bytes."""
    secret = text.strip().encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"the webhook secret in {source} is shorter than {MIN_SECRET_BYTES} bytes")
    return secret


def webhook_body(report: Mapping[str, Any]) -> bytes:
    """What the webhook receives: the event, the fields a receiver routes on, and the whole
    report (its JSON form, docs/reports.md)."""
    envelope = {
        "event": EVENT,
        "report_id": report.get("report_id"),
        "alert_id": report.get("alert_id"),
        "vin": report.get("vin"),
        "code": report.get("code"),
        "priority": report.get("priority"),
        "trigger": report.get("trigger"),
        "center_id": (report.get("centers") or [{}])[0].get("center_id"),
        "summary": report.get("summary"),
        "created_at": report.get("created_at"),
        "report": report,
    }
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class WebhookSender:
    secret: bytes
    timeout_s: float = 10.0
    clock: Any = time.time
    _session: requests.Session = field(default_factory=requests.Session, repr=False)

    def send(self, url: str, body: bytes, *, delivery: str) -> None:
        """POST `body` to `url`, signed; returns on a 2xx answer."""
        stamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self.secret, stamp, body),
            DELIVERY_HEADER: delivery,
            "User-Agent": "prognos-reports",
        }
        try:
            answer = self._session.post(url, data=body, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise TransientError(f"webhook {url} unreachable: {exc}") from exc
        status = answer.status_code
        if 200 <= status < 300:
            return
        message = f"webhook {url} answered {status}: {answer.text.strip()[:200]}"
        if status >= 500 or status in RETRYABLE_STATUS:
            raise TransientError(message)
        raise RejectedError(message)

    def close(self) -> None:
        self._session.close()


@dataclass(frozen=True, kw_only=True)
class MailSender:
    host: str
    port: int
    sender: str
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0

    def send(self, recipients: Sequence[str], *, subject: str, text: str, html: str) -> str:
        """Send one message to `recipients`; returns its Message-ID."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="prognos.local")
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username is not None:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(message, to_addrs=list(recipients))
        except smtplib.SMTPRecipientsRefused as exc:
            raise RejectedError(
                f"SMTP {self.host}:{self.port} refused every recipient: {exc.recipients}"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"SMTP {self.host}:{self.port}: {exc}") from exc
        if refused:
            raise RejectedError(f"SMTP {self.host}:{self.port} refused {', '.join(sorted(refused))}")
        return str(message["Message-ID"])


def mail_subject(report: Mapping[str, Any]) -> str:
    trigger = report.get("trigger")
    if trigger == "escalated" and report.get("previous_priority"):
        how = f"escalated from {report['previous_priority']}"
    else:
        how = "new alert"
    return f"[Prognos {report.get('priority')}] {report.get('code')} on {report.get('vin')}: {how}"


def recipients_of(text: str) -> list[str]:
    """`a@x, b@y` -> ['a@x', 'b@y']; ConfigError for an entry that is not an address."""
    found = [part.strip() for part in text.split(",") if part.strip()]
    bad = [part for part in found if "@" not in part or any(c.isspace() for c in part)]
    if not found or bad:
        raise ConfigError(f"{text!r} is not a comma-separated list of e-mail addresses")
    return found
