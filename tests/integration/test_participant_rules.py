"""How a Python participant behaves with others on a real server: waits, dropped updates, epochs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopback import publish
from websockets.asyncio.client import connect

from disco import catalog
from disco.client import FederatedClient
from disco.data import load_for_task
from disco.data.samples import write_samples
from disco.errors import UpdateRejected, WaitExpired, WeightsError
from disco.models import init_weights
from disco.protocol import Hello, RoundResult, UpdateAck, Welcome, encode
from disco.server import ServerConfig, ServerHandle, start_in_background
from disco.task import Task, parse_task
from disco.training import Event


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    write_samples("breast_cancer", 2, out, seed=0)
    return out


def _publish(handle: ServerHandle, **training: Any) -> Task:
    task = catalog.get("breast_cancer").with_training(**training)
    publish(handle, task)
    return task


def _client(task: Task, samples: Path, handle: ServerHandle, i: int, **kw: Any) -> FederatedClient:
    data = load_for_task(samples / f"client_{i}", task.training)
    return FederatedClient(task, data, handle.url, seed=i, name=f"c{i}", **kw)


def test_alone_below_the_minimum_stops_after_the_wait_with_its_model(
    server: ServerHandle, samples: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = _publish(server, min_participants=2, epochs=3, round_deadline_s=1.0)
    client = _client(task, samples, server, 1, wait_for_others_s=1.5)
    caplog.set_level(logging.INFO, logger="disco.client")

    with pytest.raises(WaitExpired) as info:
        asyncio.run(client.run())

    e = info.value
    assert (e.kept, e.rounds_done, e.shared_rounds) == ("local", 0, 0)
    assert e.weights.digest() != init_weights(task.model, seed=0).digest()  # it trained
    assert e.weights.digest() == client.model.get_weights().digest()
    assert "stopped waiting for the others after 1.5 s" in str(e)
    assert "1 more participant needed (1 of 2 connected)" in str(e)
    assert "You completed 0 of 3 rounds" in str(e)
    text = caplog.text
    assert "the shared model has been trained for 0 rounds; you take part in 3 rounds" in text
    assert "your round 1 of 3: training 1 epoch on the shared model" in text
    assert "your round 1 of 3: update sent; waiting for others: 1 more participant needed" in text
    # the server still holds round 0: nothing was combined, and the participant left
    resp = httpx.get(f"{server.url}/api/tasks/{task.id}")
    assert resp.status_code == 200


def test_the_kept_model_is_the_last_shared_one_once_rounds_were_combined(
    server: ServerHandle, samples: Path
) -> None:
    task = _publish(server, min_participants=2, epochs=4, round_deadline_s=1.0)

    async def together() -> None:
        pair = [_client(task, samples, server, i) for i in (1, 2)]
        await asyncio.gather(*(c.run(2) for c in pair))

    asyncio.run(together())  # the shared model now has 2 rounds behind it
    shared = httpx.get(f"{server.url}/api/tasks/{task.id}/model").headers["X-Disco-Digest"]

    async def with_a_silent_partner() -> WaitExpired:
        # two connected, one never reports: the round cannot reach its minimum of 2 updates
        async with connect(server.url.replace("http://", "ws://") + "/ws") as silent:
            await silent.send(encode(Hello(task_id=task.id, name="silent")))
            await silent.recv()
            client = _client(task, samples, server, 2, wait_for_others_s=1.5)
            with pytest.raises(WaitExpired) as info:
                await client.run(2)
            return info.value

    e = asyncio.run(with_a_silent_partner())
    assert (e.kept, e.rounds_done, e.shared_rounds) == ("global", 0, 2)
    assert e.weights.digest() == shared
    assert "1 of 2 required updates in (2 connected)" in str(e)
    assert "keep the last shared model (2 rounds of training)" in str(e)


def test_an_update_whose_round_closed_during_training_is_dropped(
    server: ServerHandle, samples: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """B is still training when the round closes without it: B sends nothing for that round
    and continues from the new shared model, as the browser does."""
    task = _publish(server, min_participants=1, epochs=2, round_deadline_s=2.0)
    # one training thread serves both clients: A trains first, B joins before A's update is in
    # (so the round waits for B until its deadline), and B's training is held until that round
    # has closed
    a_training, b_joined, b_saw_result = threading.Event(), threading.Event(), threading.Event()
    sent_by_b: list[int] = []

    def hold_a(event: Event) -> None:  # runs on the training thread
        if event.kind == "round_start" and event.round == 0:
            a_training.set()
            assert b_joined.wait(30), "B did not join"

    def hold_b(event: Event) -> None:
        if event.kind == "round_start" and event.round == 0:
            assert b_saw_result.wait(30), "the round did not close while B trained"

    def on_b(message: Any) -> None:
        if isinstance(message, Welcome):
            b_joined.set()
        if isinstance(message, RoundResult):
            b_saw_result.set()
        if isinstance(message, UpdateAck):
            sent_by_b.append(message.round)

    a = _client(task, samples, server, 1, callbacks=[hold_a])
    b = _client(task, samples, server, 2, on_message=on_b, callbacks=[hold_b])
    caplog.set_level(logging.INFO, logger="disco.client")

    async def main() -> None:
        run_a = asyncio.create_task(a.run(2))
        assert await asyncio.to_thread(a_training.wait, 30)
        await asyncio.gather(run_a, b.run(2))

    asyncio.run(main())

    assert sent_by_b == [1]  # nothing for round 0 (closed while B trained), then round 1
    assert "your round 1 of 2: the round closed while you trained; your update is dropped" in (
        caplog.text
    )
    rounds = httpx.get(f"{server.url}/api/tasks/{task.id}/rounds").json()
    names = [sorted(p["name"] for p in r["participants"]) for r in rounds]
    assert names[:2] == [["c1"], ["c1", "c2"]]


def test_the_last_round_trains_what_is_left_of_the_epochs(
    server: ServerHandle, samples: Path
) -> None:
    task = _publish(server, min_participants=1, epochs=5, epochs_per_round=2)
    result = asyncio.run(_client(task, samples, server, 1).run())
    assert result.rounds == 3
    assert [(m.round, m.epoch) for m in result.history] == [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1)]


def test_an_oversized_update_is_refused_once_not_resent_in_a_loop(tmp_path: Path) -> None:
    """The server cuts a too-large frame with close code 1009: reconnecting cannot help."""
    handle = start_in_background(
        ServerConfig(
            port=0,
            data_dir=tmp_path / "server",
            admin_token="test-token",
            seed_catalog=False,
            max_frame_bytes=1024,  # the breast-cancer model's update is larger
        )
    )
    try:
        task = _publish(handle, min_participants=1, epochs=1)
        write_samples("breast_cancer", 1, tmp_path / "s", seed=0)
        welcomes: list[Welcome] = []

        def on_message(message: Any) -> None:
            if isinstance(message, Welcome):
                welcomes.append(message)

        client = FederatedClient(
            task,
            load_for_task(tmp_path / "s" / "client_1", task.training),
            handle.url,
            on_message=on_message,
        )
        with pytest.raises(UpdateRejected, match="larger than the server accepts"):
            asyncio.run(client.run())
        assert len(welcomes) == 1
    finally:
        handle.stop()


def test_a_failing_display_callback_does_not_end_the_session(
    server: ServerHandle, samples: Path
) -> None:
    task = _publish(server, min_participants=1, epochs=2)
    seen: list[str] = []

    def broken(message: Any) -> None:
        seen.append(message.type)
        raise RuntimeError("a bug in the caller's display")

    result = asyncio.run(_client(task, samples, server, 1, on_message=broken).run())
    assert result.rounds == 2
    assert seen.count("result") == 2


def test_a_failed_join_leaves_no_participant_behind(server: ServerHandle, samples: Path) -> None:
    task = _publish(server, min_participants=1, epochs=1)
    other = catalog.get("breast_cancer").model_copy(update={"id": task.id})
    wider = other.model_dump()
    wider["model"]["layers"][0]["units"] += 1  # the local model does not fit the server's
    mismatched = parse_task(wider)
    client = FederatedClient(
        mismatched,
        load_for_task(samples / "client_1", mismatched.training),
        server.url,
    )
    with pytest.raises(WeightsError):
        asyncio.run(client.run())
    status = httpx.get(f"{server.url}/api/tasks/{task.id}/status").json()
    deadline = time.monotonic() + 10
    while status["participants"] != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        status = httpx.get(f"{server.url}/api/tasks/{task.id}/status").json()
    assert status["participants"] == 0
