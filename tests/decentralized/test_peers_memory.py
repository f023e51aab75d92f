"""Peers of a decentralized session over in-process channels, paced by a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from conftest import blobs, p2p_task

from disco.decentralized.connector import MemoryConnector, MemoryHub
from disco.decentralized.peer import PeerClient


def _peers(url: str, task: Any, n: int, hub: MemoryHub) -> list[PeerClient]:
    return [
        PeerClient(
            task,
            blobs(seed=i),
            url,
            name=f"peer-{i}",
            seed=i,
            connector=lambda me, on_channel, send: MemoryConnector(me, on_channel, hub),
        )
        for i in range(n)
    ]


def test_three_peers_end_every_round_with_the_same_model(serve: Any) -> None:
    task = p2p_task(min_participants=3)
    server = serve(task)
    peers = _peers(server.url, task, 3, MemoryHub())

    async def body() -> list[Any]:
        async with asyncio.timeout(120):
            return await asyncio.gather(*(p.run(rounds=3) for p in peers))

    results = asyncio.run(body())

    assert [r.rounds for r in results] == [3, 3, 3]
    for k in range(3):
        digests = {p.timings[k].digest for p in peers}
        assert len(digests) == 1, f"round {k}: {digests}"
        assert all(p.timings[k].contributors == 3 for p in peers)
    assert results[0].weights.digest() == peers[0].timings[-1].digest
    history = httpx.get(f"{server.url}/api/tasks/p2p/rounds", timeout=5).json()
    assert [h["digest"] for h in history] == [peers[0].timings[k].digest for k in range(3)]
    status = httpx.get(f"{server.url}/api/tasks/p2p/status", timeout=5).json()
    assert status["round"] == 3
    assert all(p.bytes_to_peers > 0 for p in peers)
