"""A `Channel` over a WebRTC data channel (aiortc), for peers that exchange models directly.

A data channel carries messages of a limited size (aiortc accepts 64 KiB, browsers 256 KiB or
more), so a frame travels as fragments of at most min(64 KiB, the max-message-size the remote
advertised in its session description), each with a one-byte header:

    0x00 payload…      a fragment; more of the frame follows
    0x01 payload…      the frame's last fragment (a frame of one fragment is just this)
    0x02 code reason   the sender is closing: uint16 big-endian close code, UTF-8 reason

The channel is ordered and reliable, so fragments arrive in order and the receiver joins them.
Sending waits while the data channel's buffer holds more than `high_water` bytes (its
``bufferedAmount``), in line with what the remote reads. A data channel has no close code of its
own: the 0x02 notice carries it; a channel that closes without one reads as dropped (1006).
A receiver that refuses a message (not a fragment: 1003; a frame over its limit: 1009) sends a
close notice with that code and closes. Mirrors `web/src/core/transport/rtc.ts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Sequence
from typing import Any

from disco.transport.channel import Channel, ChannelClosed, Inbox

__all__ = [
    "CLOSE_NOTICE",
    "FRAGMENT",
    "LAST_FRAGMENT",
    "MAX_MESSAGE",
    "RtcChannel",
    "RtcLink",
    "close_notice",
    "fragments",
    "remote_max_message_size",
]

FRAGMENT, LAST_FRAGMENT, CLOSE_NOTICE = 0x00, 0x01, 0x02
MAX_MESSAGE = 64 * 1024
"""The largest data-channel message sent, header included (aiortc's limit)."""
CLOSE_WAIT_S = 5.0
"""How long closing waits for the peer to take what was sent before the connection ends."""


def fragments(frame: bytes, message_size: int) -> list[bytes]:
    """The data-channel messages that carry `frame`, none over `message_size` bytes."""
    payload = message_size - 1
    if payload < 1:
        raise ValueError(f"message_size must be at least 2 bytes, got {message_size}")
    pieces = [frame[i : i + payload] for i in range(0, max(len(frame), 1), payload)]
    return [
        bytes([LAST_FRAGMENT if i == len(pieces) - 1 else FRAGMENT]) + bytes(piece)
        for i, piece in enumerate(pieces)
    ]


def remote_max_message_size(sdp: str) -> int | None:
    """The ``a=max-message-size`` the remote advertised in its session description `sdp`, or None
    when it gave none (or 0: "any size"), in which case 64 KiB stays the limit."""
    sizes = [
        int(value)
        for line in sdp.splitlines()
        if line.startswith("a=max-message-size:")
        and (value := line.split(":", 1)[1].strip()).isdigit()
    ]
    positive = [size for size in sizes if size > 0]
    return min(positive) if positive else None


def close_notice(code: int, reason: str, message_size: int) -> bytes:
    """The message that tells the peer this side closes: the code, and as much of the reason as
    fits in `message_size` (whole characters)."""
    room = message_size - 3
    if room < 0:
        raise ValueError(f"a close notice needs a message size of at least 3, got {message_size}")
    while len(reason.encode("utf-8")) > room:
        reason = reason[:-1]
    return bytes([CLOSE_NOTICE]) + struct.pack(">H", code) + reason.encode("utf-8")


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
        if message_size < 3:  # a close notice must fit
            raise ValueError(f"message_size must be at least 3 bytes, got {message_size}")
        self.max_frame = max_frame
        self._dc = channel
        self._pc = connection
        remote = None
        description = getattr(connection, "remoteDescription", None)
        if description is not None:
            remote = remote_max_message_size(str(description.sdp))
        if remote is not None and remote >= 3:  # a close notice must still fit
            message_size = min(message_size, remote)
        self._message_size = min(message_size, MAX_MESSAGE)
        self._high_water = high_water
        self._inbox = Inbox()
        self._parts: list[bytes] = []
        self._partial = 0
        self._changed = asyncio.Event()
        self._closed: ChannelClosed | None = None
        self._closing: asyncio.Task[None] | None = None  # the shutdown after a notice or refusal
        self._sending = asyncio.Lock()  # one frame's fragments at a time, in the order of calls
        # "bufferedamountlow" must fire before a waiting send could go on
        size = self._message_size
        channel.bufferedAmountLowThreshold = max(0, min(high_water // 2, high_water - size))
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
            self._refuse(ChannelClosed("the peer sent a message that is not a fragment", 1003))
            return
        kind, payload = message[0], bytes(message[1:])
        if kind == CLOSE_NOTICE:
            if len(payload) < 2:
                self._refuse(ChannelClosed("the peer sent a close notice without a code", 1003))
                return
            (code,) = struct.unpack(">H", payload[:2])
            reason = payload[2:].decode("utf-8", errors="replace")
            self._end(ChannelClosed(f"closed by the peer: {reason or 'closed'}", code))
            self._closing = asyncio.get_running_loop().create_task(self._shut())
        elif kind in (FRAGMENT, LAST_FRAGMENT):
            self._partial += len(payload)
            if self._partial > self.max_frame:
                self._refuse(ChannelClosed("the peer sent a frame over the limit", 1009))
                return
            self._parts.append(payload)
            if kind == LAST_FRAGMENT:
                self._inbox.put(b"".join(self._parts))
                self._parts, self._partial = [], 0
        else:
            self._refuse(ChannelClosed(f"the peer sent an unknown fragment kind {kind}", 1003))
        self._changed.set()

    def _refuse(self, why: ChannelClosed) -> None:
        """End the channel for a message this side cannot take, and tell the peer why."""
        if self._closed is None and self._dc.readyState == "open":
            with contextlib.suppress(Exception):  # the peer may be gone already
                self._dc.send(close_notice(why.code or 1003, str(why), self._message_size))
        self._end(why)
        self._closing = asyncio.get_running_loop().create_task(self._shut())

    def _on_close(self) -> None:
        self._end(ChannelClosed("the connection dropped", 1006))
        if self._closing is None:  # and let go of the peer connection
            self._closing = asyncio.get_running_loop().create_task(self._shut())

    def _end(self, why: ChannelClosed) -> None:
        if self._closed is None:
            self._closed = why
        self._inbox.end(self._closed)
        self._changed.set()

    async def receive(self, *, timeout: float | None) -> bytes:
        frame = await self._inbox.take(timeout)
        self.bytes_received += len(frame)
        return frame

    # -- sending --------------------------------------------------------------------------------
    async def send(self, frame: bytes, *, timeout: float) -> None:
        self._check_size(frame)
        started = False
        try:
            async with asyncio.timeout(max(timeout, 0)), self._sending:
                for message in fragments(frame, self._message_size):
                    await self._room(len(message))
                    self._put(message)
                    started = True
        except asyncio.CancelledError:
            if started:  # the peer could no longer tell where the next frame starts
                await asyncio.shield(self.close(1011, "a send was abandoned part-way"))
            raise
        except TimeoutError:
            await self.close(1011, "a send timed out")
            raise TimeoutError(
                f"waited {timeout:g} s for the peer to take a frame of {len(frame)} bytes "
                f"({self._dc.bufferedAmount} bytes still buffered)"
            ) from None
        self.bytes_sent += len(frame)

    def _put(self, message: bytes) -> None:
        """Hand one message to the data channel; ChannelClosed if it can take none any more."""
        try:
            self._dc.send(message)
        except Exception as exc:  # aiortc: InvalidStateError once the stream is being reset
            self._on_close()
            raise ChannelClosed("the connection dropped", 1006) from exc

    async def _room(self, size: int) -> None:
        """Wait until the data channel's buffer takes `size` more bytes without going over the
        high-water mark (an empty buffer takes any message), or the channel closes."""
        while True:
            if self._closed is not None:
                raise self._closed
            buffered = self._dc.bufferedAmount
            if buffered == 0 or buffered + size <= self._high_water:
                return
            self._changed.clear()
            await self._changed.wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not 0 <= code <= 0xFFFF:
            raise ValueError(f"a close code is from 0 to 65535, got {code}")
        if self._closed is None:
            self._end(ChannelClosed(f"closed by this side: {reason or 'closed'}", code))
            if self._dc.readyState == "open":
                with contextlib.suppress(Exception):  # the peer may be gone already
                    self._dc.send(close_notice(code, reason, self._message_size))
        await self._shut()

    async def _shut(self) -> None:
        """Close the data channel, then the connection (idempotent)."""
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


class RtcLink:
    """One WebRTC connection to one peer, set up by offer and answer (handed over by whatever
    signalling the caller has), carrying one ordered, reliable data channel as an `RtcChannel`.

        offerer: sdp = await link.offer()                 answerer: answer = await link.answer(sdp)
        offerer: await link.accept(answer)
        both:    channel = await link.channel(timeout)

    ICE gathers every candidate before `offer` and `answer` return (no trickle: one message each
    way). `ice_servers` are STUN/TURN servers as aiortc's `RTCIceServer`; none by default, so
    nothing is asked of a public server and peers find each other by their host addresses.
    """

    def __init__(self, *, ice_servers: Sequence[Any] = (), **options: Any) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self._options = options
        self._dc: Any = None
        self._ready = asyncio.Event()
        self._pc.on("datachannel", self._adopt)
        self._pc.on("connectionstatechange", self._state_changed)

    async def offer(self) -> str:
        """This side's offer (SDP), the data channel created."""
        self._adopt(self._pc.createDataChannel("disco", ordered=True))
        await self._pc.setLocalDescription(await self._pc.createOffer())
        return str(self._pc.localDescription.sdp)

    async def answer(self, offer: str) -> str:
        """The answer (SDP) to the peer's `offer`."""
        from aiortc import RTCSessionDescription

        await self._pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        return str(self._pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        """Take the peer's `answer` to this side's offer."""
        from aiortc import RTCSessionDescription

        await self._pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def channel(self, timeout: float) -> RtcChannel:
        """The open channel; `TimeoutError` if it is not open within `timeout` s, `ChannelClosed`
        if the connection failed."""
        try:
            async with asyncio.timeout(max(timeout, 0)):
                await self._ready.wait()
        except TimeoutError:
            state = self._pc.connectionState
            await self._pc.close()
            raise TimeoutError(
                f"waited {timeout:g} s for the data channel to the peer to open "
                f"(connection {state})"
            ) from None
        if self._dc is None or self._dc.readyState != "open":
            await self._pc.close()
            raise ChannelClosed(f"the connection failed ({self._pc.connectionState})", 1006)
        return RtcChannel(self._dc, self._pc, **self._options)

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        await self._pc.close()

    def _adopt(self, dc: Any) -> None:
        self._dc = dc
        if dc.readyState == "open":
            self._ready.set()
        dc.on("open", self._ready.set)

    def _state_changed(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self._ready.set()  # `channel` reports it
