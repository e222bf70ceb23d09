"""``hits list`` and ``hits replay``: the hit list's filters from the command line, and a
bulk replay of a filtered set that prints its progress until it is done.

Same filters as the API (``api.routes.filter_from``), same replay as the API and the
pages (``forwarding.replays.ReplayJobs``), run in this process against the database:
the replay's requests leave from this machine, through the outbound guard this
command is given (``--forward-allow`` as the server's, for a private target).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from multidict import MultiDict

from monitor.config import Config

PROGRESS_EVERY_S = 0.5
FILTER_FLAGS = ("forward_state", "flag", "since", "until", "click_id", "method", "q")


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint_id", type=int)
    parser.add_argument(
        "--forward-state",
        metavar="STATE",
        help="pending, delivered, failed, cancelled, or none (never queued)",
    )
    parser.add_argument("--flag", action="append", help="only hits with this flag (repeatable)")
    parser.add_argument("--since", metavar="TIME", help="RFC 3339, e.g. 2026-01-31T12:00:00Z")
    parser.add_argument("--until", metavar="TIME", help="RFC 3339, with a time zone")
    parser.add_argument("--click-id")
    parser.add_argument("--method", help="HTTP method, e.g. POST")
    parser.add_argument("--search", dest="q", metavar="TEXT", help="text in any param")


def hit_filter(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The filter the flags ask for (checked as the API checks its query), and the
    flags given, as the replay job keeps them."""
    from monitor.web.api.routes import filter_from

    values: MultiDict[str] = MultiDict()
    given: dict[str, Any] = {}
    for name in FILTER_FLAGS:
        value = getattr(args, name)
        if value is None:
            continue
        given[name] = value
        values.extend((name, v) for v in (value if isinstance(value, list) else [value]))
    return filter_from(values), given


def hit_line(hit: dict[str, Any]) -> str:
    from monitor.tail import format_hit

    forward = hit["forward_state"] or "-"
    return f"{hit['id']}  forward={forward:<9}  {format_hit(hit, colour=False)}"


async def cmd_hits_list(config: Config, args: argparse.Namespace) -> int:
    from monitor.cli_commands import with_stores

    flt, _ = hit_filter(args)

    async def work(stores: Any) -> int:
        await stores.endpoints.get(args.endpoint_id)  # a clear error for an unknown id
        items, next_cursor = await stores.hits.list(args.endpoint_id, flt, limit=args.limit)
        if args.json:
            print(json.dumps({"items": items, "next_cursor": next_cursor}, ensure_ascii=False))
            return 0
        for hit in items:
            print(hit_line(hit))
        more = " (more match: raise --limit or narrow the filters)" if next_cursor else ""
        print(f"{len(items)} hit(s){more}", file=sys.stderr)
        return 0

    return await with_stores(config, work)


async def cmd_hits_replay(config: Config, args: argparse.Namespace) -> int:
    """Exit 0 when every hit was delivered (or none matched), 1 when any failed."""
    from monitor.cli_commands import with_stores
    from monitor.forwarding.outbound import OutboundClient
    from monitor.forwarding.replays import ReplayJobs
    from monitor.storage.endpoint_cache import EndpointCache

    flt, given = hit_filter(args)

    async def work(stores: Any) -> int:
        await stores.endpoints.get(args.endpoint_id)
        client = OutboundClient.from_config(config)
        async with client:
            jobs = ReplayJobs(
                stores.pool, stores.hits, EndpointCache(stores.endpoints, stores.url), client,
                dsn=stores.url, concurrency=config.forward_concurrency,
            )  # fmt: skip
            job = await jobs.start(args.endpoint_id, flt, given)
            if job.capped:
                print(f"more hits match: replaying the newest {job.total}", file=sys.stderr)
            try:
                shown = -1
                while True:
                    if job.done != shown or job.state == "finished":
                        shown = job.done
                        print(
                            f"replayed {job.done}/{job.total}: {job.succeeded} delivered, "
                            f"{job.failed} failed", flush=True,
                        )  # fmt: skip
                    if job.state == "finished":
                        break
                    await asyncio.sleep(PROGRESS_EVERY_S)
            finally:
                await jobs.close()
        return 0 if job.failed == 0 else 1

    return await with_stores(config, work)
