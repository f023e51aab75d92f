"""Who is on the other end: a client's address, behind a reverse proxy when the operator says so.

By default the address is the TCP peer's, and ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are
ignored from everyone (uvicorn would otherwise trust them from 127.0.0.1). With
``forwarded_allow_ips`` set (``10.0.0.1,10.0.0.2``, networks such as ``10.0.0.0/8``, or ``*``),
uvicorn's proxy-headers middleware takes the client address and scheme from those headers on
connections from those addresses only, before the app sees the request; `client_address` then
reads the result. Limits, refusals and connection logs all use `client_address`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from starlette.requests import HTTPConnection

__all__ = ["UNKNOWN", "check_forwarded_allow_ips", "client_address", "proxy_options"]

UNKNOWN = "unknown"
"""The address of a client the server cannot name (a Unix socket, a test transport)."""


def client_address(where: HTTPConnection | Mapping[str, Any]) -> str:
    """The client's address (host only) of a `Request`, a `WebSocket` or an ASGI scope."""
    scope = where.scope if isinstance(where, HTTPConnection) else where
    client = scope.get("client")
    return str(client[0]) if client else UNKNOWN


def proxy_options(forwarded_allow_ips: str | None) -> dict[str, Any]:
    """The `uvicorn.Config` options for trusting forwarded headers from those addresses only
    (None: from nobody — uvicorn's own default trusts 127.0.0.1)."""
    if forwarded_allow_ips is None:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": forwarded_allow_ips}


def check_forwarded_allow_ips(value: str) -> str:
    """`value` normalised (no spaces), or `ValueError` naming the entry that is not ``*``, an IP
    address or a network."""
    entries = [entry.strip() for entry in value.split(",")]
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or network: give trusted proxies as "
                "'10.0.0.1,10.0.0.2', '10.0.0.0/8' or '*'"
            ) from None
    return ",".join(entries)
