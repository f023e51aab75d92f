"""The ASGI app: REST under ``/api``, the federated WebSocket at ``/ws``, the web app at ``/``.

REST errors are JSON ``{"error": "<what went wrong>", "code": "<machine code>"}``. The routes share
one `Runtime` (store, tasks, sessions); ``/ws`` connections are served by `disco.server.ws`.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from disco.errors import ModelError, TaskError
from disco.protocol import PROTOCOL_VERSION
from disco.server.access import (
    authorize_admin,
    invitation_routes,
    require_task,
    visible_tasks,
)
from disco.server.config import ServerConfig
from disco.server.decentralized import DecentralizedSession
from disco.server.isolation import CrossOriginIsolated
from disco.server.limits import LimitsMiddleware
from disco.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from disco.server.runtime import ApiError, Runtime
from disco.server.tokenizers import parse_creation, tokenizer_routes
from disco.server.ws import serve_connection
from disco.task import Task, field_problems

__all__ = ["ApiError", "create_app"]

log = logging.getLogger("disco.server")

MAX_TASK_BYTES = 16 * 2**20


def create_app(config: ServerConfig) -> FastAPI:
    """The disco server as an ASGI app (its lifespan opens the store and resumes tasks)."""
    rt = Runtime(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await rt.open()
        log.info("serving %d task(s) from %s", len(rt.tasks), config.data_dir)
        try:
            yield
        finally:
            await rt.aclose()

    app = FastAPI(
        title="disco", lifespan=lifespan, docs_url="/api/docs", openapi_url="/api/openapi.json"
    )
    app.state.runtime = rt
    app.add_middleware(
        LimitsMiddleware,
        requests_per_minute=config.requests_per_minute,
        connections_per_minute=config.connections_per_minute,
        refused=rt.metrics.refusal,
    )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        if exc.status == 413:  # an upload above its limit (a task document, an invitation)
            rt.metrics.refusal("too_large")
        headers = exc.extra.pop("headers", None)
        body = {"error": exc.message, "code": exc.code, **exc.extra}
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        body = {"error": str(exc.detail), "code": f"http_{exc.status_code}"}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """Liveness, versions, the number of tasks and how tasks may be created."""
        config = rt.config
        creation = (
            "token"
            if config.admin_token is not None
            else "open"
            if config.allow_open_creation
            else "disabled"
        )
        return {
            "status": "ok",
            "version": rt.metrics.version,
            "protocol_version": PROTOCOL_VERSION,
            "tasks": len(rt.tasks),
            "task_creation": creation,
            "access": config.access,
        }

    @app.get("/api/tasks")
    async def list_tasks(request: Request) -> list[dict[str, Any]]:
        """Every task served (a private instance: the invitation's task), as task JSON."""
        return [rt.tasks[t].model_dump(mode="json") for t in visible_tasks(rt, request)]

    @app.get("/api/tasks/{task_id}")
    async def get_task(task_id: str, request: Request) -> dict[str, Any]:
        """One task as task JSON."""
        require_task(rt, request, task_id)
        return rt.session(task_id).task.model_dump(mode="json")

    @app.get("/api/tasks/{task_id}/model")
    async def get_model(task_id: str, request: Request) -> Response:
        """The current global model (safetensors) with its round and digest in headers."""
        require_task(rt, request, task_id)
        session = rt.session(task_id)
        rnd, digest = session.round, session.digest
        if isinstance(session, DecentralizedSession):
            rnd = 0  # the only model the server keeps of a decentralized task: the initial one
        headers = {"X-Disco-Round": str(rnd), "X-Disco-Digest": digest, "ETag": f'"{digest}"'}
        headers["Cache-Control"] = "no-cache"
        if request.headers.get("if-none-match") == f'"{digest}"':
            return Response(status_code=304, headers=headers)
        body = await rt.model_bytes(session)
        return Response(body, media_type="application/octet-stream", headers=headers)

    @app.get("/api/tasks/{task_id}/rounds")
    async def get_rounds(
        task_id: str, request: Request, last: str | None = None
    ) -> list[dict[str, Any]]:
        """History of the closed rounds, oldest first; ``?last=N``: only the last N."""
        require_task(rt, request, task_id)
        rt.session(task_id)
        assert rt.store is not None
        count = None
        if last is not None:
            if not (last.isascii() and last.isdigit() and 1 <= int(last) <= 1_000_000):
                raise ApiError(400, "bad_query", f"last must be a whole number ≥ 1, got {last!r}")
            count = int(last)
        history = await asyncio.to_thread(rt.store.history, task_id, count)
        return [r.to_json() for r in history]

    @app.get("/api/tasks/{task_id}/status")
    async def get_status(task_id: str, request: Request) -> dict[str, Any]:
        """Round, participants, reports, phase and WebSocket traffic of a task."""
        require_task(rt, request, task_id)
        s = rt.session(task_id)
        return {
            "task_id": task_id,
            **s.status().model_dump(exclude={"type"}),
            "phase": s.phase,
            "digest": s.agreed_digest if isinstance(s, DecentralizedSession) else s.digest,
            "deadline_in_s": s.deadline_in(),
            **asdict(rt.traffic[task_id]),
        }

    @app.get("/api/schema/task")
    async def task_schema() -> dict[str, Any]:
        """The JSON Schema of a task document."""
        return Task.json_schema()

    @app.post("/api/tasks", status_code=201)
    async def create_task(request: Request) -> JSONResponse:
        """Create a task from its JSON (admin token) with its initial global model; a text task
        comes with its tokenizer (`disco.server.tokenizers`)."""
        if not (config.admin_token is None and config.allow_open_creation):
            authorize_admin(rt, request, "creating a task")
        body = await request.body()
        if len(body) > MAX_TASK_BYTES:
            raise ApiError(
                413, "too_large", f"a task document is limited to {MAX_TASK_BYTES} bytes"
            )
        try:
            # a text task comes with its tokenizer; reading it takes a while: off the event loop
            task, tokenizer = await asyncio.to_thread(parse_creation, body)
        except TaskError as exc:
            raise ApiError(422, "invalid_task", str(exc), fields=_field_errors(exc)) from exc
        from disco.models import init_weights

        async with rt.create_lock:
            if task.id in rt.tasks or (rt.store and rt.store.get_task(task.id)):
                raise ApiError(409, "task_exists", f"a task with id {task.id!r} already exists")
            try:
                weights = await asyncio.to_thread(init_weights, task.model, 0)
            except ModelError as exc:
                raise ApiError(422, "invalid_task", str(exc)) from exc
            assert rt.store is not None
            await asyncio.to_thread(rt.store.put_task, task, weights, tokenizer)
            rt.add(task, 0, weights)
        log.info("created task %s", task.id)
        return JSONResponse(
            task.model_dump(mode="json"),
            status_code=201,
            headers={"Location": f"/api/tasks/{task.id}"},
        )

    app.include_router(invitation_routes(rt))
    app.include_router(tokenizer_routes(rt))

    @app.websocket("/ws")
    async def federated(ws: WebSocket) -> None:
        await serve_connection(rt, ws)

    # -- operations: Prometheus metrics (docs/operations.md) ---------------------------------
    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """The server's metrics in Prometheus text format; on an invitation-only server only
        with the admin token."""
        if rt.config.access == "invitation":
            authorize_admin(rt, request, "reading the metrics")
        return Response(rt.metrics.render(rt.samples()), media_type=METRICS_CONTENT_TYPE)

    _mount_web(app, rt)
    return app


def _field_errors(exc: TaskError) -> list[dict[str, str]]:
    """The 422 ``fields``: each problem's dotted path ("task" for the whole) and plain words."""
    cause = exc.__cause__
    if not isinstance(cause, ValidationError):
        return []
    return [
        {"field": field or "task", "message": message} for field, message in field_problems(cause)
    ]


STATIC_DIR = Path(__file__).parent / "static"
"""Where the build of the web app (web/, `make web`) lands inside the package."""


def _mount_web(app: FastAPI, rt: Runtime) -> None:
    """Serve the built web app at ``/`` when present, else a small page listing the tasks."""
    web_dir = rt.config.web_dir if rt.config.web_dir is not None else STATIC_DIR
    if web_dir.is_dir():
        static = StaticFiles(directory=web_dir, html=True)
        # COOP/COEP: the pages may train on several threads (disco.server.isolation)
        isolated = CrossOriginIsolated(static) if rt.config.cross_origin_isolation else static
        app.mount("/", isolated, name="web")
        return

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        if rt.config.access == "invitation":  # a private instance lists nothing to anyone
            return (
                "<!doctype html><meta charset='utf-8'><title>disco</title><h1>disco server</h1>"
                "<p>This server is private. The web app is not built (run <code>make web</code>)."
                "</p>"
            )
        items = "".join(
            f'<li><a href="/api/tasks/{html.escape(t.id)}">{html.escape(t.display.title)}</a> '
            f"<code>{html.escape(t.id)}</code></li>"
            for t in rt.tasks.values()
        )
        return (
            "<!doctype html><meta charset='utf-8'><title>disco</title><h1>disco server</h1>"
            "<p>The web app is not built (run <code>make web</code>). "
            "The API lives under <a href='/api/docs'>/api</a>.</p>"
            f"<h2>Tasks</h2><ul>{items or '<li>none yet</li>'}</ul>"
        )
