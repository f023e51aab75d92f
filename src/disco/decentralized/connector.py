"""How a peer opens channels to the other peers of its session.

A `Connector` keeps at most one open `Channel` per other peer and reuses it round after round.
Of two peers, the one with the smaller id opens the connection and the other accepts it, so two
peers never open two connections to each other at once. Every channel, opened or accepted, is
handed to ``on_channel`` (the peer starts reading it there).

* `RtcConnector`: WebRTC data channels (aiortc); the offer and the answer travel as `Signal`
  messages through the server. Every ICE candidate is gathered before the offer or answer is
  sent, so trickled ``candidate`` signals are not needed and are ignored.
* `MemoryConnector`: in-process channel pairs through a shared `MemoryHub`, for tests and
  simulations of many peers in one process; the round logic above it is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from disco.errors import ServerError
from disco.protocol import Signal
from disco.transport import Channel, ChannelClosed, memory_pair

__all__ = [
    "Connector",
    "MemoryConnector",
    "MemoryHub",
    "OnChannel",
    "RtcConnector",
    "SendSignal",
    "use_host_addresses",
]

log = logging.getLogger("disco.client.peers")

OnChannel = Callable[[str, Channel], None]
SendSignal = Callable[[Signal], Awaitable[None]]


class Connector(ABC):
    """Open channels to other peers, one per peer, reused until it closes."""

    def __init__(self, me: str, on_channel: OnChannel) -> None:
        self.me = me
        self._on_channel = on_channel
        self._channels: dict[str, Channel] = {}
        self._opening: dict[str, asyncio.Future[Channel]] = {}
        self._changed = asyncio.Event()

    def channel(self, peer: str) -> Channel | None:
        """The open channel to `peer`, if any."""
        channel = self._channels.get(peer)
        return channel if channel is not None and channel.closed is None else None

    def open_peers(self) -> list[str]:
        """The peers with an open channel."""
        return sorted(p for p in self._channels if self.channel(p) is not None)

    async def connect(self, peer: str, timeout: float, *, initiate: bool = False) -> Channel:
        """The channel to `peer`, opening it (or waiting for the peer to open it) if needed;
        `TimeoutError` after `timeout` s, `ChannelClosed` if the connection failed. With
        `initiate` this side opens whatever the ids (the peer does not know to connect)."""
        if peer == self.me:
            raise ValueError("a peer does not connect to itself")
        async with asyncio.timeout(max(timeout, 0)):
            while True:
                channel = self.channel(peer)
                if channel is not None:
                    return channel
                opening = self._opening.get(peer)
                if opening is None and (self.me < peer or initiate):
                    opening = asyncio.ensure_future(self._open(peer))
                    self._opening[peer] = opening
                    opening.add_done_callback(functools.partial(self._opened, peer))
                if opening is not None:  # one attempt at a time, whoever asks
                    channel = await asyncio.shield(opening)
                    self._opened(peer, opening)  # (its callback may not have run yet)
                    if channel.closed is None:
                        return channel
                    continue
                self._changed.clear()
                await self._changed.wait()  # the peer with the smaller id opens

    def _opened(self, peer: str, attempt: asyncio.Future[Channel]) -> None:
        """An attempt ended: adopt its channel (once, whoever calls first)."""
        if self._opening.get(peer) is not attempt:
            return
        del self._opening[peer]
        if not attempt.cancelled() and attempt.exception() is None:
            self._adopt(peer, attempt.result())

    def _adopt(self, peer: str, channel: Channel) -> None:
        old = self._channels.get(peer)
        self._channels[peer] = channel
        self._changed.set()
        if old is not None and old is not channel and old.closed is None:
            asyncio.get_running_loop().create_task(old.close(1000, "replaced by a new connection"))
        self._on_channel(peer, channel)

    @abstractmethod
    async def _open(self, peer: str) -> Channel:
        """Open a new connection to `peer` (this side has the smaller id)."""

    async def on_signal(self, signal: Signal) -> None:
        """A signalling message from `signal.peer`, relayed by the server."""
        del signal

    async def aclose(self) -> None:
        """Close every channel."""
        for attempt in list(self._opening.values()):
            attempt.cancel()
        for channel in list(self._channels.values()):
            with contextlib.suppress(Exception):
                await channel.close(1000, "leaving")
        self._channels.clear()


class MemoryHub:
    """The in-process meeting point of `MemoryConnector`s."""

    def __init__(self) -> None:
        self.connectors: dict[str, MemoryConnector] = {}
        self.changed = asyncio.Event()


class MemoryConnector(Connector):
    """Channels to peers in the same process, through `hub`."""

    def __init__(self, me: str, on_channel: OnChannel, hub: MemoryHub) -> None:
        super().__init__(me, on_channel)
        self._hub = hub
        hub.connectors[me] = self
        hub.changed.set()

    async def _open(self, peer: str) -> Channel:
        while peer not in self._hub.connectors:  # bounded by connect's timeout
            self._hub.changed.clear()
            await self._hub.changed.wait()
        mine, theirs = memory_pair()
        self._hub.connectors[peer]._adopt(self.me, theirs)
        return mine

    async def aclose(self) -> None:
        if self._hub.connectors.get(self.me) is self:
            del self._hub.connectors[self.me]
        await super().aclose()


class RtcConnector(Connector):
    """WebRTC data channels, signalled through the server."""

    def __init__(
        self,
        me: str,
        on_channel: OnChannel,
        send_signal: SendSignal,
        *,
        ice_servers: Sequence[Any] = (),
        open_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(me, on_channel)
        self._send_signal = send_signal
        self._ice_servers = list(ice_servers)
        self._open_timeout_s = open_timeout_s
        self._answers: dict[str, asyncio.Future[str]] = {}
        self._links: dict[str, Any] = {}  # the connection behind each adopted channel
        self._accepting: dict[str, asyncio.Task[None]] = {}  # one answer in progress per peer

    def _link(self) -> Any:
        from disco.transport.rtc import RtcLink

        return RtcLink(ice_servers=self._ice_servers)

    async def _open(self, peer: str) -> Channel:
        link = self._link()
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._answers[peer] = answer
        try:
            await self._send_signal(Signal(peer=peer, kind="offer", data=await link.offer()))
            try:
                async with asyncio.timeout(self._open_timeout_s):
                    await link.accept(await answer)
            except TimeoutError:
                raise TimeoutError(
                    f"{peer} did not answer the offer in {self._open_timeout_s:g} s"
                ) from None
            channel: Channel = await link.channel(timeout=self._open_timeout_s)
            self._keep_link(peer, link)
            return channel
        except BaseException:
            await link.close()
            raise
        finally:
            if self._answers.get(peer) is answer:
                del self._answers[peer]

    async def on_signal(self, signal: Signal) -> None:
        if signal.kind == "answer":
            waiting = self._answers.get(signal.peer)
            if waiting is not None and not waiting.done():
                waiting.set_result(signal.data)
            else:
                log.debug("an answer from %s that nobody waits for", signal.peer)
        elif signal.kind == "offer":  # answered in the background: signals keep flowing
            # a newer offer from the same peer replaces one still being answered, so a peer
            # cannot make this side hold more than one half-open connection to it
            earlier = self._accepting.pop(signal.peer, None)
            if earlier is not None:
                earlier.cancel()
            task = asyncio.get_running_loop().create_task(self._accept(signal))
            self._accepting[signal.peer] = task
            task.add_done_callback(functools.partial(self._accepted, signal.peer))
        # "candidate": every candidate is already in the offer and the answer

    def _accepted(self, peer: str, task: asyncio.Task[None]) -> None:
        if self._accepting.get(peer) is task:
            del self._accepting[peer]

    async def _accept(self, offer: Signal) -> None:
        link = self._link()
        try:
            answer = await link.answer(offer.data)
            await self._send_signal(Signal(peer=offer.peer, kind="answer", data=answer))
            channel = await link.channel(timeout=self._open_timeout_s)
        except (TimeoutError, ChannelClosed, ValueError, OSError, ServerError) as exc:
            log.info("the connection offered by %s did not open: %s", offer.peer, exc)
            await link.close()
            return
        except asyncio.CancelledError:  # replaced by a newer offer, or closing
            await asyncio.shield(link.close())
            raise
        except Exception:
            log.exception("answering the offer of %s failed", offer.peer)
            await link.close()
            return
        self._keep_link(offer.peer, link)
        self._adopt(offer.peer, channel)

    def _keep_link(self, peer: str, link: Any) -> None:
        """Remember `link` as the connection to `peer`. The one it replaces closes with its
        channel (`_adopt` closes the old channel, and a channel closes its connection)."""
        self._links[peer] = link

    async def aclose(self) -> None:
        for task in list(self._accepting.values()):
            task.cancel()
        await super().aclose()
        for link in list(self._links.values()):
            with contextlib.suppress(Exception):
                await link.close()
        self._links.clear()


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Offer only these local addresses as ICE host candidates (this process, every connection).

    By default ICE offers every address of the machine's interfaces except loopback; peers on one
    machine (a test, a demo) need ``["127.0.0.1"]``, and a multi-homed host may want to name the
    interface its peers can reach.
    """
    import aioice.ice

    chosen = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: chosen
