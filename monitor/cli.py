"""The command line: serve, migrate, endpoint ..., hits ..., reconcile, test

``serve`` has every setting of ``Config`` as a flag (each with its environment
twin); the other commands have only the flags they use. The commands that touch the
database find it as ``monitor.runtime.resolve`` says: ``--database-url`` or
``--data-dir``, else the running server's (its ``server.json``), else the default data
directory; they print one line on stderr naming it, and the capture URLs they print
are that server's (or ``--public-url``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from monitor import __version__
from monitor import config as config_mod
from monitor.cli_commands import DATABASE_COMMANDS as STORE_COMMANDS
from monitor.cli_commands import (
    cmd_endpoint_clear,
    cmd_endpoint_create,
    cmd_endpoint_delete,
    cmd_endpoint_list,
    cmd_endpoint_show,
    cmd_endpoint_update,
    cmd_hits_delete,
    cmd_hits_show,
    cmd_hits_tail,
    cmd_migrate,
    cmd_test,
)
from monitor.cli_hits import add_filter_arguments, cmd_hits_list, cmd_hits_replay
from monitor.cli_reconcile import add_reconcile_parser, cmd_reconcile
from monitor.config import Config, ConfigError

Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]


# The commands that find the database first (``runtime.resolve``).
DATABASE_COMMANDS = (*STORE_COMMANDS, cmd_hits_list, cmd_hits_replay, cmd_reconcile)

# The settings each kind of command uses; `serve` has them all.
DATABASE_SETTINGS = ("database_url", "data_dir", "public_url")
OUTBOUND_SETTINGS = (
    "forward_allow",
    "outbound_connect_timeout_s",
    "outbound_timeout_s",
    "outbound_max_response_bytes",
)


def add_settings(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    group = parser.add_argument_group("settings (each also from the environment)")
    for f in config_mod.settings():
        if only is not None and f.name not in only:
            continue
        envs = " or ".join(config_mod.env_names(f))
        default = "unset" if f.default is None else f.default
        if isinstance(default, tuple):
            default = ",".join(default) or "none"
        group.add_argument(
            config_mod.flag_name(f),
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} [env {envs}; default {default}]",
        )


def explicit_settings(args: argparse.Namespace) -> frozenset[str]:
    """The settings given as a flag or in the environment (not left at the default)."""
    given = set()
    for f in config_mod.settings():
        if getattr(args, f.name, None) is not None or any(
            os.environ.get(name) for name in config_mod.env_names(f)
        ):
            given.add(f.name)
    return frozenset(given)


def config_from(args: argparse.Namespace) -> Config:
    overrides = {}
    for f in config_mod.settings():
        raw = getattr(args, f.name, None)
        if raw is not None:
            overrides[f.name] = config_mod.coerce(f, raw)
    return config_mod.load(overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postback-monitor",
        description="Capture, check and watch affiliate postbacks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service")
    add_settings(serve)
    # Set by `serve --workers N` on the processes it starts (the inherited listening
    # sockets); not for people.
    serve.add_argument("--listen-fd", action="append", help=argparse.SUPPRESS)
    serve.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(run=None)

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    add_settings(migrate, DATABASE_SETTINGS)
    migrate.set_defaults(run=cmd_migrate)

    endpoint = commands.add_parser("endpoint", help="manage capture endpoints")
    endpoint_cmds = endpoint.add_subparsers(
        dest="endpoint_command", required=True, metavar="ACTION"
    )
    create = endpoint_cmds.add_parser("create", help="create a capture endpoint")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--settings", default=None, help="settings document as JSON")
    create.add_argument(
        "--preset",
        default=None,
        metavar="KEY",
        help="platform preset (voluum, binom, everflow, ..., generic); prints its postback URL",
    )
    create.add_argument("--json", action="store_true", help="print the endpoint as JSON")
    create.set_defaults(run=cmd_endpoint_create)
    listing = endpoint_cmds.add_parser("list", help="list endpoints")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_endpoint_list)
    show = endpoint_cmds.add_parser("show", help="show one endpoint")
    show.add_argument("endpoint_id", type=int)
    show.set_defaults(run=cmd_endpoint_show)
    update = endpoint_cmds.add_parser("update", help="change name, description or settings")
    update.add_argument("endpoint_id", type=int)
    update.add_argument("--name")
    update.add_argument("--description")
    update.add_argument("--settings", help="settings document as JSON (replaces the old one)")
    update.set_defaults(run=cmd_endpoint_update)
    delete = endpoint_cmds.add_parser("delete", help="delete an endpoint and all its hits")
    delete.add_argument("endpoint_id", type=int)
    delete.set_defaults(run=cmd_endpoint_delete)
    clear = endpoint_cmds.add_parser(
        "clear", help="delete every hit of an endpoint (and its duplicate ledger); keep it"
    )
    clear.add_argument("endpoint_id", type=int)
    clear.add_argument("--yes", action="store_true", help="really delete them (required)")
    clear.set_defaults(run=cmd_endpoint_clear)
    for sub in (create, listing, show, update, delete, clear):
        add_settings(sub, DATABASE_SETTINGS)

    hits = commands.add_parser("hits", help="read or delete captured hits")
    hits_cmds = hits.add_subparsers(dest="hits_command", required=True, metavar="ACTION")
    tail = hits_cmds.add_parser("tail", help="print the newest hits, then new ones as they arrive")
    tail.add_argument("endpoint_id", type=int)
    tail.add_argument("-n", "--lines", type=int, default=10, help="how many recent hits first")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--no-follow", action="store_true", help="print the recent hits and exit")
    tail.set_defaults(run=cmd_hits_tail)
    show_hit = hits_cmds.add_parser("show", help="print one whole hit as JSON")
    show_hit.add_argument("hit_id")
    show_hit.set_defaults(run=cmd_hits_show)
    listing_hits = hits_cmds.add_parser(
        "list", help="print an endpoint's hits matching filters, newest first"
    )
    add_filter_arguments(listing_hits)
    listing_hits.add_argument("-n", "--limit", type=int, default=50, help="at most (max 500)")
    listing_hits.add_argument("--json", action="store_true", help="the API's JSON page")
    listing_hits.set_defaults(run=cmd_hits_list)
    replay = hits_cmds.add_parser(
        "replay",
        help="send the hits matching filters again to the endpoint's forward target",
        description="Replays the matching hits (the newest 10,000 at most) to the "
        "endpoint's forward target from this process, printing progress until done; "
        "a success turns a failed forward into delivered. Exit 1 if any failed.",
    )
    add_filter_arguments(replay)
    replay.set_defaults(run=cmd_hits_replay)
    delete_hit = hits_cmds.add_parser(
        "delete",
        help="delete one hit (its forward rows too; a later hit of its click id counts as new)",
    )
    delete_hit.add_argument("hit_id")
    delete_hit.set_defaults(run=cmd_hits_delete)
    for sub in (tail, show_hit, listing_hits, delete_hit):
        add_settings(sub, DATABASE_SETTINGS)
    add_settings(replay, DATABASE_SETTINGS + OUTBOUND_SETTINGS + ("forward_concurrency",))

    add_settings(add_reconcile_parser(commands), DATABASE_SETTINGS)

    probe = commands.add_parser(
        "test", help="check a postback URL, fire it and follow its redirects (the tester)"
    )
    probe.add_argument("url")
    probe.add_argument("--method", default="GET", help="HTTP method (default GET)")
    probe.add_argument("--data", default="", help="request body, e.g. click_id=abc&payout=1")
    probe.add_argument("--content-type", default="", help="body type (default: form)")
    probe.add_argument("--preset", default=None, help="judge the URL with this preset's rules")
    probe.add_argument("--dry-run", action="store_true", help="check the URL, do not fire it")
    probe.add_argument("--json", action="store_true", help="print the report as JSON")
    add_settings(probe, OUTBOUND_SETTINGS)
    probe.set_defaults(run=cmd_test)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from(args)
    except ConfigError as exc:
        print(f"postback-monitor: invalid setting: {exc}", file=sys.stderr)
        return 2
    from monitor import logs

    level = config.log_level
    if args.run is not None and "log_level" not in explicit_settings(args):
        # A command's output is its answer: the service's info lines (a run started,
        # a pool opened) would only bury it. --log-level info brings them back.
        level = "warning"
    logs.configure(config.log_format, level)
    if args.run is None:
        return _serve(config, args.listen_fd, args.parent_pid)
    if args.run in DATABASE_COMMANDS:
        from monitor import runtime

        try:
            target = runtime.resolve(
                config, explicit_settings(args), may_create=args.run is cmd_migrate
            )
        except runtime.NoDatabase as exc:
            print(f"postback-monitor: {exc}", file=sys.stderr)
            return 1
        print(target.note, file=sys.stderr)
        config = config.replace(
            database_url=target.database_url, data_dir=target.data_dir, public_url=target.base_url
        )
    from monitor.web.errors import DomainError

    try:
        return asyncio.run(args.run(config, args))
    except DomainError as exc:
        print(f"postback-monitor: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _serve(config: Config, listen_fds: list[str] | None, parent_pid: int | None = None) -> int:
    """One process, a worker (``listen_fds``: its parent's sockets, ``ROLE:FD``) or a
    parent of workers."""
    from monitor.listen import ListenError, Listeners

    try:
        if listen_fds:
            from monitor.server.serve import serve
            from monitor.server.supervisor import stop_with_parent

            if parent_pid is not None and not stop_with_parent(parent_pid):
                return 1

            return serve(config, inherited=Listeners.inherited(listen_fds))
        if config.workers > 1:
            from monitor.server.supervisor import supervise

            return supervise(config)
        from monitor.server.serve import serve

        return serve(config)
    except ListenError as exc:
        print(f"postback-monitor: {exc}", file=sys.stderr)
        return 1
