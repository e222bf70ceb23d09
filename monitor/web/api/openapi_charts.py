"""The charts resource of the OpenAPI document (``api.charts``)."""

from __future__ import annotations

from typing import Any

from monitor.web.api.openapi_parts import ENDPOINT_ID, errors, json_body, ref, time_range

TIME = {"type": "string", "format": "date-time"}
COUNT = {"type": "integer", "minimum": 0}
BUCKET = {
    "type": "object",
    "required": ["start", "hits", "clean", "flagged", "by_flag", "payouts"],
    "properties": {
        "start": {**TIME, "description": "The bucket's start, UTC"},
        "hits": {**COUNT, "description": "Hits received in the bucket, test postbacks left out"},
        "clean": COUNT,
        "flagged": COUNT,
        "by_flag": {
            "type": "object",
            "additionalProperties": COUNT,
            "description": "Flagged hits per flag name (a hit counts once per name it carries)",
        },
        "payouts": {
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"},
            "description": "The sum of the hits' amounts per currency, exact decimals as "
            'strings ("" = hits with an amount and no currency)',
        },
    },
}
DELAY_BUCKETS = {
    "type": "array",
    "description": "Counts per delay bucket, shortest first (a negative delay, the "
    "postback before the conversion time, counts under a minute)",
    "items": {
        "type": "object",
        "required": ["label", "below_seconds", "count"],
        "properties": {
            "label": {"type": "string"},
            "below_seconds": {"type": ["number", "null"], "description": "null: no bound"},
            "count": COUNT,
        },
    },
}
DELAYS = {
    "type": "object",
    "required": ["source", "buckets"],
    "description": 'source "param": the conversion_time_param of the endpoint\'s newest '
    "hits of the range (param, hits_read, sample_limit, unreadable). source "
    '"reconciliation", only without the setting: the newest finished reconciliation run '
    "covering the endpoint with report times (run_id, finished_at); its counts are the "
    "run's matched report rows over all its endpoints, report time to first capture.",
    "properties": {
        "source": {"type": "string", "enum": ["param", "reconciliation"]},
        "param": {"type": "string", "description": "The conversion_time_param setting"},
        "hits_read": {
            **COUNT,
            "description": "The newest hits of the range read, at most "
            "sample_limit; those without the parameter are not counted",
        },
        "sample_limit": COUNT,
        "unreadable": {**COUNT, "description": "Values that are not a time"},
        "run_id": {"type": "integer", "description": "The reconciliation run counted"},
        "finished_at": {**TIME, "description": "When that run finished"},
        "buckets": ref("DelayBuckets"),
    },
}
CHART = {
    "type": "object",
    "required": ["endpoint_id", "range", "bucket_seconds", "start", "end", "now",
                 "currencies", "buckets", "delays"],
    "properties": {
        "endpoint_id": {"type": "integer"},
        "range": {"type": "string", "enum": ["1h", "24h", "7d"]},
        "bucket_seconds": {"type": "integer", "enum": [60, 3600]},
        "start": TIME,
        "end": {**TIME, "description": "The end of the newest bucket, which is still filling"},
        "now": TIME,
        "currencies": {"type": "array", "items": {"type": "string"}},
        "buckets": {"type": "array", "items": ref("ChartBucket"), "description": "Oldest first"},
        "delays": {
            "anyOf": [ref("ConversionDelays"), {"type": "null"}],
            "description": "Delay from conversion to postback: from the endpoint's "
            "conversion_time_param, else from its newest finished reconciliation with "
            "report times; null with neither",
        },
    },
}  # fmt: skip
PATHS: dict[str, Any] = {
    "/api/endpoints/{endpoint_id}/charts": {
        "parameters": [ENDPOINT_ID],
        "get": {
            "operationId": "getEndpointCharts",
            "tags": ["charts"],
            "summary": "Hits per minute or hour (clean, flagged, per flag), payout per "
            "currency, and the conversion delays",
            "description": "1h: 60 one-minute buckets; 24h and 7d: hourly buckets. Every "
            "bucket is listed, a silent one with zeros.",
            "parameters": [time_range("range")],
            "responses": {
                "200": json_body(ref("Chart"), "The endpoint's charts"),
                **errors(400, 401, 404),
            },
        },
    },
}
SCHEMAS: dict[str, Any] = {
    "Chart": CHART,
    "ChartBucket": BUCKET,
    "ConversionDelays": DELAYS,
    "DelayBuckets": DELAY_BUCKETS,
}
