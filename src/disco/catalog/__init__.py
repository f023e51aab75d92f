"""The built-in task catalog, and fetching a task from a server."""

from __future__ import annotations

from disco.catalog.builtin import BUILTIN
from disco.errors import ServerError, TaskError
from disco.task import Task, parse_task

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


def fetch(task_id: str, server: str | None = None) -> Task:
    """Task `task_id` from `server` (its REST API), or from the built-in catalog."""
    if server is None:
        return get(task_id)
    import httpx

    url = f"{server.rstrip('/')}/api/tasks/{task_id}"
    try:
        resp = httpx.get(url, timeout=30)
    except httpx.HTTPError as exc:
        raise ServerError(f"cannot reach the server at {server}: {exc}") from exc
    if resp.status_code == 404:
        raise TaskError(f"the server at {server} has no task {task_id!r}")
    if resp.status_code != 200:
        raise ServerError(f"GET {url} failed: {resp.status_code} {resp.text[:200]}")
    return parse_task(resp.json())
