"""WebRTC channels between two aiortc peers on loopback: fragments, backpressure, close codes."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from disco.transport import ChannelClosed
from disco.transport.rtc import (
    LAST_FRAGMENT,
    MAX_MESSAGE,
    RtcChannel,
    RtcLink,
    remote_max_message_size,
)

RtcPair = Callable[..., Awaitable[tuple[RtcChannel, RtcChannel]]]  # the rtc_pair fixture


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_a_frame_larger_than_a_message_arrives_whole_and_in_order(rtc_pair: RtcPair) -> None:
    async def body() -> None:
        a, b = await rtc_pair()
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


def test_closing_sends_the_code_and_the_peer_drains_first(rtc_pair: RtcPair) -> None:
    async def body() -> None:
        a, b = await rtc_pair()
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


def test_a_sender_waits_for_the_buffer_to_drain(rtc_pair: RtcPair) -> None:
    async def body() -> None:
        a, b = await rtc_pair(high_water=MAX_MESSAGE)
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


def test_what_is_not_a_fragment_ends_the_channel(rtc_pair: RtcPair) -> None:
    async def body() -> None:
        a, b = await rtc_pair()
        try:
            a._dc.send("text")  # a peer that does not speak the fragment format
            with pytest.raises(ChannelClosed, match="not a fragment") as why:
                await b.receive(timeout=20)
            assert why.value.code == 1003
            with pytest.raises(ChannelClosed) as told:  # and the peer is told why
                await a.receive(timeout=20)
            assert told.value.code == 1003 and "not a fragment" in str(told.value)
        finally:
            await a.close()
            await b.close()

    run(body())


def test_frames_over_the_limit_are_refused_on_both_sides(rtc_pair: RtcPair) -> None:
    async def body() -> None:
        a, b = await rtc_pair(max_frame=100)
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


def test_a_peer_that_never_answers_is_a_bounded_wait() -> None:
    async def body() -> None:
        lonely = RtcLink()
        await lonely.offer()  # the answer never comes
        with pytest.raises(TimeoutError, match=r"waited 0\.3 s for the data channel to the peer"):
            await lonely.channel(timeout=0.3)
        await lonely.close()

    run(body())


def test_frames_sent_at_once_arrive_whole_and_in_the_order_of_the_calls(rtc_pair: RtcPair) -> None:
    async def body() -> None:
        a, b = await rtc_pair(message_size=10, high_water=25)  # many fragments, little room
        try:
            frames = [b"A" * 40, b"B" * 3, b"C" * 17, b"D" * 9]
            await asyncio.gather(*(a.send(f, timeout=20) for f in frames))
            assert [await b.receive(timeout=20) for _ in frames] == frames
        finally:
            await a.close()
            await b.close()

    run(body())


def test_a_dropped_data_channel_lets_go_of_the_connection(rtc_pair: RtcPair) -> None:
    async def body() -> None:
        a, b = await rtc_pair()
        await b._pc.close()  # the peer vanishes without a close notice
        with pytest.raises(ChannelClosed, match="dropped") as why:
            await a.receive(timeout=20)
        assert why.value.code == 1006
        async with asyncio.timeout(20):  # this side closes its peer connection by itself
            while a._pc.connectionState != "closed":
                await asyncio.sleep(0.01)
        with pytest.raises(ChannelClosed):
            await a.send(b"x", timeout=5)
        with pytest.raises(ValueError, match="close code"):
            await a.close(70000)

    run(body())


def test_the_remote_max_message_size_caps_every_message() -> None:
    """A remote that advertises a smaller max-message-size than 64 KiB gets no larger message."""
    assert remote_max_message_size("v=0\r\na=max-message-size:65536\r\n") == 65536
    assert remote_max_message_size("a=max-message-size:0\r\n") is None  # 0: any size
    assert remote_max_message_size("v=0\r\n") is None

    async def body() -> None:
        offerer, answerer = RtcLink(), RtcLink()
        answer = await answerer.answer(await offerer.offer())
        smaller, found = re.subn(r"a=max-message-size:\d+", "a=max-message-size:1000", answer)
        assert found == 1
        await offerer.accept(smaller)
        a, b = await offerer.channel(timeout=20), await answerer.channel(timeout=20)
        sent: list[int] = []
        send = a._dc.send
        a._dc.send = lambda message: (sent.append(len(message)), send(message))[1]
        try:
            frame = hashlib.sha256(b"small").digest() * 200  # 6,400 bytes: 7 messages of ≤ 1000
            await a.send(frame, timeout=20)
            assert await b.receive(timeout=20) == frame
            assert max(sent) == 1000 and len(sent) == 7
        finally:
            await a.close()
            await b.close()

    run(body())
