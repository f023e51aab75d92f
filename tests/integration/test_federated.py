"""End to end on loopback: a real server, real protocol clients, real sample data files."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from loopback import TOKEN, publish, serve
from websockets.asyncio.client import connect

from disco import catalog
from disco.client import FederatedClient
from disco.data import load_for_task
from disco.data.samples import write_samples
from disco.models import build_torch_model
from disco.protocol import ErrorMessage, Hello, ModelUpdate, RoundResult, Welcome, decode, encode
from disco.server import ServerConfig, ServerHandle, start_in_background
from disco.task import Task
from disco.training import evaluate
from disco.weights import Weights


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real breast-cancer records written as one CSV per client plus a test CSV."""
    out = tmp_path_factory.mktemp("samples")
    write_samples("breast_cancer", 3, out, seed=0)
    return out


def _task(**training: object) -> Task:
    return catalog.get("breast_cancer").with_training(**training)


def _global(handle: ServerHandle, task_id: str) -> tuple[int, str]:
    resp = httpx.get(f"{handle.url}/api/tasks/{task_id}/model")
    assert resp.status_code == 200
    return int(resp.headers["X-Disco-Round"]), resp.headers["X-Disco-Digest"]


def _clients(task: Task, samples: Path, handle: ServerHandle, n: int) -> list[FederatedClient]:
    return [
        FederatedClient(
            task,
            load_for_task(samples / f"client_{i}", task.training),
            handle.url,
            seed=i,
            name=f"c{i}",
            wait_for_others_s=60,
        )
        for i in range(1, n + 1)
    ]


def test_three_clients_converge_to_one_global_model(server: ServerHandle, samples: Path) -> None:
    task = _task(min_participants=3, epochs=6, epochs_per_round=1)
    publish(server, task)

    async def main() -> list[Weights]:
        results = await asyncio.gather(*(c.run(6) for c in _clients(task, samples, server, 3)))
        return [r.weights for r in results]

    finals = asyncio.run(main())

    rnd, digest = _global(server, task.id)
    assert rnd == 6
    assert {w.digest() for w in finals} == {digest}
    history = httpx.get(f"{server.url}/api/tasks/{task.id}/rounds").json()
    assert [h["contributors"] for h in history] == [3] * 6
    model = build_torch_model(task.model)
    model.set_weights(finals[0])
    _, accuracy = evaluate(model, load_for_task(samples / "test", task.training))
    assert accuracy is not None and accuracy >= 0.9


async def _raw_join(url: str, task_id: str) -> tuple[object, Welcome]:
    ws = await connect(url.replace("http://", "ws://") + "/ws", max_size=None)
    await ws.send(encode(Hello(task_id=task_id, name="raw")))
    while True:
        message = decode(await asyncio.wait_for(ws.recv(), 10))
        if isinstance(message, Welcome):
            return ws, message


@pytest.mark.parametrize("how", ["silent", "killed"])
def test_a_lost_participant_does_not_stall_the_round(
    server: ServerHandle, samples: Path, how: str
) -> None:
    deadline = 1.5
    task = _task(min_participants=2, epochs=2, epochs_per_round=1, round_deadline_s=deadline)
    publish(server, task)

    async def main() -> float:
        ws, _ = await _raw_join(server.url, task.id)  # joins, then never reports
        if how == "killed":
            ws.transport.abort()  # type: ignore[attr-defined]  # the process died: no close frame
        start = time.monotonic()
        results = await asyncio.gather(*(c.run(2) for c in _clients(task, samples, server, 2)))
        elapsed = time.monotonic() - start
        assert results[0].weights.digest() == results[1].weights.digest()
        if how == "silent":
            await ws.close()  # type: ignore[attr-defined]
        return elapsed

    elapsed = asyncio.run(asyncio.wait_for(main(), 60))
    rnd, _ = _global(server, task.id)
    assert rnd == 2
    history = httpx.get(f"{server.url}/api/tasks/{task.id}/rounds").json()
    assert [h["contributors"] for h in history] == [2, 2]
    assert elapsed < 2 * deadline + 20  # closed at the deadline, not never
    if how == "silent":
        assert elapsed >= deadline  # the silent participant was waited for, up to the deadline


