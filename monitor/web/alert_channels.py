"""The check that the channels an endpoint's ``alerts`` setting names exist.

The settings validator (``rules.alerts``) is pure and checks only the shape of
``channel_ids``; whether each id is a channel is a database question, asked when a
settings document is saved (by the API and by the settings page, hence its own
module), so a typo is a 400 at save time rather than an alert that reaches nobody.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from monitor.web.appkeys import CHANNELS
from monitor.web.errors import BadRequest


def named_channel_ids(settings: Any) -> list[int]:
    """The channel ids a settings document's ``alerts`` names, when they are ids at all
    (a bad shape is left to the validator, whose message names the key)."""
    alerts = settings.get("alerts") if isinstance(settings, Mapping) else None
    ids = alerts.get("channel_ids") if isinstance(alerts, Mapping) else None
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63]


async def check_channels(app: web.Application, settings: Any, already: Iterable[int] = ()) -> None:
    """BadRequest naming the channel ids that do not exist; ids in ``already`` (the
    stored settings', on a page that saves the whole document back) pass unchecked,
    so a channel deleted since does not block saving something else."""
    wanted = sorted(set(named_channel_ids(settings)) - set(already))
    if not wanted:
        return
    found = {c.id for c in await app[CHANNELS].get_many(wanted)}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise BadRequest(
            "unknown_channel",
            f"alerts.channel_ids: no channel with id {', '.join(map(str, missing))}",
        )
