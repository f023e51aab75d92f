"""The ASGI app: REST under ``/api``, the federated WebSocket at ``/ws``, the web app at ``/``.

REST errors are JSON ``{"error": "<what went wrong>", "code": "<machine code>"}``.
WebSocket frames are binary protocol messages (`disco.protocol`); the first must be `Hello`.
Close codes: 1000 after `Leave`, 1009 frame too large, 1012 server shutting down, 4400 protocol
version mismatch, 4404 unknown task, 4408 no `Hello` within 30 s.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import logging
import tempfile
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from disco.errors import (
    DiscoError,
    ModelError,
    ProtocolError,
    SessionError,
    TaskError,
    VersionError,
)
from disco.protocol import (
    PROTOCOL_VERSION,
    ErrorCode,
    ErrorMessage,
    Hello,
    Leave,
    ModelUpdate,
    Status,
)
from disco.protocol import decode as decode_frame
from disco.protocol import encode as encode_frame
from disco.server.config import ServerConfig
from disco.server.session import FederatedSession, Outgoing
from disco.server.store import Store
from disco.task import Task, parse_task
from disco.weights import Weights

__all__ = ["ApiError", "create_app"]

log = logging.getLogger("disco.server")

HELLO_TIMEOUT_S = 30.0
SEND_TIMEOUT_S = 120.0  # one frame to a slow client; past it the connection is dropped
MAX_PENDING = 64  # queued frames per connection before it counts as stuck
MAX_TASK_BYTES = 16 * 2**20
_LARGE = 1 << 20  # encode/decode frames above this size off the event loop


class ApiError(Exception):
    """An HTTP error answered as ``{"error", "code", ...}``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class Traffic:
    """WebSocket bytes and frames exchanged for one task."""

    bytes_received: int = 0
    bytes_sent: int = 0
    frames_received: int = 0
    frames_sent: int = 0


class _Encoder:
    """Encode each message once, even when it is broadcast to many connections."""

    def __init__(self, size: int = 8):
        self._cache: OrderedDict[int, tuple[object, asyncio.Future[bytes]]] = OrderedDict()
        self._size = size

    async def __call__(self, message: Outgoing) -> bytes:
        weights = getattr(message, "weights", None)
        if not isinstance(weights, Weights) or weights.nbytes < _LARGE:
            return encode_frame(message)
        hit = self._cache.get(id(message))
        if hit is None or hit[0] is not message:
            future = asyncio.ensure_future(asyncio.to_thread(encode_frame, message))
            hit = self._cache[id(message)] = (message, future)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return await asyncio.shield(hit[1])


class _Runtime:
    """Everything the routes share: config, store, tasks, sessions, traffic."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.store: Store | None = None
        self.tasks: dict[str, Task] = {}
        self.sessions: dict[str, FederatedSession] = {}
        self.traffic: dict[str, Traffic] = {}
        self.encode = _Encoder()
        self.create_lock = asyncio.Lock()
        self._model_bytes: dict[str, tuple[str, bytes]] = {}

    async def open(self) -> None:
        """Open the store, seed the catalog, and resume every task's round and model."""
        self.store = store = Store(self.config.data_dir, self.config.keep_rounds)
        if self.config.seed_catalog:
            await asyncio.to_thread(_seed_catalog, store)
        for task in await asyncio.to_thread(store.list_tasks):
            try:
                state = await asyncio.to_thread(store.load_state, task.id)
            except DiscoError:
                log.exception("task %s cannot be resumed; it stays unavailable", task.id)
                continue
            if state is None:
                log.error("task %s has no global model; it stays unavailable", task.id)
                continue
            self.add(task, *state)
            log.info("task %s resumed at round %d", task.id, state[0])

    def add(self, task: Task, rnd: int, weights: Weights) -> None:
        """Start serving a task from round `rnd` with `weights`."""
        assert self.store is not None
        self.tasks[task.id] = task
        self.traffic[task.id] = Traffic()
        self.sessions[task.id] = FederatedSession(task, rnd, weights, save=self.store.save_round)

    async def aclose(self) -> None:
        """Stop every session (letting a closing round finish), then close the store."""
        await asyncio.gather(*(s.aclose() for s in self.sessions.values()))
        if self.store is not None:
            self.store.close()

    def session(self, task_id: str) -> FederatedSession:
        """The session of a task; 404 or 503 `ApiError` otherwise."""
        if task_id not in self.tasks:
            if self.store is not None and self.store.get_task(task_id) is not None:
                raise ApiError(503, "unavailable", f"task {task_id!r} failed to load; see the log")
            raise ApiError(404, "unknown_task", f"there is no task {task_id!r}")
        return self.sessions[task_id]

    async def model_bytes(self, session: FederatedSession) -> bytes:
        """The global model as a safetensors file, cached per digest."""
        cached = self._model_bytes.get(session.task.id)
        if cached is None or cached[0] != session.digest:
            digest, weights = session.digest, session.weights
            cached = (digest, await asyncio.to_thread(_safetensors_bytes, weights))
            self._model_bytes[session.task.id] = cached
        return cached[1]


