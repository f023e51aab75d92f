"""Fixtures for the server tests: a tiny task, fake participants, real servers and WS clients."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from disco.models import init_weights
from disco.protocol import ModelUpdate, Status, Welcome, decode, encode
from disco.server import ServerConfig, ServerHandle, Store, start_in_background
from disco.task import Task, parse_task
from disco.weights import Weights

TOKEN = "test-admin-token"


def make_task(
    task_id: str = "tiny",
    min_participants: int = 1,
    deadline: float = 2.0,
    aggregation: str | dict[str, Any] = "mean",
) -> Task:
    """A two-feature logistic regression: weights dense_1.kernel (2, 1) and dense_1.bias (1,)."""
    return parse_task(
        {
            "id": task_id,
            "display": {"title": f"Tiny task {task_id}"},
            "training": {
                "data_type": "tabular",
                "input_columns": [{"name": "a"}, {"name": "b"}],
                "output_column": "y",
                "min_participants": min_participants,
                "round_deadline_s": deadline,
                "aggregation": aggregation,
            },
            "model": {
                "input_shape": [2],
                "layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}],
                "loss": "binary_crossentropy",
            },
        }
    )


def filled(like: Weights, value: float) -> Weights:
    """Weights shaped like `like`, every value equal to `value`."""
    return like.map(lambda a: np.full_like(a, value))


def update(round: int, weights: Weights, num_samples: int = 10, **metrics: float) -> ModelUpdate:
    """A `ModelUpdate` with optional metrics."""
    return ModelUpdate(round=round, num_samples=num_samples, weights=weights, metrics=metrics)


class FakeParticipant:
    """A participant that records what the session sends it."""

    def __init__(self, name: str = "p", kind: str = "python"):
        self.name, self.kind = name, kind
        self.inbox: list[Any] = []

    async def send(self, message: Any) -> None:
        self.inbox.append(message)

    def of(self, cls: type) -> list[Any]:
        """Received messages of one type, in order."""
        return [m for m in self.inbox if isinstance(m, cls)]

    async def status(self, timeout: float = 5.0, **expected: Any) -> Any:
        """The latest `Status` once it has the `expected` fields (sessions coalesce their status
        broadcasts, so one comes shortly after a change, not during the call that made it)."""

        def latest() -> Any:
            statuses = self.of(Status)
            return statuses[-1] if statuses else None

        def matches() -> bool:
            last = latest()
            return last is not None and all(getattr(last, k) == v for k, v in expected.items())

        try:
            async with asyncio.timeout(timeout):
                while not matches():
                    await asyncio.sleep(0.005)
        except TimeoutError:
            last = latest()
            raise AssertionError(f"{self.name}: no status with {expected}; last {last}") from None
        return latest()


class WsClient:
    """A raw protocol client over a real WebSocket."""

    def __init__(self, url: str):
        self.url = url
        self.ws: ClientConnection | None = None

    async def __aenter__(self) -> WsClient:
        self.ws = await connect(self.url, max_size=None, open_timeout=5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None
        await self.ws.close()

    async def send(self, message: Any) -> None:
        await self.send_raw(encode(message))

    async def send_raw(self, data: bytes | str) -> None:
        assert self.ws is not None
        await self.ws.send(data)

    async def recv(self, timeout: float = 5.0) -> Any:
        assert self.ws is not None
        return decode(await asyncio.wait_for(self.ws.recv(), timeout))

    async def expect(self, cls: type, timeout: float = 5.0) -> Any:
        """The next message that is not a `Status` (unless a `Status` is expected)."""
        while True:
            message = await self.recv(timeout)
            if isinstance(message, Status) and cls is not Status:
                continue
            assert isinstance(message, cls), f"expected {cls.__name__}, got {message!r}"
            return message

    async def hello(self, task_id: str = "tiny", name: str = "c", kind: str = "python") -> Welcome:
        from disco.protocol import Hello

        await self.send(Hello(task_id=task_id, name=name, kind=kind))  # type: ignore[arg-type]
        welcome: Welcome = await self.expect(Welcome)
        return welcome

    async def closed_code(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the connection; its close code."""
        assert self.ws is not None
        await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """Start real servers on loopback (stopped after the test); tasks are stored beforehand."""
    handles: list[ServerHandle] = []

    def start(
        tasks: tuple[Task, ...] = (), data_dir: Path | None = None, **overrides: Any
    ) -> ServerHandle:
        data_dir = data_dir or tmp_path / "data"
        store = Store(data_dir)
        for task in tasks:
            if store.get_task(task.id) is None:
                store.put_task(task, init_weights(task.model, seed=0))
        store.close()
        settings: dict[str, Any] = {
            "admin_token": TOKEN,
            "seed_catalog": False,
            "web_dir": data_dir / "no-web-app",  # the fallback page, whether or not it is built
            **overrides,
        }
        config = ServerConfig.load(env={}, port=0, data_dir=data_dir, **settings)
        handle = start_in_background(config)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def kit() -> Any:
    """The helpers above, for test modules (conftest is not importable by name)."""
    import types

    return types.SimpleNamespace(
        TOKEN=TOKEN,
        make_task=make_task,
        filled=filled,
        update=update,
        FakeParticipant=FakeParticipant,
        WsClient=WsClient,
    )
