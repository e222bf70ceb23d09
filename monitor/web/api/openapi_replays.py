"""The bulk replay resource of the OpenAPI document: start a replay, follow its progress."""

from __future__ import annotations

from typing import Any

from monitor.forwarding.replays import MAX_REPLAY_HITS
from monitor.model.hit import FORWARD_STATE_FILTERS
from monitor.model.verdict import FLAG_NAMES
from monitor.storage.hits import MAX_METHOD_CHARS, MAX_SEARCH_CHARS
from monitor.web.api.openapi_parts import ENDPOINT_ID, errors, json_body, ref

TIME = {"type": ["string", "null"], "format": "date-time"}
FILTERS = {
    "type": "object",
    "additionalProperties": False,
    "description": "The hit list's filters (GET /api/endpoints/{endpoint_id}/hits), as a "
    "JSON object; null or absent: not filtered. {} replays every hit of the endpoint "
    f"(the newest {MAX_REPLAY_HITS}).",
    "properties": {
        "forward_state": {"enum": [*FORWARD_STATE_FILTERS, "", None]},
        "flag": {"type": ["array", "null"], "items": {"enum": list(FLAG_NAMES)}},
        "flagged": {"type": ["boolean", "null"]},
        "test": {"type": ["boolean", "null"]},
        "click_id": {"type": ["string", "null"]},
        "since": TIME,
        "until": TIME,
        "method": {"type": ["string", "null"], "maxLength": MAX_METHOD_CHARS},
        "q": {"type": ["string", "null"], "maxLength": MAX_SEARCH_CHARS},
    },
}
JOB = {
    "type": "object",
    "required": [
        "id", "endpoint_id", "filters", "state", "total", "capped", "done", "succeeded",
        "failed", "started_at", "finished_at",
    ],
    "properties": {
        "id": {"type": "string"},
        "endpoint_id": {"type": "integer"},
        "filters": {"type": "object", "description": "The filters the replay was started with"},
        "state": {"enum": ["running", "finished"]},
        "total": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_REPLAY_HITS,
            "description": "Hits matched when the job started (a snapshot), at most "
            f"{MAX_REPLAY_HITS}",
        },
        "capped": {
            "type": "boolean",
            "description": f"More than {MAX_REPLAY_HITS} matched: only the newest are sent",
        },
        "done": {"type": "integer", "minimum": 0},
        "succeeded": {"type": "integer", "minimum": 0, "description": "The target answered 2xx"},
        "failed": {"type": "integer", "minimum": 0},
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": TIME,
    },
}  # fmt: skip
CONFLICT = json_body(
    ref("Error"),
    "The endpoint has no forward target (no_forward_target), or a replay of it is "
    "already running (replay_running)",
)
PATHS: dict[str, Any] = {
    "/api/endpoints/{endpoint_id}/replays": {
        "parameters": [ENDPOINT_ID],
        "post": {
            "operationId": "startEndpointReplay",
            "tags": ["replays"],
            "summary": "Replay the hits matching filters to the endpoint's forward target",
            "description": "Takes a snapshot of the matching hits (newest first, at most "
            f"{MAX_REPLAY_HITS}) and sends them again in the background, oldest first, as "
            "many at once as a forward (forward_concurrency). Each is logged as a replay "
            "attempt; a success turns a failed or cancelled forward into delivered. The job "
            "lives in the memory of the server process that started it: ask that process "
            "for its progress (with --workers N, another process answers 404); it is kept "
            "an hour after it finishes and ends with the process. One replay runs per "
            "endpoint at a time.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": FILTERS}},
            },
            "responses": {
                "202": {
                    **json_body(ref("ReplayJob"), "Started; follow it at the Location"),
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                **errors(400, 401, 404),
                "409": CONFLICT,
            },
        },
    },
    "/api/replays/{job_id}": {
        "parameters": [
            {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "get": {
            "operationId": "getReplay",
            "tags": ["replays"],
            "summary": "A bulk replay's progress",
            "responses": {
                "200": json_body(ref("ReplayJob"), "The job"),
                **errors(401, 404),
            },
        },
    },
}
SCHEMAS: dict[str, Any] = {"ReplayJob": JOB}
