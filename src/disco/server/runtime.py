"""What the routes and the WebSocket share: the store, the served tasks and their sessions.

`Runtime` opens the store, seeds the built-in catalog, resumes every task at its stored round and
model, and keeps per-task WebSocket `Traffic` and the server's `Metrics`. At shutdown `drain`
lets closing rounds finish and tells every connection the server is restarting. `ApiError` is
the HTTP error the REST routes answer as ``{"error", "code", ...}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from disco.errors import DiscoError
from disco.protocol import PROTOCOL_VERSION, ErrorCode, ServerMessage
from disco.protocol import encode as encode_frame
from disco.server.config import ServerConfig
from disco.server.decentralized import DecentralizedSession
from disco.server.invitations import Invitations
from disco.server.metrics import Metrics, TaskSample, package_version
from disco.server.peer_secure import SecurePeerSession
from disco.server.secure import SecureSession
from disco.server.session import FederatedSession
from disco.server.store import RoundRecord, Store
from disco.task import Task
from disco.weights import Weights

__all__ = [
    "LARGE_FRAME_BYTES",
    "RESTART_NOTICE",
    "ApiError",
    "Notified",
    "Runtime",
    "Session",
    "Traffic",
]

Session = FederatedSession | DecentralizedSession
"""A task's session: the server aggregates (federated; `SecureSession` when it may see only the
sum) or only paces the peers (decentralized)."""

log = logging.getLogger("disco.server")

LARGE_FRAME_BYTES = 1 << 20  # encode/decode frames above this size off the event loop
RESTART_NOTICE = "the server is restarting; reconnect in a moment to go on in the same round"
"""The `ErrorMessage` (code ``restarting``) every connection gets before close code 1012."""


class Notified(Protocol):
    """A connection `Runtime.drain` can tell that the server is restarting (and that the
    invitation routes can close when its invitation is revoked)."""

    invitation: str | None
    """The id of the invitation it joined with (a private instance), else None."""

    async def restarting(self) -> None:
        """Send the restart notice, then close with 1012."""

    async def refuse(
        self, reason: str, code: ErrorCode, message: str, close: tuple[int, str]
    ) -> None:
        """Count a refusal under `reason`, send an `ErrorMessage`, then close."""


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
        self._small: OrderedDict[int, tuple[object, bytes]] = OrderedDict()
        self._size = size

    async def __call__(self, message: ServerMessage) -> bytes:
        weights = getattr(message, "weights", None)
        if not isinstance(weights, Weights) or weights.nbytes < LARGE_FRAME_BYTES:
            # small: encoded here, and kept a while for the other receivers of a broadcast
            small = self._small.get(id(message))
            if small is not None and small[0] is message:
                self._small.move_to_end(id(message))
                return small[1]
            frame = encode_frame(message)
            self._small[id(message)] = (message, frame)
            while len(self._small) > self._size:
                self._small.popitem(last=False)
            return frame
        hit = self._cache.get(id(message))
        if hit is None or hit[0] is not message:
            future = asyncio.ensure_future(asyncio.to_thread(encode_frame, message))
            hit = self._cache[id(message)] = (message, future)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return await asyncio.shield(hit[1])


class Runtime:
    """Everything the routes share: config, store, tasks, sessions, traffic."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.store: Store | None = None
        self.tasks: dict[str, Task] = {}
        self.sessions: dict[str, Session] = {}
        self.traffic: dict[str, Traffic] = {}
        self.metrics = Metrics(package_version(), PROTOCOL_VERSION)
        self.connections: set[Notified] = set()  # open WebSocket connections (for `drain`)
        self.draining = False  # shutting down: no new participant joins
        self.invitations: Invitations | None = None  # set by `open`
        self.encode = _Encoder()
        self.create_lock = asyncio.Lock()
        self._model_bytes: dict[str, tuple[str, bytes]] = {}

    async def open(self) -> None:
        """Open the store, seed the catalog, and resume every task's round and model."""
        self.store = store = Store(self.config.data_dir, self.config.keep_rounds)
        self.invitations = await asyncio.to_thread(Invitations, store)
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
        self.metrics.add_task(task.id)
        if task.training.scheme == "decentralized":
            self.sessions[task.id] = self._decentralized(task, weights)
        elif task.training.secure_aggregation is not None:
            self.sessions[task.id] = SecureSession(task, rnd, weights, save=self._save_round)
        else:
            self.sessions[task.id] = FederatedSession(task, rnd, weights, save=self._save_round)

    def _save_round(self, task_id: str, rnd: int, weights: Weights, record: RoundRecord) -> None:
        """Persist a closed federated round, then count it (a worker thread)."""
        assert self.store is not None
        self.store.save_round(task_id, rnd, weights, record)
        self.metrics.round_closed(task_id, record.duration_s, "aborted" in record.aggregation)

    def _record_round(self, task_id: str, record: RoundRecord) -> None:
        """Record a decentralized round's history row and count the round (a worker thread)."""
        assert self.store is not None
        try:
            self.store.record_round(task_id, record)
        finally:  # the round closed whether or not its row could be written
            self.metrics.round_closed(task_id, record.duration_s, "aborted" in record.aggregation)

    def _decentralized(self, task: Task, initial: Weights) -> DecentralizedSession:
        """The session of a decentralized task, resumed after its last recorded round (the server
        holds only the initial model; the peers hold the rest)."""
        assert self.store is not None
        last = self.store.history(task.id, 1)
        rnd, digest = (last[0].round + 1, last[0].digest or None) if last else (0, None)
        if last and last[0].aggregation.get("topology") == "sparse":
            digest = None  # after a sparse round every peer holds its own model
        secure = task.training.secure_aggregation is not None
        kind = SecurePeerSession if secure else DecentralizedSession
        return kind(task, rnd, initial, digest=digest, record=self._record_round)

    async def drain(self) -> None:
        """Shut down the sessions, letting a round whose close has started finish and be saved
        (its result goes out), then tell every connection the server is restarting (an
        `ErrorMessage` with code ``restarting``, then close code 1012). New joins are refused."""
        if self.draining:
            return
        self.draining = True
        await asyncio.gather(*(s.aclose() for s in self.sessions.values()))
        connections = list(self.connections)
        if connections:
            log.info("telling %d connection(s) that the server is restarting", len(connections))
        await asyncio.gather(*(c.restarting() for c in connections))

    async def aclose(self) -> None:
        """Stop every session (letting a closing round finish), then close the store."""
        await self.drain()
        if self.invitations is not None:
            self.invitations.flush()
        if self.store is not None:
            self.store.close()

    def samples(self) -> list[TaskSample]:
        """Each served task's values for `Metrics.render`, read now."""
        return [
            TaskSample(
                task_id=task_id,
                participants=session.participants,
                round=session.round,
                **asdict(self.traffic[task_id]),
            )
            for task_id, session in self.sessions.items()
        ]

    def session(self, task_id: str) -> Session:
        """The session of a task; 404 or 503 `ApiError` otherwise."""
        if task_id not in self.tasks:
            if self.store is not None and self.store.get_task(task_id) is not None:
                raise ApiError(503, "unavailable", f"task {task_id!r} failed to load; see the log")
            raise ApiError(404, "unknown_task", f"there is no task {task_id!r}")
        return self.sessions[task_id]

    async def model_bytes(self, session: Session) -> bytes:
        """The global model as a safetensors file, cached per digest."""
        cached = self._model_bytes.get(session.task.id)
        if cached is None or cached[0] != session.digest:
            digest, weights = session.digest, session.weights
            cached = (digest, await asyncio.to_thread(weights.to_safetensors))
            self._model_bytes[session.task.id] = cached
        return cached[1]


def _seed_catalog(store: Store) -> None:
    """Store the built-in tasks that are not stored yet (never overwrites)."""
    try:
        from disco.catalog import all_tasks  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        log.info("no built-in catalog to seed (%s)", exc)
        return
    from disco.catalog import builtin_tokenizer
    from disco.models import init_weights

    try:
        tasks = list(all_tasks())
    except Exception:
        log.exception("the built-in catalog failed to load; no task seeded")
        return
    for task in tasks:
        try:
            if store.get_task(task.id) is None:
                tokenizer = builtin_tokenizer(task.id)
                data = None if tokenizer is None else tokenizer.to_bytes()
                store.put_task(task, init_weights(task.model, seed=0), data)
                log.info("seeded built-in task %s", task.id)
        except Exception:
            log.exception("could not seed built-in task %s", getattr(task, "id", task))
