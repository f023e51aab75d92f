"""A `Channel` over a WebRTC data channel (aiortc), for peers that exchange models directly.

A data channel carries messages of a limited size (aiortc accepts 64 KiB, browsers 256 KiB or
more), so a frame travels as fragments of at most `min(the remote's max-message-size, 64 KiB)`
bytes, each with a one-byte header:

    0x00 payload…      a fragment; more of the frame follows
    0x01 payload…      the frame's last fragment (a frame of one fragment is just this)
    0x02 code reason   the sender is closing: uint16 big-endian close code, UTF-8 reason

The channel is ordered and reliable, so fragments arrive in order and the receiver joins them.
Sending waits while the data channel's buffer holds more than `high_water` bytes (its
``bufferedAmount``), in line with what the remote reads. A data channel has no close code of its
own: the 0x02 notice carries it; a channel that closes without one reads as dropped (1006).
The browser's side (RTCDataChannel) will speak the same format.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import deque
from typing import Any

from disco.transport.channel import Channel, ChannelClosed

__all__ = ["CLOSE_NOTICE", "FRAGMENT", "LAST_FRAGMENT", "MAX_MESSAGE", "RtcChannel"]

FRAGMENT, LAST_FRAGMENT, CLOSE_NOTICE = 0x00, 0x01, 0x02
MAX_MESSAGE = 64 * 1024
"""The largest data-channel message sent, header included (aiortc's limit)."""
CLOSE_WAIT_S = 5.0
"""How long closing waits for the peer to take what was sent before the connection ends."""


class RtcChannel(Channel):
    """A Channel on an open aiortc `RTCDataChannel` (ordered, reliable) of `connection`."""

    def __init__(
        self,
        channel: Any,
        connection: Any = None,
        *,
        max_frame: int = 256 * 2**20,
        message_size: int = MAX_MESSAGE,
        high_water: int = 2**20,
    ) -> None:
        super().__init__()
        if message_size < 2:
            raise ValueError(f"message_size must be at least 2 bytes, got {message_size}")
        self.max_frame = max_frame
        self._dc = channel
        self._pc = connection
        self._payload = min(message_size, MAX_MESSAGE) - 1
        self._high_water = high_water
        self._inbox: deque[bytes] = deque()
        self._parts: list[bytes] = []
        self._partial = 0
        self._changed = asyncio.Event()
        self._closed: ChannelClosed | None = None
        channel.bufferedAmountLowThreshold = high_water // 2
        channel.on("message", self._on_message)
        channel.on("close", self._on_close)
        channel.on("bufferedamountlow", self._changed.set)

    @property
    def closed(self) -> ChannelClosed | None:
        return self._closed

    # -- receiving ------------------------------------------------------------------------------
    def _on_message(self, message: bytes | str) -> None:
        if self._closed is not None:
            return
        if isinstance(message, str) or not message:
            self._end(ChannelClosed("the peer sent a message that is not a fragment", 1003))
            return
        kind, payload = message[0], bytes(message[1:])
        if kind == CLOSE_NOTICE and len(payload) >= 2:
            (code,) = struct.unpack(">H", payload[:2])
            reason = payload[2:].decode("utf-8", errors="replace")
            self._end(ChannelClosed(f"closed by the peer: {reason or 'closed'}", code))
        elif kind in (FRAGMENT, LAST_FRAGMENT):
            self._partial += len(payload)
            if self._partial > self.max_frame:
                self._end(ChannelClosed("the peer sent a frame over the limit", 1009))
                return
            self._parts.append(payload)
            if kind == LAST_FRAGMENT:
                self._inbox.append(b"".join(self._parts))
                self._parts, self._partial = [], 0
        else:
            self._end(ChannelClosed(f"the peer sent an unknown fragment kind {kind}", 1003))
        self._changed.set()

    def _on_close(self) -> None:
        self._end(ChannelClosed("the connection dropped", 1006))

    def _end(self, why: ChannelClosed) -> None:
        if self._closed is None:
            self._closed = why
        self._changed.set()

    async def receive(self, *, timeout: float | None) -> bytes:
        try:
            async with asyncio.timeout(None if timeout is None else max(timeout, 0)):
                while not self._inbox:
                    if self._closed is not None:
                        raise self._closed
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"waited {timeout:g} s for a frame from the peer") from None
        frame = self._inbox.popleft()
        self.bytes_received += len(frame)
        return frame

    # -- sending --------------------------------------------------------------------------------
    async def send(self, frame: bytes, *, timeout: float) -> None:
        self._check_size(frame)
        view = memoryview(frame)
        pieces = [view[i : i + self._payload] for i in range(0, max(len(view), 1), self._payload)]
        try:
            async with asyncio.timeout(max(timeout, 0)):
                for i, piece in enumerate(pieces):
                    await self._room()
                    kind = LAST_FRAGMENT if i == len(pieces) - 1 else FRAGMENT
                    self._dc.send(bytes([kind]) + bytes(piece))
        except TimeoutError:
            await self.close(1011, "a send timed out")
            raise TimeoutError(
                f"waited {timeout:g} s for the peer to take a frame of {len(frame)} bytes "
                f"({self._dc.bufferedAmount} bytes still buffered)"
            ) from None
        self.bytes_sent += len(frame)

    async def _room(self) -> None:
        """Wait until the data channel's buffer is below the high-water mark (or it closed)."""
        while True:
            if self._closed is not None:
                raise self._closed
            if self._dc.bufferedAmount <= self._high_water:
                return
            self._changed.clear()
            await self._changed.wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is None:
            self._closed = ChannelClosed(f"closed by this side: {reason or 'closed'}", code)
            if self._dc.readyState == "open":
                notice = struct.pack(">H", code) + reason.encode("utf-8")[: self._payload - 2]
                self._dc.send(bytes([CLOSE_NOTICE]) + notice)
        self._changed.set()
        if self._dc.readyState != "closed":
            # closing the data channel resets its stream after what was sent: the notice (and
            # every frame before it) reaches the peer before the reset completes
            done = asyncio.Event()
            self._dc.on("close", done.set)
            self._dc.close()
            if self._dc.readyState != "closed":
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_WAIT_S):
                        await done.wait()
        if self._pc is not None:
            await self._pc.close()