def _safetensors_bytes(weights: Weights) -> bytes:
    """The bytes of the file `Weights.save` writes (the one canonical model file format)."""
    with tempfile.TemporaryDirectory(prefix="disco-model-") as folder:
        path = Path(folder) / "model.safetensors"
        weights.save(path)
        return path.read_bytes()


def _seed_catalog(store: Store) -> None:
    """Store the built-in tasks that are not stored yet (never overwrites)."""
    try:
        from disco.catalog import all_tasks  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        log.info("no built-in catalog to seed (%s)", exc)
        return
    from disco.models import init_weights

    try:
        tasks = list(all_tasks())
    except Exception:
        log.exception("the built-in catalog failed to load; no task seeded")
        return
    for task in tasks:
        try:
            if store.get_task(task.id) is None:
                store.put_task(task, init_weights(task.model, seed=0))
                log.info("seeded built-in task %s", task.id)
        except Exception:
            log.exception("could not seed built-in task %s", getattr(task, "id", task))


def create_app(config: ServerConfig) -> FastAPI:
    """The disco server as an ASGI app (its lifespan opens the store and resumes tasks)."""
    rt = _Runtime(config)

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

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = exc.extra.pop("headers", None)
        body = {"error": exc.message, "code": exc.code, **exc.extra}
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        body = {"error": str(exc.detail), "code": f"http_{exc.status_code}"}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """Liveness, versions and the number of tasks."""
        return {
            "status": "ok",
            "version": _version(),
            "protocol_version": PROTOCOL_VERSION,
            "tasks": len(rt.tasks),
        }

    @app.get("/api/tasks")
    async def list_tasks() -> list[dict[str, Any]]:
        """Every task served, as task JSON."""
        return [t.model_dump(mode="json") for t in rt.tasks.values()]

    @app.get("/api/tasks/{task_id}")
    async def get_task(task_id: str) -> dict[str, Any]:
        """One task as task JSON."""
        return rt.session(task_id).task.model_dump(mode="json")

    @app.get("/api/tasks/{task_id}/model")
    async def get_model(task_id: str, request: Request) -> Response:
        """The current global model (safetensors) with its round and digest in headers."""
        session = rt.session(task_id)
        rnd, digest = session.round, session.digest
        headers = {"X-Disco-Round": str(rnd), "X-Disco-Digest": digest, "ETag": f'"{digest}"'}
        headers["Cache-Control"] = "no-cache"
        if request.headers.get("if-none-match") == f'"{digest}"':
            return Response(status_code=304, headers=headers)
        body = await rt.model_bytes(session)
        return Response(body, media_type="application/octet-stream", headers=headers)

    @app.get("/api/tasks/{task_id}/rounds")
    async def get_rounds(task_id: str) -> list[dict[str, Any]]:
        """History of the closed rounds."""
        rt.session(task_id)
        assert rt.store is not None
        return [r.to_json() for r in await asyncio.to_thread(rt.store.history, task_id)]

    @app.get("/api/tasks/{task_id}/status")
    async def get_status(task_id: str) -> dict[str, Any]:
        """Round, participants, reports, phase and WebSocket traffic of a task."""
        s = rt.session(task_id)
        return {
            "task_id": task_id,
            **s.status().model_dump(exclude={"type"}),
            "phase": s.phase,
            "digest": s.digest,
            "deadline_in_s": s.deadline_in(),
            **asdict(rt.traffic[task_id]),
        }

    @app.get("/api/schema/task")
    async def task_schema() -> dict[str, Any]:
        """The JSON Schema of a task document."""
        return Task.json_schema()

    @app.post("/api/tasks", status_code=201)
    async def create_task(request: Request) -> JSONResponse:
        """Create a task from its JSON (admin token) with its initial global model."""
        _authorize(config, request)
        body = await request.body()
        if len(body) > MAX_TASK_BYTES:
            raise ApiError(
                413, "too_large", f"a task document is limited to {MAX_TASK_BYTES} bytes"
            )
        try:
            task = parse_task(body)
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
            await asyncio.to_thread(rt.store.put_task, task, weights)
            rt.add(task, 0, weights)
        log.info("created task %s", task.id)
        return JSONResponse(
            task.model_dump(mode="json"),
            status_code=201,
            headers={"Location": f"/api/tasks/{task.id}"},
        )

    @app.websocket("/ws")
    async def federated(ws: WebSocket) -> None:
        await _serve_connection(rt, ws)

    _mount_web(app, rt)
    return app


