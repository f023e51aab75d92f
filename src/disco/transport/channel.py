"""The `Channel` interface: binary frames to and from one peer, every wait bounded.

    send(frame, timeout)   waits while the channel's outgoing buffer is full (backpressure),
                           at most `timeout` s (TimeoutError: nothing of the frame sent, or —
                           for a channel that cuts frames into messages — the channel closed
                           with 1011); ChannelClosed if the channel is closed; ValueError for
                           a frame over `max_frame`. Frames go out in the order of the calls.
    receive(timeout)       the next frame, in order; TimeoutError after `timeout` s (None: until
                           a frame or the close, for background readers only); ChannelClosed
                           once closed and every frame received before the close was taken
    close(code, reason)    idempotent; the peer drains, then gets ChannelClosed(code, reason)

Close codes are WebSocket's: 1000 normal, 1006 dropped without a close, 4xxx the application's.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque

__all__ = ["Channel", "ChannelClosed", "Inbox"]


class ChannelClosed(Exception):
    """The channel is closed, by either side or dropped; `code` as WebSocket close codes."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class Channel(ABC):
    """An ordered, reliable, message-oriented link to one peer carrying binary frames."""

    max_frame: int
    """The largest frame this channel carries, in bytes."""

    def __init__(self) -> None:
        self.bytes_sent = 0
        self.bytes_received = 0

    @abstractmethod
    async def send(self, frame: bytes, *, timeout: float) -> None:
        """Send one frame (see the module's docstring)."""

    @abstractmethod
    async def receive(self, *, timeout: float | None) -> bytes:
        """The next frame (see the module's docstring)."""

    @abstractmethod
    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the channel (idempotent)."""

    @property
    @abstractmethod
    def closed(self) -> ChannelClosed | None:
        """Why the channel is closed, or None while it is open."""

    def _check_size(self, frame: bytes) -> None:
        if len(frame) > self.max_frame:
            raise ValueError(
                f"a frame of {len(frame)} bytes is larger than this channel carries "
                f"({self.max_frame} bytes)"
            )


class Inbox:
    """The frames a channel received and nobody took yet, and the bounded wait for the next."""

    def __init__(self) -> None:
        self._frames: deque[bytes] = deque()
        self.queued = 0
        """Bytes received and not taken yet."""
        self.changed = asyncio.Event()
        """Set when a frame arrives or is taken, or the channel ends."""
        self.ended: ChannelClosed | None = None

    def put(self, frame: bytes) -> None:
        self._frames.append(frame)
        self.queued += len(frame)
        self.changed.set()

    def end(self, why: ChannelClosed) -> None:
        """No frame comes after those received: `take` raises `why` once they are taken."""
        if self.ended is None:
            self.ended = why
        self.changed.set()

    async def take(self, timeout: float | None) -> bytes:
        """The next frame; `TimeoutError` after `timeout` s (None: no limit), the end's
        `ChannelClosed` once every frame received before it was taken."""
        try:
            async with asyncio.timeout(None if timeout is None else max(timeout, 0)):
                while not self._frames:
                    if self.ended is not None:
                        raise self.ended
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise TimeoutError(f"waited {timeout:g} s for a frame from the peer") from None
        frame = self._frames.popleft()
        self.queued -= len(frame)
        self.changed.set()  # a sender waiting for room may go on
        return frame
