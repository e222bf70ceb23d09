"""The audit log's web side: which routes are management actions, who acted, and
the entry each successful one leaves (``storage.audit`` keeps them).

Recorded by one wrapper around every handler (``audit_middleware``, run by the service
middleware after authentication), not by each handler: a route in ``ACTIONS``
that answers below 400 leaves an entry; a refusal, an error or a re-shown form
(400) leaves none. A handler adds what only it knows with ``note`` (the id it
made, the settings before and after). Every non-GET route must be in ``ACTIONS``
or ``EXEMPT`` (tests/integration/test_audit_routes.py walks the router), so a new
route cannot be forgotten. Secrets never reach the table: ``redact`` hides every
value under a secret-looking key before the entry is written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import structlog
from aiohttp import web

from monitor.reconciling.options import RunOptions
from monitor.storage.audit import AuditEntry
from monitor.storage.endpoints import Endpoint
from monitor.web.appkeys import AUDIT
from monitor.web.auth import SESSION
from monitor.web.errors import Handler
from monitor.web.inputs import database_id
from monitor.web.scopes import ACCESS, ADMIN, Access

log = structlog.get_logger(__name__)

HIDDEN = "[hidden]"
HIDDEN_CHANGED = "[hidden, changed]"
# Keys whose values are credentials wherever they appear (endpoint settings' secret,
# channel configs, token and share-link answers).
SECRET_KEYS = frozenset(
    {"secret", "token", "password", "bot_token", "signing_secret", "url", "webhook_url",
     "capture_url", "postback_url"}
)  # fmt: skip

# (method, path as registered) -> the action its success records.
ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/api/endpoints"): "endpoint.create",
    ("PATCH", "/api/endpoints/{endpoint_id}"): "endpoint.update",
    ("DELETE", "/api/endpoints/{endpoint_id}"): "endpoint.delete",
    ("POST", "/api/endpoints/{endpoint_id}/rotate-token"): "endpoint.rotate_token",
    ("DELETE", "/api/endpoints/{endpoint_id}/hits"): "endpoint.clear",
    ("DELETE", "/api/hits/{hit_id}"): "hit.delete",
    ("POST", "/api/hits/{hit_id}/replay"): "hit.replay",
    ("POST", "/api/endpoints/{endpoint_id}/replays"): "replay.start",
    ("POST", "/api/reconciliations"): "reconciliation.start",
    ("DELETE", "/api/reconciliations/{run_id}"): "reconciliation.delete",
    ("POST", "/api/endpoints/{endpoint_id}/share-links"): "share_link.create",
    ("DELETE", "/api/endpoints/{endpoint_id}/share-links/{link_id}"): "share_link.revoke",
    ("POST", "/api/endpoints/{endpoint_id}/senders/accept"): "sender.accept",
    ("POST", "/api/channels"): "channel.create",
    ("PATCH", "/api/channels/{channel_id}"): "channel.update",
    ("DELETE", "/api/channels/{channel_id}"): "channel.delete",
    ("POST", "/api/channels/{channel_id}/test"): "channel.test",
    ("POST", "/api/tokens"): "token.create",
    ("DELETE", "/api/tokens/{token_id}"): "token.revoke",
    ("POST", "/endpoints"): "endpoint.create",
    ("POST", "/endpoints/{endpoint_id}/settings"): "endpoint.update",
    ("POST", "/endpoints/{endpoint_id}/delete"): "endpoint.delete",
    ("POST", "/endpoints/{endpoint_id}/rotate"): "endpoint.rotate_token",
    ("POST", "/endpoints/{endpoint_id}/clear"): "endpoint.clear",
    ("POST", "/hits/{hit_id}/delete"): "hit.delete",
    ("POST", "/hits/{hit_id}/replay"): "hit.replay",
    ("POST", "/endpoints/{endpoint_id}/replays"): "replay.start",
    ("POST", "/reconcile"): "reconciliation.start",
    ("POST", "/reconciliations/{run_id}/delete"): "reconciliation.delete",
    ("POST", "/endpoints/{endpoint_id}/share-links"): "share_link.create",
    ("POST", "/endpoints/{endpoint_id}/share-links/{link_id}/revoke"): "share_link.revoke",
    ("POST", "/endpoints/{endpoint_id}/senders/accept"): "sender.accept",
    ("POST", "/channels"): "channel.create",
    ("POST", "/channels/{channel_id}/test"): "channel.test",
    ("POST", "/channels/{channel_id}/delete"): "channel.delete",
    ("POST", "/tokens"): "token.create",
    ("POST", "/tokens/{token_id}/revoke"): "token.revoke",
}
# Non-GET routes that change nothing an operator needs to account for, and why.
EXEMPT: dict[tuple[str, str], str] = {
    ("POST", "/login"): "signing in: no management action, and a failed one has no actor",
    ("POST", "/logout"): "signing out ends only the caller's own session",
    ("POST", "/api/tester"): "sends a test request and shows the answer; stores nothing",
    ("POST", "/tester"): "sends a test request and shows the answer; stores nothing",
    ("POST", "/reconcile/detect"): "reads an upload's head to guess its columns; stores nothing",
}
# A path parameter -> how the target reads, most specific first.
TARGETS = (
    ("link_id", "share link"),
    ("token_id", "token"),
    ("channel_id", "channel"),
    ("run_id", "reconciliation"),
    ("hit_id", "hit"),
    ("endpoint_id", "endpoint"),
)


@dataclass(frozen=True, slots=True)
class Note:
    """What a handler adds to its entry: what only it knows."""

    target: str | None = None
    endpoint_id: int | None = None
    before: Any = None
    after: Any = None


NOTE: web.RequestKey[Note] = web.RequestKey("audit_note")


def note(request: web.Request, **fields: Any) -> None:
    """Add ``target``, ``endpoint_id``, ``before`` or ``after`` to this request's entry."""
    request[NOTE] = replace(request.get(NOTE, Note()), **fields)


