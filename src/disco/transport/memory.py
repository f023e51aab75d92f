"""Two channel ends in one process: what tests use in place of a network.

Each end has an inbound queue that counts its bytes; `send` waits (bounded) while the frame would
take the peer's queue over `high_water` bytes (an empty queue takes any frame), as a real
transport's buffer would make it wait (the same rule as `web/src/core/transport/memory.ts`).
"""

from __future__ import annotations

import asyncio
from collections import deque

from disco.transport.channel import Channel, ChannelClosed

__all__ = ["MemoryChannel", "memory_pair"]


class MemoryChannel(Channel):
    """One end of `memory_pair`."""

    def __init__(self, max_frame: int, high_water: int) -> None:
        super().__init__()
        self.max_frame = max_frame
        self.high_water = high_water
        self.peer: MemoryChannel | None = None
        self._inbox: deque[bytes] = deque()
        self._queued = 0
        self._changed = asyncio.Event()  # a frame arrived, one was taken, or a side closed
        self._closed: ChannelClosed | None = None
        self._sending = asyncio.Lock()  # frames go out in the order of the calls

    @property
    def closed(self) -> ChannelClosed | None:
        return self._closed

    async def send(self, frame: bytes, *, timeout: float) -> None:
        self._check_size(frame)
        peer = self.peer
        assert peer is not None
        try:
            async with asyncio.timeout(max(timeout, 0)), self._sending:
                while self._closed is None and 0 < peer._queued > self.high_water - len(frame):
                    peer._changed.clear()
                    await peer._changed.wait()
                if self._closed is not None:
                    raise self._closed
                peer._inbox.append(bytes(frame))
                peer._queued += len(frame)
                peer._changed.set()
                self.bytes_sent += len(frame)
        except TimeoutError:
            raise TimeoutError(
                f"waited {timeout:g} s for the peer to take {peer._queued} queued bytes "
                "before sending more"
            ) from None

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
        self._queued -= len(frame)
        self._changed.set()  # a sender waiting for room may go on
        self.bytes_received += len(frame)
        return frame

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is not None:
            return
        why = reason or "closed"
        self._closed = ChannelClosed(f"closed by this side: {why}", code)
        self._changed.set()
        if self.peer is not None and self.peer._closed is None:
            self.peer._closed = ChannelClosed(f"closed by the peer: {why}", code)
            self.peer._changed.set()


def memory_pair(
    *, max_frame: int = 256 * 2**20, high_water: int = 2**20
) -> tuple[MemoryChannel, MemoryChannel]:
    """Two connected ends: what one sends, the other receives."""
    a, b = MemoryChannel(max_frame, high_water), MemoryChannel(max_frame, high_water)
    a.peer, b.peer = b, a
    return a, b
