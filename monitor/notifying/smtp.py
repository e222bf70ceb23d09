"""E-mail out: one message through the channel's SMTP server, behind the same
address guard as HTTP.

The SMTP host is typed by whoever holds the admin token, like a webhook URL, so it
could name the cloud metadata address or a database port inside the network just
as well: the host is resolved and vetted by the outbound ``Guard`` (``--forward-allow``
admits a private relay), and aiosmtplib gets a socket already connected to the
vetted address, with the host name kept for TLS certificate checks. Connect and
every SMTP command are bounded by ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from monitor.forwarding.outbound import Guard

CODE_OK = 250


async def connect(guard: Guard, host: str, port: int, timeout_s: float) -> socket.socket:
    """A TCP socket connected to the first vetted address of ``host`` that answers.
    Raises OutboundRefused, OutboundError, OSError or TimeoutError."""
    addresses = await guard.resolve(host, port)
    loop = asyncio.get_running_loop()
    last: Exception = OSError(f"{host} has no address")
    for addr in addresses:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout_s):
                await loop.sock_connect(sock, (str(ip), port))
        except (OSError, TimeoutError) as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last


async def send_mail(
    guard: Guard, config: dict[str, Any], message: EmailMessage, timeout_s: float
) -> int:
    """Send ``message``; the server's reply code (250). Raises aiosmtplib's errors,
    OutboundRefused, OutboundError, OSError or TimeoutError."""
    sock = await connect(guard, config["host"], config["port"], timeout_s)
    try:
        smtp = aiosmtplib.SMTP(
            hostname=config["host"],
            sock=sock,
            use_tls=config.get("tls", False),
            # None: STARTTLS when the server offers it; True: demand it; False: never.
            start_tls=config.get("starttls"),
            username=config.get("username"),
            password=config.get("password"),
            timeout=timeout_s,
        )
        async with asyncio.timeout(timeout_s * 4):
            async with smtp:
                await smtp.send_message(message)
    finally:
        sock.close()
    return CODE_OK
