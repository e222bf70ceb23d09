"""One attempt to deliver a notification to one channel, and what it came to.

HTTP kinds go out through the ``OutboundClient`` (its SSRF guard, timeouts and
response cap); e-mail through ``smtp.send_mail`` behind the same guard. An attempt
never raises for far-end trouble: its ``Attempt`` says ok, the status (HTTP, or
the SMTP reply code), an error, and whether trying again could help (``retryable``:
a 5xx, a 429, a timeout, a lost connection, an SMTP 4xx; not a 4xx, not a refusal
by the guard). Every error text is scrubbed of the channel's secrets: a bot token
is part of the Telegram URL, and client errors may quote it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import aiosmtplib

from monitor.forwarding.outbound import OutboundClient, OutboundError, OutboundRefused
from monitor.model.notification import Notification
from monitor.notifying import render, smtp
from monitor.rules.channels import secret_values

RESPONSE_HEAD_BYTES = 1024
MAX_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class Attempt:
    started_at: datetime
    ok: bool
    status: int | None
    error: str | None
    latency_ms: float
    retryable: bool


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<secret>")
    return text[:MAX_ERROR_CHARS]


def transient_status(status: int) -> bool:
    return status == 429 or status >= 500


async def attempt(
    client: OutboundClient,
    kind: str,
    config: dict[str, Any],
    n: Notification,
    message_id: str,
    *,
    smtp_timeout_s: float,
) -> Attempt:
    """Deliver once; never raises for network or far-end trouble."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    retryable = False
    try:
        if kind == "email":
            message = render.email(config, n, message_id)
            status = await smtp.send_mail(client.guard, config, message, smtp_timeout_s)
        else:
            req = render.HTTP_KINDS[kind](config, n, message_id, int(time.time()))
            resp = await client.request(
                req.method, req.url, headers=req.headers, body=req.body,
                max_body_bytes=RESPONSE_HEAD_BYTES,
            )  # fmt: skip
            status = resp.status
            if not 200 <= status < 300:
                head = resp.body.decode("utf-8", "replace").strip()[:200]
                error = f"the far end answered {status}" + (f": {head}" if head else "")
                retryable = transient_status(status)
    except OutboundRefused as exc:
        error = f"refused: {exc.message}"
    except OutboundError as exc:
        error, retryable = exc.message, True
    except aiosmtplib.SMTPResponseException as exc:
        status = exc.code
        error = f"the SMTP server answered {exc.code}: {exc.message}"
        retryable = 400 <= exc.code < 500
    except aiosmtplib.SMTPRecipientsRefused as exc:
        error = f"the SMTP server refused the recipients: {exc}"
    except aiosmtplib.SMTPNotSupported as exc:
        error = f"the SMTP server does not support it: {exc}"
    except (TimeoutError, aiosmtplib.SMTPTimeoutError):
        error, retryable = "timed out", True
    except (aiosmtplib.SMTPException, aiohttp.ClientError, OSError) as exc:
        error, retryable = f"{type(exc).__name__}: {exc}", True
    except (ValueError, UnicodeError) as exc:
        error = f"invalid request: {exc}"
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    if error is not None:
        error = scrub(error, secret_values(kind, config))
    ok = error is None and status is not None
    return Attempt(started_at, ok, status, error, latency_ms, retryable and not ok)