def _authorize(config: ServerConfig, request: Request) -> None:
    """Allow task creation per `ServerConfig` (bearer token, or open when configured)."""
    if config.admin_token is None:
        if config.allow_open_creation:
            return
        raise ApiError(
            403,
            "creation_disabled",
            "task creation is disabled on this server; its operator can enable it with an "
            "admin token (DISCO_ADMIN_TOKEN)",
        )
    header = request.headers.get("authorization", "")
    if not header:
        raise ApiError(
            401,
            "unauthorized",
            "creating a task needs the header 'Authorization: Bearer <admin token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), config.admin_token.encode()
    ):
        raise ApiError(403, "forbidden", "the admin token is wrong")


def _field_errors(exc: TaskError) -> list[dict[str, str]]:
    cause = exc.__cause__
    if not isinstance(cause, ValidationError):
        return []
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "task", "message": e["msg"]}
        for e in cause.errors()
    ]


def _version() -> str:
    try:
        return metadata.version("disco")
    except metadata.PackageNotFoundError:
        return "unknown"


def _mount_web(app: FastAPI, rt: _Runtime) -> None:
    """Serve the built web app at ``/`` when present, else a small page listing the tasks."""
    web_dir = rt.config.web_dir
    if web_dir is not None and web_dir.is_dir():
        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
        return

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        items = "".join(
            f'<li><a href="/api/tasks/{html.escape(t.id)}">{html.escape(t.display.title)}</a> '
            f"<code>{html.escape(t.id)}</code></li>"
            for t in rt.tasks.values()
        )
        return (
            "<!doctype html><meta charset='utf-8'><title>disco</title><h1>disco server</h1>"
            "<p>The web app is not built (set <code>web_dir</code>). "
            "The API lives under <a href='/api/docs'>/api</a>.</p>"
            f"<h2>Tasks</h2><ul>{items or '<li>none yet</li>'}</ul>"
        )


