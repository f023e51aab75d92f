"""One connection to a disco server, as a queue of decoded messages with bounded waits.

The frames travel on a `Channel` (a WebSocket to the server; an in-process pair in tests). A
background reader decodes every frame as it arrives, so messages keep flowing (status shown,
round results noticed) while the participant trains. `FederatedClient` makes a new `Link` for
every (re)connection. Mirrors `web/src/core/client/link.ts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from disco.errors import ServerError
from disco.protocol import ClientMessage, ServerMessage, decode, encode
from disco.transport import Channel, ChannelClosed

__all__ = ["FATAL_CLOSE", "SEND_TIMEOUT_S", "Link", "LinkClosed", "Traffic"]

log = logging.getLogger("disco.client")


FATAL_CLOSE = {
    1003: "the server sent a frame this client cannot read; update disco",
    1009: "the update is larger than the server accepts",
    4400: "this client speaks another protocol version than the server; update disco",
    4403: "this server is private and did not accept the invitation (none, wrong, expired, "
    "revoked or for another task); ask for a new invitation link",
    4404: "the server does not know this task",
    4426: "this task needs a capability this client does not have; update disco",
}
"""Close codes after which reconnecting cannot help (the same as the browser's)."""


class LinkClosed(Exception):
    """The connection is gone (closed by either side or dropped); reconnecting may help
    unless `code` is in `FATAL_CLOSE` (see `fatal`)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def fatal(self) -> str | None:
        """Why reconnecting cannot help, or None."""
        return None if self.code is None else FATAL_CLOSE.get(self.code)


@dataclass
class Traffic:
    """Bytes sent and received, summed over every link of a client."""

    bytes_up: int = 0
    bytes_down: int = 0


SEND_TIMEOUT_S = 60.0
"""How long a send may wait for room in the connection's buffer (as the browser's link)."""


class Link:
    """An open connection: send messages, wait for the next one, take queued ones."""

    def __init__(
        self,
        channel: Channel,
        traffic: Traffic,
        on_message: Callable[[ServerMessage], None],
        *,
        keep: bool = True,
    ) -> None:
        """`keep`: queue every message for `next` and `take` (False: `on_message` is all)."""
        self._keep = keep
        self._channel = channel
        self._traffic = traffic
        self._on_message = on_message
        self._queue: deque[ServerMessage] = deque()
        self._changed = asyncio.Event()
        self._ended: BaseException | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:  # a background reader: it waits for frames until the channel closes
                frame = await self._channel.receive(timeout=None)
                self._traffic.bytes_down += len(frame)
                message = decode(frame)
                if message.type in ("hello", "update", "leave"):
                    raise ServerError(f"server sent a {message.type!r} message, which clients send")
                try:
                    self._on_message(message)
                except Exception:  # a display callback must not end the session
                    log.exception("the on_message callback failed on a %r message", message.type)
                if self._keep:
                    self._queue.append(message)
                self._changed.set()
        except ChannelClosed as exc:
            self._ended = LinkClosed(str(exc), exc.code)
        except Exception as exc:  # a bad frame: the session cannot go on with this server
            self._ended = exc if isinstance(exc, ServerError) else ServerError(str(exc))
            await self._channel.close(1000, "invalid frame from server")
        self._changed.set()

    async def next(self, timeout: float) -> ServerMessage:
        """The next message: `TimeoutError` after `timeout` s; `LinkClosed` once drained, gone."""
        async with asyncio.timeout(max(timeout, 0)):
            while True:
                if self._queue:
                    return self._queue.popleft()
                if self._ended is not None:
                    raise self._ended
                self._changed.clear()
                await self._changed.wait()

    @property
    def ended(self) -> BaseException | None:
        """Why the link ended (`LinkClosed`, `ServerError`), or None while it is open."""
        return self._ended

    async def wait_ended(self) -> BaseException:
        """Wait until the link ends; why it did."""
        while self._ended is None:
            self._changed.clear()
            await self._changed.wait()
        return self._ended

    def take(self, keep: Callable[[ServerMessage], bool]) -> list[ServerMessage]:
        """Remove and return the queued messages for which `keep` is true, in arrival order."""
        taken = [m for m in self._queue if keep(m)]
        rest = [m for m in self._queue if not keep(m)]
        self._queue = deque(rest)
        return taken

    async def send(self, message: ClientMessage) -> None:
        """Send `message`; `LinkClosed` if the connection is gone or could not take it within
        `SEND_TIMEOUT_S`."""
        frame = encode(message)
        try:
            await self._channel.send(frame, timeout=SEND_TIMEOUT_S)
        except ChannelClosed as exc:
            raise LinkClosed(str(exc), exc.code) from exc
        except TimeoutError as exc:  # the connection does not move: give it up, as if dropped
            await self._channel.close(1011, "a send timed out")
            raise LinkClosed(str(exc), 1006) from exc
        self._traffic.bytes_up += len(frame)

    async def close(self) -> None:
        """Close the connection and stop reading (idempotent)."""
        await self._channel.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
