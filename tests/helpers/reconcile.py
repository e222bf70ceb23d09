"""Starting a reconciliation through the API in tests: a CSV report and options as
the multipart upload ``POST /api/reconciliations`` takes."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.conftest import AUTH

URL = "/api/reconciliations"


def csv_text(*rows: str) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def upload(report: bytes | None, options: Any) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if report is not None:
        form.add_field("report", report, filename="report.csv", content_type="text/csv")
    if options is not None:
        text = options if isinstance(options, str) else json.dumps(options)
        form.add_field("options", text, content_type="application/json")
    return form


async def start(client: TestClient, report: bytes | None, options: Any) -> aiohttp.ClientResponse:
    return await client.post(URL, data=upload(report, options), headers=AUTH)
