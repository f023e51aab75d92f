"""The federated WebSocket end to end: rounds, bad frames, restarts."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import msgpack
import numpy as np
import pytest

from disco.protocol import (
    PROTOCOL_VERSION,
    ErrorMessage,
    Hello,
    Leave,
    RoundResult,
    Status,
    UpdateAck,
    Welcome,
)

pytestmark = pytest.mark.timeout(30)


def test_three_clients_two_rounds(
    kit: Any, start_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Prepare three raw clients; two rounds close with the weighted mean, seen via REST too."""
    caplog.set_level(logging.INFO, logger="disco.server")
    server = start_server(tasks=(kit.make_task(min_participants=2),))

    async def body() -> None:
        clients = [kit.WsClient(server.ws_url) for _ in range(3)]
        for c in clients:
            await c.__aenter__()
        try:
            welcomes = [await c.hello(name=f"c{i}") for i, c in enumerate(clients)]
            assert welcomes[0].state == "waiting_for_participants"
            assert welcomes[2].participants == 3 and welcomes[2].state == "enough_participants"
            g = welcomes[0].weights
            for rnd in range(2):
                for i, c in enumerate(clients):
                    await c.send(kit.update(rnd, kit.filled(g, i + rnd), num_samples=i + 1))
                    ack = await c.expect(UpdateAck)
                    assert ack.round == rnd and ack.reported == i + 1
                results = [await c.expect(RoundResult) for c in clients]
                expected = sum((i + rnd) * (i + 1) for i in range(3)) / 6
                assert {r.weights.digest() for r in results} == {results[0].weights.digest()}
                assert results[0].round == rnd + 1 and results[0].num_samples == 6
                np.testing.assert_allclose(results[0].weights["dense_1.kernel"], expected, 1e-6)
                g = results[0].weights
            await clients[0].send(Leave())
            assert await clients[0].closed_code() == 1000
            status = await clients[1].expect(Status)
            assert status.participants == 2 and status.round == 2
        finally:
            for c in clients:
                await c.__aexit__()
        return g

    final = asyncio.run(body())
    with httpx.Client(base_url=server.url, timeout=5) as http:
        model = http.get("/api/tasks/tiny/model")
        assert model.headers["X-Disco-Round"] == "2"
        assert model.headers["X-Disco-Digest"] == final.digest()
        rounds = http.get("/api/tasks/tiny/rounds").json()
        assert [(r["round"], r["contributors"], r["num_samples"]) for r in rounds] == [
            (0, 3, 6),
            (1, 3, 6),
        ]
        assert [p["share"] for p in rounds[0]["participants"]] == pytest.approx(
            [1 / 6, 2 / 6, 3 / 6]
        )
        status = http.get("/api/tasks/tiny/status").json()
        assert status["bytes_received"] > 6 * final.nbytes and status["bytes_sent"] > 0
    assert caplog.text.count("accepted update from c") == 6


def test_bad_frames_get_errors_and_change_nothing(kit: Any, start_server: Any) -> None:
    """Prepare a server; garbage, text, early updates, wrong versions, big frames fail cleanly."""
    server = start_server(tasks=(kit.make_task(),), max_frame_bytes=64 * 1024)
    digest = httpx.get(f"{server.url}/api/tasks/tiny/model", timeout=5).headers["X-Disco-Digest"]

    async def body() -> None:
        async with kit.WsClient(server.ws_url) as c:
            await c.send_raw(b"\x00garbage")
            assert (await c.expect(ErrorMessage)).code == "malformed"
            await c.send_raw("hello")
            assert (await c.expect(ErrorMessage)).code == "malformed"
            await c.send_raw(msgpack.packb({"v": PROTOCOL_VERSION, "type": "hello"}))
            error = await c.expect(ErrorMessage)
            assert error.code == "malformed" and "task_id" in error.message
            welcome = await c.hello()  # the connection survived all of the above
            await c.send(Hello(task_id="tiny"))
            assert (await c.expect(ErrorMessage)).code == "unexpected"
            await c.send_raw(b"\x93\x01\x02\x03")  # msgpack, but not a map
            assert (await c.expect(ErrorMessage)).code == "malformed"
            await c.send_raw(b"x" * (70 * 1024))
            too_large = await c.expect(ErrorMessage)
            assert too_large.code == "too_large" and "65536" in too_large.message
            assert await c.closed_code() == 1009
            assert welcome.round == 0

        async with kit.WsClient(server.ws_url) as c:  # past the transport limit: uvicorn cuts
            await c.send_raw(b"x" * (100 * 1024))
            assert await c.closed_code() == 1009

        async with kit.WsClient(server.ws_url) as c:
            await c.send(kit.update(0, kit.filled(welcome.weights, 1.0)))
            assert (await c.expect(ErrorMessage)).code == "unexpected"
            await c.send_raw(msgpack.packb({"v": 99, "type": "hello", "task_id": "tiny"}))
            assert (await c.expect(ErrorMessage)).code == "version"
            assert await c.closed_code() == 4400

        async with kit.WsClient(server.ws_url) as c:
            await c.send(Hello(task_id="nope"))
            error = await c.expect(ErrorMessage)
            assert error.code == "unknown_task" and "nope" in error.message
            assert await c.closed_code() == 4404

    asyncio.run(body())
    status = httpx.get(f"{server.url}/api/tasks/tiny/status", timeout=5).json()
    assert (status["round"], status["digest"], status["reported"]) == (0, digest, 0)
    assert status["participants"] == 0


