"""The settings page: the form fields save the same document the API takes, keep
what they do not show, name the field a refusal is about; the JSON editor still
replaces the whole document; the settings reference is a page of its own."""

from __future__ import annotations

import html
from typing import Any

from aiohttp.test_utils import TestClient

from monitor.web.views.settings_form import field_values
from tests.conftest import AUTH
from tests.helpers.signin import csrf_of, sign_in


async def stored(client: TestClient, endpoint: dict[str, Any]) -> dict[str, Any]:
    resp = await client.get(f"/api/endpoints/{endpoint['id']}", headers=AUTH)
    document: dict[str, Any] = await resp.json()
    return document


def page_form(page: str, settings: dict[str, Any], **changes: str) -> dict[str, str]:
    """The fields form as a browser posts it: every field, some of them edited."""
    return {
        "csrf": csrf_of(page),
        "name": "shop",
        "description": "",
        "response_status": "200",
        "response_body": "OK",
        "response_content_type": "text/plain; charset=utf-8",
        **field_values(settings),
        **changes,
    }


async def test_form_fields_save_the_settings_document(
    client: TestClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint(
        "shop", settings={"rate_limit_per_s": 5, "retention_days": 30, "required_params": []}
    )
    url = f"/endpoints/{endpoint['id']}/settings"
    page = await (await client.get(url)).text()
    for name in ("click_id_param", "dedupe_window", "allowed_ips", "secret_value",
                 "expected_interval", "forward_url", "forward_mode"):  # fmt: skip
        assert f'name="{name}"' in page, name
    assert 'href="/docs/rules"' in page
    assert '<details id="advanced">' in page  # the JSON editor, folded away

    form = page_form(
        page, endpoint["settings"],
        preset="binom", click_id_param="cnv_id", dedupe_scope="click_id", dedupe_window="24h",
        allowed_ips="198.51.100.0/24\r\n192.0.2.7", secret_value="s3cr3t", secret_in="header",
        secret_name="X-Secret", expected_interval="6h", forward_url="https://t.example/pb?c={cnv_id}",
        forward_max_attempts="4", response_status="202",
    )  # fmt: skip
    resp = await client.post(url, data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    after = await stored(client, endpoint)
    assert after["settings"] == {
        "preset": "binom",
        "required_params": [],  # untouched, so not rewritten
        "click_id_param": "cnv_id",
        "dedupe": {"scope": "click_id", "window": "24h"},
        "allowed_ips": ["198.51.100.0/24", "192.0.2.7"],
        "secret": {"value": "s3cr3t", "header": "X-Secret"},
        "expected_interval": "6h",
        "forward_url": "https://t.example/pb?c={cnv_id}",
        "forward_mode": "template",
        "forward_flagged": True,
        "forward_max_attempts": 4,
        "rate_limit_per_s": 5,  # set through JSON, not shown by the form: kept
        "retention_days": 30,
    }
    assert after["response"]["status"] == 202

    # Emptied fields remove their keys.
    page = await (await client.get(url)).text()
    form = page_form(
        page, after["settings"], response_status="202", secret_value="", secret_name="",
        forward_url="", forward_max_attempts="", expected_interval="", dedupe_scope="",
        dedupe_window="",
    )  # fmt: skip
    form.pop("forward_mode")  # a field the request does not carry is left alone
    resp = await client.post(url, data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    settings = (await stored(client, endpoint))["settings"]
    for key in ("secret", "forward_url", "expected_interval", "dedupe", "forward_max_attempts"):
        assert key not in settings, key
    assert settings["rate_limit_per_s"] == 5


async def test_a_refused_field_is_named_and_what_was_typed_is_kept(
    client: TestClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("refused")
    url = f"/endpoints/{endpoint['id']}/settings"
    page = await (await client.get(url)).text()
    target = {"forward_url": "https://t.example/pb"}
    for field, value, message, more in (
        ("dedupe_window", "soon", "dedupe.window: must be seconds", {}),
        ("allowed_ips", "10.0.0.1/8", "allowed_ips", {}),
        ("forward_url", "ftp://x", "forward_url: an http or https URL", {}),
        ("expected_interval", "0", "expected_interval: ", {}),
        ("forward_max_attempts", "1000", "forward_max_attempts: a whole number from 1", target),
        ("forward_mode", "passthrough", "forward_mode: set forward_url as well", {}),
    ):
        resp = await client.post(url, data=page_form(page, {}, **{field: value}, **more))
        assert resp.status == 400, field
        text = await resp.text()
        assert message in html.unescape(text), (field, text[:2000])
        assert f'id="f-{field}"' in text
        tag = text[text.index(f'id="f-{field}"') - 200 : text.index(f'id="f-{field}"') + 300]
        assert 'aria-invalid="true"' in tag, field
        assert html.escape(value) in text  # the user's input is kept
    assert (await stored(client, endpoint))["settings"] == {}


async def test_the_json_editor_replaces_the_whole_document(
    client: TestClient, make_endpoint: Any
) -> None:
    csrf = await sign_in(client)
    endpoint = await make_endpoint("json", settings={"preset": "voluum", "rate_limit_per_s": 5})
    url = f"/endpoints/{endpoint['id']}/settings"
    resp = await client.post(
        url, data={"csrf": csrf, "settings": '{"retention_days": 7}'}, allow_redirects=False
    )
    assert resp.status == 303
    after = await stored(client, endpoint)
    assert after["settings"] == {"retention_days": 7}
    assert after["name"] == "json"  # the editor's form carries only the document
    bad = await client.post(url, data={"csrf": csrf, "settings": '{"clickid_param": 1}'})
    assert bad.status == 400
    text = await bad.text()
    assert "clickid_param: unknown setting" in html.unescape(text)
    assert '<details id="advanced" open>' in text


async def test_the_settings_reference_page(client: TestClient) -> None:
    await sign_in(client)
    resp = await client.get("/docs/rules")
    assert resp.status == 200
    text = await resp.text()
    assert '<h2 id="settings-document">Settings document</h2>' in text
    assert '<h3 id="operational-keys">Operational keys</h3>' in text
    assert "<code>expected_interval</code>" in text
