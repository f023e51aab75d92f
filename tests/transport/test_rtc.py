"""WebRTC channels between two aiortc peers on loopback: fragments, backpressure, close codes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from disco.transport import ChannelClosed
from disco.transport.rtc import LAST_FRAGMENT, MAX_MESSAGE, RtcChannel


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """ICE offers loopback candidates only (it skips 127.0.0.1 otherwise): the test stays on it."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


async def connected(**options: Any) -> tuple[RtcChannel, RtcChannel]:
    """Two peers with no STUN/TURN server, SDP handed over directly, the data channel open."""
    config = RTCConfiguration(iceServers=[])
    offerer, answerer = RTCPeerConnection(config), RTCPeerConnection(config)
    dc = offerer.createDataChannel("disco", ordered=True)
    theirs: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    answerer.on("datachannel", theirs.set_result)
    opened = asyncio.Event()
    dc.on("open", opened.set)
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)
    async with asyncio.timeout(20):
        other = await theirs
        await opened.wait()
    return RtcChannel(dc, offerer, **options), RtcChannel(other, answerer, **options)


def test_a_frame_larger_than_a_message_arrives_whole_and_in_order() -> None:
    async def body() -> None:
        a, b = await connected()
        try:
            big = hashlib.sha256(b"seed").digest() * (5 * MAX_MESSAGE // 32 + 7)  # 5+ messages
            frames = [b"first", big, b"", b"last"]
            for frame in frames:
                await a.send(frame, timeout=20)
            assert [await b.receive(timeout=20) for _ in frames] == frames
            assert a.bytes_sent == b.bytes_received == sum(len(f) for f in frames)
            await b.send(b"reply", timeout=20)  # both ways
            assert await a.receive(timeout=20) == b"reply"
        finally:
            await a.close()
            await b.close()

    run(body())


def test_closing_sends_the_code_and_the_peer_drains_first() -> None:
    async def body() -> None:
        a, b = await connected()
        try:
            await a.send(b"before", timeout=20)
            await a.close(4001, "left the round")
            assert await b.receive(timeout=20) == b"before"
            with pytest.raises(ChannelClosed, match="closed by the peer: left the round") as why:
                await b.receive(timeout=20)
            assert why.value.code == 4001
            with pytest.raises(ChannelClosed):
                await a.send(b"after", timeout=5)
        finally:
            await b.close()

    run(body())


def test_a_sender_waits_for_the_buffer_to_drain() -> None:
    async def body() -> None:
        a, b = await connected(high_water=MAX_MESSAGE)
        try:
            frame = bytes(range(256)) * 4096  # 1 MiB: many times the high-water mark
            sending = asyncio.create_task(a.send(frame, timeout=30))
            got = await b.receive(timeout=30)
            await sending
            assert got == frame
        finally:
            await a.close()
            await b.close()

    run(body())


def test_what_is_not_a_fragment_ends_the_channel() -> None:
    async def body() -> None:
        a, b = await connected()
        try:
            a._dc.send("text")  # a peer that does not speak the fragment format
            with pytest.raises(ChannelClosed, match="not a fragment") as why:
                await b.receive(timeout=20)
            assert why.value.code == 1003
        finally:
            await a.close()
            await b.close()

    run(body())


def test_frames_over_the_limit_are_refused_on_both_sides() -> None:
    async def body() -> None:
        a, b = await connected(max_frame=100)
        try:
            with pytest.raises(ValueError, match="larger than this channel carries"):
                await a.send(b"x" * 101, timeout=5)
            a._dc.send(bytes([LAST_FRAGMENT]) + b"y" * 101)  # a peer ignoring the limit
            with pytest.raises(ChannelClosed, match="over the limit") as why:
                await b.receive(timeout=20)
            assert why.value.code == 1009
        finally:
            await a.close()
            await b.close()

    run(body())
