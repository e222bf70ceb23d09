"""What the caller of a request may do: a scope and, for a restricted token, the
endpoints it may see.

Set by ``auth`` on every authenticated request (the admin token and its sessions are
``ADMIN``: every scope, every endpoint) and read by ``access`` (the rule table) and by
the handlers that list or take endpoints, which show and accept only allowed ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

SCOPES = ("read", "write", "admin")


@dataclass(frozen=True, slots=True)
class Access:
    """A caller's rights: ``scope`` and the endpoints it may see (None: every one)."""

    scope: str
    endpoint_ids: frozenset[int] | None = None
    token_id: int | None = None  # None: the admin token itself
    token_name: str | None = None  # the scoped token's name, for the audit log's "who"

    def has(self, needed: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    def sees(self, endpoint_id: int) -> bool:
        return self.endpoint_ids is None or endpoint_id in self.endpoint_ids

    def sees_all(self, endpoint_ids: Iterable[int]) -> bool:
        return self.endpoint_ids is None or set(endpoint_ids) <= self.endpoint_ids


ADMIN = Access("admin")
# Kept here, beside its type, like auth.SESSION; absent only on public paths.
ACCESS: web.RequestKey[Access] = web.RequestKey("access")


def access_of(request: web.Request) -> Access:
    """The request's rights (ADMIN where auth set none: public paths, tests of handlers)."""
    return request.get(ACCESS, ADMIN)
