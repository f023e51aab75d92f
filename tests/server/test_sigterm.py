"""SIGTERM: the closing round is saved, participants are told, and after a restart on the same data
folder training goes on in the same round with the same model."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from disco.client import FederatedClient
from disco.data.dataset import Dataset
from disco.protocol import ErrorMessage, RoundResult, UpdateAck
from disco.server import Store

pytestmark = pytest.mark.timeout(180)


async def _until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until `check()` holds (polled), at most `timeout` seconds."""
    end = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < end, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


def _status(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/tasks/tiny/status", timeout=5)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _model(url: str) -> tuple[str, str]:
    headers = httpx.get(f"{url}/api/tasks/tiny/model", timeout=5).headers
    return headers["X-Disco-Round"], headers["X-Disco-Digest"]


def _data(seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    return Dataset(x, (x.sum(axis=1) > 0).astype(np.int64))


def test_sigterm_during_a_round_then_restart_goes_on_in_that_round(
    kit: Any, serve_process: Any, tmp_path: Path
) -> None:
    """Two Python participants and a scripted one close rounds 0 and 1 on a `disco serve`
    process; in round 2 the two have sent their updates when it gets SIGTERM. It exits with 0
    within seconds, everyone was told it is restarting; restarted on the same folder and port
    it serves round 2 with the same digest, the two reconnect and send their round-2 updates
    again, and round 2 closes into round 3."""
    task = kit.make_task(min_participants=3, deadline=600)
    data_dir = tmp_path / "data"
    first = serve_process(tasks=(task,), data_dir=data_dir)
    seen: dict[str, list[Any]] = {"a": [], "b": []}
    clients = [
        FederatedClient(
            task,
            _data(i),
            first.url,
            name=name,
            seed=i,
            on_message=seen[name].append,
            wait_for_others_s=120,
            reconnect_timeout_s=60,
        )
        for i, name in enumerate(seen)
    ]

    def reported(url: str, rnd: int, n: int) -> Callable[[], bool]:
        return lambda: (lambda s: (s["round"], s["reported"]) == (rnd, n))(_status(url))

    async def body() -> dict[str, Any]:
        out: dict[str, Any] = {}
        runs = [asyncio.create_task(c.run(3)) for c in clients]
        async with kit.WsClient(first.ws_url) as driver:
            weights = (await driver.hello(name="driver")).weights
            for rnd in range(2):
                await _until(f"both updates of round {rnd}", reported(first.url, rnd, 2))
                await driver.send(kit.update(rnd, weights))
                await driver.expect(UpdateAck)
                weights = (await driver.expect(RoundResult, timeout=20)).weights
            await _until("both updates of round 2", reported(first.url, 2, 2))
            out["before"] = _model(first.url)
            started = time.monotonic()
            out["rc"] = await asyncio.to_thread(first.terminate, 30)
            out["exit_s"] = time.monotonic() - started
            out["told"] = await driver.expect(ErrorMessage)
            out["close"] = await driver.closed_code()
        second = await asyncio.to_thread(serve_process, data_dir=data_dir, port=first.port)
        out["after"] = _model(second.url)
        out["round_2_weights"] = weights
        await _until("both updates of round 2 again", reported(second.url, 2, 2), timeout=60)
        async with kit.WsClient(second.ws_url) as driver:
            welcome = await driver.hello(name="driver")
            out["welcome"] = welcome
            await driver.send(kit.update(2, welcome.weights))
            await driver.expect(UpdateAck)
            out["result"] = await driver.expect(RoundResult, timeout=20)
        out["runs"] = await asyncio.wait_for(asyncio.gather(*runs), 60)
        out["history"] = httpx.get(f"{second.url}/api/tasks/tiny/rounds", timeout=5).json()
        return out

    out = asyncio.run(body())
    assert out["rc"] == 0 and out["exit_s"] < 15, out
    assert out["told"].code == "restarting" and out["close"] == 1012
    for name in seen:
        told = [m for m in seen[name] if isinstance(m, ErrorMessage)]
        assert [m.code for m in told] == ["restarting"], (name, told)
    assert out["before"] == out["after"] == ("2", out["round_2_weights"].digest())
    assert out["welcome"].round == 2 and out["welcome"].weights == out["round_2_weights"]
    result = out["result"]
    assert result.round == 3 and result.contributors == 3
    for run in out["runs"]:
        assert run.rounds == 3 and run.weights == result.weights
    assert [(r["round"], r["contributors"]) for r in out["history"]] == [(0, 3), (1, 3), (2, 3)]
    assert "telling 3 connection(s) that the server is restarting" in first.log()


def test_a_round_being_combined_at_shutdown_is_saved_and_announced_first(
    kit: Any, start_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow save is under way when the server is stopped: the stop waits for it, the
    participant gets the round's result, then the restart notice, then close code 1012, and the
    new model is on disk."""
    saving, stop_requested = threading.Event(), threading.Event()
    save_round = Store.save_round

    def slow_save(self: Store, *args: Any) -> None:
        saving.set()
        assert stop_requested.wait(10)
        time.sleep(0.5)  # still saving when the shutdown begins
        save_round(self, *args)

    monkeypatch.setattr(Store, "save_round", slow_save)
    data_dir = tmp_path / "state"
    server = start_server(tasks=(kit.make_task(),), data_dir=data_dir)

    async def body() -> list[Any]:
        async with kit.WsClient(server.ws_url) as c:
            welcome = await c.hello()
            await c.send(kit.update(0, kit.filled(welcome.weights, 0.5)))
            await c.expect(UpdateAck)
            assert await asyncio.to_thread(saving.wait, 10)
            stop_requested.set()
            stopping = asyncio.create_task(asyncio.to_thread(server.stop))
            got = [await c.expect(RoundResult), await c.expect(ErrorMessage)]
            got.append(await c.closed_code())
            await stopping
            return got

    result, told, code = asyncio.run(body())
    assert result.round == 1 and told.code == "restarting" and code == 1012
    monkeypatch.undo()
    store = Store(data_dir)
    try:
        state = store.load_state("tiny")
    finally:
        store.close()
    assert state is not None and state[0] == 1 and state[1] == result.weights
