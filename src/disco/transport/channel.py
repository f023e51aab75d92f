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

from abc import ABC, abstractmethod

__all__ = ["Channel", "ChannelClosed"]


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