def test_bad_updates_are_refused_and_change_nothing(server: ServerHandle) -> None:
    task = _task(min_participants=1)
    publish(server, task)
    before = _global(server, task.id)

    async def main() -> list[str]:
        ws, welcome = await _raw_join(server.url, task.id)
        good = welcome.weights
        name = next(iter(good))
        nan = Weights((n, np.full_like(a, np.nan) if n == name else a) for n, a in good.items())
        wrong = Weights((n, np.zeros((3, 3)) if n == name else a) for n, a in good.items())
        frames = [
            b"\x00garbage",
            encode(ModelUpdate(round=0, num_samples=5, weights=nan)),
            encode(ModelUpdate(round=0, num_samples=5, weights=wrong)),
            encode(ModelUpdate(round=7, num_samples=5, weights=good)),
        ]
        codes = []
        for frame in frames:
            await ws.send(frame)  # type: ignore[attr-defined]
            reply = decode(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[attr-defined]
            while not isinstance(reply, ErrorMessage):
                reply = decode(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[attr-defined]
            codes.append(reply.code)
        await ws.close()  # type: ignore[attr-defined]
        return codes

    codes = asyncio.run(asyncio.wait_for(main(), 30))
    assert codes == ["malformed", "not_finite", "shape", "future"]
    assert _global(server, task.id) == before


def test_restarted_server_resumes_round_and_model(tmp_path: Path, samples: Path) -> None:
    task = _task(min_participants=2, epochs=3, epochs_per_round=1)
    first = serve(tmp_path / "server")
    try:
        publish(first, task)

        async def two_rounds() -> None:
            await asyncio.gather(*(c.run(2) for c in _clients(task, samples, first, 2)))

        asyncio.run(two_rounds())
        before = _global(first, task.id)
    finally:
        first.stop()
    assert before[0] == 2

    second = serve(tmp_path / "server")
    try:
        assert _global(second, task.id) == before

        async def one_more() -> tuple[Welcome, RoundResult | None]:
            ws, welcome = await _raw_join(second.url, task.id)
            await ws.close()  # type: ignore[attr-defined]
            await asyncio.gather(*(c.run(1) for c in _clients(task, samples, second, 2)))
            return welcome, None

        welcome, _ = asyncio.run(one_more())
        assert (welcome.round, welcome.weights.digest()) == before
        assert _global(second, task.id)[0] == 3
    finally:
        second.stop()


def test_clients_ride_through_a_server_restart(tmp_path: Path, samples: Path) -> None:
    """The server stops mid-training and comes back on the same port; clients reconnect."""
    task = _task(min_participants=2, epochs=4, epochs_per_round=1)
    first = serve(tmp_path / "server")
    port = first.port
    publish(first, task)
    handles = [first]

    async def main() -> set[str]:
        clients = _clients(task, samples, first, 2)
        runs = asyncio.gather(*(c.run(4) for c in clients))
        async with asyncio.timeout(60):
            while httpx.get(f"{first.url}/api/tasks/{task.id}/status").json()["round"] < 2:
                await asyncio.sleep(0.05)
        await asyncio.to_thread(first.stop)
        config = ServerConfig(
            port=port, data_dir=tmp_path / "server", admin_token=TOKEN, seed_catalog=False
        )
        handles.append(await asyncio.to_thread(start_in_background, config))
        results = await runs
        return {r.weights.digest() for r in results}

    try:
        digests = asyncio.run(asyncio.wait_for(main(), 120))
        rnd, digest = _global(handles[-1], task.id)
    finally:
        for handle in handles:
            handle.stop()
    assert digests == {digest}
    assert rnd == 4
