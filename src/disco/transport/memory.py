"""Two channel ends in one process: what tests use in place of a network.

Each end has an inbound queue that counts its bytes; `send` waits (bounded) while the frame would
take the peer's queue over `high_water` bytes (an empty queue takes any frame), as a real
transport's buffer would make it wait (the same rule as `web/src/core/transport/memory.ts`).
"""

from __future__ import annotations

import asyncio

from disco.transport.channel import Channel, ChannelClosed, Inbox

__all__ = ["MemoryChannel", "memory_pair"]


class MemoryChannel(Channel):
    """One end of `memory_pair`."""

    def __init__(self, max_frame: int, high_water: int) -> None:
        super().__init__()
        self.max_frame = max_frame
        self.high_water = high_water
        self.peer: MemoryChannel | None = None
        self._inbox = Inbox()
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
                room = peer._inbox
                while self._closed is None and 0 < room.queued > self.high_water - len(frame):
                    room.changed.clear()
                    await room.changed.wait()
                if self._closed is not None:
                    raise self._closed
                room.put(bytes(frame))
                self.bytes_sent += len(frame)
        except TimeoutError:
            raise TimeoutError(
                f"waited {timeout:g} s for the peer to take {peer._inbox.queued} queued bytes "
                "before sending more"
            ) from None

    async def receive(self, *, timeout: float | None) -> bytes:
        frame = await self._inbox.take(timeout)
        self.bytes_received += len(frame)
        return frame

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is not None:
            return
        why = reason or "closed"
        self._closed = ChannelClosed(f"closed by this side: {why}", code)
        self._inbox.end(self._closed)
        if self.peer is not None and self.peer._closed is None:
            self.peer._closed = ChannelClosed(f"closed by the peer: {why}", code)
            self.peer._inbox.end(self.peer._closed)


def memory_pair(
    *, max_frame: int = 256 * 2**20, high_water: int = 2**20
) -> tuple[MemoryChannel, MemoryChannel]:
    """Two connected ends: what one sends, the other receives."""
    a, b = MemoryChannel(max_frame, high_water), MemoryChannel(max_frame, high_water)
    a.peer, b.peer = b, a
    return a, b
