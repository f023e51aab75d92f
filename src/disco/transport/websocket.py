"""A `Channel` over a WebSocket connection to a server (the `websockets` client).

`send` waits (bounded) while the connection's write buffer holds more than `high_water` bytes —
what the network has not taken yet — and then writes the frame; a frame larger than the buffer
goes out at the network's pace, however long that takes, as the browser's WebSocket does. A
stalled connection is found by the library's keepalive pings (20 s), which close it. A text frame
from the server (frames are binary) closes the connection with 1003.
"""

from __future__ import annotations

import asyncio
from ssl import SSLContext

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from disco.transport.channel import Channel, ChannelClosed

__all__ = ["POLL_S", "WebSocketChannel"]

POLL_S = 0.01
"""How often a send waiting for room looks at the write buffer (as the browser's channel does)."""


class WebSocketChannel(Channel):
    """One WebSocket connection as a channel of binary frames."""

    def __init__(self, conn: ClientConnection, max_frame: int, high_water: int = 2**20) -> None:
        super().__init__()
        self._conn = conn
        self.max_frame = max_frame
        self.high_water = high_water
        self._closed: ChannelClosed | None = None

    @classmethod
    async def connect(
        cls, url: str, *, max_frame: int, timeout: float, ssl: SSLContext | None = None
    ) -> WebSocketChannel:
        """Open a connection to `url` (``wss://``: verified with `ssl`, default the system's
        CAs); `TimeoutError` after `timeout` s, `OSError` (an `ssl.SSLError` when the server
        cannot be verified) or the library's `InvalidHandshake` / `InvalidURI` if it cannot be
        opened."""
        if ssl is not None and url.startswith("wss://"):
            conn = await connect(url, max_size=max_frame, open_timeout=timeout, ssl=ssl)
        else:
            conn = await connect(url, max_size=max_frame, open_timeout=timeout)
        return cls(conn, max_frame)

    @property
    def closed(self) -> ChannelClosed | None:
        return self._closed

    async def send(self, frame: bytes, *, timeout: float) -> None:
        self._check_size(frame)
        if self._closed is not None:
            raise self._closed
        try:
            async with asyncio.timeout(max(timeout, 0)):
                while (buffered := self._buffered()) and buffered + len(frame) > self.high_water:
                    if self._conn.close_code is not None:
                        break  # closed meanwhile: send says so
                    await asyncio.sleep(POLL_S)
        except TimeoutError:
            raise TimeoutError(
                f"waited {timeout:g} s for the connection to take the {self._buffered()} bytes "
                f"before a frame of {len(frame)} bytes"
            ) from None
        try:
            await self._conn.send(frame)
        except ConnectionClosed as exc:
            raise self._ended(exc) from exc
        self.bytes_sent += len(frame)

    def _buffered(self) -> int:
        transport = self._conn.transport
        return 0 if transport is None else int(transport.get_write_buffer_size())

    async def receive(self, *, timeout: float | None) -> bytes:
        try:
            async with asyncio.timeout(None if timeout is None else max(timeout, 0)):
                frame = await self._conn.recv()
        except ConnectionClosed as exc:
            raise self._ended(exc) from exc
        except TimeoutError:
            raise TimeoutError(f"waited {timeout:g} s for a frame from the server") from None
        if isinstance(frame, str):  # frames are binary: the server does not speak the protocol
            await self.close(1003, "text frame")
            self._closed = ChannelClosed(f"the server sent a text frame: {frame[:200]}", 1003)
            raise self._closed
        self.bytes_received += len(frame)
        return frame

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is None:
            self._closed = ChannelClosed(f"closed by this side: {reason or 'closed'}", code)
        await self._conn.close(code, reason)

    def _ended(self, exc: ConnectionClosed) -> ChannelClosed:
        if self._closed is None:
            code = exc.rcvd.code if exc.rcvd else None
            if code is None:
                why = "the connection dropped"
            else:
                why = f"closed by the server (code {code})"
                if exc.rcvd and exc.rcvd.reason:
                    why += f": {exc.rcvd.reason}"
            self._closed = ChannelClosed(why, code if code is not None else 1006)
        return self._closed
