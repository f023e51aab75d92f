"""Limits that keep one address from taking the server: request and connection rates.

Each client address (`disco.server.addresses.client_address`: the TCP peer, or the forwarded
address behind a trusted proxy; for IPv6 its /64, `rate_key`) has two token buckets: REST
requests under ``/api`` and ``/metrics`` (``requests_per_minute``) and WebSocket connections
(``connections_per_minute``). A bucket holds a minute's worth, so a burst of that size passes and
the rate refills steadily; 0 turns a limit off. The web app's own files are not counted (a
browser caches them).

A refused request gets HTTP 429 with ``Retry-After`` and ``{"code": "rate_limited"}``; a refused
connection is accepted, told why (`ErrorMessage` ``limited``) and closed with 4429 and a reason
naming the limit, so that browsers, which see no HTTP status of a refused handshake, can say it.
Both are counted in `/metrics` (``disco_refusals_total{reason="request_rate"|"connection_rate"}``).

The tables are bounded: at most ``MAX_ADDRESSES`` addresses are tracked, and when it is full the
buckets that have refilled completely (addresses that went quiet) are dropped first.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from disco.protocol import ErrorMessage, encode
from disco.server.addresses import client_address

__all__ = ["MAX_ADDRESSES", "LimitsMiddleware", "RateLimiter", "rate_key"]

log = logging.getLogger("disco.server")

MAX_ADDRESSES = 100_000
LIMITED_PATHS = ("/api", "/metrics")


class RateLimiter:
    """Token buckets per key: `per_minute` tokens each, refilled at `per_minute` a minute."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_ADDRESSES,
    ) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → tokens, at

    def take(self, key: str) -> float:
        """Take one token for `key`: 0 when allowed, else the seconds until one is back."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * self._rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / self._rate
        self._buckets[key] = (tokens, now)  # most recently used last
        if len(self._buckets) > self._max_keys:
            self._evict(now)
        return wait

    def _evict(self, now: float) -> None:
        """Drop full buckets (quiet addresses), oldest first; else the least recently used."""
        for key, (tokens, at) in list(self._buckets.items()):
            if len(self._buckets) <= self._max_keys * 9 // 10:
                return
            if tokens + (now - at) * self._rate >= self.per_minute:
                del self._buckets[key]
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


Refusal = Callable[[str], None]


def rate_key(address: str) -> str:
    """Whose bucket an address uses: an IPv4 address its own, an IPv6 address its /64 (one
    host or home network is given a whole /64, so counting single IPv6 addresses would let it
    take as many buckets as it likes)."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    except ValueError:
        return address


class LimitsMiddleware:
    """ASGI middleware applying the per-address request and connection rates."""

    def __init__(
        self,
        app: Any,
        *,
        requests_per_minute: int,
        connections_per_minute: int,
        refused: Refusal,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.refused = refused
        self.requests = (
            RateLimiter(requests_per_minute, clock=clock) if requests_per_minute else None
        )
        self.connections = (
            RateLimiter(connections_per_minute, clock=clock) if connections_per_minute else None
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http" and self.requests is not None and scope["path"].startswith(LIMITED_PATHS):
            wait = self.requests.take(rate_key(client_address(scope)))
            if wait:
                await self._too_many_requests(scope, send, wait)
                return
        elif kind == "websocket" and self.connections is not None:
            wait = self.connections.take(rate_key(client_address(scope)))
            if wait:
                await self._too_many_connections(scope, receive, send, wait)
                return
        await self.app(scope, receive, send)

    async def _too_many_requests(self, scope: dict[str, Any], send: Any, wait: float) -> None:
        assert self.requests is not None
        self.refused("request_rate")
        limit = self.requests.per_minute
        retry = max(1, math.ceil(wait))
        text = (
            f"too many requests from your address ({client_address(scope)}): this server takes "
            f"{limit} a minute from one address; try again in {retry} s"
        )
        log.info("refused a request from %s: request rate", client_address(scope))
        body = json.dumps({"error": text, "code": "rate_limited", "retry_after_s": retry}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _too_many_connections(
        self, scope: dict[str, Any], receive: Any, send: Any, wait: float
    ) -> None:
        assert self.connections is not None
        self.refused("connection_rate")
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        limit = self.connections.per_minute
        retry = max(1, math.ceil(wait))
        text = (
            f"too many connections from your address ({client_address(scope)}): this server "
            f"takes {limit} a minute from one address; try again in {retry} s"
        )
        log.info("refused a connection from %s: connection rate", client_address(scope))
        await send({"type": "websocket.accept"})
        frame = encode(ErrorMessage(code="limited", message=text))
        await send({"type": "websocket.send", "bytes": frame})
        reason = f"connection rate limit ({limit} a minute); retry in {retry} s"
        await send({"type": "websocket.close", "code": 4429, "reason": reason})
