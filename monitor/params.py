"""Parsed views of a hit: query and body parameters derived from the raw bytes.

Raw bytes stay in the hit; these views are lenient so that nothing a sender can
put on the wire breaks them: ``+`` is a space, malformed percent-escapes are kept
literally, undecodable bytes and NUL become U+FFFD (PostgreSQL text and jsonb cannot
hold NUL), ``name`` without ``=`` is an empty value, order and repeats are kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

Params = list[tuple[str, str]]

FORM_TYPES = ("application/x-www-form-urlencoded",)
# Params from bodies larger than this are not parsed (the body itself is still kept).
MAX_PARSED_BODY_BYTES = 1024 * 1024
MAX_BODY_PARAMS = 1000


def text(raw: bytes) -> str:
    """Bytes as display text: UTF-8 where valid, U+FFFD elsewhere, never NUL."""
    decoded = raw.decode("utf-8", "replace")
    return decoded.replace("\x00", "\ufffd") if "\x00" in decoded else decoded


def clean(value: str) -> str:
    """A str that may carry surrogate escapes or NUL, made storable."""
    if value.isascii() and "\x00" not in value:
        return value
    return text(value.encode("utf-8", "surrogateescape"))


def parse_query(raw: bytes) -> Params:
    """application/x-www-form-urlencoded pairs, leniently decoded, order and repeats kept."""
    params: Params = []
    if not raw:
        return params
    if b"%" not in raw and b"+" not in raw:
        # Nothing to unescape: decode once. '&' and '=' are ASCII, never part of a
        # multi-byte UTF-8 sequence, so splitting after decoding splits the same.
        for pair in text(raw).split("&"):
            if pair:
                name, _, value = pair.partition("=")
                params.append((name, value))
        return params
    for part in raw.split(b"&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition(b"=")
        params.append((_decode(raw_name), _decode(raw_value)))
    return params


def _decode(component: bytes) -> str:
    if b"%" not in component and b"+" not in component:
        return text(component)  # the common case: nothing to unescape
    return text(unquote_to_bytes(component.replace(b"+", b" ")))


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_body(content_type: str, body: bytes) -> Params:
    """Params carried by a form or JSON body (any method); other bodies carry none.

    JSON is also tried when the body looks like a JSON object whatever the declared
    type, because senders posting JSON as a form is a failure worth seeing.
    """
    if not body or len(body) > MAX_PARSED_BODY_BYTES:
        return []
    kind = media_type(content_type)
    stripped = body.lstrip()
    if kind == "application/json" or kind.endswith("+json") or stripped[:1] == b"{":
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict | list):
            return list(_flatten(document, ""))[:MAX_BODY_PARAMS]
        if kind != "application/json" and not kind.endswith("+json") and kind in FORM_TYPES:
            return parse_query(body)[:MAX_BODY_PARAMS]
        return []
    if kind in FORM_TYPES:
        return parse_query(body)[:MAX_BODY_PARAMS]
    return []


def _flatten(node: Any, prefix: str) -> Iterator[tuple[str, str]]:
    """Nested JSON as dotted paths; numbers and booleans as their JSON text; null is absent."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _flatten(value, f"{prefix}.{index}" if prefix else str(index))
    elif node is None:
        return
    elif isinstance(node, bool):
        yield clean(prefix), "true" if node else "false"
    elif isinstance(node, str):
        yield clean(prefix), clean(node)
    else:
        yield clean(prefix), json.dumps(node)
