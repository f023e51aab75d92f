"""A `Channel` over a WebSocket connection to a server (the `websockets` client).

Backpressure is the library's: sending waits while its write buffer is above its limit. A send
that times out, or a text frame from the server (frames are binary), closes the connection: what
was half-written cannot be taken back.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from disco.transport.channel import Channel, ChannelClosed

__all__ = ["WebSocketChannel"]


class WebSocketChannel(Channel):
    """One WebSocket connection as a channel of binary frames."""

    def __init__(self, conn: ClientConnection, max_frame: int) -> None:
        super().__init__()
        self._conn = conn
        self.max_frame = max_frame
        self._closed: ChannelClosed | None = None

    @classmethod
    async def connect(cls, url: str, *, max_frame: int, timeout: float) -> WebSocketChannel:
        """Open a connection to `url`; `TimeoutError` after `timeout` s, `OSError` or the
        library's `InvalidHandshake` / `InvalidURI` if it cannot be opened."""
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
                await self._conn.send(frame)
        except ConnectionClosed as exc:
            raise self._ended(exc) from exc
        except TimeoutError:
            await self.close(1011, "a send timed out")
            raise TimeoutError(
                f"waited {timeout:g} s for the connection to take a frame of {len(frame)} bytes"
            ) from None
        self.bytes_sent += len(frame)

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
