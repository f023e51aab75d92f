"""Capabilities over a real WebSocket: who may join a decentralized task, and with what."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from disco.models import init_weights
from disco.protocol import (
    Combine,
    ErrorMessage,
    Exchange,
    Hello,
    ModelRequest,
    ModelUpdate,
    Ready,
    RoundPlan,
    Welcome,
)


def test_a_client_without_the_capability_is_told_to_update(start_server: Any, kit: Any) -> None:
    task = kit.make_task("p2p").with_training(scheme="decentralized")
    server = start_server(tasks=(task, kit.make_task("fed")))

    async def body() -> None:
        async with kit.WsClient(server.ws_url) as old:
            await old.send(Hello(task_id="p2p"))
            error = await old.expect(ErrorMessage)
            assert error.code == "unsupported" and "decentralized" in error.message
            assert await old.closed_code() == 4426

        async with kit.WsClient(server.ws_url) as peer:
            await peer.send(Hello(task_id="p2p", capabilities=["decentralized", "zz_later"]))
            welcome = await peer.expect(Welcome)
            assert welcome.weights is None and welcome.capabilities == ["decentralized"]
            plan = await peer.expect(RoundPlan)  # min_participants 1: a round of one
            assert plan.round == 0 and plan.peers == []
            assert (await peer.expect(Exchange)).peers == [welcome.client_id]
            assert (await peer.expect(Combine)).peers == [welcome.client_id]
            weights = init_weights(task.model, seed=0)
            await peer.send(ModelUpdate(round=0, num_samples=1, weights=weights))
            error = await peer.expect(ErrorMessage)
            assert error.code == "unexpected" and "peers" in error.message
            await peer.send(ModelRequest(round=0))
            error = await peer.expect(ErrorMessage)
            assert error.code == "unexpected" and "between peers" in error.message

        async with kit.WsClient(server.ws_url) as fed:
            await fed.send(Hello(task_id="fed", capabilities=["decentralized"]))
            welcome = await fed.expect(Welcome)
            assert welcome.weights is not None and welcome.capabilities == []
            await fed.send(Ready(round=0, connected=[]))
            assert (await fed.expect(ErrorMessage)).code == "unsupported"

    asyncio.run(body())
    model = httpx.get(f"{server.url}/api/tasks/p2p/model", timeout=5)
    assert model.headers["X-Disco-Round"] == "0"  # the only model kept: the initial one
    assert model.headers["X-Disco-Digest"] == init_weights(task.model, seed=0).digest()
