"""GET /metrics on a real server: the text format, and counters that move as rounds and refusals
happen."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import httpx
import msgpack
import pytest
from websockets.exceptions import ConnectionClosed

from disco.protocol import PROTOCOL_VERSION, Hello, Leave, RoundResult, UpdateAck, decode
from disco.server import ServerConfig, start_in_background
from disco.server.metrics import DURATION_BUCKETS, KNOWN_REASONS, Metrics, TaskSample

pytestmark = pytest.mark.timeout(60)

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)(?: -?\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse(text: str) -> Series:
    """The samples of a Prometheus text exposition (0.0.4); AssertionError on any bad line, a
    sample before its family's TYPE, or a series twice."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    types: dict[str, str] = {}
    series: Series = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            assert re.fullmatch(rf"# HELP {_NAME} .+", line), f"line {number}: {line!r}"
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert re.fullmatch(_NAME, name) and kind in _TYPES, f"line {number}: {line!r}"
            assert name not in types, f"line {number}: a second TYPE for {name}"
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match is not None, f"line {number} is not a sample: {line!r}"
        name, body, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert types.get(name) or types.get(family) == "histogram", f"{name}: no TYPE before it"
        labels: list[tuple[str, str]] = []
        rest = body or ""
        while rest:
            label = _LABEL.match(rest)
            assert label is not None, f"line {number}: bad labels {body!r}"
            unescaped = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m[1], m[1]), label[2])
            labels.append((label[1], unescaped))
            rest = rest[label.end() :]
        number_value = float(value)  # "+Inf", "-Inf", "NaN" included
        key = (name, frozenset(labels))
        assert key not in series, f"line {number}: {name}{{{body}}} twice"
        series[key] = number_value
    return series


def value(series: Series, name: str, **labels: str) -> float:
    """One sample's value (KeyError naming it when absent)."""
    key = (name, frozenset(labels.items()))
    if key not in series:
        raise KeyError(f"no sample {name}{labels}")
    return series[key]


def scrape(url: str, **headers: str) -> Series:
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def test_a_round_moves_the_counters_by_what_was_exchanged(kit: Any, start_server: Any) -> None:
    """Two participants close one round, then leave; participants, rounds, the duration
    histogram and the traffic counters say exactly that."""
    server = start_server(tasks=(kit.make_task(min_participants=2, deadline=60),))
    before = scrape(server.url)
    assert value(before, "disco_participants", task="tiny") == 0
    assert value(before, "disco_rounds_closed_total", task="tiny") == 0
    assert value(before, "disco_round_duration_seconds_count", task="tiny") == 0
    assert value(before, "disco_received_bytes_total", task="tiny") == 0
    assert value(before, "disco_tasks") == 1
    build = [k for k in before if k[0] == "disco_build_info"]
    assert len(build) == 1 and ("protocol_version", str(PROTOCOL_VERSION)) in build[0][1]
    assert value(before, "disco_uptime_seconds") >= 0

    sent = {"bytes": 0, "frames": 0}
    received = {"bytes": 0, "frames": 0}

    class Counting(kit.WsClient):  # type: ignore[misc,name-defined]
        """A client that counts the frames and bytes it sends and receives."""

        async def send_raw(self, data: bytes | str) -> None:
            await super().send_raw(data)
            sent["bytes"] += len(data)
            sent["frames"] += 1

        async def recv(self, timeout: float = 5.0) -> Any:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            received["bytes"] += len(frame)
            received["frames"] += 1
            return decode(frame)

        async def leave(self) -> None:
            await self.send(Leave())
            try:
                while True:
                    await self.recv()
            except ConnectionClosed:
                pass

    async def body() -> dict[str, Series]:
        seen: dict[str, Series] = {}
        async with Counting(server.ws_url) as a, Counting(server.ws_url) as b:
            welcome = await a.hello(name="a")
            await b.hello(name="b")
            seen["joined"] = await asyncio.to_thread(scrape, server.url)
            for c, fill in ((a, 1.0), (b, 3.0)):
                await c.send(kit.update(0, kit.filled(welcome.weights, fill)))
                await c.expect(UpdateAck)
            for c in (a, b):
                await c.expect(RoundResult)
            seen["closed"] = await asyncio.to_thread(scrape, server.url)
            await a.leave()
            await b.leave()
        return seen

    seen = asyncio.run(body())
    assert value(seen["joined"], "disco_participants", task="tiny") == 2
    closed = seen["closed"]
    assert value(closed, "disco_rounds_closed_total", task="tiny") == 1
    assert value(closed, "disco_rounds_aborted_total", task="tiny") == 0
    assert value(closed, "disco_round", task="tiny") == 1
    history = httpx.get(f"{server.url}/api/tasks/tiny/rounds", timeout=5).json()
    duration = history[0]["duration_s"]
    assert value(closed, "disco_round_duration_seconds_count", task="tiny") == 1
    assert value(closed, "disco_round_duration_seconds_sum", task="tiny") == pytest.approx(
        duration, abs=1e-3
    )
    for bound in DURATION_BUCKETS:
        le = str(int(bound)) if bound == int(bound) else repr(bound)
        bucket = value(closed, "disco_round_duration_seconds_bucket", task="tiny", le=le)
        assert bucket == (1 if duration <= bound else 0), (le, duration)
    assert value(closed, "disco_round_duration_seconds_bucket", task="tiny", le="+Inf") == 1

    after = scrape(server.url)  # both left: every frame is counted on both sides
    assert value(after, "disco_participants", task="tiny") == 0
    assert value(after, "disco_received_bytes_total", task="tiny") == sent["bytes"]
    assert value(after, "disco_received_frames_total", task="tiny") == sent["frames"] == 6
    assert value(after, "disco_sent_bytes_total", task="tiny") == received["bytes"]
    assert value(after, "disco_sent_frames_total", task="tiny") == received["frames"]
    assert received["frames"] >= 6  # welcome, ack, result each at least