def endpoint_doc(endpoint: Endpoint) -> dict[str, Any]:
    """What an endpoint's entry shows of it: the fields a user sets, never its token."""
    return {
        "name": endpoint.name,
        "description": endpoint.description,
        "settings": endpoint.settings,
        "response": {
            "status": endpoint.response_status,
            "body": endpoint.response_body,
            "content_type": endpoint.response_content_type,
        },
    }


def note_endpoint(
    request: web.Request, before: Endpoint | None = None, after: Endpoint | None = None
) -> None:
    """An endpoint action's entry: its id, and what it was and became."""
    made = after or before
    assert made is not None
    note(
        request,
        target=f"endpoint {made.id}",
        endpoint_id=made.id,
        before=None if before is None else endpoint_doc(before),
        after=None if after is None else endpoint_doc(after),
    )


def note_run(request: web.Request, ident: int, options: RunOptions) -> None:
    """A started reconciliation's entry: the run and what it was asked to match."""
    ids = options.endpoint_ids
    note(
        request,
        target=f"reconciliation {ident}",
        endpoint_id=ids[0] if len(ids) == 1 else None,
        after=options.as_json(),
    )


def redact(value: Any, was: Any = None) -> Any:
    """``value`` with everything under a secret-looking key replaced by ``[hidden]``,
    or by ``[hidden, changed]`` where ``was`` (the same document before the action)
    held another value there: the entry says a secret changed, never what it is."""
    if isinstance(value, dict):
        old = was if isinstance(was, dict) else {}
        return {
            k: (
                _hidden(v, old.get(k))
                if k in SECRET_KEYS and v is not None
                else redact(v, old.get(k))
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _hidden(value: Any, was: Any) -> str:
    return HIDDEN if was is None or was == value else HIDDEN_CHANGED


def actor_of(access: Access, session: Any) -> str:
    """Who, in words: the admin token, a scoped token, or a browser session of either."""
    who = "the admin token" if access.token_id is None else _token(access)
    if session is None:
        return "admin token" if access.token_id is None else who
    return f"session of {who}"


def _token(access: Access) -> str:
    name = f" ({access.token_name})" if access.token_name else ""
    return f"token {access.token_id}{name}"


def action_of(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return ACTIONS.get((request.method, resource.canonical))


def entry_for(request: web.Request, action: str) -> AuditEntry:
    access = request.get(ACCESS, ADMIN)
    found = request.get(NOTE, Note())
    info = request.match_info
    target = found.target
    if target is None:
        target = next((f"{label} {info[k][:80]}" for k, label in TARGETS if k in info), None)
    endpoint = found.endpoint_id
    if endpoint is None and "endpoint_id" in info:
        endpoint = database_id(info["endpoint_id"])
    return AuditEntry(
        actor=actor_of(access, request.get(SESSION)),
        actor_token_id=access.token_id,
        action=action,
        endpoint_id=endpoint,
        target=target,
        before=redact(found.before),
        after=redact(found.after, found.before),
        remote=request.remote,
    )


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the handler; if its route is an action and it succeeded, record the entry.

    An entry that cannot be written is logged, not raised: the change is done, and
    an error answer would tell the caller it was not."""
    action = action_of(request)
    if action is None:
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            await _record(request, action)
        raise
    if response.status < 400:
        await _record(request, action)
    return response


async def _record(request: web.Request, action: str) -> None:
    try:
        entry = entry_for(request, action)
        await request.app[AUDIT].record(entry)
    except Exception as exc:
        log.error("audit.record_failed", action=action, path=request.path, error=str(exc))