def test_restart_resumes_round_and_model(kit: Any, start_server: Any, tmp_path: Any) -> None:
    """Prepare a round on one server; a new server on the same folder resumes it exactly."""
    data_dir = tmp_path / "state"
    first = start_server(tasks=(kit.make_task(),), data_dir=data_dir)

    async def one_round(url: str) -> tuple[Welcome, RoundResult]:
        async with kit.WsClient(url) as c:
            welcome = await c.hello()
            await c.send(kit.update(welcome.round, kit.filled(welcome.weights, 0.25), 7))
            await c.expect(UpdateAck)
            return welcome, await c.expect(RoundResult)

    _, result = asyncio.run(one_round(first.ws_url))
    first.stop()

    second = start_server(data_dir=data_dir)
    model = httpx.get(f"{second.url}/api/tasks/tiny/model", timeout=5)
    assert model.headers["X-Disco-Round"] == "1"
    assert model.headers["X-Disco-Digest"] == result.weights.digest()
    welcome, result2 = asyncio.run(one_round(second.ws_url))
    assert welcome.round == 1 and welcome.weights == result.weights
    assert result2.round == 2
    rounds = httpx.get(f"{second.url}/api/tasks/tiny/rounds", timeout=5).json()
    assert [r["round"] for r in rounds] == [0, 1]


def test_dropped_client_does_not_stall_the_round(kit: Any, start_server: Any) -> None:
    """Prepare two clients; one reports, the other vanishes; the round closes without it."""
    server = start_server(tasks=(kit.make_task(deadline=60),))

    async def body() -> None:
        async with kit.WsClient(server.ws_url) as a, kit.WsClient(server.ws_url) as b:
            welcome = await a.hello(name="a")
            await b.hello(name="b")
            await a.send(kit.update(0, kit.filled(welcome.weights, 1.0)))
            await a.expect(UpdateAck)
            assert b.ws is not None
            b.ws.transport.abort()  # no close handshake, like a lost network
            result = await a.expect(RoundResult, timeout=5)
            assert result.contributors == 1 and result.round == 1

    asyncio.run(body())


def test_stop_is_prompt_with_connected_clients(kit: Any, start_server: Any) -> None:
    """Prepare a connected client; stopping the server closes it with 1012 within seconds."""
    server = start_server(tasks=(kit.make_task(),))

    async def body() -> None:
        async with kit.WsClient(server.ws_url) as c:
            await c.hello()
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.to_thread(server.stop)
            assert loop.time() - start < 3
            assert await c.closed_code() == 1012

    asyncio.run(body())


def test_the_history_can_be_asked_for_its_last_rounds_only(kit: Any, start_server: Any) -> None:
    """Three rounds closed; ?last=2 gives the last two, oldest first; bad values a 400."""
    server = start_server(tasks=(kit.make_task(min_participants=1),))

    async def body() -> None:
        async with kit.WsClient(server.ws_url) as c:
            weights = (await c.hello()).weights
            for rnd in range(3):
                await c.send(kit.update(rnd, kit.filled(weights, float(rnd)), num_samples=1))
                await c.expect(UpdateAck)
                weights = (await c.expect(RoundResult)).weights

    asyncio.run(body())
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert [r["round"] for r in http.get("/api/tasks/tiny/rounds").json()] == [0, 1, 2]
        last = http.get("/api/tasks/tiny/rounds", params={"last": 2}).json()
        assert [r["round"] for r in last] == [1, 2]
        for bad in ("0", "-1", "x", "1.5"):
            res = http.get("/api/tasks/tiny/rounds", params={"last": bad})
            assert res.status_code == 400 and res.json()["code"] == "bad_query", bad
