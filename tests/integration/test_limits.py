"""Limits on loopback: a flood from one address is refused with a clear reason while another
address trains normally; a full task refuses newcomers but not a reconnecting participant.

The flood comes from 127.0.0.2 (every 127.x address is this machine's loopback), the
participants that train from 127.0.0.1, to a server listening on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopback import TOKEN, publish
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from disco import catalog
from disco.client import FederatedClient
from disco.data import load_for_task
from disco.data.samples import write_samples
from disco.protocol import ErrorMessage, Hello, Welcome, decode, encode
from disco.server import ServerConfig, ServerHandle, start_in_background
from disco.task import Task

FLOODER = "127.0.0.2"


def _task() -> Task:
    return catalog.get("breast_cancer").with_training(
        min_participants=2, epochs=3, epochs_per_round=1
    )


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    write_samples("breast_cancer", 2, out, seed=0)
    return out


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[ServerHandle]:
    config = ServerConfig(
        port=0,
        data_dir=tmp_path,
        admin_token=TOKEN,
        seed_catalog=False,
        requests_per_minute=60,
        connections_per_minute=30,
        max_participants=2,
    )
    with start_in_background(config) as handle:
        publish(handle, _task())
        yield handle


async def _connect_from(address: str, url: str) -> Any:
    return await connect(url, max_size=None, open_timeout=10, local_addr=(address, 0))


async def _hello(url: str, *, key: str | None = None, address: str = "127.0.0.1") -> Any:
    """Connect from `address`, say hello; (first answer, close code or None if still open)."""
    ws = await _connect_from(address, url)
    try:
        await ws.send(encode(Hello(task_id="breast_cancer", participant_key=key)))
        answer = decode(await asyncio.wait_for(ws.recv(), 10))
        try:
            await asyncio.wait_for(ws.recv(), 0.5 if isinstance(answer, Welcome) else 10)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return answer, (closed.rcvd.code, closed.rcvd.reason)
        except TimeoutError:
            pass
        return answer, None
    finally:
        await ws.close()


def _flood(url: str, ws_url: str, results: Counter[str]) -> None:
    """200 REST requests and 60 connections from FLOODER, as fast as they go."""
    transport = httpx.HTTPTransport(local_address=FLOODER)
    with httpx.Client(base_url=url, transport=transport, timeout=10) as http:
        for _ in range(200):
            resp = http.get("/api/tasks/breast_cancer/status")
            if resp.status_code == 429:
                body = resp.json()
                assert body["code"] == "rate_limited" and "60 a minute" in body["error"]
                assert int(resp.headers["Retry-After"]) >= 1
                results["request refused"] += 1
            else:
                assert resp.status_code == 200
                results["request served"] += 1

    async def one() -> None:
        ws = await _connect_from(FLOODER, ws_url)
        try:  # a refusal comes at once; an accepted connection waits for a hello
            first = decode(await asyncio.wait_for(ws.recv(), 2))
        except TimeoutError:
            results["connection accepted"] += 1
            await ws.close()
            return
        except ConnectionClosed:
            raise AssertionError("closed without saying why") from None
        assert isinstance(first, ErrorMessage) and first.code == "limited"
        assert "too many connections from your address (127.0.0.2)" in first.message
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4429
            assert "connection rate limit (30 a minute)" in closed.rcvd.reason
        results["connection refused"] += 1

    async def connections() -> None:  # all at once, as a flood comes
        await asyncio.gather(*(one() for _ in range(60)))

    asyncio.run(connections())


def test_a_flood_from_one_address_is_refused_while_another_trains(
    limited: ServerHandle, samples: Path
) -> None:
    task = _task()
    flood: Counter[str] = Counter()
    failed: list[BaseException] = []

    def run_flood() -> None:
        try:
            _flood(limited.url, limited.ws_url, flood)
        except BaseException as exc:
            failed.append(exc)

    flooder = threading.Thread(target=run_flood)
    clients = [
        FederatedClient(
            task,
            load_for_task(samples / f"client_{i}", task.training),
            limited.url,
            seed=i,
            name=f"c{i}",
            wait_for_others_s=60,
        )
        for i in (1, 2)
    ]

    async def train() -> set[str]:
        results = await asyncio.gather(*(c.run(3) for c in clients))
        return {r.weights.digest() for r in results}

    flooder.start()
    digests = asyncio.run(train())
    flooder.join(60)
    assert not flooder.is_alive() and not failed, failed
    # a minute's worth passes (a little more refills meanwhile), the rest is refused
    assert 60 <= flood["request served"] <= 75 and flood["request refused"] >= 125
    assert flood["connection accepted"] <= 35 and flood["connection refused"] >= 25
    model = httpx.get(f"{limited.url}/api/tasks/breast_cancer/model")
    assert model.status_code == 200 and model.headers["X-Disco-Round"] == "3"
    assert digests == {model.headers["X-Disco-Digest"]}
    metrics = httpx.get(f"{limited.url}/metrics").text
    assert _refusals(metrics, "request_rate") == flood["request refused"]
    assert _refusals(metrics, "connection_rate") == flood["connection refused"]


def _refusals(metrics: str, reason: str) -> int:
    for line in metrics.splitlines():
        if line.startswith("disco_refusals_total{") and f'reason="{reason}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_a_full_task_refuses_newcomers_but_not_a_reconnecting_participant(
    limited: ServerHandle,
) -> None:
    async def scenario() -> None:
        keys = ["k" * 20, "m" * 20]
        first = await _connect_from("127.0.0.1", limited.ws_url)
        await first.send(encode(Hello(task_id="breast_cancer", participant_key=keys[0])))
        assert isinstance(decode(await first.recv()), Welcome)
        second = await _connect_from("127.0.0.1", limited.ws_url)
        await second.send(encode(Hello(task_id="breast_cancer", participant_key=keys[1])))
        assert isinstance(decode(await second.recv()), Welcome)

        answer, closed = await _hello(limited.ws_url, key="n" * 20)
        assert isinstance(answer, ErrorMessage) and answer.code == "limited"
        assert "at most 2 participants" in answer.message
        assert closed == (4429, "task full")
        answer, closed = await _hello(limited.ws_url)  # without a key: a newcomer too
        assert isinstance(answer, ErrorMessage) and closed == (4429, "task full")

        again, closed = await _hello(limited.ws_url, key=keys[0])  # the same participant
        assert isinstance(again, Welcome) and closed is None
        await second.close()
        await _until_participants(limited, 1)
        answer, _ = await _hello(limited.ws_url, key="n" * 20)
        assert isinstance(answer, Welcome)
        await first.close()

    asyncio.run(scenario())


async def _until_participants(handle: ServerHandle, n: int, timeout: float = 10.0) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(timeout):
        while True:
            status = (await http.get(f"{handle.url}/api/tasks/breast_cancer/status")).json()
            if status["participants"] == n:
                return
            await asyncio.sleep(0.05)
