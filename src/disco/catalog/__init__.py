"""The built-in task catalog, and fetching a task from a server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from disco.catalog.builtin import BUILTIN
from disco.errors import ServerError, TaskError
from disco.task import Task, parse_task

if TYPE_CHECKING:
    from disco.client.access import ServerAccess

__all__ = ["all_tasks", "fetch", "get", "ids"]


def ids() -> list[str]:
    """Ids of the built-in tasks."""
    return list(BUILTIN)


def get(task_id: str) -> Task:
    """The built-in task `task_id`; `TaskError` lists the known ids otherwise."""
    try:
        return BUILTIN[task_id]()
    except KeyError:
        raise TaskError(f"unknown task {task_id!r}; built-in tasks: {', '.join(BUILTIN)}") from None


def all_tasks() -> list[Task]:
    """Every built-in task."""
    return [make() for make in BUILTIN.values()]


def fetch(task_id: str, server: str | ServerAccess | None = None) -> Task:
    """Task `task_id` from `server` (its REST API), or from the built-in catalog."""
    if server is None:
        return get(task_id)
    import httpx

    from disco.client.access import ServerAccess, refusal

    access = ServerAccess.of(server)
    try:
        with access.http(timeout=30) as http:
            resp = http.get(f"/api/tasks/{task_id}")
    except httpx.HTTPError as exc:
        raise access.unreachable(exc) from exc
    if resp.status_code == 404:
        raise TaskError(f"the server at {access.url} has no task {task_id!r}")
    if resp.status_code != 200:
        raise ServerError(f"the server at {access.url} refused task {task_id!r}: {refusal(resp)}")
    return parse_task(resp.json())