# -- the federated WebSocket -----------------------------------------------------------------
class _Connection:
    """One WebSocket participant: an outbox drained by a writer task (never blocks the session)."""

    def __init__(self, ws: WebSocket, rt: _Runtime):
        self.ws, self.rt = ws, rt
        self.name, self.kind = "", "python"
        self.traffic: Traffic | None = None
        self._outbox: deque[Outgoing | tuple[int, str]] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._writer = asyncio.get_running_loop().create_task(self._write())

    async def send(self, message: Outgoing) -> None:
        """Queue a message; a newer `Status` replaces one still waiting."""
        if self._closed:
            return
        if isinstance(message, Status) and self._outbox and isinstance(self._outbox[-1], Status):
            self._outbox[-1] = message
        elif len(self._outbox) >= MAX_PENDING:
            log.warning("%s/%s does not read its messages; disconnecting", self.name, self.kind)
            self._outbox.clear()
            self._outbox.append((1008, "too many unread messages"))
            self._closed = True
        else:
            self._outbox.append(message)
        self._wake.set()

    async def error(
        self, code: ErrorCode, message: str, close: tuple[int, str] | None = None
    ) -> None:
        """Send an `ErrorMessage`, then close the connection if `close` is given."""
        await self.send(ErrorMessage(code=code, message=message))
        if close is not None:
            await self.close(*close)

    async def close(self, code: int, reason: str) -> None:
        """Flush the outbox, close the socket (bounded wait)."""
        if not self._closed:
            self._outbox.append((code, reason))
            self._closed = True
            self._wake.set()
        with suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.shield(self._writer)

    async def finish(self) -> None:
        """Stop the writer (the socket is gone or closed)."""
        self._closed = True
        self._writer.cancel()
        with suppress(asyncio.CancelledError):
            await self._writer

    async def _write(self) -> None:
        try:
            while True:
                while not self._outbox:
                    self._wake.clear()
                    await self._wake.wait()
                item = self._outbox.popleft()
                if isinstance(item, tuple):
                    async with asyncio.timeout(SEND_TIMEOUT_S):
                        await self.ws.close(*item)
                    return
                frame = await self.rt.encode(item)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self.ws.send_bytes(frame)
                if self.traffic is not None:
                    self.traffic.bytes_sent += len(frame)
                    self.traffic.frames_sent += 1
        except Exception as exc:  # the socket went away or stalled: the reader will notice
            log.debug("writer for %s/%s stopped: %r", self.name, self.kind, exc)
            self._closed = True
            with suppress(Exception):
                await self.ws.close(1011, "send failed")


async def _serve_connection(rt: _Runtime, ws: WebSocket) -> None:
    """Run one participant's connection from `Hello` to close."""
    await ws.accept()
    conn = _Connection(ws, rt)
    session: FederatedSession | None = None
    client_id: str | None = None
    limit = rt.config.max_frame_bytes
    try:
        while True:
            try:
                timeout = HELLO_TIMEOUT_S if client_id is None else None
                async with asyncio.timeout(timeout):
                    event = await ws.receive()
            except TimeoutError:
                await conn.error("unexpected", "no hello received in time", (4408, "no hello"))
                return
            if event["type"] == "websocket.disconnect":
                return
            data = event.get("bytes")
            if data is None:
                await conn.error("malformed", "text frames are not used: send binary frames")
                continue
            if conn.traffic is not None:
                conn.traffic.bytes_received += len(data)
                conn.traffic.frames_received += 1
            if len(data) > limit:
                msg = f"frame of {len(data)} bytes exceeds this server's limit of {limit} bytes"
                await conn.error("too_large", msg, (1009, "frame too large"))
                return
            try:
                if len(data) > _LARGE:
                    message = await asyncio.to_thread(decode_frame, data, limit)
                else:
                    message = decode_frame(data, limit)
            except VersionError as exc:
                await conn.error("version", str(exc), (4400, "protocol version"))
                return
            except ProtocolError as exc:
                await conn.error("malformed", str(exc))
                continue
            if client_id is None:
                if not isinstance(message, Hello):
                    await conn.error("unexpected", f"send hello first, not {message.type!r}")
                    continue
                if message.task_id not in rt.tasks:
                    text = f"there is no task {message.task_id!r} on this server"
                    await conn.error("unknown_task", text, (4404, "unknown task"))
                    return
                session = rt.sessions[message.task_id]
                conn.name, conn.kind = message.name, message.kind
                conn.traffic = rt.traffic[message.task_id]
                conn.traffic.bytes_received += len(data)
                conn.traffic.frames_received += 1
                client_id = await session.join(conn)
            elif isinstance(message, ModelUpdate):
                assert session is not None
                await session.submit(client_id, message)
            elif isinstance(message, Leave):
                await conn.close(1000, "bye")
                return
            else:
                await conn.error("unexpected", f"a client does not send {message.type!r}")
    except SessionError:  # the server is shutting down
        await conn.close(1012, "server shutting down")
    finally:
        if session is not None and client_id is not None:
            await session.leave(client_id)
        await conn.finish()
