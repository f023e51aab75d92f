"""Channels: frames in order, backpressure, bounded waits, closing; in memory and on a WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from disco.client.link import Link, LinkClosed, Traffic
from disco.errors import ServerError
from disco.protocol import Hello, RoundResult, encode
from disco.transport import ChannelClosed, WebSocketChannel, memory_pair
from disco.weights import Weights


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop until `condition()` holds (at most 5 s)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)
    assert condition(), what


def test_frames_arrive_in_order_and_are_counted() -> None:
    async def body() -> None:
        a, b = memory_pair()
        for i in range(5):
            await a.send(bytes([i]) * (i + 1), timeout=1)
        got = [await b.receive(timeout=1) for _ in range(5)]
        assert got == [bytes([i]) * (i + 1) for i in range(5)]
        assert a.bytes_sent == b.bytes_received == 15

    run(body())


def test_a_sender_waits_while_the_peer_holds_too_much_then_goes_on() -> None:
    async def body() -> None:
        a, b = memory_pair(high_water=1000)
        await a.send(b"x" * 800, timeout=1)  # an empty queue takes any frame
        await a.send(b"y" * 150, timeout=1)  # 950 queued ≤ 1000: goes
        third = asyncio.create_task(a.send(b"z" * 800, timeout=5))  # 1750 > 1000: waits
        for _ in range(20):
            await asyncio.sleep(0)
        assert not third.done()
        assert await b.receive(timeout=1) == b"x" * 800  # 150 + 800 ≤ 1000: room again
        await until(third.done, "the third send to go on")
        await third
        assert [await b.receive(timeout=1) for _ in range(2)] == [b"y" * 150, b"z" * 800]

    run(body())


def test_frames_go_out_in_the_order_of_the_calls() -> None:
    async def body() -> None:
        a, b = memory_pair(high_water=100)
        await a.send(b"x" * 90, timeout=1)
        big = asyncio.create_task(a.send(b"B" * 50, timeout=5))  # waits for room
        for _ in range(5):
            await asyncio.sleep(0)
        small = asyncio.create_task(a.send(b"s", timeout=5))  # would fit, but comes after
        for _ in range(5):
            await asyncio.sleep(0)
        assert not big.done() and not small.done()
        got = [await b.receive(timeout=1) for _ in range(3)]
        await asyncio.gather(big, small)
        assert got == [b"x" * 90, b"B" * 50, b"s"]

    run(body())


def test_waits_are_bounded_and_say_what_they_waited_for() -> None:
    async def body() -> None:
        a, b = memory_pair(high_water=10)
        with pytest.raises(TimeoutError, match=r"waited 0\.05 s for a frame from the peer"):
            await b.receive(timeout=0.05)
        await a.send(b"0123456789ab", timeout=1)
        with pytest.raises(TimeoutError, match="for the peer to take 12 queued bytes"):
            await a.send(b"more", timeout=0.05)
        assert b.bytes_received == 0 and await b.receive(timeout=1) == b"0123456789ab"

    run(body())


def test_closing_lets_the_peer_drain_then_tells_it_why() -> None:
    async def body() -> None:
        a, b = memory_pair()
        await a.send(b"last words", timeout=1)
        await a.close(4404, "unknown task")
        await a.close()  # idempotent
        assert await b.receive(timeout=1) == b"last words"
        with pytest.raises(ChannelClosed, match="closed by the peer: unknown task") as caught:
            await b.receive(timeout=1)
        assert caught.value.code == 4404 and b.closed is not None
        with pytest.raises(ChannelClosed):
            await a.send(b"x", timeout=1)
        with pytest.raises(ChannelClosed):
            await b.send(b"x", timeout=1)

    run(body())


def test_a_frame_over_the_limit_is_refused_and_nothing_is_sent() -> None:
    async def body() -> None:
        a, b = memory_pair(max_frame=16)
        with pytest.raises(ValueError, match="17 bytes is larger than this channel carries"):
            await a.send(b"x" * 17, timeout=1)
        assert a.bytes_sent == 0
        await a.send(b"x" * 16, timeout=1)
        assert await b.receive(timeout=1) == b"x" * 16

    run(body())


@contextlib.asynccontextmanager
async def connected(
    handler: Callable[[ServerConnection], Awaitable[None]], max_frame: int, **options: Any
) -> AsyncIterator[WebSocketChannel]:
    """A WebSocket server on loopback running `handler`, and a channel connected to it."""
    server = await serve(handler, "127.0.0.1", 0, **options)
    port = server.sockets[0].getsockname()[1]
    try:
        yield await WebSocketChannel.connect(
            f"ws://127.0.0.1:{port}", max_frame=max_frame, timeout=5
        )
    finally:
        server.close()
        await server.wait_closed()


def test_a_websocket_channel_carries_binary_frames_and_the_close_code() -> None:
    async def handler(conn: ServerConnection) -> None:
        frame = await conn.recv()
        await conn.send(frame[::-1])
        await conn.send(b"before the close")
        await conn.close(4404, "unknown task")

    async def body() -> None:
        async with connected(handler, 1024) as channel:
            await channel.send(b"abc", timeout=5)
            assert await channel.receive(timeout=5) == b"cba"
            assert await channel.receive(timeout=5) == b"before the close"
            with pytest.raises(ChannelClosed, match=r"\(code 4404\): unknown task") as caught:
                await channel.receive(timeout=5)
            assert caught.value.code == 4404
            with pytest.raises(ValueError, match="larger than this channel carries"):
                await channel.send(b"x" * 1025, timeout=5)
            assert channel.bytes_sent == 3 and channel.bytes_received == 19

    run(body())


def test_a_websocket_send_waits_only_for_room_not_for_the_whole_upload() -> None:
    received: list[int] = []

    async def handler(conn: ServerConnection) -> None:
        received.append(len(await conn.recv()))
        await conn.send(b"thanks")

    async def body() -> None:
        async with connected(handler, 64 * 2**20, max_size=None) as channel:
            await channel.send(b"m" * (16 * 2**20), timeout=0)  # an empty buffer takes it
            assert await channel.receive(timeout=30) == b"thanks"
            assert received == [16 * 2**20]
            await channel.close()

    run(body())


def test_a_text_frame_from_the_server_ends_the_channel() -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.send("not binary")
        await conn.wait_closed()

    async def body() -> None:
        async with connected(handler, 1024) as channel:
            with pytest.raises(ChannelClosed, match="text frame: not binary"):
                await channel.receive(timeout=5)
            assert channel.closed is not None and channel.closed.code == 1003

    run(body())


RESULT = RoundResult(round=1, weights=Weights({"w": [1.0, 2.0]}), contributors=1, num_samples=3)


def test_a_link_decodes_the_servers_messages_from_any_channel() -> None:
    async def body() -> None:
        client, server = memory_pair()
        seen: list[str] = []
        traffic = Traffic()
        link = Link(client, traffic, lambda m: seen.append(m.type))
        await server.send(encode(RESULT), timeout=1)
        message = await link.next(timeout=5)
        assert (
            isinstance(message, RoundResult) and message.weights.digest() == RESULT.weights.digest()
        )
        assert seen == ["result"] and traffic.bytes_down == len(encode(RESULT))
        await link.send(Hello(task_id="mnist"))
        assert isinstance(await server.receive(timeout=1), bytes)
        await server.close(4400, "version")
        with pytest.raises(LinkClosed) as caught:
            await link.next(timeout=5)
        assert caught.value.code == 4400 and caught.value.fatal is not None
        await link.close()

    run(body())


def test_a_link_refuses_a_message_only_clients_send() -> None:
    async def body() -> None:
        client, server = memory_pair()
        link = Link(client, Traffic(), lambda m: None)
        await server.send(encode(Hello(task_id="mnist")), timeout=1)
        with pytest.raises(ServerError, match="'hello' message, which clients send"):
            await link.next(timeout=5)
        assert client.closed is not None
        await link.close()

    run(body())
