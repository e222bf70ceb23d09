"""The presets resource of the OpenAPI document (``presets.preset_list``)."""

from __future__ import annotations

from typing import Any

from monitor.web.api.openapi_parts import errors, json_body, ref

PRESET = {
    "type": "object",
    "required": ["key", "name", "direction", "click_id_param", "template", "method", "macros"],
    "properties": {
        "key": {"type": "string"},
        "name": {"type": "string"},
        "direction": {"type": "string", "enum": ["sender", "receiver"]},
        "click_id_param": {"type": "string"},
        "event_param": {"type": ["string", "null"]},
        "amount_param": {"type": ["string", "null"]},
        "currency_param": {"type": ["string", "null"]},
        "required_params": {"type": "array", "items": {"type": "string"}},
        "template": {"type": "string"},
        "method": {"type": "string"},
        "notes": {"type": "string"},
        "macros": {"type": "array", "items": {"type": "string"}},
        # The platform's own test markers: param → values that mark a test postback.
        "test_markers": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/presets": {
        "get": {
            "operationId": "listPresets",
            "tags": ["presets"],
            "summary": "Platform presets: param names and postback URL templates",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["items"],
                        "properties": {"items": {"type": "array", "items": ref("Preset")}},
                    },
                    "All presets",
                ),
                **errors(401),
            },
        },
    },
}
SCHEMAS: dict[str, Any] = {"Preset": PRESET}
