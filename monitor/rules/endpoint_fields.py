"""What a user may set on an endpoint (name, description, response, settings), checked.

The API, the web views and the CLI take the same JSON document; it is checked here,
with no I/O, and every refusal names the field (``InvalidInput``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.model.errors import InvalidInput, SettingsError
from monitor.rules.endpoint_settings import compile_endpoint_settings

MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 5000
MAX_RESPONSE_BODY_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class EndpointFields:
    """Validated user input for creating or updating an endpoint."""

    name: str
    description: str
    response_status: int
    response_body: str
    response_content_type: str
    settings: dict[str, Any]


DEFAULTS = EndpointFields("", "", 200, "OK", "text/plain; charset=utf-8", {})


def validate_fields(
    doc: Any, base: EndpointFields = DEFAULTS, *, require_name: bool
) -> EndpointFields:
    """Check a JSON document from the API or CLI; raises InvalidInput naming the field."""
    if not isinstance(doc, dict):
        raise InvalidInput("invalid_body", "the request body must be a JSON object")
    unknown = set(doc) - {"name", "description", "settings", "response"}
    if unknown:
        raise InvalidInput("invalid_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    name = doc.get("name", base.name)
    if require_name and "name" not in doc:
        raise InvalidInput("invalid_field", "name: required")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise InvalidInput(
            "invalid_field", f"name: a non-empty string of at most {MAX_NAME_CHARS} characters"
        )
    description = doc.get("description", base.description)
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(
            "invalid_field", f"description: a string of at most {MAX_DESCRIPTION_CHARS} characters"
        )
    _no_nul("name", name)
    _no_nul("description", description)
    settings = doc.get("settings", base.settings)
    try:
        compiled = compile_endpoint_settings(settings)
    except SettingsError as exc:
        raise InvalidInput("invalid_settings", str(exc)) from None
    response = doc.get("response", {})
    if not isinstance(response, dict):
        raise InvalidInput(
            "invalid_field", "response: must be an object with status, body, content_type"
        )
    unknown = set(response) - {"status", "body", "content_type"}
    if unknown:
        raise InvalidInput(
            "invalid_field", f"response: unknown field(s): {', '.join(sorted(unknown))}"
        )
    status = response.get("status", base.response_status)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise InvalidInput(
            "invalid_field", "response.status: an integer HTTP status from 200 to 599"
        )
    body = response.get("body", base.response_body)
    if not isinstance(body, str) or len(body) > MAX_RESPONSE_BODY_CHARS:
        raise InvalidInput(
            "invalid_field",
            f"response.body: a string of at most {MAX_RESPONSE_BODY_CHARS} characters",
        )
    content_type = response.get("content_type", base.response_content_type)
    if (
        not isinstance(content_type, str)
        or not content_type.strip()
        or len(content_type) > 200
        or any(c in content_type for c in "\r\n\x00")
    ):
        raise InvalidInput(
            "invalid_field", "response.content_type: a media type such as text/plain"
        )
    _no_nul("response.body", body)
    _no_nul("response.content_type", content_type)
    return EndpointFields(
        name.strip(), description, status, body, content_type.strip(), compiled.document
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target`` as a JSON Merge Patch (RFC 7396): an object merges
    key by key, recursively; a key set to null is removed; anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _no_nul(name: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidInput("invalid_field", f"{name}: must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("invalid_field", f"{name}: must be valid Unicode text") from None
