"""All settings in one frozen dataclass: defaults, help text and environment names.

CLI flags (``--port``) and environment variables (``POSTBACK_MONITOR_PORT``) map onto
the fields here; tests build ``Config`` directly. A bad value fails at start-up with
a ``ConfigError`` that names the setting.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

ENV_PREFIX = "POSTBACK_MONITOR_"
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
# A node's name is a label value read by people: a host name's characters, kept short.
_NODE_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9_])?")
# RFC 9110's token: the characters a header field name may have.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def _setting(default: Any, help: str, *, env: tuple[str, ...] = (), secret: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "env": env, "secret": secret})


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("postback-monitor"))


@dataclass(frozen=True, slots=True)
class Config:
    database_url: str | None = _setting(
        None,
        "PostgreSQL URL. Unset: start a private embedded PostgreSQL in the data directory.",
        env=("DATABASE_URL",),
        secret=True,
    )
    data_dir: Path = _setting(
        default_data_dir(),
        "Directory for the embedded database, the generated admin token and the spool.",
    )
    admin_token: str | None = _setting(
        None,
        "Bearer token for the API and web views. Unset: generated on first start and "
        "kept in DATA_DIR/admin_token.",
        secret=True,
    )
    host: str = _setting(
        "127.0.0.1",
        "Address of the management listener (web views, API, metrics): keep it private.",
    )
    port: int = _setting(8080, "TCP port of the management listener.")
    capture_host: str = _setting(
        "127.0.0.1",
        "Address of the capture listener (postbacks on /p/, health); the one to expose.",
    )
    capture_port: int = _setting(8081, "TCP port of the capture listener.")
    workers: int = _setting(
        1,
        "Processes serving both listeners, each with its own writer; the parent binds the "
        "ports once and its workers accept on the sockets they inherit, and it restarts any "
        "that dies.",
    )
    node_name: str | None = _setting(
        None,
        "This node's name: the node label of every series on /metrics. Give each machine "
        "capturing into one database its own. Unset: the host name.",
    )
    public_url: str | None = _setting(
        None,
        "Public base URL of the capture listener, used in capture and postback URLs "
        "(default: http://CAPTURE_HOST:CAPTURE_PORT).",
    )
    trusted_proxies: tuple[str, ...] = _setting(
        (),
        "Comma-separated CIDRs of reverse proxies whose --trusted-proxy-header is believed "
        "for the client IP.",
    )
    trusted_proxy_header: str = _setting(
        "X-Forwarded-For",
        "The one header the trusted proxies set for the client IP (X-Forwarded-For, "
        "Forwarded, X-Real-IP, ...); read from the right, past trusted hops only. Every "
        "other forwarding header is the sender's and ignored.",
    )
    batch_max_hits: int = _setting(500, "Most hits written in one group-commit transaction.")
    batch_max_wait_ms: float = _setting(
        0.0,
        "Extra time a hit waits for its batch to fill. 0: commit as soon as the requests "
        "already received are queued; batches still grow under load while a commit runs.",
    )
    queue_max_hits: int = _setting(
        20000, "Hits waiting for the writer beyond which capture answers 503 with Retry-After."
    )
    commit_timeout_s: float = _setting(
        10.0, "Longest a batch may take to commit before its hits go to the spool instead."
    )
    spool_max_bytes: int = _setting(
        1024**3,
        "Size cap of the local spool (DATA_DIR/spool) that holds acknowledged hits while "
        "the database is unreachable; when full, capture answers 503.",
    )
    reconcile_max_bytes: int = _setting(
        1024**3,
        "Largest conversion report a reconciliation takes (it is spooled to "
        "DATA_DIR/reconciliations while it runs); a larger upload is answered 413.",
    )
    max_url_bytes: int = _setting(
        32 * 1024, "Longest request line (method, URL, version) accepted; longer gets 414/400."
    )
    max_header_bytes: int = _setting(
        16 * 1024, "Longest single header line accepted; longer gets 431/400."
    )
    max_body_bytes: int = _setting(
        1024 * 1024, "Body bytes stored per hit; longer bodies are kept truncated and flagged."
    )
    hard_max_body_bytes: int = _setting(
        64 * 1024 * 1024, "Body size above which capture stops reading and answers 413."
    )
    capture_max_in_flight: int = _setting(
        10000,
        "Capture requests read but not yet answered in one process beyond which new ones "
        "get 503 with Retry-After (bounds memory and database lookups under a flood).",
    )
    head_timeout_s: float = _setting(
        10.0,
        "Longest a client may take to send a request's line and headers, from its first "
        "byte; slower gets 408 (capture) or a closed connection (management).",
    )
    body_timeout_s: float = _setting(
        60.0,
        "Longest a client may take to send a request's body, from the end of its headers; "
        "slower gets 408 (capture) or a closed connection (management).",
    )
    retention_days: int | None = _setting(
        None,
        "Days hits are kept (an endpoint's retention_days setting overrides it). Unset: "
        "forever. Old daily partitions are dropped whole.",
    )
    log_format: str = _setting(
        "auto", "Log format: json, console, or auto (console on a terminal, JSON otherwise)."
    )
    log_level: str = _setting("info", "Log level: debug, info, warning or error.")
    metrics_token: str | None = _setting(
        None,
        "Bearer token Prometheus must present to scrape /metrics. Unset: /metrics is public.",
        secret=True,
    )
    forward_allow: tuple[str, ...] = _setting(
        (),
        "Comma-separated CIDRs or host names that outbound requests (forwards, replays, "
        "the tester) may reach although they are loopback, private or link-local.",
    )
    outbound_connect_timeout_s: float = _setting(
        5.0, "Longest an outbound request may take to connect."
    )
    outbound_timeout_s: float = _setting(
        15.0, "Longest an outbound request may take in all, response body included."
    )
    outbound_max_response_bytes: int = _setting(
        64 * 1024, "Response body bytes an outbound request reads; the rest is dropped."
    )
    forward_concurrency: int = _setting(
        4, "Forwards in flight at once per endpoint, in each server process."
    )
    forward_backoff_s: float = _setting(
        1.0, "Delay before the first forward retry; it doubles each attempt, with jitter."
    )
    forward_backoff_max_s: float = _setting(3600.0, "Longest delay between forward retries.")
    forward_poll_s: float = _setting(
        1.0, "How often the forwarder looks for due forwards (its own are sent at once)."
    )
    alert_interval_s: float = _setting(
        15.0,
        "How often the alert evaluator looks at every alerting endpoint. Every process "
        "tries to become the evaluator this often; one holds the lock and evaluates.",
    )

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 256:
            raise ConfigError(f"workers: from 1 to 256, got {self.workers}")
        for name in ("port", "capture_port"):
            if not 0 < getattr(self, name) < 65536:
                raise ConfigError(f"{name}: {getattr(self, name)} is not a TCP port (1-65535)")
        if (self.capture_host, self.capture_port) == (self.host, self.port):
            raise ConfigError(
                f"capture_port: {self.capture_port} on {self.capture_host or '*'} is the "
                "management listener's (host, port); give capture its own"
            )
        for name in (
            "batch_max_hits",
            "queue_max_hits",
            "max_body_bytes",
            "hard_max_body_bytes",
            "spool_max_bytes",
            "reconcile_max_bytes",
            "max_url_bytes",
            "max_header_bytes",
            "capture_max_in_flight",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not self.commit_timeout_s > 0:
            raise ConfigError(f"commit_timeout_s: must be above 0, got {self.commit_timeout_s}")
        for name in ("head_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be above 0, got {getattr(self, name)}")
        if _HEADER_NAME.fullmatch(self.trusted_proxy_header) is None:
            raise ConfigError(
                f"trusted_proxy_header: {self.trusted_proxy_header!r} is not a header name"
            )
        if self.batch_max_wait_ms < 0:
            raise ConfigError(
                f"batch_max_wait_ms: must not be negative, got {self.batch_max_wait_ms}"
            )
        if self.hard_max_body_bytes < self.max_body_bytes:
            raise ConfigError("hard_max_body_bytes: must be at least max_body_bytes")
        if self.retention_days is not None and not 1 <= self.retention_days <= 3650:
            raise ConfigError(f"retention_days: from 1 to 3650, got {self.retention_days}")
        if self.log_format not in ("auto", "json", "console"):
            raise ConfigError(f"log_format: {self.log_format!r} is not json, console or auto")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level: {self.log_level!r} is not debug, info, warning or error")
        if self.node_name is not None and _NODE_NAME.fullmatch(self.node_name) is None:
            raise ConfigError(
                f"node_name: {self.node_name!r} is not 1-63 letters, digits, '.', '_' or '-'"
            )
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise ConfigError("admin_token: use at least 16 characters")
        if self.metrics_token is not None and len(self.metrics_token) < 16:
            raise ConfigError("metrics_token: use at least 16 characters")
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(f"trusted_proxies: {cidr!r} is not an IP network") from None
        self._check_outbound()

    def _check_outbound(self) -> None:
        for name in ("outbound_max_response_bytes", "forward_concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        for name in (
            "outbound_connect_timeout_s",
            "outbound_timeout_s",
            "forward_backoff_s",
            "forward_backoff_max_s",
            "forward_poll_s",
            "alert_interval_s",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be above 0, got {getattr(self, name)}")
        for item in self.forward_allow:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                if _HOST_NAME.fullmatch(item) is None:
                    raise ConfigError(
                        f"forward_allow: {item!r} is neither an IP network nor a host name"
                    ) from None

    @property
    def base_url(self) -> str:
        """The capture listener's base, as senders reach it: capture and postback URLs."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return _local_url(self.capture_host, self.capture_port)

    @property
    def node(self) -> str:
        """This node's name (the metrics' node label): node_name, else the host name."""
        return self.node_name or socket.gethostname()

    @property
    def management_url(self) -> str:
        """The management listener's base (web views, API), as this host reaches it."""
        return _local_url(self.host, self.port)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def _local_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):  # every address: this host reaches it on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def settings() -> list[dataclasses.Field[Any]]:
    """The settings in declaration order, each with help text and environment names."""
    return list(dataclasses.fields(Config))


def env_names(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    return (ENV_PREFIX + f.name.upper(), *f.metadata["env"])


def flag_name(f: dataclasses.Field[Any]) -> str:
    return "--" + f.name.replace("_", "-")


def coerce(f: dataclasses.Field[Any], raw: str) -> Any:
    """Turn a string from the command line or environment into the field's type."""
    kind = str(f.type)
    try:
        if "int" in kind and "float" not in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
    except ValueError:
        raise ConfigError(f"{f.name}: {raw!r} is not a number") from None
    if "tuple" in kind:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if "Path" in kind:
        return Path(raw).expanduser()
    return raw


def to_environ(config: Config) -> dict[str, str]:
    """The settings as environment variables, for worker processes to load back."""
    environ = {}
    for f in settings():
        value = getattr(config, f.name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        environ[env_names(f)[0]] = str(value)
    return environ


def load(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build a Config from the environment, then explicit overrides (CLI flags win)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in settings():
        for name in env_names(f):
            if environ.get(name):
                values[f.name] = coerce(f, environ[name])
                break
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    return Config(**values)
