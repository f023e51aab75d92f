"""Decentralized sessions on a real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from disco.models import init_weights
from disco.server import ServerConfig, ServerHandle, Store, start_in_background
from disco.task import Task


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """`serve(*tasks)`: a real server on loopback with the tasks stored (stopped after)."""
    handles: list[ServerHandle] = []

    def start(*tasks: Task, data_dir: Path | None = None) -> ServerHandle:
        data_dir = data_dir or tmp_path / "server"
        store = Store(data_dir)
        for task in tasks:
            if store.get_task(task.id) is None:
                store.put_task(task, init_weights(task.model, seed=0))
        store.close()
        config = ServerConfig.load(
            env={}, port=0, data_dir=data_dir, seed_catalog=False, web_dir=data_dir / "no-web"
        )
        handle = start_in_background(config)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()
