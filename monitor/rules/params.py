"""Parsed views of a hit: query and body parameters derived from the raw bytes.

Raw bytes stay in the hit; these views are lenient so that nothing a sender can
put on the wire breaks them: ``+`` is a space, malformed percent-escapes are kept
literally, undecodable bytes, lone surrogates and NUL become U+FFFD (PostgreSQL
text and jsonb cannot hold NUL), ``name`` without ``=`` is an empty value, order
and repeats are kept.

A view is also bounded, because capture builds it on the event loop that serves
every other sender: a 1 MiB body of half a million numbers must cost what a few
hundred params cost. Each view stops while walking, never after, at

- ``MAX_PARAMS`` params;
- ``MAX_VIEW_CHARS`` characters of names and values in all (counted as received
  for query strings and forms, before percent-decoding, whose cost they bound;
  as decoded for JSON), which bounds what the rules scan;
- JSON only: ``MAX_JSON_DEPTH`` levels of nesting and ``MAX_JSON_VALUES`` values
  looked at (empty containers and nulls yield no param, yet cost a step);

and clips each name and value to ``MAX_TEXT_CHARS`` (counted the same way). Bodies over
``MAX_PARSED_BODY_BYTES`` are not parsed. A view cut short says why in ``cuts``,
and capture flags the hit ``params_truncated``; the raw bytes are stored whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import AnyStr
from urllib.parse import unquote_to_bytes

from monitor.rules import Flag, make_flag

Params = list[tuple[str, str]]

FORM_TYPES = ("application/x-www-form-urlencoded",)
MAX_PARSED_BODY_BYTES = 1024 * 1024
MAX_PARAMS = 1000
MAX_TEXT_CHARS = 4096
MAX_VIEW_CHARS = 64 * 1024
MAX_JSON_DEPTH = 32
MAX_JSON_VALUES = 4 * MAX_PARAMS

_PAIR = re.compile(rb"[^&]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
# What may follow a value, and a key, with the whitespace around it.
_JSON_AFTER_VALUE = re.compile(r"[ \t\n\r]*([,\]}]?)[ \t\n\r]*")
_JSON_AFTER_KEY = re.compile(r"[ \t\n\r]*:[ \t\n\r]*")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# null is absent; NaN and Infinity are not JSON, yet Python's json reads them.
_JSON_LITERALS: dict[str, str | None] = {
    "true": "true", "false": "false", "null": None,
    "NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class View:
    """Params parsed from one part of a request, and why they stop short of it, if they do."""

    params: Params
    cuts: tuple[str, ...] = ()


def truncated_flags(query: View, body: View) -> list[Flag]:
    """A ``params_truncated`` flag for each view cut short: which part, and why."""
    return [
        make_flag(
            "params_truncated",
            None,
            None,
            f"The {part}'s params were cut short ({'; '.join(view.cuts)}); "
            f"the raw {part} is stored whole.",
            part=part,
        )
        for part, view in (("query string", query), ("body", body))
        if view.cuts
    ]


def text(raw: bytes) -> str:
    """Bytes as display text: UTF-8 where valid, U+FFFD elsewhere, never NUL."""
    decoded = raw.decode("utf-8", "replace")
    return decoded.replace("\x00", "\ufffd") if "\x00" in decoded else decoded


def clean(value: str) -> str:
    """A str that may carry surrogate escapes, lone surrogates or NUL, made storable."""
    if value.isascii() and "\x00" not in value:
        return value
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from a JSON "\ud800": one U+FFFD each
        raw = _SURROGATE.sub("\ufffd", value).encode("utf-8")
    return text(raw)


class _Collector:
    """Params of one view within its caps; ``full`` once no more may be added."""

    __slots__ = ("chars_left", "cuts", "full", "params")

    def __init__(self) -> None:
        self.params: Params = []
        self.cuts: list[str] = []
        self.chars_left = MAX_VIEW_CHARS
        self.full = False

    def cut(self, reason: str) -> None:
        if reason not in self.cuts:
            self.cuts.append(reason)

    def stop(self, reason: str) -> None:
        self.cut(reason)
        self.full = True

    def room(self, chars: int) -> bool:
        """Whether one more param of ``chars`` characters fits; stops the view if not."""
        if len(self.params) == MAX_PARAMS:
            self.stop(f"more than {MAX_PARAMS} params")
        elif chars > self.chars_left:
            self.stop(f"more than {MAX_VIEW_CHARS} characters of names and values")
        else:
            self.chars_left -= chars
        return not self.full

    def clip(self, value: AnyStr) -> AnyStr:
        if len(value) <= MAX_TEXT_CHARS:
            return value
        self.cut(f"names or values over {MAX_TEXT_CHARS} characters clipped")
        return value[:MAX_TEXT_CHARS]

    def view(self) -> View:
        return View(self.params, tuple(self.cuts))


def query_view(raw: bytes) -> View:
    """application/x-www-form-urlencoded pairs, leniently decoded, order and repeats kept."""
    if len(raw) <= MAX_TEXT_CHARS and b"%" not in raw and b"+" not in raw:
        # The common case, within every cap but the count: decode once. '&' and '='
        # are ASCII, never part of a multi-byte UTF-8 sequence, so splitting after
        # decoding splits the same.
        pairs = [pair.partition("=") for pair in text(raw).split("&") if pair]
        if len(pairs) <= MAX_PARAMS:
            return View([(name, value) for name, _, value in pairs])
    found = _Collector()
    for match in _PAIR.finditer(raw):
        raw_name, _, raw_value = match.group().partition(b"=")
        # Clipped before decoding: unescaping costs Python steps per byte.
        raw_name, raw_value = found.clip(raw_name), found.clip(raw_value)
        if not found.room(len(raw_name) + len(raw_value)):
            break
        found.params.append((_decode(raw_name), _decode(raw_value)))
    return found.view()


def parse_query(raw: bytes) -> Params:
    """The params of ``query_view``, for callers that need not know whether it was cut."""
    return query_view(raw).params


def _decode(component: bytes) -> str:
    if b"%" not in component and b"+" not in component:
        return text(component)  # the common case: nothing to unescape
    return text(unquote_to_bytes(component.replace(b"+", b" ")))


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def body_view(content_type: str, body: bytes) -> View:
    """Params carried by a form or JSON body (any method); other bodies carry none.

    JSON is also tried when the body looks like a JSON object whatever the declared
    type, because senders posting JSON as a form is a failure worth seeing.
    """
    kind = media_type(content_type)
    as_json = kind == "application/json" or kind.endswith("+json") or body.lstrip()[:1] == b"{"
    if not body or not (as_json or kind in FORM_TYPES):
        return View([])
    if len(body) > MAX_PARSED_BODY_BYTES:
        return View([], (f"bodies over {MAX_PARSED_BODY_BYTES} bytes are not parsed",))
    if as_json:
        view = _json_view(body)
        if view is not None:
            return view
    return query_view(body) if kind in FORM_TYPES else View([])


def parse_body(content_type: str, body: bytes) -> Params:
    """The params of ``body_view``, for callers that need not know whether it was cut."""
    return body_view(content_type, body).params


def _json_view(body: bytes) -> View | None:
    """A JSON object or array as dotted paths, walked up to the caps; None if not JSON.

    Numbers and booleans arrive as their JSON text, null is absent. The document is
    checked as far as it is walked: past a cap, the rest is not read at all.
    """
    try:
        doc = body.decode(json.detect_encoding(body), "surrogatepass")
        return _walk_json(doc)
    except ValueError:  # undecodable bytes, bad syntax, an integer past 4300 digits
        return None


@dataclass(slots=True)
class _Container:
    """An open JSON object or array while walking: what ends it, its path, its next index."""

    closer: str
    path: str
    index: int = 0


def _walk_json(doc: str) -> View | None:
    # A loop over an explicit stack, not recursion: the depth is the sender's choice.
    found = _Collector()
    pos = _space(doc, 0)
    if doc[pos : pos + 1] not in ("{", "["):
        return None  # a bare string or number carries no params
    open_containers: list[_Container] = []
    name, values = "", 0
    while True:  # one value per turn, starting at pos, known as name
        values += 1
        if values > MAX_JSON_VALUES:
            found.stop(f"more than {MAX_JSON_VALUES} JSON values")
            break
        opener = doc[pos : pos + 1]
        if opener in ("{", "["):
            if len(open_containers) == MAX_JSON_DEPTH:
                found.stop(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
                break
            closer = "}" if opener == "{" else "]"
            pos = _space(doc, pos + 1)
            if doc[pos : pos + 1] != closer:
                open_containers.append(_Container(closer, name))
                pos, name = _item(doc, pos, open_containers[-1], found)
                continue
            pos += 1
        else:
            pos, leaf = _scalar(doc, pos)
            if leaf is not None:
                leaf = found.clip(leaf)
                if not found.room(len(name) + len(leaf)):
                    break
                found.params.append((clean(name), clean(leaf)))
        # After a value: the containers that end here, then a comma before the next item.
        while open_containers:
            after = _JSON_AFTER_VALUE.match(doc, pos)
            assert after is not None  # it matches the empty string
            pos, separator = after.end(), after.group(1)
            if separator == ",":
                break
            if separator != open_containers[-1].closer:
                raise ValueError("expected , or the end of the container")
            open_containers.pop()
        else:
            if _space(doc, pos) != len(doc):
                raise ValueError("extra data after the JSON document")
            break
        pos, name = _item(doc, pos, open_containers[-1], found)
    return found.view()


def _space(doc: str, pos: int) -> int:
    return _JSON_SPACE.match(doc, pos).end()  # type: ignore[union-attr]  # matches empty


def _item(doc: str, pos: int, container: _Container, found: _Collector) -> tuple[int, str]:
    """Where the next item's value starts, and its name (the key, or the index)."""
    if container.closer == "]":
        key = str(container.index)
        container.index += 1
    else:
        if doc[pos : pos + 1] != '"':
            raise ValueError("expected a key")
        key, pos = scanstring(doc, pos + 1, True)
        colon = _JSON_AFTER_KEY.match(doc, pos)
        if colon is None:
            raise ValueError("expected :")
        pos = colon.end()
    name = f"{container.path}.{key}" if container.path else key
    return pos, found.clip(name)


def _scalar(doc: str, pos: int) -> tuple[int, str | None]:
    """The end of the string, number or literal at pos, and its text (None for null)."""
    if doc[pos : pos + 1] == '"':
        value, end = scanstring(doc, pos + 1, True)
        return end, value
    number = _JSON_NUMBER.match(doc, pos)
    if number is not None:
        if number.group(1) is None and number.group(2) is None:
            return number.end(), str(int(number.group()))
        return number.end(), json.dumps(float(number.group()))
    for literal, value in _JSON_LITERALS.items():
        if doc.startswith(literal, pos):
            return pos + len(literal), value
    raise ValueError("expected a JSON value")
