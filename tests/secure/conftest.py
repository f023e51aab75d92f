"""A real server on loopback serving one secure task, and a record of what it receives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from disco.models import init_weights
from disco.server import ServerConfig, ServerHandle, Store, start_in_background
from disco.server import ws as server_ws
from disco.task import Task


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every message the server decodes from a client, in order."""
    seen: list[Any] = []
    decode_frame = server_ws.decode_frame

    def recording(data: bytes, limit: int) -> Any:
        message = decode_frame(data, limit)
        seen.append(message)
        return message

    monkeypatch.setattr(server_ws, "decode_frame", recording)
    return seen


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Task], ServerHandle]]:
    """`serve(task)`: a real server on loopback with `task` stored (stopped after the test)."""
    handles: list[ServerHandle] = []

    def start(task: Task) -> ServerHandle:
        store = Store(tmp_path / "server")
        store.put_task(task, init_weights(task.model, seed=0))
        store.close()
        config = ServerConfig.load(
            env={},
            port=0,
            data_dir=tmp_path / "server",
            seed_catalog=False,
            web_dir=tmp_path / "no-web",
        )
        handle = start_in_background(config)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()
