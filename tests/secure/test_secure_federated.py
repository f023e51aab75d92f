"""Federated training with secure aggregation: a real server on loopback, real Python clients over
WebSockets; the server never receives an update it could read."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from secure_kit import blobs, secure_task
from websockets.asyncio.client import connect

from disco.client import FederatedClient
from disco.errors import ServerError
from disco.protocol import (
    ErrorMessage,
    Hello,
    ModelUpdate,
    SecureInput,
    SecureKeys,
    SecureReveal,
    SecureShares,
    SecureUnmask,
    decode,
    encode,
)
from disco.server import ServerConfig, ServerHandle, start_in_background
from disco.server.secure import SecureSession
from disco.training.trainer import evaluate

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(serve: Any) -> ServerHandle:
    return serve(secure_task())  # type: ignore[no-any-return]


def chi_square_uniform(words: np.ndarray, bins: int = 16) -> float:
    """Chi-square statistic of the words' top 4 bits against the uniform distribution."""
    counts = np.bincount((words >> 28).astype(np.int64), minlength=bins)
    expected = words.size / bins
    return float(((counts - expected) ** 2 / expected).sum())


def test_three_python_participants_train_and_the_server_reads_no_update(
    server: ServerHandle, received: list[Any]
) -> None:
    task = secure_task()
    clients = [FederatedClient(task, blobs(i), server.url, name=f"s{i}", seed=i) for i in range(3)]

    async def body() -> list[Any]:
        async with asyncio.timeout(100):
            return await asyncio.gather(*(c.run(rounds=2) for c in clients))

    results = asyncio.run(body())

    assert [r.rounds for r in results] == [2, 2, 2]
    assert len({r.weights.digest() for r in results}) == 1  # the same shared model
    model = clients[0].model
    model.set_weights(results[0].weights)
    _, accuracy = evaluate(model, blobs(99, 400))
    assert accuracy is not None and accuracy > 0.9
    assert not any(isinstance(m, ModelUpdate) for m in received)
    inputs = [m for m in received if isinstance(m, SecureInput)]
    assert len(inputs) == 6  # 3 members × 2 rounds
    for m in inputs:  # each masked vector: uniform words, nothing like an update's floats
        words = np.frombuffer(m.words, dtype="<u4")
        assert chi_square_uniform(words) < 60.0  # p ≈ 1e-6 for 15 degrees of freedom
    kinds = {type(m) for m in received}
    assert {SecureKeys, SecureShares, SecureInput, SecureReveal} <= kinds


def test_a_client_without_the_capability_is_refused(server: ServerHandle) -> None:
    async def body() -> tuple[Any, int | None]:
        ws_url = server.url.replace("http", "ws", 1) + "/ws"
        async with connect(ws_url, max_size=None, open_timeout=5) as ws:
            await ws.send(encode(Hello(task_id="secure", name="old")))
            reply = decode(await asyncio.wait_for(ws.recv(), 5))
            await asyncio.wait_for(ws.wait_closed(), 5)
            return reply, ws.close_code

    reply, code = asyncio.run(body())
    assert isinstance(reply, ErrorMessage) and reply.code == "unsupported"
    assert "secure_aggregation" in reply.message and code == 4426


def test_a_client_of_a_secure_task_sends_nothing_to_a_server_that_runs_it_plainly(
    serve: Any, received: list[Any]
) -> None:
    plain = secure_task().with_training(secure_aggregation=None)
    server = serve(plain)
    client = FederatedClient(secure_task(), blobs(0), server.url, name="careful")
    with pytest.raises(ServerError, match="runs it without"):
        asyncio.run(client.run(rounds=1))
    assert [type(m) for m in received] == [Hello]


def test_after_a_restart_an_update_already_in_a_readable_sum_is_never_sent_into_a_second(
    serve: Any, received: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server restarts once it asked round 0's survivors to unmask (it could have read their
    sum). The members start round 0 again with fresh keys and shares, but none sends its update
    into the new roster's sum, which would give it away by difference with the first: round 0
    aborts at its deadline, round 1 opens with the same model and closes with all three."""
    task = secure_task(round_deadline_s=20)  # training must fit in it; the abort waits for it
    first = serve(task)
    hold = threading.Event()  # the first server never unmasks: as if it stopped right then
    hold.set()
    unmasked = SecureSession._unmasked

    def holding(self: SecureSession, live: set[str]) -> None:
        if not hold.is_set():
            unmasked(self, live)

    monkeypatch.setattr(SecureSession, "_unmasked", holding)
    asked = threading.Event()
    restarted: list[ServerHandle] = []

    def on_message(m: Any) -> None:
        if isinstance(m, SecureUnmask) and m.round == 0:
            asked.set()

    def restart() -> None:
        if not asked.wait(60):
            return  # (the test fails: no restart)
        first.stop()
        hold.clear()
        config = ServerConfig.load(
            env={},
            port=first.port,
            data_dir=tmp_path / "server",
            seed_catalog=False,
            web_dir=tmp_path / "no-web",
        )
        restarted.append(start_in_background(config))

    clients = [
        FederatedClient(task, blobs(i), first.url, name=f"s{i}", seed=i, on_message=on_message)
        for i in range(3)
    ]
    restarter = threading.Thread(target=restart, daemon=True)
    restarter.start()

    async def body() -> list[Any]:
        async with asyncio.timeout(100):
            return await asyncio.gather(*(c.run(rounds=2) for c in clients))

    try:
        results = asyncio.run(body())
        restarter.join(30)
        history = httpx.get(f"{restarted[0].url}/api/tasks/secure/rounds", timeout=5).json()
    finally:
        for handle in restarted:
            handle.stop()

    assert [r.rounds for r in results] == [2, 2, 2]
    assert len({r.weights.digest() for r in results}) == 1
    inputs = [m.round for m in received if isinstance(m, SecureInput)]
    assert sorted(inputs) == [0, 0, 0, 1, 1, 1]  # round 0's updates went into one sum only
    keys = [m for m in received if isinstance(m, SecureKeys) and m.round == 0]
    assert len(keys) == 6 and len({m.c_public for m in keys}) == 6  # fresh keys after the restart
    assert [r["round"] for r in history] == [0, 1]
    assert "masked inputs arrived" in history[0]["aggregation"]["aborted"]
    assert history[1]["contributors"] == 3
