"""Publishing a task on a server, from Python or ``disco publish``: what the web app's "Create a
task" form does, for people who keep their tasks as files.

    from disco.client.publish import publish, read_task
    task, tokenizer = read_task("my-task/")         # task.json (+ tokenizer.json): a task folder
    publish("https://disco.example.org", task, tokenizer=tokenizer, admin_token="...")

A task is read from a **task folder** (``task.json``, and ``tokenizer.json`` for a text task:
`disco.text.save_task_folder` writes one) or from a task's JSON file; a text task's tokenizer may
also be given apart, and a text task that does not yet name one gets its vocabulary size and
digest from it (`disco.text.attach_tokenizer`). Everything the server would refuse for lack of a
tokenizer, or for the wrong one, is refused here first, with the same words; what only the
server can judge (the admin token, a task id already taken, the model) comes back in its words.
The request is ``POST /api/tasks`` (docs/protocol.md), a text task in the envelope of
`disco.server.tokenizers`; the server starts the task with its initial global model.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from disco.errors import ServerError, TaskError
from disco.task import Task, parse_task

if TYPE_CHECKING:
    import httpx

    from disco.client.access import ServerAccess
    from disco.text.tokenizer import Tokenizer

__all__ = ["admin_access", "check_created", "creation_body", "publish", "read_task"]


def read_task(
    path: str | Path, tokenizer: str | Path | None = None
) -> tuple[Task, Tokenizer | None]:
    """The task in `path` (a task folder, or a task's JSON file) and, for a text task, its
    tokenizer: the file `tokenizer` names, else the folder's ``tokenizer.json``. `TaskError` when
    they cannot be read or do not belong together."""
    from disco.text.tokenizer import TASK_FILE, TOKENIZER_FILE, Tokenizer, check_task_tokenizer

    path = Path(path)
    is_file = path.is_file() or (not path.exists() and path.suffix.lower() == ".json")
    folder = None if is_file else path
    file = path if folder is None else folder / TASK_FILE
    try:
        raw = file.read_bytes()
    except OSError as exc:
        what = f"{folder}: cannot read {TASK_FILE}" if folder else f"{file}: cannot read the task"
        raise TaskError(f"{what} ({exc.strerror})") from None
    doc = _json(raw)
    training = doc.get("training") if isinstance(doc, dict) else None
    text = isinstance(training, dict) and training.get("data_type") == "text"
    if tokenizer is not None:
        given: Path | None = Path(tokenizer)
    elif text and folder is not None and (folder / TOKENIZER_FILE).is_file():
        given = folder / TOKENIZER_FILE  # a folder's tokenizer counts for a text task only
    else:
        given = None
    if text and given is None:
        raise TaskError(
            f"{folder}: task {doc.get('id')!r} is a text task but {TOKENIZER_FILE} is missing"
            if folder is not None
            else f"task {doc.get('id')!r} is a text task: give its {TOKENIZER_FILE} too"
        )
    tok = None
    if given is not None:
        if not given.is_file():
            raise TaskError(f"{given}: no such tokenizer file")
        tok = Tokenizer.from_file(given)
    if tok is not None and text:
        assert isinstance(training, dict)
        named: dict[str, object] = {}  # written before its tokenizer was made: name this one
        if training.get("tokenizer_digest") is None:
            named["tokenizer_digest"] = tok.digest
        if training.get("vocab_size") is None:
            named["vocab_size"] = tok.vocab_size
        if named:
            raw = json.dumps({**doc, "training": {**training, **named}}).encode()
    try:
        task = parse_task(raw)
    except TaskError as exc:
        raise TaskError(f"{file}: {exc}") from None
    if task.training.data_type != "text":
        if tok is not None:
            raise TaskError(f"task {task.id!r} is not a text task: it takes no tokenizer")
        return task, None
    assert tok is not None
    check_task_tokenizer(task, tok)
    return task, tok


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None  # parse_task says what is wrong with it, in its words


def creation_body(task: Task, tokenizer: Tokenizer | None = None) -> bytes:
    """The body of ``POST /api/tasks``: the task's JSON, or for a text task the envelope
    ``{"task": …, "tokenizer": "<tokenizer.json text>"}`` (`disco.server.tokenizers`)."""
    body = task.model_dump_json()
    if tokenizer is None:
        return body.encode("utf-8")
    text = json.dumps(tokenizer.to_bytes().decode("utf-8"))
    return f'{{"task": {body}, "tokenizer": {text}}}'.encode()


def check_created(response: httpx.Response, task: Task, where: str) -> Task:
    """The task a creation answer holds; `ServerError` with the server's words otherwise."""
    from disco.client.access import refusal

    if response.status_code not in (200, 201):
        hint = {
            401: " — give the server's admin token",
            403: " — is this the server's admin token?",
        }.get(response.status_code, "")
        raise ServerError(f"{where} did not create task {task.id!r}: {refusal(response)}{hint}")
    return parse_task(response.content)


def admin_access(server: str | ServerAccess, ca_file: str | Path | None = None) -> ServerAccess:
    """How to reach `server` as its admin: its CA bundle (`ca_file`, else ``DISCO_CA_FILE``),
    never an invitation (creating a task is the admin's; ``DISCO_INVITATION`` is not read)."""
    from disco.client.access import ServerAccess

    if isinstance(server, ServerAccess):
        return replace(server, invitation=None)
    ca = ca_file or os.environ.get("DISCO_CA_FILE") or None
    return ServerAccess(server, None, Path(ca) if ca else None)


def publish(
    server: str | ServerAccess,
    task: Task,
    *,
    tokenizer: Tokenizer | None = None,
    admin_token: str | None = None,
    timeout: float = 60.0,
) -> Task:
    """Create `task` on `server` (a URL, or a `ServerAccess` for TLS with its own certificate
    authority); return the task as the server keeps it. A text task needs its `tokenizer`.
    `ServerError` if the server is unreachable or refuses (its reason in its words)."""
    import httpx

    from disco.text.tokenizer import check_task_pair

    check_task_pair(task, tokenizer, "publish")
    access = admin_access(server)
    headers = {"Content-Type": "application/json"}
    if admin_token:
        headers["Authorization"] = f"Bearer {admin_token}"
    with access.http(timeout=timeout) as http:
        try:
            resp = http.post("/api/tasks", content=creation_body(task, tokenizer), headers=headers)
        except httpx.HTTPError as exc:
            raise access.unreachable(exc) from exc
    return check_created(resp, task, access.url)
