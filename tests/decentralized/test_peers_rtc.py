"""Python peers over real WebRTC data channels (aiortc) on loopback, signalled by the server."""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest
from peers_kit import blobs, p2p_task

from disco.decentralized.peer import PeerClient


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """ICE offers loopback candidates only (it skips 127.0.0.1 otherwise)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


def test_three_python_peers_over_webrtc_agree_on_every_round(serve: Any) -> None:
    task = p2p_task(min_participants=3)
    server = serve(task)
    peers = [PeerClient(task, blobs(seed=i), server.url, name=f"rtc-{i}", seed=i) for i in range(3)]

    async def body() -> list[Any]:
        async with asyncio.timeout(120):
            return await asyncio.gather(*(p.run(rounds=3) for p in peers))

    results = asyncio.run(body())

    assert [r.rounds for r in results] == [3, 3, 3]
    for k in range(3):
        assert len({p.timings[k].digest for p in peers}) == 1
    # channels opened once and were reused: later rounds connect at once
    assert all(p.timings[2].connect_s < 1.0 for p in peers)
    assert all(p.bytes_to_peers > 2 * results[0].weights.nbytes for p in peers)


def test_a_newer_offer_from_a_peer_replaces_the_one_being_answered() -> None:
    """A peer that sends offer after offer gets one answer in progress at a time, not one
    half-open connection per offer."""
    from disco.decentralized.connector import RtcConnector
    from disco.protocol import Signal
    from disco.transport.rtc import RtcLink

    async def body() -> None:
        answers: list[Signal] = []

        async def send(signal: Signal) -> None:
            answers.append(signal)

        adopted: list[str] = []
        b = RtcConnector("b", lambda peer, channel: adopted.append(peer), send)
        first, second = RtcLink(), RtcLink()
        try:
            await b.on_signal(Signal(peer="a", kind="offer", data=await first.offer()))
            await b.on_signal(Signal(peer="a", kind="offer", data=await second.offer()))
            async with asyncio.timeout(20):
                while not answers:
                    await asyncio.sleep(0.01)
            await second.accept(answers[0].data)
            mine = await second.channel(timeout=20)
            async with asyncio.timeout(20):
                while b.channel("a") is None:
                    await asyncio.sleep(0.01)
            await mine.send(b"hello", timeout=10)
            assert await b.channel("a").receive(timeout=10) == b"hello"  # type: ignore[union-attr]
            assert len(answers) == 1 and adopted == ["a"]  # the first offer was never answered
        finally:
            await b.aclose()
            await first.close()
            await second.close()

    asyncio.run(body())
