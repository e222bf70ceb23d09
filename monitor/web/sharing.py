"""What the share-link API and pages agree on: where a shared view lives, how long
a link lives, and the absolute URL handed out.

The URL is built from the configured management address (``Config.management_url``),
never from the request's Host header, which the requester chooses.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from monitor.config import Config
from monitor.model.paths import SHARE_PREFIX
from monitor.web.errors import BadRequest

# What a link token can look like (share_links.TOKEN_BYTES, URL-safe base64): anything
# else is no link, answered without a database round trip.
SHARE_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
# A link made without an expiry lasts a month; none lasts more than a year, so a
# forgotten link does not stay open forever.
DEFAULT_EXPIRY = timedelta(days=30)
MAX_EXPIRY = timedelta(days=365)
TIME_RULE = "expires_at: an RFC 3339 time such as 2026-01-31T12:00:00Z"


def share_url(config: Config, token: str) -> str:
    return f"{config.management_url}{SHARE_PREFIX}{token}"


def expiry_at(raw: object, now: datetime | None = None) -> datetime:
    """The expiry a create request asks for (an RFC 3339 time with a zone, or None for
    the default); 400 when it is not such a time, is past, or is past the cap."""
    now = now or datetime.now(UTC)
    if raw is None:
        return now + DEFAULT_EXPIRY
    if not isinstance(raw, str):
        raise BadRequest("invalid_field", TIME_RULE)
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        if value.tzinfo is None:
            raise BadRequest("invalid_field", "expires_at: include a time zone (Z or +00:00)")
        value = value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadRequest("invalid_field", TIME_RULE) from None
    return check_expiry(value, now)


def expiry_in_days(days: int, now: datetime | None = None) -> datetime:
    """The expiry the settings page's "days" field asks for, checked like the API's."""
    now = now or datetime.now(UTC)
    return check_expiry(now + timedelta(days=days), now)


def check_expiry(value: datetime, now: datetime) -> datetime:
    if value <= now:
        raise BadRequest("invalid_field", "expires_at: must be in the future")
    if value > now + MAX_EXPIRY:
        raise BadRequest("invalid_field", f"expires_at: at most {MAX_EXPIRY.days} days from now")
    return value
