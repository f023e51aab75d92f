"""A text task's tokenizer on the server: received with the task, stored with it, served.

A text task names its tokenizer by the SHA-256 of its tokenizer.json bytes
(``training.tokenizer_digest``, docs/text.md); the bytes themselves travel beside the task:

- **creating** (``POST /api/tasks``): a text task comes in an envelope,
  ``{"task": <task document>, "tokenizer": "<the tokenizer.json text>"}`` — the tokenizer as a
  JSON string holding the file's text, whose UTF-8 bytes are the file's bytes, so that the
  digest survives the trip (a nested JSON object would be re-serialised). Any other task may
  come as before, a bare task document. The bytes must be the ones the task names, and a
  tokenizer disco can load (`disco.text.Tokenizer`), or the task is refused (422);
- **serving** (``GET /api/tasks/{id}/tokenizer``): the exact bytes, ``application/json``, with
  ``X-Disco-Digest`` (their SHA-256) and an ``ETag``; readable by whoever may read the task
  (a private instance: the admin and the task's invitations). A task that is not a text task
  has none (404, ``no_tokenizer``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from disco.errors import DataError, TaskError
from disco.server.access import require_task
from disco.server.runtime import ApiError, Runtime
from disco.task import Task, parse_task

__all__ = ["parse_creation", "tokenizer_routes"]


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_task", message)


def parse_creation(body: bytes) -> tuple[Task, bytes | None]:
    """The task of a creation request and, for a text task, its checked tokenizer bytes.

    `TaskError` for a bad task document (the caller reports its fields); `ApiError` (422) for a
    missing, unusable or mismatched tokenizer.
    """
    try:
        doc: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        doc = None  # parse_task says what is wrong with the text
    tokenizer: bytes | None = None
    if isinstance(doc, dict) and "task" in doc and "tokenizer" in doc and "id" not in doc:
        extra = sorted(set(doc) - {"task", "tokenizer"})
        if extra:
            raise _invalid(f"a task with its tokenizer has only 'task' and 'tokenizer'; {extra}")
        if not isinstance(doc["tokenizer"], str):
            raise _invalid("'tokenizer' must be the tokenizer.json text, as a JSON string")
        task = parse_task(doc["task"])
        try:
            tokenizer = doc["tokenizer"].encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid("'tokenizer' is not valid Unicode text (a lone surrogate)") from None
    else:
        task = parse_task(body)
    if task.training.data_type != "text":
        if tokenizer is not None:
            raise _invalid(f"task {task.id!r} is not a text task: it takes no tokenizer")
        return task, None
    if tokenizer is None:
        raise _invalid(
            f"task {task.id!r} is a text task: send it with its tokenizer, "
            '{"task": <the task>, "tokenizer": "<tokenizer.json text>"} (docs/protocol.md)'
        )
    from disco.text.tokenizer import Tokenizer, check_task_tokenizer

    digest = hashlib.sha256(tokenizer).hexdigest()
    if digest != task.training.tokenizer_digest:  # cheap, before the file is read
        raise _invalid(
            f"this tokenizer.json is not task {task.id!r}'s: its SHA-256 is {digest[:12]}…, the "
            f"task names {(task.training.tokenizer_digest or 'none')[:12]}…"
        )
    try:
        check_task_tokenizer(task, Tokenizer(tokenizer))
    except (TaskError, DataError) as exc:
        raise _invalid(str(exc)) from exc
    return task, tokenizer


def tokenizer_routes(rt: Runtime) -> APIRouter:
    """``GET /api/tasks/{task_id}/tokenizer``."""
    router = APIRouter()

    @router.get("/api/tasks/{task_id}/tokenizer")
    async def get_tokenizer(task_id: str, request: Request) -> Response:
        """A text task's tokenizer.json, the exact bytes its ``tokenizer_digest`` names."""
        require_task(rt, request, task_id)
        task = rt.session(task_id).task
        assert rt.store is not None
        data = await asyncio.to_thread(rt.store.get_tokenizer, task_id)
        if data is None:
            what = "is not a text task" if task.training.data_type != "text" else "has lost it"
            raise ApiError(404, "no_tokenizer", f"task {task_id!r} {what}: it has no tokenizer")
        digest = task.training.tokenizer_digest or ""
        headers = {"X-Disco-Digest": digest, "ETag": f'"{digest}"', "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == f'"{digest}"':
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="application/json", headers=headers)

    return router
