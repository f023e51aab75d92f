"""SIGTERM: the closing round is saved, participants are told, and after a restart on the same data
folder training goes on in the same round with the same model — in a secure round too, whose
members start it again with fresh keys."""

from __future__ import annotations

import asyncio
import signal
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
from disco.protocol import ErrorMessage, RoundResult, SecureSetup, SecureShares, UpdateAck, Welcome
from disco.server import Store
from disco.task import Task

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


def _secure(task: Task) -> Task:
    """`task` with secure aggregation on (the defaults: clip 1, weight cap 1024)."""
    data = task.model_dump(mode="json")
    data["training"]["secure_aggregation"] = {}
    return Task.model_validate(data)


def _keys(setup: SecureSetup) -> set[bytes]:
    return {k for m in setup.members for k in (m.c_public, m.s_public)}


@pytest.mark.parametrize("after", ["setup", "welcome"])
def test_a_secure_round_cut_by_a_restart_starts_again_with_fresh_keys_and_closes(
    kit: Any, serve_process: Any, tmp_path: Path, after: str
) -> None:
    """Three Python participants of a task with secure aggregation; `disco serve` gets SIGTERM
    in round 0 as soon as the roster (`SecureSetup`) reaches one of them (their shares leave once
    it exited) — or, before any roster, as soon as the first has its `Welcome` (the two others
    join after the restart). The restarted server lost the round's secure state: the members
    told `restarting` send fresh keys, round 0 gets a new roster with none of the old keys,
    closes with all three, and so does round 1. Nothing of the abandoned roster is answered (no
    refusal comes back); every run ends on the server's model."""
    task = _secure(kit.make_task(min_participants=3, deadline=600))
    data_dir = tmp_path / "data"
    first = serve_process(tasks=(task,), data_dir=data_dir)
    names = ["a", "b", "c"]
    seen: dict[str, list[Any]] = {name: [] for name in names}
    signalled = threading.Event()

    def recorder(name: str) -> Callable[[Any], None]:
        def on_message(m: Any) -> None:
            seen[name].append(m)
            trigger = SecureSetup if after == "setup" else Welcome
            if isinstance(m, trigger) and m.round == 0 and not signalled.is_set():
                signalled.set()  # at once, from the client's reader: before it answers
                first.process.send_signal(signal.SIGTERM)

        return on_message

    clients = {
        name: FederatedClient(
            task,
            _data(i),
            first.url,
            name=name,
            seed=i,
            on_message=recorder(name),
            wait_for_others_s=120,
            reconnect_timeout_s=60,
        )
        for i, name in enumerate(names)
    }
    for c in clients.values():  # round 0's first shares wait for the exit: the round moves no
        send = c._send  # further before the signal lands (a SIGTERM is not handled at once)

        async def held(message: Any, send: Any = send) -> None:
            if isinstance(message, SecureShares) and first.process.poll() is None:
                await asyncio.to_thread(first.process.wait, 30)
            await send(message)

        c._send = held  # type: ignore[method-assign]

    async def body() -> dict[str, Any]:
        out: dict[str, Any] = {}
        early = names if after == "setup" else names[:1]
        runs = [asyncio.create_task(clients[n].run(2)) for n in early]
        await _until("the SIGTERM", signalled.is_set, timeout=60)
        out["rc"] = await asyncio.to_thread(first.process.wait, 30)
        second = await asyncio.to_thread(serve_process, data_dir=data_dir, port=first.port)
        runs += [asyncio.create_task(clients[n].run(2)) for n in names if n not in early]
        out["runs"] = await asyncio.wait_for(asyncio.gather(*runs), 120)
        out["model"] = _model(second.url)
        out["history"] = httpx.get(f"{second.url}/api/tasks/tiny/rounds", timeout=5).json()
        return out

    out = asyncio.run(body())
    assert out["rc"] == 0
    early = names if after == "setup" else names[:1]
    for name in names:
        errors = [m.code for m in seen[name] if isinstance(m, ErrorMessage)]
        assert errors == (["restarting"] if name in early else []), (name, errors)
        # round 0's rosters: one before the notice (the setup case), one after, with fresh keys
        told = [i for i, m in enumerate(seen[name]) if isinstance(m, ErrorMessage)] or [-1]
        rosters = [(i, m) for i, m in enumerate(seen[name]) if isinstance(m, SecureSetup)]
        old = [m for i, m in rosters if m.round == 0 and i < told[0]]
        new = [m for i, m in rosters if m.round == 0 and i > told[0]]
        assert len(old) == (1 if after == "setup" else 0) and len(new) == 1, (name, rosters)
        assert len(new[0].members) == 3
        if old:
            assert {m.id for m in old[0].members} == {m.id for m in new[0].members}
            assert not _keys(old[0]) & _keys(new[0])  # not one key of the abandoned roster
    history = out["history"]
    assert [(r["round"], r["contributors"]) for r in history] == [(0, 3), (1, 3)], history
    assert all(r["aggregation"]["secure"] and "aborted" not in r["aggregation"] for r in history)
    for run in out["runs"]:
        assert run.rounds == 2
        assert out["model"] == ("2", run.weights.digest())