def test_refusals_are_counted_by_reason(kit: Any, start_server: Any) -> None:
    """Each refusal that exists today moves its reason's counter by one, and no other."""
    p2p = kit.make_task("p2p").with_training(scheme="decentralized")
    server = start_server(tasks=(kit.make_task(), p2p), max_frame_bytes=64 * 1024)
    before = scrape(server.url)
    assert {dict(k[1])["reason"] for k in before if k[0] == "disco_refusals_total"} >= set(
        KNOWN_REASONS
    )

    async def body() -> None:
        async with kit.WsClient(server.ws_url) as c:
            await c.send(Hello(task_id="nope"))
            assert await c.closed_code() == 4404
        async with kit.WsClient(server.ws_url) as c:
            await c.send_raw(msgpack.packb({"v": 99, "type": "hello", "task_id": "tiny"}))
            assert await c.closed_code() == 4400
        async with kit.WsClient(server.ws_url) as c:
            await c.send_raw(b"x" * (70 * 1024))
            assert await c.closed_code() == 1009
        async with kit.WsClient(server.ws_url) as c:
            await c.send(Hello(task_id="p2p"))  # without capability "decentralized"
            assert await c.closed_code() == 4426

    asyncio.run(body())
    task = kit.make_task("made").model_dump(mode="json")
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.post("/api/tasks", json=task).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert http.post("/api/tasks", json=task, headers=wrong).status_code == 403
    after = scrape(server.url)
    moved = {
        dict(labels)["reason"]: after[(name, labels)] - before.get((name, labels), 0)
        for name, labels in after
        if name == "disco_refusals_total"
    }
    expected = ["capability", "forbidden", "too_large", "unauthorized", "unknown_task", "version"]
    assert {r: n for r, n in moved.items() if n} == dict.fromkeys(expected, 1)


def test_metrics_need_the_admin_token_on_an_invitation_only_server(
    kit: Any, tmp_path: Any, start_server: Any
) -> None:
    """Open on a public server; 401 without and 403 with a wrong token when access is by
    invitation, and both refusals are counted."""
    assert httpx.get(f"{start_server().url}/metrics", timeout=5).status_code == 200
    settings: dict[str, Any] = {"port": 0, "data_dir": tmp_path / "private", "seed_catalog": False}
    settings |= {"admin_token": kit.TOKEN, "web_dir": tmp_path / "no-web-app"}
    config = ServerConfig.load(env={}, access="invitation", **settings)
    with start_in_background(config) as server:
        none = httpx.get(f"{server.url}/metrics", timeout=5)
        assert none.status_code == 401 and none.json()["code"] == "unauthorized"
        wrong = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer nope-nope"})
        assert wrong.status_code == 403 and "disco_" not in wrong.text
        series = scrape(server.url, Authorization=f"Bearer {kit.TOKEN}")
    assert value(series, "disco_refusals_total", reason="unauthorized") == 1
    assert value(series, "disco_refusals_total", reason="forbidden") == 1


def test_rendering_escapes_labels_and_spells_histogram_buckets() -> None:
    """Label values with quotes, backslashes and line feeds survive; buckets are cumulative."""
    clock = iter([100.0, 107.5]).__next__
    metrics = Metrics("1.2.3", 2, clock=clock)
    odd = 'a "quoted"\\path\nnext'
    metrics.refusal(odd)
    metrics.refusal(odd)
    for duration in (0.2, 3.0, 3.0, 7200.0):
        metrics.round_closed("t", duration)
    metrics.round_closed("t", 0.7, aborted=True)
    text = metrics.render([TaskSample("t", 4, 9, 10, 20, 1, 2)])
    series = parse(text)
    assert value(series, "disco_refusals_total", reason=odd) == 2
    assert value(series, "disco_uptime_seconds") == 7.5
    assert value(series, "disco_start_time_seconds") == 100
    assert value(series, "disco_build_info", version="1.2.3", protocol_version="2") == 1
    assert value(series, "disco_rounds_closed_total", task="t") == 5
    assert value(series, "disco_rounds_aborted_total", task="t") == 1
    name = "disco_round_duration_seconds_bucket"
    les = ("0.5", "1", "2.5", "5", "3600", "+Inf")
    buckets = {le: value(series, name, task="t", le=le) for le in les}
    assert buckets == {"0.5": 1, "1": 2, "2.5": 2, "5": 4, "3600": 4, "+Inf": 5}
    assert math.isclose(value(series, "disco_round_duration_seconds_sum", task="t"), 7206.9)
    assert value(series, "disco_participants", task="t") == 4
    assert value(series, "disco_sent_frames_total", task="t") == 2
