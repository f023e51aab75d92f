"""The built-in task catalog, and fetching a task (and a text task's tokenizer) from a server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from disco.catalog.builtin import BUILTIN
from disco.errors import ServerError, TaskError
from disco.task import Task, parse_task

if TYPE_CHECKING:
    from disco.client.access import ServerAccess
    from disco.text.tokenizer import Tokenizer

__all__ = ["all_tasks", "builtin_tokenizer", "fetch", "fetch_tokenizer", "get", "ids"]


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


def builtin_tokenizer(task_id: str) -> Tokenizer | None:
    """The tokenizer shipped with built-in text task `task_id`; None for other tasks."""
    if task_id == "shakespeare":
        from disco.catalog.shakespeare import tokenizer

        return tokenizer()
    return None


def fetch_tokenizer(task: Task, server: str | ServerAccess | None = None) -> Tokenizer:
    """Text task `task`'s tokenizer: from `server` (``GET /api/tasks/{id}/tokenizer``), or, with
    no server, the one shipped with the built-in task; checked against the task's digest."""
    from disco.text.tokenizer import Tokenizer, check_task_tokenizer

    if task.training.data_type != "text":
        raise TaskError(f"task {task.id!r} is not a text task: it has no tokenizer")
    if server is None:
        tokenizer = builtin_tokenizer(task.id)
        if tokenizer is None:
            raise TaskError(
                f"task {task.id!r} is not a built-in text task: give the server that serves it "
                "(its tokenizer comes from there)"
            )
    else:
        import httpx

        from disco.client.access import ServerAccess, refusal

        access = ServerAccess.of(server)
        try:
            with access.http(timeout=30) as http:
                resp = http.get(f"/api/tasks/{task.id}/tokenizer")
        except httpx.HTTPError as exc:
            raise access.unreachable(exc) from exc
        if resp.status_code != 200:
            raise ServerError(
                f"the server at {access.url} gave no tokenizer for task {task.id!r}: "
                f"{refusal(resp)}"
            )
        tokenizer = Tokenizer(resp.content)
    check_task_tokenizer(task, tokenizer)
    return tokenizer
