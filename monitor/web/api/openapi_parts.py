"""Building blocks every resource's part of the OpenAPI document uses.

The error object, references, response helpers and the path parameters that more
than one resource shares; the resources' own schemas and paths live in the
``openapi_*`` module of each resource.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Any]:
    words = {400: "Invalid input", 401: "Admin token missing or wrong", 404: "Not found"}
    return {str(s): json_body(ref("Error"), words.get(s, "Error")) for s in statuses}


def time_range(name: str) -> dict[str, Any]:
    """The query parameter that picks one of the views' time ranges (stats, charts)."""
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "string", "enum": ["1h", "24h", "7d"], "default": "24h"},
    }


ENDPOINT_ID = {
    "name": "endpoint_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
HIT_ID = {
    "name": "hit_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
