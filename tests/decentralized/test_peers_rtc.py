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
