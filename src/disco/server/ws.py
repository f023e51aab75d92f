"""The federated WebSocket at ``/ws``: one participant's connection from `Hello` to close.

Frames are binary protocol messages (`disco.protocol`); the first must be `Hello`, naming a served
task. After it a client sends `ModelUpdate`s and finally `Leave`; anything else gets an
`ErrorMessage`. Messages to a client go through an outbox drained by a writer task, so a slow
client never blocks its session; one that lets ``MAX_PENDING`` frames pile up is dropped.
In a decentralized task the client is a peer: it must announce capability ``decentralized`` and
sends the decentralized messages (`Signal`, `Ready`, `Received`, `DigestReport`) instead of
updates. In a task with secure aggregation it must announce ``secure_aggregation`` and sends the
phases' messages (`SecureKeys`, `SecureShares`, `SecureInput`, `SecureReveal`) instead.

Close codes: 1000 after `Leave`, 1008 too many unread messages, 1009 frame too large, 1011 send
failed, 1012 server restarting (after an `ErrorMessage` with code ``restarting``), 4400 protocol
version mismatch, 4403 no valid invitation (a private instance; also when the invitation a
participant joined with is revoked), 4404 unknown task, 4408 no `Hello` within 30 s, 4426 the task
needs a capability the client did not announce, 4429 a limit: the task is full, or too many
connections from one address (`disco.server.limits`; reconnecting later may help).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import suppress

from fastapi import WebSocket

from disco.errors import ProtocolError, SessionError, VersionError
from disco.protocol import (
    CAPABILITIES,
    PEER_TYPES,
    DigestReport,
    ErrorCode,
    ErrorMessage,
    Hello,
    Leave,
    ModelUpdate,
    Ready,
    Received,
    SecureInput,
    SecureKeys,
    SecureReveal,
    SecureShares,
    ServerMessage,
    Signal,
    Status,
)
from disco.protocol import decode as decode_frame
from disco.server.addresses import client_address
from disco.server.decentralized import DecentralizedSession
from disco.server.invitations import Refused, Required
from disco.server.peer_secure import SecurePeerSession
from disco.server.runtime import LARGE_FRAME_BYTES, RESTART_NOTICE, Runtime, Session, Traffic
from disco.server.secure import SecureSession

__all__ = ["serve_connection"]

log = logging.getLogger("disco.server")

HELLO_TIMEOUT_S = 30.0
SEND_TIMEOUT_S = 120.0  # one frame to a slow client; past it the connection is dropped
MAX_PENDING = 64  # queued frames per connection before it counts as stuck


class _Connection:
    """One WebSocket participant: an outbox drained by a writer task (never blocks the session)."""

    def __init__(self, ws: WebSocket, rt: Runtime):
        self.ws, self.rt = ws, rt
        self.name, self.kind = "", "python"
        self.invitation: str | None = None  # the id of the invitation it joined with
        self.address = client_address(ws)
        self.traffic: Traffic | None = None
        self._outbox: deque[ServerMessage | tuple[int, str]] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._writer = asyncio.get_running_loop().create_task(self._write())

    async def send(self, message: ServerMessage) -> None:
        """Queue a message; a newer `Status` replaces one still waiting."""
        if self._closed:
            return
        if isinstance(message, Status) and self._outbox and isinstance(self._outbox[-1], Status):
            self._outbox[-1] = message
        elif len(self._outbox) >= MAX_PENDING:
            log.warning(
                "%s/%s (%s) does not read its messages; disconnecting",
                *(self.name, self.kind, self.address),
            )
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

    async def refuse(
        self, reason: str, code: ErrorCode, message: str, close: tuple[int, str]
    ) -> None:
        """Refuse the connection: count it under `reason`, log it, send the error and close."""
        self.rt.metrics.refusal(reason)
        log.info("refused a connection from %s (%s): %s", self.address, reason, message)
        await self.error(code, message, close)

    async def restarting(self) -> None:
        """Tell the participant the server is restarting, then close with 1012."""
        await self.error("restarting", RESTART_NOTICE, (1012, "server restarting"))

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


async def serve_connection(rt: Runtime, ws: WebSocket) -> None:
    """Run one participant's connection from `Hello` to close."""
    await ws.accept()
    conn = _Connection(ws, rt)
    rt.connections.add(conn)
    session: Session | None = None
    connection_id: str | None = None  # the session's id for this connection, once joined
    limit = rt.config.max_frame_bytes
    try:
        while True:
            try:
                timeout = HELLO_TIMEOUT_S if connection_id is None else None
                async with asyncio.timeout(timeout):
                    event = await ws.receive()
            except TimeoutError:
                await conn.error("unexpected", "no hello received in time", (4408, "no hello"))
                return
            if event["type"] == "websocket.disconnect":
                return
            if rt.draining:  # shutting down: what comes now is sent again after the restart
                await conn.restarting()
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
                await conn.refuse("too_large", "too_large", msg, (1009, "frame too large"))
                return
            try:
                if len(data) > LARGE_FRAME_BYTES:
                    message = await asyncio.to_thread(decode_frame, data, limit)
                else:
                    message = decode_frame(data, limit)
            except VersionError as exc:
                await conn.refuse("version", "version", str(exc), (4400, "protocol version"))
                return
            except ProtocolError as exc:
                await conn.error("malformed", str(exc))
                continue
            if connection_id is None:
                if not isinstance(message, Hello):
                    await conn.error("unexpected", f"send hello first, not {message.type!r}")
                    continue
                # a private instance says nothing about a task, not even that it exists, to
                # someone not invited to it
                if rt.config.access == "invitation" and not await _invited(rt, conn, message):
                    return
                if message.task_id not in rt.tasks:
                    text = f"there is no task {message.task_id!r} on this server"
                    await conn.refuse("unknown_task", "unknown_task", text, (4404, "unknown task"))
                    return
                session = rt.sessions[message.task_id]
                needs = _lacks(session, message)
                if needs is not None:
                    what = "is decentralized" if needs == "decentralized" else "uses " + needs
                    text = (
                        f"task {message.task_id!r} {what.replace('_', ' ')}: this client does "
                        f"not speak capability {needs!r}; update it or use one that does"
                    )
                    await conn.refuse(
                        "capability", "unsupported", text, (4426, "capability needed")
                    )
                    return
                most = rt.config.max_participants
                if not session.has_room(message.participant_key, most):
                    text = (
                        f"task {message.task_id!r} is full: it takes at most {most} "
                        "participants on this server; try again later"
                    )
                    await conn.refuse("max_participants", "limited", text, (4429, "task full"))
                    return
                conn.name, conn.kind = message.name, message.kind
                conn.traffic = rt.traffic[message.task_id]
                conn.traffic.bytes_received += len(data)
                conn.traffic.frames_received += 1
                connection_id = await session.join(conn, message.participant_key)
            elif isinstance(message, Leave):
                await conn.close(1000, "bye")
                return
            elif isinstance(session, DecentralizedSession):
                if isinstance(message, Signal | Ready | Received | DigestReport):
                    await session.receive(connection_id, message)
                elif isinstance(session, SecurePeerSession) and isinstance(
                    message, SecureKeys | SecureShares | SecureInput | SecureReveal
                ):
                    await session.receive(connection_id, message)
                elif isinstance(message, ModelUpdate):
                    text = "this task is decentralized: updates go to the peers, not the server"
                    await conn.error("unexpected", text)
                else:
                    await conn.error("unexpected", _not_sent(message.type))
            elif isinstance(message, SecureKeys | SecureShares | SecureInput | SecureReveal):
                if isinstance(session, SecureSession):
                    await session.receive(connection_id, message)
                else:
                    text = f"{message.type!r} belongs to tasks with secure aggregation"
                    await conn.error("unsupported", text)
            elif isinstance(message, ModelUpdate):
                assert session is not None
                await session.submit(connection_id, message)
            elif isinstance(message, Signal | Ready | Received | DigestReport):
                text = f"{message.type!r} belongs to decentralized tasks; this one is federated"
                await conn.error("unsupported", text)
            else:
                await conn.error("unexpected", _not_sent(message.type))
    except SessionError:  # the server is shutting down
        await conn.restarting()
    finally:
        rt.connections.discard(conn)
        if session is not None and connection_id is not None:
            await session.leave(connection_id)
        await conn.finish()


async def _invited(rt: Runtime, conn: _Connection, hello: Hello) -> bool:
    """Whether `hello` carries a valid invitation to its task (refused and closed if not)."""
    assert rt.invitations is not None
    try:
        record = rt.invitations.check(hello.invitation, hello.task_id)
    except (Required, Refused) as exc:
        close = "invitation required" if isinstance(exc, Required) else "invitation refused"
        text = f"{exc}; open the invitation link you received, or ask for a new one"
        await conn.refuse("invitation", "forbidden", text, (4403, close))
        return False
    conn.invitation = record.id
    rt.invitations.used(record)
    await asyncio.to_thread(rt.invitations.flush)
    return True


def _lacks(session: Session, hello: Hello) -> str | None:
    """The first capability `session` needs that `hello` does not announce, if any."""
    for capability in session.capabilities:
        if capability not in hello.capabilities or capability not in CAPABILITIES:
            return capability
    return None


def _not_sent(kind: str) -> str:
    if kind in PEER_TYPES:
        return f"{kind!r} travels between peers, never to the server"
    return f"a client does not send {kind!r}"
