"""Peers of a decentralized session over in-process channels, paced by a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest
from peers_kit import blobs, p2p_task

from disco import protocol
from disco.decentralized.connector import MemoryConnector, MemoryHub
from disco.decentralized.peer import PeerClient
from disco.weights import Weights


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
    assert all(h["aggregation"]["agreeing"] == 3 for h in history)  # every peer's digest
    status = httpx.get(f"{server.url}/api/tasks/p2p/status", timeout=5).json()
    assert status["round"] == 3
    assert all(p.bytes_to_peers > 0 for p in peers)


def test_a_late_joiner_gets_the_model_from_a_peer_and_then_agrees(serve: Any) -> None:
    task = p2p_task(min_participants=2)
    server = serve(task)
    hub = MemoryHub()
    first, late = _peers(server.url, task, 3, hub)[:2], _peers(server.url, task, 3, hub)[2]

    async def body() -> None:
        async with asyncio.timeout(120):
            early = [asyncio.ensure_future(p.run(rounds=10)) for p in first]
            while len(first[0].timings) < 2:  # the late one joins once round 2 is under way
                await asyncio.sleep(0.05)
            await late.run(rounds=2)
            await asyncio.gather(*early)

    asyncio.run(body())

    joined = late.timings[0]
    assert joined.round >= 2 and joined.model_s > 0  # it fetched the round's model from a peer
    rounds = [[t.round for t in p.timings] for p in [*first, late]]
    for timing in late.timings:
        others = {t.digest for p in first for t in p.timings if t.round == timing.round}
        assert others == {timing.digest}, rounds
    history = httpx.get(f"{server.url}/api/tasks/p2p/rounds", timeout=5).json()
    assert max(h["contributors"] for h in history) == 3


def test_twenty_peers_in_a_sparse_topology_complete_five_rounds(serve: Any) -> None:
    task = p2p_task(min_participants=20, epochs=5)
    server = serve(task)
    peers = _peers(server.url, task, 20, MemoryHub())

    async def body() -> list[Any]:
        async with asyncio.timeout(240):
            return await asyncio.gather(*(p.run(rounds=5) for p in peers))

    results = asyncio.run(body())

    assert [r.rounds for r in results] == [5] * 20
    for p in peers:
        assert [t.round for t in p.timings] == [0, 1, 2, 3, 4]
        assert all(t.neighbours == 4 for t in p.timings)  # k = 4
        assert all(t.contributors == 20 for t in p.timings)  # every update reached its neighbours
    # sparse rounds mix with 4 neighbours: the models differ, but they move together
    spread = np.std([r.weights.flatten() for r in results], axis=0).max()
    assert 0 < spread < 0.5
    accuracy = [p.history[-1].val_accuracy for p in results]
    assert min(a for a in accuracy if a is not None) > 0.8


def test_no_frame_to_or_from_the_server_carries_a_model(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import disco.server.runtime
    import disco.server.ws

    seen: list[tuple[str, Any, int]] = []

    def decode(frame: bytes, *args: Any) -> Any:
        message = protocol.decode(frame, *args)
        seen.append(("in", message, len(frame)))
        return message

    def encode(message: Any) -> bytes:
        frame = protocol.encode(message)
        seen.append(("out", message, len(frame)))
        return frame

    monkeypatch.setattr(disco.server.ws, "decode_frame", decode)
    monkeypatch.setattr(disco.server.runtime, "encode_frame", encode)
    task = p2p_task(min_participants=3)
    server = serve(task)
    peers = _peers(server.url, task, 3, MemoryHub())

    async def body() -> None:
        async with asyncio.timeout(120):
            await asyncio.gather(*(p.run(rounds=2) for p in peers))

    asyncio.run(body())

    kinds = {m.type for _, m, _ in seen}
    assert {"hello", "welcome", "plan", "ready", "exchange", "received", "combine"} <= kinds
    assert "digest" in kinds and "leave" in kinds
    for _, message, size in seen:
        assert not any(isinstance(getattr(message, f), Weights) for f in type(message).model_fields)
        assert size < 2_000, (message.type, size)
