"""What the management side accepts from a request, checked at the edge.

Every id in a path, every query value, form field and JSON string passes through
here before a handler uses it, so a hostile or clumsy value is a 400 (or 404 for an
id) that names the field, never a 500 from deeper down: ``int()`` refuses digits
that ``str.isdigit`` accepts (``²``), PostgreSQL refuses NUL in text and integers
past its column types, and a lone surrogate cannot be encoded as UTF-8 at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from monitor.web.errors import BadRequest, NotFound

# PostgreSQL bigint: the type of every id column.
BIGINT_MAX = 2**63 - 1
# A query value longer than this is no filter anyone types; the request line caps the rest.
MAX_QUERY_CHARS = 2048
TEXT_RULE = "text without NUL characters or lone surrogates"


def is_text(value: str) -> bool:
    """True for a string PostgreSQL text and UTF-8 can both hold."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a JSON "\ud800"
        return False
    return True


def database_id(raw: str) -> int | None:
    """The id an URL segment names (ASCII digits within bigint), or None for no such id."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(BIGINT_MAX)):
        return None
    value = int(raw)
    return value if value <= BIGINT_MAX else None


def hit_id(request: web.Request) -> uuid.UUID:
    """The hit a ``{hit_id}`` URL segment names; 404 for anything that is not a UUID."""
    raw = request.match_info["hit_id"]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("hit_not_found", f"no hit with id {raw[:40]!r}") from None


# Click ids are what a tracker generated (UUIDs, hashes, a few joined ids): longer is
# no click id anyone searches for.
MAX_CLICK_ID_CHARS = 256


def click_id(raw: str) -> str:
    """A click id to look up, as given (not trimmed: it is compared exactly); 400 when
    empty, longer than MAX_CLICK_ID_CHARS or not text."""
    if not raw.strip():
        raise BadRequest("invalid_click_id", "click_id: required, not empty")
    if len(raw) > MAX_CLICK_ID_CHARS:
        raise BadRequest("invalid_click_id", f"click_id: at most {MAX_CLICK_ID_CHARS} characters")
    if not is_text(raw):
        raise BadRequest("invalid_click_id", f"click_id: {TEXT_RULE}")
    return raw


def whole_number(name: str, raw: str, low: int, high: int) -> int:
    """A form or query value that must be a whole number from ``low`` to ``high``."""
    value = database_id(raw.strip())
    if value is None or not low <= value <= high:
        raise BadRequest("invalid_field", f"{name}: a whole number from {low} to {high}")
    return value


def check_query(pairs: Iterable[tuple[str, str]]) -> None:
    """Every query parameter's name and value: text, and not too long."""
    for name, value in pairs:
        if not is_text(name) or not is_text(value):
            raise BadRequest("invalid_query", f"{_label(name)}: {TEXT_RULE}")
        if len(value) > MAX_QUERY_CHARS:
            raise BadRequest(
                "invalid_query", f"{_label(name)}: at most {MAX_QUERY_CHARS} characters"
            )


def check_form(fields: dict[str, str]) -> None:
    """Every posted form field is text; the body cap bounds their length."""
    for name, value in fields.items():
        if not is_text(name) or not is_text(value):
            raise BadRequest("invalid_field", f"{_label(name)}: {TEXT_RULE}")


def _label(name: str) -> str:
    """A field's name fit to quote back in an error message."""
    return name[:40] if is_text(name) else "a field with an unreadable name"


def check_json(document: Any, name: str = "") -> None:
    """Every string in a parsed JSON document, keys included, is text; a refusal names
    the value by its path (``settings.secret.value``) under ``name``.

    Walks with a stack rather than recursion: the parser already bounds the depth,
    and this must not be the one to overflow."""
    stack: list[tuple[str, Any]] = [(name, document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not is_text(value):
                raise BadRequest("invalid_field", f"{path or 'body'}: {TEXT_RULE}")
        elif isinstance(value, dict):
            for key, item in value.items():
                if not is_text(key):
                    raise BadRequest("invalid_field", f"{path or 'body'}: a key is not {TEXT_RULE}")
                stack.append((f"{path}.{key[:40]}" if path else key[:40], item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
