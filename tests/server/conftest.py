"""Fixtures for the server tests: a tiny task, fake participants, real servers and WS clients."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
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


def store_tasks(data_dir: Path, tasks: tuple[Task, ...]) -> Path:
    """`data_dir` holding `tasks` (those not stored yet) with their initial models."""
    store = Store(data_dir)
    for task in tasks:
        if store.get_task(task.id) is None:
            store.put_task(task, init_weights(task.model, seed=0))
    store.close()
    return data_dir


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
        data_dir = store_tasks(data_dir or tmp_path / "data", tasks)
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


# -- `disco serve` as a child process (signals, the process's own logging) ------------------------
class ServeProcess:
    """A `disco serve` process on a loopback port; its stdout and stderr go to files."""

    started = 0  # processes started so far (each writes its own files)

    def __init__(self, data_dir: Path, port: int, *args: str):
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        ServeProcess.started += 1
        name = f"serve-{ServeProcess.started}"
        self.stdout, self.stderr = data_dir / f"{name}.out", data_dir / f"{name}.err"
        command = [sys.executable, "-m", "disco.cli", "serve", "--port", str(port)]
        command += ["--data-dir", str(data_dir), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISCO_")}
        env |= {"DISCO_SEED_CATALOG": "false", "DISCO_WEB_DIR": str(data_dir / "no-web-app")}
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=err)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once ``/api/health`` answers; AssertionError if the process ends or is slow."""
        end = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"disco serve exited: {self.stderr.read_text()}"
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < end, f"not serving after {timeout} s: {self.log()}"
            time.sleep(0.05)

    def terminate(self, timeout: float = 30.0) -> int:
        """Send SIGTERM and wait for the exit (at most `timeout`); the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def log(self) -> str:
        """What the process wrote on stderr so far."""
        return self.stderr.read_text(encoding="utf-8")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Any]:
    """Start `disco serve` processes (killed after the test if still running); tasks are stored
    in the data folder beforehand, the catalog is not seeded."""
    processes: list[ServeProcess] = []

    def start(
        *args: str,
        tasks: tuple[Task, ...] = (),
        data_dir: Path | None = None,
        port: int | None = None,
    ) -> ServeProcess:
        data_dir = store_tasks(data_dir or tmp_path / "data", tasks)
        process = ServeProcess(data_dir, port or free_port(), *args)
        processes.append(process)
        process.wait_ready()
        return process

    yield start
    for process in processes:
        process.kill()
