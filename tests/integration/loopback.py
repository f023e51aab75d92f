"""A real server on loopback for the integration tests, and publishing tasks to it
(importable because pytest puts tests/integration on sys.path)."""

from __future__ import annotations

from pathlib import Path

import httpx

from disco.server import ServerConfig, ServerHandle, start_in_background
from disco.task import Task

TOKEN = "test-token"


def serve(data_dir: Path) -> ServerHandle:
    """A server with no built-in tasks, its state in `data_dir`."""
    return start_in_background(
        ServerConfig(port=0, data_dir=data_dir, admin_token=TOKEN, seed_catalog=False)
    )


def publish(handle: ServerHandle, task: Task) -> None:
    """Create `task` on the server (admin token)."""
    resp = httpx.post(
        f"{handle.url}/api/tasks",
        content=task.model_dump_json(),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.status_code in (200, 201), resp.text
