"""What each command of the CLI does, once ``cli`` has parsed it and found the database.

``cli`` builds the parser, the settings and the database each command uses; the
handlers here take that ``Config`` and the parsed arguments and return the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from monitor.config import Config


def _settings_arg(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        from monitor.web.errors import BadRequest

        raise BadRequest("invalid_settings", "--settings: not valid JSON") from None


async def cmd_migrate(config: Config, args: argparse.Namespace) -> int:
    from monitor.storage.db import connect, database_url
    from monitor.storage.migrate import migrate
    from monitor.storage.partitions import ensure_partitions

    async with database_url(config) as url:
        conn = await connect(url)
        try:
            applied = await migrate(conn)
            await ensure_partitions(conn)
        finally:
            await conn.close()
    print(f"applied migrations: {applied}" if applied else "database is up to date")
    return 0


async def with_stores(config: Config, work: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    from monitor.storage.db import close_pool, connect, create_pool, database_url
    from monitor.storage.endpoints import EndpointStore
    from monitor.storage.hits import HitStore
    from monitor.storage.migrate import migrate

    async with database_url(config) as url:
        conn = await connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            stores = argparse.Namespace(
                endpoints=EndpointStore(pool), hits=HitStore(pool), url=url, pool=pool
            )
            return await work(stores)
        finally:
            await close_pool(pool)


def _print_endpoint(endpoint: Any, config: Config) -> None:
    print(f"endpoint {endpoint.id}: {endpoint.name}")
    print(f"  capture URL: {endpoint.capture_url(config.base_url)}")
    postback_url = endpoint.postback_url(config.base_url)
    if postback_url is not None:
        print(f"  postback URL ({endpoint.settings['preset']}): {postback_url}")
    if endpoint.description:
        print(f"  description: {endpoint.description}")
    if endpoint.settings:
        print(f"  settings:    {json.dumps(endpoint.settings)}")
    print(f"  created:     {endpoint.created_at.isoformat()}")


async def cmd_endpoint_create(config: Config, args: argparse.Namespace) -> int:
    from monitor.rules.endpoint_fields import validate_fields

    doc: dict[str, Any] = {"name": args.name, "description": args.description}
    settings = _settings_arg(args.settings)
    if args.preset is not None:
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            from monitor.web.errors import BadRequest

            raise BadRequest("invalid_settings", "--settings: must be a JSON object")
        settings = {**settings, "preset": args.preset}
    if settings is not None:
        doc["settings"] = settings
    fields = validate_fields(doc, require_name=True)

    async def work(stores: Any) -> int:
        endpoint = await stores.endpoints.create(fields)
        if args.json:
            print(json.dumps(endpoint.to_json(config.base_url), indent=2))
        else:
            _print_endpoint(endpoint, config)
        return 0

    return await with_stores(config, work)


async def cmd_endpoint_list(config: Config, args: argparse.Namespace) -> int:
    async def work(stores: Any) -> int:
        endpoints = await stores.endpoints.list()
        if args.json:
            print(json.dumps({"items": [e.to_json(config.base_url) for e in endpoints]}, indent=2))
        elif not endpoints:
            print("no endpoints yet: postback-monitor endpoint create NAME")
        for e in endpoints if not args.json else ():
            print(f"{e.id:>5}  {e.name:<30}  {e.capture_url(config.base_url)}")
        return 0

    return await with_stores(config, work)


async def cmd_endpoint_show(config: Config, args: argparse.Namespace) -> int:
    async def work(stores: Any) -> int:
        endpoint = await stores.endpoints.get(args.endpoint_id)
        print(json.dumps(endpoint.to_json(config.base_url), indent=2))
        return 0

    return await with_stores(config, work)


async def cmd_endpoint_update(config: Config, args: argparse.Namespace) -> int:
    doc: dict[str, Any] = {}
    if args.name is not None:
        doc["name"] = args.name
    if args.description is not None:
        doc["description"] = args.description
    settings = _settings_arg(args.settings)
    if settings is not None:
        doc["settings"] = settings

    async def work(stores: Any) -> int:
        # As the API's PATCH: the settings given are merged in (RFC 7396), not a new document.
        endpoint = await stores.endpoints.update(args.endpoint_id, doc, merge_settings=True)
        _print_endpoint(endpoint, config)
        return 0

    return await with_stores(config, work)


async def cmd_endpoint_delete(config: Config, args: argparse.Namespace) -> int:
    async def work(stores: Any) -> int:
        deleted = await stores.endpoints.delete(args.endpoint_id)
        print(f"deleted endpoint {args.endpoint_id} and its {deleted} hits")
        return 0

    return await with_stores(config, work)


async def cmd_endpoint_clear(config: Config, args: argparse.Namespace) -> int:
    """Every hit of the endpoint goes, and its duplicate ledger (``EndpointStore.clear``);
    only with ``--yes``, since nothing asks again."""
    if not args.yes:
        print(
            f"postback-monitor: this deletes every hit of endpoint {args.endpoint_id}; "
            "add --yes to do it",
            file=sys.stderr,
        )
        return 2

    async def work(stores: Any) -> int:
        deleted = await stores.endpoints.clear(args.endpoint_id)
        print(f"deleted {deleted} hits of endpoint {args.endpoint_id}")
        return 0

    return await with_stores(config, work)


def _hit_id(raw: str) -> Any:
    import uuid

    from monitor.web.errors import NotFound

    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("hit_not_found", f"no hit with id {raw!r}") from None


async def cmd_hits_delete(config: Config, args: argparse.Namespace) -> int:
    """One hit, with its forwarding rows and the ledger key it was first for."""
    hit_id = _hit_id(args.hit_id)

    async def work(stores: Any) -> int:
        endpoint_id = await stores.hits.delete(hit_id)
        print(f"deleted hit {hit_id} of endpoint {endpoint_id}")
        return 0

    return await with_stores(config, work)


async def cmd_hits_show(config: Config, args: argparse.Namespace) -> int:
    hit_id = _hit_id(args.hit_id)

    async def work(stores: Any) -> int:
        print(json.dumps(await stores.hits.get(hit_id), indent=2, ensure_ascii=False))
        return 0

    return await with_stores(config, work)


async def cmd_hits_tail(config: Config, args: argparse.Namespace) -> int:
    from monitor.tail import tail

    async def work(stores: Any) -> int:
        await stores.endpoints.get(args.endpoint_id)  # a clear error for an unknown id
        await tail(
            stores, args.endpoint_id, lines=args.lines, as_json=args.json, follow=not args.no_follow
        )
        return 0

    return await with_stores(config, work)


DATABASE_COMMANDS = (
    cmd_migrate,
    cmd_endpoint_create,
    cmd_endpoint_list,
    cmd_endpoint_show,
    cmd_endpoint_update,
    cmd_endpoint_delete,
    cmd_endpoint_clear,
    cmd_hits_delete,
    cmd_hits_show,
    cmd_hits_tail,
)


async def cmd_test(config: Config, args: argparse.Namespace) -> int:
    """Exit 0 when the URL has no problems and its final answer is below 400."""
    from monitor.forwarding import tester
    from monitor.forwarding.outbound import OutboundClient
    from monitor.rules import SettingsError
    from monitor.web.errors import BadRequest

    doc: dict[str, Any] = {
        "url": args.url,
        "method": args.method,
        "body": args.data,
        "content_type": args.content_type,
        "dry_run": args.dry_run,
    }
    if args.preset is not None:
        doc["settings"] = {"preset": args.preset}
    try:
        probe = tester.parse_request(doc)
        client = OutboundClient.from_config(config)
        async with client:
            report = await tester.run(client, probe)
    except (ValueError, SettingsError) as exc:
        raise BadRequest("invalid_field", str(exc)) from None
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(tester.format_report(report))
    return 0 if tester.passed(report) else 1
