"""The postback tester: check a postback URL before it is pasted into a network.

First the URL's own defects, judged by the same rules as captured hits (unreplaced
macros, a missing click id, bad amounts and currencies, and macros left in the path);
then, unless it is a dry run, the URL is fired and redirects are followed hop by hop,
each hop through the SSRF guard again, reporting status, headers and time of every
hop and the final body (capped). Used by the API, the CLI and the web page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
from yarl import URL

from monitor.forwarding.outbound import OutboundClient, OutboundError, OutboundRefused
from monitor.model.hit import body_json
from monitor.rules import Flag, compile_settings, judge, make_flag
from monitor.rules.macros import find_macro
from monitor.rules.params import parse_body, parse_query

MAX_HOPS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
FORM = "application/x-www-form-urlencoded"
MAX_URL_CHARS = 8192


@dataclass(frozen=True, slots=True)
class Probe:
    url: str
    method: str = "GET"
    body: bytes = b""
    content_type: str = ""
    settings: Mapping[str, Any] | None = None
    dry_run: bool = False


def lint(req: Probe) -> list[Flag]:
    """The URL's own defects, as flags like those on hits. SettingsError for bad settings."""
    rules = compile_settings(req.settings or {})
    _, _, rest = req.url.partition("?")
    raw_query = rest.partition("#")[0].encode("utf-8", "surrogateescape")
    params = parse_query(raw_query)
    content_type = req.content_type or (FORM if req.body else "")
    body_params = parse_body(content_type, req.body) if req.body else []
    verdict = judge(rules, params + body_params, remote_ip=None, headers=[])
    flags = list(verdict.flags)
    for segment in urlsplit(req.url).path.split("/"):
        token = find_macro(unquote(segment))
        if token is not None:
            flags.insert(0, make_flag("unreplaced_macro", None, segment,
                f"The path still holds the placeholder {token}.", macro=token))  # fmt: skip
    if verdict.click_id is None and not any(
        f["flag"] == "missing_param" and f["param"] in rules.click_id_names for f in flags
    ):
        names = ", ".join(rules.click_id_names[:6]) + (
            ", ..." if len(rules.click_id_names) > 6 else ""
        )
        flags.append(make_flag("missing_click_id", None, None,
            f"No click id parameter ({names}) has a value, so the conversion cannot be "
            "matched to its click."))  # fmt: skip
    return flags


async def run(client: OutboundClient, req: Probe, max_hops: int = MAX_HOPS) -> dict[str, Any]:
    """Lint, then (unless a dry run) fire and follow redirects; the whole report."""
    report: dict[str, Any] = {
        "url": req.url,
        "method": req.method,
        "flags": lint(req),
        "fired": False,
        "hops": [],
        "final": None,
        "error": None,
    }
    if req.dry_run:
        return report
    report["fired"] = True
    url = URL(req.url)
    method, body = req.method, req.body or None
    headers = [("Content-Type", req.content_type or FORM)] if body else []
    for hop_number in range(max_hops + 1):
        hop: dict[str, Any] = {"url": str(url), "method": method}
        report["hops"].append(hop)
        try:
            resp = await client.request(method, url, headers=headers, body=body)
        except OutboundRefused as exc:
            hop["error"] = report["error"] = f"refused: {exc.message}"
            return report
        except OutboundError as exc:
            hop["error"] = report["error"] = exc.message
            return report
        except TimeoutError:
            hop["error"] = report["error"] = "timed out"
            return report
        except aiohttp.ClientError as exc:
            hop["error"] = report["error"] = f"{type(exc).__name__}: {exc}"
            return report
        except (ValueError, UnicodeError) as exc:
            hop["error"] = report["error"] = f"invalid request: {exc}"
            return report
        hop.update(status=resp.status, headers=[list(h) for h in resp.headers],
                   elapsed_ms=resp.elapsed_ms)  # fmt: skip
        location = next((v for k, v in resp.headers if k.lower() == "location"), None)
        if resp.status in REDIRECT_STATUSES and location:
            if hop_number == max_hops:
                report["error"] = f"more than {max_hops} redirects"
                return report
            try:
                url = url.join(URL(location))
            except ValueError:
                report["error"] = f"redirect to an invalid URL: {location[:200]!r}"
                return report
            hop["location"] = str(url)
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, body, headers = "GET", None, []
            continue
        report["final"] = {
            "status": resp.status,
            "body_truncated": resp.body_truncated,
            **body_json(resp.body),
        }
        return report
    return report


def parse_request(doc: Any) -> Probe:
    """A Probe from the API's JSON; ValueError names the bad field."""
    if not isinstance(doc, dict):
        raise ValueError("the request body must be a JSON object")
    unknown = set(doc) - {"url", "method", "body", "content_type", "settings", "dry_run"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    url = doc.get("url")
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL_CHARS:
        raise ValueError(f"url: an http or https URL of at most {MAX_URL_CHARS} characters")
    url = url.strip()
    try:
        parsed = URL(url)
        urlsplit(url)
    except (ValueError, TypeError, UnicodeError):
        raise ValueError("url: not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise ValueError("url: an http or https URL with a host")
    method = doc.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ValueError(f"method: one of {', '.join(METHODS)}")
    body = doc.get("body", "")
    if not isinstance(body, str):
        raise ValueError("body: a string")
    content_type = doc.get("content_type", "")
    if not isinstance(content_type, str) or any(c in content_type for c in "\r\n\x00"):
        raise ValueError("content_type: a media type such as application/json")
    settings = doc.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise ValueError('settings: an endpoint settings object (e.g. {"preset": "voluum"})')
    dry_run = doc.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ValueError("dry_run: true or false")
    return Probe(url, method.upper(), body.encode(), content_type, settings, dry_run)


def format_report(report: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    lines = [f"{report['method']} {report['url']}"]
    if report["flags"]:
        lines.append(f"{len(report['flags'])} problem(s) with the URL:")
        lines += [f"  ! {f['flag']}: {f['message']}" for f in report["flags"]]
    else:
        lines.append("No problems found in the URL.")
    if not report["fired"]:
        lines.append("Dry run: not fired.")
        return "\n".join(lines)
    for i, hop in enumerate(report["hops"], 1):
        if "status" in hop:
            lines.append(f"hop {i}: {hop['method']} {hop['url']} -> {hop['status']} "
                         f"in {hop['elapsed_ms']:.0f} ms")  # fmt: skip
            if "location" in hop:
                lines.append(f"        redirected to {hop['location']}")
        else:
            lines.append(f"hop {i}: {hop['method']} {hop['url']} -> {hop['error']}")
    final = report["final"]
    if final is not None:
        text = final.get("body_text", "<binary body>")
        lines.append(f"final status {final['status']}; body:")
        lines.append("  " + text[:2000].replace("\n", "\n  "))
    elif report["error"]:
        lines.append(f"error: {report['error']}")
    return "\n".join(lines)


def passed(report: dict[str, Any]) -> bool:
    final = report["final"]
    ok_response = not report["fired"] or (final is not None and final["status"] < 400)
    return ok_response and not report["flags"]
